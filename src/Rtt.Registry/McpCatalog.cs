using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Registry;

/// <summary>
/// Turns an MCP server's <c>tools/list</c> result into registry objects (one per tool, symbol
/// <c>rtt://mcp/&lt;server&gt;/&lt;tool&gt;</c>, input schema as the type) and the manifest
/// <c>.rtt/manifests/mcp.&lt;name&gt;.json</c>. Each tool is pinned by the hash of its name, title, description,
/// schemas and annotations (pin format 2); a changed, added or removed tool or a new server version is drift,
/// refused unless accepted.
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

    /// <summary>The pin format manifests are written with: 2 covers title and annotations (readOnlyHint,
    /// destructiveHint, …) too; a manifest without <c>pin_format</c> has format-1 pins.</summary>
    public const int PinFormat = 2;

    /// <summary>The pin of a tool: sha256 of the canonical {name, title, description, inputSchema, outputSchema, annotations}.</summary>
    public static string Pin(JsonObject tool) => Pin(tool, PinFormat);

    public static string Pin(JsonObject tool, int format)
    {
        var pinned = new JsonObject
        {
            ["name"] = tool["name"]?.DeepClone(),
            ["description"] = tool["description"]?.DeepClone(),
            ["inputSchema"] = tool["inputSchema"]?.DeepClone(),
            ["outputSchema"] = tool["outputSchema"]?.DeepClone(),
        };
        if (format >= 2)
        {
            pinned["title"] = tool["title"]?.DeepClone();
            pinned["annotations"] = tool["annotations"]?.DeepClone();
        }

        return ContentHash.OfCanonical(pinned);
    }

    /// <summary>
    /// A SemVer version for a server's version string: the string itself when it is SemVer 2.0, otherwise one derived
    /// deterministically (a leading v dropped, missing parts as 0, the rest as a pre-release: <c>0.8.x</c> ->
    /// <c>0.8.0-x</c>, <c>v1.2</c> -> <c>1.2.0</c>, <c>latest</c> -> <c>0.0.0-latest</c>, empty -> <c>0.0.0</c>), with a note.
    /// </summary>
    public static (string Version, string? Note) Version(string serverVersion)
    {
        if (NuGet.Versioning.SemanticVersion.TryParse(serverVersion, out var exact) && exact.ToFullString() == serverVersion)
        {
            return (serverVersion, null);
        }

        var text = serverVersion.Trim();
        if (text.Length > 1 && text[0] is 'v' or 'V' && char.IsAsciiDigit(text[1]))
        {
            text = text[1..];
        }

        var parts = new long[3];
        var i = 0;
        var n = 0;
        while (n < 3 && i < text.Length && char.IsAsciiDigit(text[i]))
        {
            var start = i;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                i++;
            }

            parts[n++] = long.TryParse(text.AsSpan(start, Math.Min(i - start, 18)), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : 0;
            if (i < text.Length - 1 && text[i] == '.' && char.IsAsciiDigit(text[i + 1]))
            {
                i++;
            }
            else
            {
                break;
            }
        }

        var rest = new string([.. text[i..].Select(c => char.IsAsciiLetterOrDigit(c) || c == '.' ? c : '-')]).Trim('.', '-');
        while (rest.Contains("..", StringComparison.Ordinal))
        {
            rest = rest.Replace("..", ".", StringComparison.Ordinal);
        }

        var derived = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{parts[0]}.{parts[1]}.{parts[2]}");
        if (rest.Length > 0 && NuGet.Versioning.SemanticVersion.TryParse($"{derived}-{rest}", out var withRest) && withRest.ToFullString() == $"{derived}-{rest}")
        {
            derived = $"{derived}-{rest}";
        }

        var why = serverVersion.Length == 0 ? "the server reports no version" : $"server version \"{serverVersion}\" is not SemVer 2.0";
        return (derived, $"{why}; published as {derived} (the server's own string is kept in the manifest)");
    }

    /// <summary>
    /// Ingests the tools and writes the signed manifest. Returns what changed. Throws RTT-MCP-003 on drift
    /// unless <paramref name="acceptDrift"/>, and RTT-MCP-002 for an invalid tool list (nothing is written then).
    /// </summary>
    public static McpIngestReport Ingest(RttWorkspace workspace, RegistryStore store, string name, string serverName, string serverVersion,
        IReadOnlyList<string> command, JsonObject toolsList, string source, bool acceptDrift, JsonObject? serve = null, JsonObject? others = null)
    {
        ValidateName(name);
        serve = serve is null ? null : ServeOfServer(serve, source);
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

        var (version, versionNote) = Version(serverVersion);
        var tools = toolsList["tools"]!.AsArray().Select(t => t!.AsObject()).OrderBy(t => (string)t["name"]!, StringComparer.Ordinal).ToList();
        var duplicate = tools.GroupBy(t => (string)t["name"]!, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new RttException(ErrorCodes.McpToolInvalid, $"tool \"{duplicate.Key}\" is listed twice", source, "tool names must be unique");
        }

        var manifestPath = ManifestPath(workspace, name);
        var pinned = new Dictionary<string, (string Pin, string Version, string Object)>(StringComparer.Ordinal);
        var oldFormat = PinFormat;
        string? oldServerVersion = null;
        var hadManifest = File.Exists(manifestPath);
        if (hadManifest)
        {
            var old = RttWorkspace.ReadObject(manifestPath);
            store.VerifySignature(old, manifestPath);
            oldFormat = old["mcp"]?["pin_format"] is JsonValue f && f.TryGetValue<int>(out var format) ? format : 1;
            oldServerVersion = (string?)old["mcp"]?["server"]?["version"];
            foreach (var t in old["tools"]?.AsArray() ?? [])
            {
                pinned[(string)t!["name"]!] = ((string)t["pin"]!, (string)t["version"]!, (string)t["object"]!);
            }
        }

        // Drift: a tool changed (its pin, compared in the manifest's own pin format), added or removed, or a new server version.
        var drift = new List<string>();
        var changed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var tool in tools)
        {
            var toolName = (string)tool["name"]!;
            if (pinned.TryGetValue(toolName, out var p))
            {
                if (p.Pin != Pin(tool, oldFormat))
                {
                    changed.Add(toolName);
                    drift.Add($"{toolName} changed ({p.Pin} -> {Pin(tool, oldFormat)}){AnnotationChange(store, p.Object, tool)}");
                }
            }
            else if (hadManifest)
            {
                drift.Add($"{toolName} added");
            }
        }

        foreach (var gone in pinned.Keys.Where(k => tools.All(t => (string)t["name"]! != k)).Order(StringComparer.Ordinal))
        {
            drift.Add($"{gone} removed");
        }

        if (hadManifest && oldServerVersion is not null && oldServerVersion != serverVersion)
        {
            drift.Add($"server version {oldServerVersion} -> {serverVersion}");
        }

        // Prompts, resources and resource templates: pinned the same way, drift the same way (docs/gateway.md).
        var primitives = McpPrimitive.All.Select(p => (Primitive: p, Items: Items(p, others, source))).ToList();
        foreach (var (p, items) in primitives)
        {
            foreach (var (itemKey, _) in items)
            {
                if (tools.FirstOrDefault(t => $"rtt://mcp/{name}/{(string)t["name"]!}" == p.Symbol(name, itemKey)) is { } clash)
                {
                    throw new RttException(ErrorCodes.McpToolInvalid, $"tool \"{clash["name"]}\" and {p.Kind} \"{itemKey}\" would share the symbol {p.Symbol(name, itemKey)}", source,
                        "rename the tool or the " + p.Kind + " on the server");
                }
            }
        }

        var oldPrimitives = new Dictionary<(string, string), (string Pin, string Version)>();
        if (hadManifest)
        {
            var old = RttWorkspace.ReadObject(manifestPath);
            foreach (var p in McpPrimitive.All)
            {
                foreach (var e in old[ManifestMember(p)]?.AsArray() ?? [])
                {
                    oldPrimitives[(p.Kind, (string)e!["name"]!)] = ((string)e["pin"]!, (string)e["version"]!);
                }
            }
        }

        foreach (var (p, items) in primitives)
        {
            foreach (var (itemKey, json) in items)
            {
                if (oldPrimitives.TryGetValue((p.Kind, itemKey), out var was))
                {
                    if (was.Pin != p.Pin(json))
                    {
                        drift.Add($"{p.Kind} {itemKey} changed ({was.Pin} -> {p.Pin(json)})");
                    }
                }
                else if (hadManifest)
                {
                    drift.Add($"{p.Kind} {itemKey} added");
                }
            }

            foreach (var gone in oldPrimitives.Keys.Where(k => k.Item1 == p.Kind && items.All(i => i.Key != k.Item2)).Select(k => k.Item2).Order(StringComparer.Ordinal))
            {
                drift.Add($"{p.Kind} {gone} removed");
            }
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
            // A manifest of an older pin format is re-pinned the same way: its objects lack what the new pin covers.
            var toolVersion = !pinned.TryGetValue(toolName, out var p) ? version
                : !changed.Contains(toolName) && oldFormat == PinFormat ? p.Version
                : WithBuild(changed.Contains(toolName) ? version : p.Version, $"pin.{pin[7..19]}");

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
            if (tool["title"] is { } title)
            {
                obj["title"] = title.DeepClone();
            }

            if (tool["annotations"] is { } annotations)
            {
                obj["annotations"] = annotations.DeepClone();
            }
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
                ["pin_format"] = PinFormat,
            },
            ["tools"] = entries,
        };
        foreach (var (p, items) in primitives.Where(x => x.Items.Count > 0))
        {
            var list = new JsonArray();
            foreach (var (itemKey, json) in items)
            {
                var pin = p.Pin(json);
                var symbol = p.Symbol(name, itemKey);
                var itemVersion = !oldPrimitives.TryGetValue((p.Kind, itemKey), out var was) ? version
                    : was.Pin == pin ? was.Version
                    : WithBuild(version, $"pin.{pin[7..19]}");
                var obj = new JsonObject
                {
                    ["kind"] = p.ObjectKind,
                    ["symbol"] = symbol,
                    ["server"] = name,
                    ["version"] = itemVersion,
                    ["name"] = itemKey, // the key on the server: a prompt's name, a resource's URI, a template's URI template
                    ["definition"] = p.Definition(json),
                    ["pin"] = pin,
                };
                var result = store.Ingest(obj, symbol, itemVersion, $"{source} ({p.Kind} {itemKey})", signIfUnsigned: true);
                if (result.Added)
                {
                    added.Add($"{p.Kind} {itemKey}");
                }

                list.Add(new JsonObject { ["name"] = itemKey, ["symbol"] = symbol, ["version"] = itemVersion, ["pin"] = pin, ["object"] = result.Hash });
            }

            manifest[ManifestMember(p)] = list;
        }

        if (serve is not null)
        {
            manifest["mcp"]!["serve"] = serve; // how the silo reaches the server when a route ends at one of its tools
        }

        if (added.Count > 0)
        {
            store.Save(); // objects and index first: the manifest never names a missing object
        }

        using var key = workspace.LoadSigningKey();
        var bytes = PrettyJson.ToUtf8(ObjectSigner.Sign(manifest, key));
        if (!hadManifest || !File.ReadAllBytes(manifestPath).AsSpan().SequenceEqual(bytes))
        {
            AtomicFile.WriteAllBytes(manifestPath, bytes); // an unchanged server rewrites nothing
        }

        return new McpIngestReport(name, manifestPath, tools.Count, added, drift) { Notes = versionNote is null ? [] : [versionNote] };
    }

    /// <summary>The manifest's member for a primitive's entries (absent when the server has none).</summary>
    public static string ManifestMember(McpPrimitive primitive) => primitive == McpPrimitive.Template ? "resource_templates" : primitive.ListMember;

    /// <summary>
    /// A saved listing (<c>mcp/&lt;name&gt;.tools.json</c> or <c>rtt mcp ingest --from</c>) as <see cref="Ingest"/> takes it:
    /// the server's name and version from <c>serverInfo</c> (else <paramref name="name"/> and 0.0.0), the tools list, and
    /// its prompts, resources and resource templates (null when it has none).
    /// </summary>
    public static (string ServerName, string ServerVersion, JsonObject ToolsList, JsonObject? Others) SavedListing(JsonObject root, string name)
    {
        var info = root["serverInfo"] as JsonObject;
        return ((string?)info?["name"] ?? name, (string?)info?["version"] ?? "0.0.0", new JsonObject { ["tools"] = root["tools"]?.DeepClone() }, OthersOf(root));
    }

    /// <summary>
    /// The prompts, resources and resource templates of a saved listing (<c>mcp/&lt;name&gt;.tools.json</c> or
    /// <c>rtt mcp ingest --from</c>): its <c>prompts</c>, <c>resources</c> and <c>resourceTemplates</c> members as
    /// prompts/list, resources/list and resources/templates/list return them; null when it has none of them.
    /// </summary>
    private static JsonObject? OthersOf(JsonObject listing)
    {
        JsonObject? others = null;
        foreach (var primitive in McpPrimitive.All)
        {
            if (listing[primitive.ListMember] is { } items)
            {
                others ??= new JsonObject();
                others[primitive.ListMember] = items.DeepClone();
            }
        }

        return others;
    }

    /// <summary>A primitive's items of a listing (<c>{"prompts": […], "resources": […], "resourceTemplates": […]}</c>) by key, ordinal.</summary>
    private static List<(string Key, JsonObject Json)> Items(McpPrimitive primitive, JsonObject? others, string source)
    {
        var items = new List<(string Key, JsonObject Json)>();
        if (others?[primitive.ListMember] is { } listed && listed is not JsonArray)
        {
            throw new RttException(ErrorCodes.McpToolInvalid, $"\"{primitive.ListMember}\" is not an array", $"{source}: /{primitive.ListMember}",
                $"give the {primitive.ListMember} as the server lists them: an array of objects, each with its {primitive.KeyMember}");
        }

        foreach (var item in others?[primitive.ListMember]?.AsArray() ?? [])
        {
            if (item is not JsonObject o || o[primitive.KeyMember] is not JsonValue k || !k.TryGetValue<string>(out var key) || key.Length == 0)
            {
                throw new RttException(ErrorCodes.McpToolInvalid, $"a {primitive.Kind} without a {primitive.KeyMember}", source, $"the server must list each {primitive.Kind} with its {primitive.KeyMember}");
            }

            if (items.Any(i => i.Key == key))
            {
                throw new RttException(ErrorCodes.McpToolInvalid, $"{primitive.Kind} \"{key}\" is listed twice", source, $"{primitive.KeyMember}s must be unique");
            }

            items.Add((key, o));
        }

        items.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return items;
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

        foreach (var p in McpPrimitive.All)
        {
            foreach (var e in manifest[ManifestMember(p)]?.AsArray() ?? [])
            {
                symbols.Add(new SymbolEntry((string)e!["symbol"]!, (string)e["version"]!, p.ObjectKind, null, null));
            }
        }

        // Versioned by content (the manifest changes when drift is accepted), so its ID@version never changes meaning.
        var body = (JsonObject)manifest.DeepClone();
        body.Remove(ObjectSigner.SignMember);
        var version = WithBuild(Version((string?)mcp["server"]?["version"] ?? "").Version, $"m.{ContentHash.OfCanonical(body)[7..19]}");
        return new SourceObject((JsonObject)manifest.DeepClone(), $"mcp:{name}", version, symbols);
    }

    /// <summary>
    /// Checks the server's serve block (mcp-stdio or mcp-http, without <c>tool</c>: the planner adds it per tool)
    /// and returns its canonical form.
    /// </summary>
    public static JsonObject ServeOfServer(JsonNode serve, string source, string pointer = "/serve")
    {
        var normalized = ServeSpec.Normalize(serve, source, pointer);
        var kind = (string)normalized["kind"]!;
        if (kind is not (ServeSpec.McpStdio or ServeSpec.McpHttp) || normalized["tool"] is not null)
        {
            throw new RttException(ErrorCodes.ServeInvalid, $"serve block: {pointer} of an MCP server must be of kind mcp-stdio or mcp-http, without \"tool\"", $"{source}: {pointer}",
                "give {\"kind\": \"mcp-stdio\", \"command\": …} or {\"kind\": \"mcp-http\", \"url\": …}; each tool's name and pin are added by the planner");
        }

        return normalized;
    }

    /// <summary>
    /// The serve block of an MCP tool for plans: its server's block (the signed manifest's <c>mcp.serve</c>) plus
    /// <c>tool: {name, object, pin, pin_format, symbol}</c>, so each tool is its own endpoint; null when the server has none.
    /// </summary>
    public static JsonObject? ServeOfTool(RttWorkspace workspace, RegistryStore store, string toolObject, Dictionary<string, (JsonObject? Serve, int PinFormat)>? serversSeen = null)
    {
        var tool = store.ReadObject(toolObject, toolObject);
        var server = (string?)tool["server"];
        if (server is null)
        {
            return null;
        }

        serversSeen ??= [];
        if (!serversSeen.TryGetValue(server, out var seen))
        {
            var path = ManifestPath(workspace, server);
            if (File.Exists(path))
            {
                var manifest = RttWorkspace.ReadObject(path);
                store.VerifySignature(manifest, path);
                seen = (manifest["mcp"]?["serve"] is { } block ? ServeOfServer(block, path, "/mcp/serve") : null,
                    manifest["mcp"]?["pin_format"] is JsonValue f && f.TryGetValue<int>(out var format) ? format : 1);
            }

            serversSeen[server] = seen;
        }

        var (serve, pinFormat) = seen;

        if (serve is null)
        {
            return null;
        }

        var withTool = (JsonObject)serve.DeepClone();
        withTool["tool"] = new JsonObject
        {
            ["name"] = tool["name"]?.DeepClone(),
            ["object"] = toolObject,
            ["pin"] = tool["pin"]?.DeepClone(),
            ["pin_format"] = pinFormat, // how the silo recomputes the live pin to compare
            ["symbol"] = tool["symbol"]?.DeepClone(),
        };
        if (McpPrimitive.Of((string?)tool["kind"]) is { } primitive)
        {
            withTool["tool"]!["primitive"] = primitive.Kind; // a prompt, resource or template: the endpoint serves its methods (docs/gateway.md)
        }

        return ServeSpec.Normalize(withTool, ManifestPath(workspace, server), "/mcp/serve");
    }

    /// <summary>Adds SemVer build metadata (after an existing + part, if any).</summary>
    private static string WithBuild(string version, string tag) => version.Contains('+', StringComparison.Ordinal) ? $"{version}.{tag}" : $"{version}+{tag}";

    /// <summary>What changed in a tool's annotations and title, spelled out (pins alone say only that something did).</summary>
    private static string AnnotationChange(RegistryStore store, string objectHash, JsonObject tool)
    {
        JsonObject before;
        try
        {
            before = store.ReadObject(objectHash);
        }
        catch (RttException)
        {
            return "";
        }

        var notes = new List<string>();
        var was = before["annotations"] as JsonObject ?? new JsonObject();
        var now = tool["annotations"] as JsonObject ?? new JsonObject();
        foreach (var hint in was.Select(p => p.Key).Union(now.Select(p => p.Key)).Order(StringComparer.Ordinal))
        {
            var a = was[hint]?.ToJsonString() ?? "unset";
            var b = now[hint]?.ToJsonString() ?? "unset";
            if (a != b)
            {
                notes.Add($"{hint} {a} -> {b}");
            }
        }

        if ((string?)before["title"] != (string?)tool["title"])
        {
            notes.Add("title changed");
        }

        return notes.Count == 0 ? "" : $": {string.Join(", ", notes)}";
    }
}

public sealed record McpIngestReport(string Name, string ManifestPath, int Tools, IReadOnlyList<string> Added, IReadOnlyList<string> Drift)
{
    /// <summary>Remarks on what was accepted (a server version that is not SemVer).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}
