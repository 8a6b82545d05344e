using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;

namespace Rtt.Registry;

/// <summary>A definition read from a source file, ready to ingest, with the symbols it exports.</summary>
/// <param name="FollowsEdits">The version is not the file's own (a Claude subagent without <c>version:</c>): discovery gives an
/// edited file the next free version instead of refusing it.</param>
public sealed record SourceObject(JsonObject Object, string Id, string Version, IReadOnlyList<SymbolEntry> Symbols)
{
    public bool FollowsEdits { get; init; }

    /// <summary>What was accepted but deserves a look (a line read leniently), each naming its file and line.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

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
        if (!ManifestShape.SurelyValid(doc.RootElement))
        {
            SchemaValidator.Validate(SchemaValidator.Manifest, doc.RootElement, source); // the judge, and what names a fault
        }

        var obj = (JsonObject)JsonNode.Parse(doc.RootElement.GetRawText())!;
        var address = (string)obj["address"]!;
        var version = (string)obj["version"]!;
        SchemaValidator.Semver(version, $"{source}: /version");
        if (obj["serve"] is { } serve)
        {
            Rtt.Core.Calls.ServeSpec.Normalize(serve, source); // checked at ingest, so a bad serve block never reaches a plan
        }

        return new SourceObject(obj, address, version, [new SymbolEntry(address, version, "service", obj["input"], obj["output"])]);
    }

    /// <summary>The front-matter keys a Claude subagent shares with the RTT agent definition.</summary>
    public static readonly IReadOnlyList<string> ClaudeMappedKeys = ["name", "description", "tools", "model", "version"];

    private static readonly System.Text.RegularExpressions.Regex AgentName = new("^[a-z0-9][a-z0-9._-]{0,127}$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>
    /// A Claude Code subagent (<c>.claude/agents/NAME.md</c>): YAML front matter and a Markdown body (the system prompt)
    /// become an RTT agent definition. name, description, tools, model and version map to the definition's members;
    /// every key, in file order, and the value of each key RTT does not map are kept in
    /// <c>provider.claude.front_matter</c>, and the blank lines around the body in <c>provider.claude.body_layout</c>,
    /// so the Claude view writes the file back as it was (docs/registry.md). Without a <c>version:</c> key the
    /// version follows the file's edits (<see cref="SourceObject.FollowsEdits"/>).
    /// </summary>
    public static SourceObject ClaudeSubagent(string text, string source)
    {
        var file = ClaudeFrontMatter.Read(text, source);
        var entries = file.Entries.ToDictionary(e => e.Key, StringComparer.Ordinal);
        string Required(string key)
        {
            if (!entries.TryGetValue(key, out var entry))
            {
                throw new RttException(ErrorCodes.SchemaViolation, $"front matter has no \"{key}\"", $"{source}:2: /{key}", $"add `{key}:` to the front matter (Claude Code needs it too)");
            }

            var value = ClaudeFrontMatter.Text(entry);
            return value is { Length: > 0 } ? value
                : throw new RttException(ErrorCodes.SchemaViolation, $"\"{key}\" must be a non-empty single value", $"{source}:{entry.Line}: /{key}", $"write {key}: followed by text on the same line");
        }

        var name = Required("name");
        if (!AgentName.IsMatch(name))
        {
            throw new RttException(ErrorCodes.SchemaViolation, $"name \"{name}\" is not a valid agent name", $"{source}:{entries["name"].Line}: /name",
                "use lowercase letters, digits, '.', '_' and '-' (Claude Code asks for lowercase letters and hyphens)");
        }

        var description = Required("description");
        var frontMatter = new JsonArray();
        var agent = new JsonObject
        {
            ["id"] = name,
            ["version"] = "1.0.0",
            ["description"] = description,
            ["instructions"] = file.Body + "\n",
        };
        var explicitVersion = false;
        foreach (var entry in file.Entries)
        {
            var where = $"{source}:{entry.Line}: /{entry.Key}";
            var item = new JsonObject { ["key"] = entry.Key };
            if (entry.Style is { } style)
            {
                item["style"] = style; // written back the same way: a list as a list, a quoted value quoted
            }

            switch (entry.Key)
            {
                case "name" or "description":
                    break;
                case "tools" when entry.Value is not null:
                    agent["tools"] = Tools(entry, where);
                    break;
                case "model" when entry.Value is not null:
                    agent["model"] = new JsonObject
                    {
                        ["hint"] = ClaudeFrontMatter.Text(entry) ?? throw new RttException(ErrorCodes.SchemaViolation, "model must be a single value (an alias such as sonnet, or a model name)", where, "write model: sonnet"),
                    };
                    break;
                case "version":
                    agent["version"] = ClaudeFrontMatter.Text(entry) ?? throw new RttException(ErrorCodes.BadSemver, "version must be a single SemVer value", where, "write version: 1.2.0, or remove the line to let versions follow edits");
                    SchemaValidator.Semver((string)agent["version"]!, where);
                    explicitVersion = true;
                    break;
                default:
                    item["value"] = entry.Value?.DeepClone(); // kept as read, in its place; an empty value stays null
                    break;
            }

            frontMatter.Add(item);
        }

        agent["exports"] = new JsonArray(new JsonObject
        {
            ["symbol"] = $"rtt://agents/agent/{name}",
            ["input"] = "rtt.types/Text",
            ["output"] = "rtt.types/Text",
        });
        var claude = new JsonObject { ["file"] = Path.GetFileName(source), ["front_matter"] = frontMatter };
        if (file.LeadingNewlines != 0 || file.TrailingNewlines != 1)
        {
            claude["body_layout"] = new JsonObject { ["leading_newlines"] = file.LeadingNewlines, ["trailing_newlines"] = file.TrailingNewlines };
        }

        agent["provider"] = new JsonObject { ["claude"] = claude };
        using var doc = JsonDocument.Parse(CanonicalJson.Serialize(agent));
        var parsed = Agent(doc.RootElement, source);
        return parsed with { FollowsEdits = !explicitVersion, Warnings = file.Warnings };
    }

    /// <summary>tools: a comma-separated string (Claude Code's form) or a list of names; nothing nested.</summary>
    private static JsonArray Tools(FrontMatterEntry entry, string where)
    {
        IEnumerable<string> names;
        if (entry.IsScalar)
        {
            names = (ClaudeFrontMatter.Text(entry) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        else if (entry.Value is JsonArray list && list.All(t => t is JsonValue))
        {
            names = list.Select(t => t is JsonValue v && v.TryGetValue<string>(out var s) ? s.Trim() : t!.ToJsonString()).Where(s => s.Length > 0);
        }
        else
        {
            throw new RttException(ErrorCodes.SchemaViolation, "tools must be a comma-separated list of tool names or a list of names, not a nested list or a mapping",
                where, "write tools: Read, Grep, Glob (or one - Name per line); write tools: [] for no tools");
        }

        return new JsonArray([.. names.Distinct(StringComparer.Ordinal).Select(t => (JsonNode)JsonValue.Create(t))]);
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
