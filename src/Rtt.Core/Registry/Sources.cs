using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rtt.Core.Registry;

/// <summary>A definition read from a source file, ready to ingest, with the symbols it exports.</summary>
public sealed record SourceObject(JsonObject Object, string Id, string Version, IReadOnlyList<SymbolEntry> Symbols);

/// <summary>One exported symbol: <c>rtt://area/kind/name</c> at a version, with its types.</summary>
public sealed record SymbolEntry(string Symbol, string Version, string Kind, JsonNode? Input, JsonNode? Output)
{
    public JsonObject ToJson(string objectHash, string source) => new()
    {
        ["version"] = Version,
        ["kind"] = Kind,
        ["object"] = objectHash,
        ["input"] = Input?.DeepClone(),
        ["output"] = Output?.DeepClone(),
        ["source"] = source,
    };
}

/// <summary>Parsers for the file kinds discovery reads. Each validates against its schema with exact locations.</summary>
public static class Sources
{
    /// <summary>An <c>*.agent.json</c>: the RTT agent definition format (docs/registry.md).</summary>
    public static SourceObject Agent(ReadOnlySpan<byte> bytes, string source)
    {
        using var doc = CanonicalJson.Parse(bytes, source);
        return Agent(doc.RootElement, source);
    }

    public static SourceObject Agent(JsonElement root, string source)
    {
        SchemaValidator.Validate(SchemaValidator.Agent, root, source);
        var obj = (JsonObject)JsonNode.Parse(root.GetRawText())!;
        var id = (string)obj["id"]!;
        var version = (string)obj["version"]!;
        SchemaValidator.Semver(version, $"{source}: /version");
        var symbols = new List<SymbolEntry>();
        if (obj["exports"] is JsonArray exports)
        {
            foreach (var export in exports)
            {
                symbols.Add(new SymbolEntry((string)export!["symbol"]!, version, "agent", export["input"], export["output"]));
            }
        }

        return new SourceObject(obj, id, version, symbols);
    }

    /// <summary>A symbol manifest (<c>.rtt/manifests/*.json</c>): a symbol contract, its ID is its address.</summary>
    public static SourceObject Manifest(ReadOnlySpan<byte> bytes, string source)
    {
        using var doc = CanonicalJson.Parse(bytes, source);
        SchemaValidator.Validate(SchemaValidator.Manifest, doc.RootElement, source);
        var obj = (JsonObject)JsonNode.Parse(doc.RootElement.GetRawText())!;
        var address = (string)obj["address"]!;
        var version = (string)obj["version"]!;
        SchemaValidator.Semver(version, $"{source}: /version");
        if (obj["serve"] is { } serve)
        {
            Calls.ServeSpec.Normalize(serve, source); // checked at ingest, so a bad serve block never reaches a plan
        }

        return new SourceObject(obj, address, version, [new SymbolEntry(address, version, "service", obj["input"], obj["output"])]);
    }

    /// <summary>
    /// A Claude Code subagent (<c>.claude/agents/NAME.md</c>): YAML front matter (name, description, tools, model)
    /// and a Markdown body (the system prompt) become an RTT agent definition.
    /// </summary>
    public static SourceObject ClaudeSubagent(string text, string source)
    {
        var (frontMatter, body) = SplitFrontMatter(text, source);
        var yaml = ParseYamlMapping(frontMatter, source);
        string Field(string name, bool required)
        {
            if (yaml.TryGetValue(name, out var value))
            {
                return value;
            }

            return required
                ? throw new RttException(ErrorCodes.SchemaViolation, $"front matter has no \"{name}\"", $"{source}: /{name}", $"add `{name}:` to the front matter")
                : "";
        }

        var name = Field("name", required: true);
        var agent = new JsonObject
        {
            ["id"] = name,
            ["version"] = yaml.TryGetValue("version", out var v) ? v : "1.0.0",
            ["description"] = Field("description", required: true),
            ["instructions"] = body.Trim('\n') + "\n",
            ["tools"] = new JsonArray([.. Field("tools", required: false).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Distinct(StringComparer.Ordinal).Select(t => (JsonNode)JsonValue.Create(t))]),
            ["exports"] = new JsonArray(new JsonObject
            {
                ["symbol"] = $"rtt://agents/agent/{name}",
                ["input"] = "rtt.types/Text",
                ["output"] = "rtt.types/Text",
            }),
            ["provider"] = new JsonObject { ["claude"] = new JsonObject { ["file"] = Path.GetFileName(source) } },
        };
        if (yaml.TryGetValue("model", out var model))
        {
            agent["model"] = new JsonObject { ["hint"] = model };
        }

        using var doc = JsonDocument.Parse(CanonicalJson.Serialize(agent));
        return Agent(doc.RootElement, source);
    }

    private static (string FrontMatter, string Body) SplitFrontMatter(string text, string source)
    {
        var normalized = text.Replace("\r\n", "\n", StringComparison.Ordinal);
        if (!normalized.StartsWith("---\n", StringComparison.Ordinal))
        {
            throw new RttException(ErrorCodes.YamlInvalid, "no YAML front matter (the file must start with a line ---)", $"{source}:1", "start the file with --- , the fields, and --- ");
        }

        var end = normalized.IndexOf("\n---", 3, StringComparison.Ordinal);
        if (end < 0)
        {
            throw new RttException(ErrorCodes.YamlInvalid, "front matter is not closed by a line ---", source, "close the front matter with a line ---");
        }

        var after = normalized.IndexOf('\n', end + 4);
        return (normalized[4..(end + 1)], after < 0 ? "" : normalized[(after + 1)..]);
    }

    /// <summary>Reads a flat YAML mapping of scalars (lists become comma-joined) with YamlDotNet.</summary>
    private static Dictionary<string, string> ParseYamlMapping(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException ex)
        {
            throw new RttException(ErrorCodes.YamlInvalid, $"front matter is not valid YAML: {ex.Message}", $"{source}:{ex.Start.Line + 1}:{ex.Start.Column}", "fix the YAML at that position");
        }

        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode map)
        {
            throw new RttException(ErrorCodes.YamlInvalid, "front matter must be a mapping of fields", source, "write name: …, description: … between the --- lines");
        }

        foreach (var (key, value) in map.Children)
        {
            var k = (key as YamlScalarNode)?.Value ?? "";
            result[k] = value switch
            {
                YamlScalarNode s => s.Value ?? "",
                YamlSequenceNode seq => string.Join(", ", seq.Children.OfType<YamlScalarNode>().Select(c => c.Value)),
                _ => throw new RttException(ErrorCodes.YamlInvalid, $"field \"{k}\" must be a value or a list", $"{source}: /{k}", "use a plain value"),
            };
        }

        return result;
    }

    /// <summary>Loads text as UTF-8 (strict), naming the file on bad bytes.</summary>
    public static string ReadText(byte[] bytes, string source)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new RttException(ErrorCodes.YamlInvalid, "file is not valid UTF-8", source, "save it as UTF-8");
        }
    }
}
