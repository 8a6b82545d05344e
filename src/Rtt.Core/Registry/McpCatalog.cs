using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Registry;

/// <summary>
/// Turns an MCP server's <c>tools/list</c> result into registry objects (one per tool, symbol
/// <c>rtt://mcp/&lt;server&gt;/&lt;tool&gt;</c>, input schema as the type) and the manifest
/// <c>.rtt/manifests/mcp.&lt;name&gt;.json</c>. Each tool is pinned by the hash of its name, description and
/// schemas; a changed pin is drift, refused unless accepted.
/// </summary>
public static class McpCatalog
{
    public static string ManifestPath(RttWorkspace workspace, string name) => Path.Combine(workspace.Manifests, $"mcp.{name}.json");

    public static void ValidateName(string name)
    {
        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-') || name.StartsWith('-'))
        {
            throw new RttException(ErrorCodes.McpNameInvalid, $"invalid MCP server name \"{name}\"", "--name",
                "use 1-64 characters from a-z 0-9 - (it becomes part of rtt://mcp/<name>/<tool>)");
        }
    }

    /// <summary>The pin of a tool: sha256 of the canonical {name, description, inputSchema, outputSchema}.</summary>
    public static string Pin(JsonObject tool) => ContentHash.OfCanonical(new JsonObject
    {
        ["name"] = tool["name"]?.DeepClone(),
        ["description"] = tool["description"]?.DeepClone(),
        ["inputSchema"] = tool["inputSchema"]?.DeepClone(),
        ["outputSchema"] = tool["outputSchema"]?.DeepClone(),
    });

    /// <summary>
    /// Ingests the tools and writes the signed manifest. Returns what changed. Throws RTT-MCP-003 on drift
    /// unless <paramref name="acceptDrift"/>, and RTT-MCP-002 for an invalid tool list (nothing is written then).
    /// </summary>
    public static McpIngestReport Ingest(RttWorkspace workspace, RegistryStore store, string name, string serverName, string serverVersion,
        IReadOnlyList<string> command, JsonObject toolsList, string source, bool acceptDrift)
    {
        ValidateName(name);
        using (var doc = JsonDocument.Parse(CanonicalJson.Serialize(toolsList)))
        {
            try
            {
                SchemaValidator.Validate(SchemaValidator.McpTools, doc.RootElement, source);
            }
            catch (RttException ex) when (ex.Code == ErrorCodes.SchemaViolation)
            {
                throw new RttException(ErrorCodes.McpToolInvalid, $"invalid tool list: {ex.Message}", ex.Location, "the server must list tools with a name and an object inputSchema");
            }
        }

        var version = SemverOrFallback(serverVersion);
        var tools = toolsList["tools"]!.AsArray().Select(t => t!.AsObject()).OrderBy(t => (string)t["name"]!, StringComparer.Ordinal).ToList();
        var duplicate = tools.GroupBy(t => (string)t["name"]!, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new RttException(ErrorCodes.McpToolInvalid, $"tool \"{duplicate.Key}\" is listed twice", source, "tool names must be unique");
        }

        var manifestPath = ManifestPath(workspace, name);
        var pinned = new Dictionary<string, (string Pin, string Version, string Object)>(StringComparer.Ordinal);
        if (File.Exists(manifestPath))
        {
            var old = RttWorkspace.ReadObject(manifestPath);
            store.VerifySignature(old, manifestPath);
            foreach (var t in old["tools"]?.AsArray() ?? [])
            {
                pinned[(string)t!["name"]!] = ((string)t["pin"]!, (string)t["version"]!, (string)t["object"]!);
            }
        }

        var drift = new List<string>();
        foreach (var tool in tools)
        {
            var toolName = (string)tool["name"]!;
            if (pinned.TryGetValue(toolName, out var p) && p.Pin != Pin(tool))
            {
                drift.Add($"{toolName} changed ({p.Pin} -> {Pin(tool)})");
            }
        }

        foreach (var gone in pinned.Keys.Where(k => tools.All(t => (string)t["name"]! != k)).Order(StringComparer.Ordinal))
        {
            drift.Add($"{gone} removed");
        }

        if (drift.Count > 0 && !acceptDrift)
        {
            throw new RttException(ErrorCodes.McpDrift, $"MCP server \"{name}\" drifted from its pinned tools: {string.Join("; ", drift)}", manifestPath,
                "review the changes, then run again with --accept-drift to pin the new definitions");
        }

        var entries = new JsonArray();
        var added = new List<string>();
        foreach (var tool in tools)
        {
            var toolName = (string)tool["name"]!;
            var pin = Pin(tool);
            var symbol = $"rtt://mcp/{name}/{toolName}";
            // An accepted drift publishes under a new version (build metadata = the pin), so ID@version never changes meaning.
            var toolVersion = !pinned.TryGetValue(toolName, out var p) ? version
                : p.Pin == pin ? p.Version
                : WithBuild(version, $"pin.{pin[7..19]}");

            var obj = new JsonObject
            {
                ["kind"] = "mcp-tool",
                ["symbol"] = symbol,
                ["server"] = name,
                ["version"] = toolVersion,
                ["name"] = toolName,
                ["description"] = tool["description"]?.DeepClone() ?? "",
                ["input_schema"] = tool["inputSchema"]!.DeepClone(),
                ["pin"] = pin,
            };
            if (tool["outputSchema"] is { } output)
            {
                obj["output_schema"] = output.DeepClone();
            }

            var result = store.Ingest(obj, symbol, toolVersion, $"{source} (tool {toolName})", signIfUnsigned: true);
            if (result.Added)
            {
                added.Add(toolName);
            }

            entries.Add(new JsonObject
            {
                ["name"] = toolName,
                ["symbol"] = symbol,
                ["version"] = toolVersion,
                ["pin"] = pin,
                ["object"] = result.Hash,
            });
        }

        var manifest = new JsonObject
        {
            ["mcp"] = new JsonObject
            {
                ["name"] = name,
                ["server"] = new JsonObject { ["name"] = serverName, ["version"] = serverVersion },
                ["command"] = new JsonArray([.. command.Select(c => (JsonNode)JsonValue.Create(c))]),
            },
            ["tools"] = entries,
        };
        store.Save(); // objects and index first: the manifest never names a missing object
        using var key = workspace.LoadSigningKey();
        AtomicFile.WriteAllBytes(manifestPath, PrettyJson.ToUtf8(ObjectSigner.Sign(manifest, key)));
        return new McpIngestReport(name, manifestPath, tools.Count, added, drift);
    }

    /// <summary>Symbols of an MCP manifest, for discovery (types from the tool objects).</summary>
    public static SourceObject FromManifest(JsonObject manifest, RegistryStore store, string source)
    {
        store.VerifySignature(manifest, source);
        var mcp = manifest["mcp"] as JsonObject ?? throw new RttException(ErrorCodes.SchemaViolation, "no \"mcp\" object", $"{source}: /mcp", "write it with `rtt mcp ingest`");
        var name = (string?)mcp["name"] ?? throw new RttException(ErrorCodes.SchemaViolation, "no name", $"{source}: /mcp/name", "write it with `rtt mcp ingest`");
        var symbols = new List<SymbolEntry>();
        foreach (var t in manifest["tools"]?.AsArray() ?? [])
        {
            var tool = store.ReadObject((string)t!["object"]!, $"{source} (tool {t["name"]})");
            symbols.Add(new SymbolEntry((string)t["symbol"]!, (string)t["version"]!, "mcp-tool", tool["input_schema"], tool["output_schema"]));
        }

        // Versioned by content (the manifest changes when drift is accepted), so its ID@version never changes meaning.
        var body = (JsonObject)manifest.DeepClone();
        body.Remove(ObjectSigner.SignMember);
        var version = WithBuild(SemverOrFallback((string?)mcp["server"]?["version"] ?? "0.0.0"), $"m.{ContentHash.OfCanonical(body)[7..19]}");
        return new SourceObject((JsonObject)manifest.DeepClone(), $"mcp:{name}", version, symbols);
    }

    /// <summary>Adds SemVer build metadata (after an existing + part, if any).</summary>
    private static string WithBuild(string version, string tag) => version.Contains('+', StringComparison.Ordinal) ? $"{version}.{tag}" : $"{version}+{tag}";

    private static string SemverOrFallback(string version) =>
        NuGet.Versioning.SemanticVersion.TryParse(version, out var v) && v.ToFullString() == version ? version : "0.0.0";
}

public sealed record McpIngestReport(string Name, string ManifestPath, int Tools, IReadOnlyList<string> Added, IReadOnlyList<string> Drift);
