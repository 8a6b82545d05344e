using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rtt.Planning;

/// <summary>YAML versions of the planner's inputs (routes.yaml, policy.yaml, topology.yaml), read into the same JSON model.</summary>
public static class YamlDocuments
{
    /// <summary>Most values a YAML document may expand to (aliases included): a "billion laughs" document is refused.</summary>
    public const int MaxNodes = 1_000_000;

    public static JsonObject ReadObject(string path)
    {
        var stream = new YamlStream();
        var bytes = WorkspaceFiles.ReadBytes(path);
        string text;
        try
        {
            text = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new RttException(ErrorCodes.YamlInvalid, "not valid UTF-8", path, "save the file as UTF-8");
        }

        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException ex) when (ex.Message.StartsWith("Duplicate key", StringComparison.Ordinal))
        {
            // YamlDotNet's representation model refuses a repeated key while loading: the same error as in JSON.
            throw new RttException(ErrorCodes.JsonDuplicateKey, "a mapping has the same key twice", $"{path}:{ex.Start.Line}:{ex.Start.Column}", "remove one of the two keys");
        }
        catch (YamlException ex)
        {
            throw new RttException(ErrorCodes.YamlInvalid, $"not valid YAML: {ex.Message}", $"{path}:{ex.Start.Line}:{ex.Start.Column}", "fix the YAML at that position");
        }

        var budget = MaxNodes;
        return stream.Documents.Count > 0 && Convert(stream.Documents[0].RootNode, path, "", 0, ref budget) is JsonObject obj ? obj
            : throw new RttException(ErrorCodes.YamlInvalid, "expected a mapping at the top level", path, "write key: value pairs");
    }

    private static JsonNode? Convert(YamlNode node, string path, string at, int depth, ref int budget)
    {
        if (--budget < 0)
        {
            throw new RttException(ErrorCodes.YamlInvalid, $"the document expands to more than {MaxNodes} values (aliases?)", path, "write the values out; no planner input needs this many");
        }

        if (depth > CanonicalJson.MaxDepth)
        {
            throw new RttException(ErrorCodes.YamlInvalid, $"nested deeper than {CanonicalJson.MaxDepth} levels", $"{path}: {at}", "flatten the document");
        }

        switch (node)
        {
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (key, value) in map.Children)
                {
                    if (key is not YamlScalarNode scalar)
                    {
                        throw new RttException(ErrorCodes.YamlInvalid, "a mapping key is not a plain value", $"{path}:{key.Start.Line}:{key.Start.Column}", "use text keys");
                    }

                    var name = scalar.Value ?? "";
                    if (obj.ContainsKey(name))
                    {
                        throw new RttException(ErrorCodes.JsonDuplicateKey, $"duplicate key \"{name}\"", $"{path}:{key.Start.Line}:{key.Start.Column}", "remove one of the two keys");
                    }

                    obj[name] = Convert(value, path, $"{at}/{name}", depth + 1, ref budget);
                }

                return obj;
            case YamlSequenceNode seq:
                var array = new JsonArray();
                foreach (var item in seq.Children)
                {
                    array.Add(Convert(item, path, $"{at}/{array.Count}", depth + 1, ref budget));
                }

                return array;
            case YamlScalarNode s:
                return Scalar(s);
            default:
                return null;
        }
    }

    // Plain scalars follow YAML 1.2's core schema (null, booleans, numbers); quoted ones are strings.
    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded)
        {
            return JsonValue.Create(v);
        }

        return v switch
        {
            "null" or "~" or "" => null,
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ when long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
            _ when double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
            _ => JsonValue.Create(v),
        };
    }
}
