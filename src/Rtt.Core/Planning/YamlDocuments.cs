using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rtt.Core.Planning;

/// <summary>YAML versions of the planner's inputs (routes.yaml, policy.yaml, topology.yaml), read into the same JSON model.</summary>
public static class YamlDocuments
{
    public static JsonObject ReadObject(string path)
    {
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            stream.Load(reader);
        }
        catch (YamlException ex)
        {
            throw new RttException(ErrorCodes.YamlInvalid, $"not valid YAML: {ex.Message}", $"{path}:{ex.Start.Line}:{ex.Start.Column}", "fix the YAML at that position");
        }

        return stream.Documents.Count > 0 && Convert(stream.Documents[0].RootNode) is JsonObject obj ? obj
            : throw new RttException(ErrorCodes.YamlInvalid, "expected a mapping at the top level", path, "write key: value pairs");
    }

    private static JsonNode? Convert(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", Convert(kv.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(Convert)]),
        YamlScalarNode s => Scalar(s),
        _ => null,
    };

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
