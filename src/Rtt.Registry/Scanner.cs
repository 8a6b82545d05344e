using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;

namespace Rtt.Registry;

/// <summary>
/// Discovery: walks the workspace for agent definitions (<c>*.agent.json</c>), Claude Code subagents
/// (<c>.claude/agents/*.md</c>) and manifests (<c>.rtt/manifests/*.json</c>, MCP manifests included),
/// ingests them, and rebuilds <c>registry/symbols.json</c>. Files are processed in ordinal order of their
/// workspace-relative path, so the outcome never depends on directory order. Unchanged files (same size and
/// mtime as in the cache, objects still indexed) are not read again.
/// </summary>
public sealed class Scanner(RttWorkspace workspace, RegistryStore store)
{
    private const string CacheFormat = "rtt.scan-cache/4";
    private static readonly string[] SkippedFolders = ["node_modules", ".git", "providers", "overlays", "bin", "obj"];

    public string CachePath => Path.Combine(workspace.State, "scan-cache.json");

    public string SymbolsPath => Path.Combine(workspace.Registry, "symbols.json");

    /// <summary>Scans <paramref name="paths"/> (default: the whole workspace).</summary>
    public ScanReport Run(IReadOnlyList<string>? paths = null, IProgress<(int Done, int Total)>? progress = null)
    {
        var roots = (paths is { Count: > 0 } ? paths : [workspace.Root]).Select(p => Path.GetFullPath(p, workspace.Root)).ToList();
        foreach (var root in roots)
        {
            if (!Directory.Exists(root) && !File.Exists(root))
            {
                throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "path to scan does not exist", root, "give a folder or file inside the workspace");
            }

            if (Path.GetRelativePath(workspace.Root, root).StartsWith("..", StringComparison.Ordinal))
            {
                throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "path to scan is outside the workspace", root, "give a folder or file inside the workspace");
            }
        }

        var cache = LoadCache();
        // Per file only what the scan needs (path, size, mtime), not a FileInfo: 100,000 of those were tens of MB.
        var found = new SortedDictionary<string, Found>(StringComparer.Ordinal);
        foreach (var root in roots)
        {
            if (File.Exists(root) && !IsSource(Relative(root)))
            {
                throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "this file is not one discovery reads", root,
                    "scan *.agent.json files, Claude Code subagents under .claude/agents/ (subfolders too), .rtt/manifests/*.json or mcp/<name>.tools.json");
            }

            foreach (var (rel, file) in Enumerate(root))
            {
                found[rel] = file;
            }
        }

        // A tool list (mcp/<name>.tools.json) is the source of its MCP manifest: read the source, not both.
        foreach (var rel in found.Keys.Where(IsToolList).ToList())
        {
            found.Remove($".rtt/manifests/mcp.{ToolListName(rel)}.json");
        }

        var report = new ScanReport();
        var done = 0;
        var cacheDirty = false;

        // Which subagent file defines each agent ID: two may not define one agent (the first in ordinal order keeps it).
        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (rel, entry) in cache)
        {
            if (IsSubagent(rel) && (found.ContainsKey(rel) || !roots.Any(r => IsUnder(Path.Combine(workspace.Root, rel), r))))
            {
                foreach (var o in entry.Objects)
                {
                    owners.TryAdd(IdOf(o.Key), rel);
                }
            }
        }

        // Subagents come last: their versions follow edits, so they yield a version an *.agent.json names itself.
        foreach (var (rel, file) in found.Where(f => !IsSubagent(f.Key)).Concat(found.Where(f => IsSubagent(f.Key))))
        {
            progress?.Report((done++, found.Count));
            var fullPath = Path.Join(workspace.Root, rel);
            if (file.IsDirectory)
            {
                report.Errors.Add(new ScanError(rel, WorkspaceFiles.NotAFile(fullPath)));
                continue; // its last good objects stay in the symbol table, as for any source that fails to read
            }

            if (cache.TryGetValue(rel, out var cached) && cached.Size == file.Length && cached.MtimeTicks == file.MtimeTicks
                && cached.Objects.All(o => store.Index.TryGet(o.Key, out var h) && h == o.Hash))
            {
                report.Unchanged.Add(rel);
                continue;
            }

            try
            {
                var entry = Ingest(rel, fullPath, file, owners, report.Warnings);
                var isNew = !cache.TryGetValue(rel, out var before);
                var changed = !isNew && !before!.Objects.Select(o => o.Hash).SequenceEqual(entry.Objects.Select(o => o.Hash));
                cache[rel] = entry;
                cacheDirty = true; // an mtime-only change (touch) is remembered, so the next scan does not read the file again
                (isNew ? report.Added : changed ? report.Changed : report.Unchanged).Add(rel);
            }
            catch (RttException ex)
            {
                report.Errors.Add(new ScanError(rel, ex));
            }
        }

        progress?.Report((found.Count, found.Count));
        foreach (var list in (List<string>[])[report.Added, report.Changed, report.Unchanged])
        {
            list.Sort(StringComparer.Ordinal); // subagents were read last; the report is in path order all the same
        }

        report.Errors.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));

        // Files gone from the scanned roots leave the symbol table (their objects stay: the CAS is append-only).
        foreach (var rel in cache.Keys.ToList())
        {
            if (!found.ContainsKey(rel) && roots.Any(r => IsUnder(Path.Combine(workspace.Root, rel), r)))
            {
                cache.Remove(rel);
                report.Removed.Add(rel);
            }
        }

        report.Objects = store.Index.Count;
        if (report.Added.Count + report.Changed.Count + report.Removed.Count == 0 && report.Errors.Count == 0 && File.Exists(SymbolsPath))
        {
            // Nothing changed: the symbol table on disk is still right; only refreshed mtimes are saved.
            report.Symbols = cache.Values.SelectMany(e => e.Symbols.Select(x => x.Symbol)).Distinct(StringComparer.Ordinal).Count();
            found.Clear();
            if (cacheDirty)
            {
                SaveCache(cache);
            }

            return report;
        }

        found.Clear();
        var symbols = BuildSymbols(cache, report);
        report.Symbols = symbols.Count(s => s.First);

        store.Save();                                   // 1. objects synced, then the index
        WriteSymbols(symbols);                          // 2. symbols
        SaveCache(cache);                               // 3. cache last: a crash before it only costs a re-read
        return report;
    }

    private static bool IsSubagent(string rel) => rel.EndsWith(".md", StringComparison.Ordinal);

    private static string IdOf(string key) => key[..key.LastIndexOf('@')];

    private CacheEntry Ingest(string rel, string fullPath, Found file, Dictionary<string, string> owners, List<string> warnings)
    {
        var bytes = WorkspaceFiles.ReadBytes(fullPath); // a regular file within the size limit, or an RTT error
        var source = rel;
        SourceObject parsed;
        if (rel.EndsWith(".md", StringComparison.Ordinal))
        {
            parsed = Sources.ClaudeSubagent(Sources.ReadText(bytes, source), source);
        }
        else if (rel.EndsWith(".agent.json", StringComparison.Ordinal))
        {
            parsed = Sources.Agent(bytes, source);
        }
        else if (IsToolList(rel))
        {
            var listing = CanonicalJson.ParseNode(bytes, source) as JsonObject
                ?? throw new RttException(ErrorCodes.McpToolInvalid, "expected {\"tools\": [...]}", source, "save the result object of tools/list");
            var name = ToolListName(rel);
            var saved = McpCatalog.SavedListing(listing, name);
            var mcp = McpCatalog.Ingest(workspace, store, name, saved.ServerName, saved.ServerVersion, ["--from", rel], saved.ToolsList, source, acceptDrift: false,
                serve: listing["serve"] is { } serve ? McpCatalog.ServeOfServer(serve, source) : null, others: saved.Others);
            warnings.AddRange(mcp.Notes.Select(n => $"{rel}: {n}"));
            parsed = McpCatalog.FromManifest(RttWorkspace.ReadObject(mcp.ManifestPath), store, source);
        }
        else if (Path.GetFileName(rel).StartsWith("mcp.", StringComparison.Ordinal))
        {
            var manifest = CanonicalJson.ParseNode(bytes, source) as JsonObject
                ?? throw new DocumentException(ErrorCodes.DocumentShape, "expected a JSON object", source, "write it with `rtt mcp ingest`");
            parsed = McpCatalog.FromManifest(manifest, store, source);
        }
        else
        {
            parsed = Sources.Manifest(bytes, source);
        }

        if (IsSubagent(rel) && owners.TryGetValue(parsed.Id, out var owner) && owner != rel)
        {
            throw new RttException(ErrorCodes.DuplicateAgent, $"agent \"{parsed.Id}\" is also defined by {owner}", $"{rel}: /name",
                $"give one of them another name, or remove one ({owner} keeps the name)");
        }

        if (parsed.FollowsEdits)
        {
            parsed = EditVersions.Follow(store, parsed, source);
        }

        warnings.AddRange(parsed.Warnings);
        var result = store.Ingest(parsed.Object, parsed.Id, parsed.Version, source, signIfUnsigned: true);
        if (IsSubagent(rel))
        {
            owners[parsed.Id] = rel;
        }
        var symbols = parsed.Symbols.Select(s => (s, Hash: McpPrimitive.IsMcpKind(s.Kind) ? ToolObject(s) : result.Hash)).ToList();
        return new CacheEntry(file.Length, file.MtimeTicks, [new CachedObject(result.Key, result.Hash)],
            [.. symbols.Select(x => new CachedSymbol(x.s.Symbol, CanonicalJson.Serialize(x.s.ToJson(x.Hash, rel))))]);
    }

    private string ToolObject(SymbolEntry symbol) =>
        store.Index.TryGet(RegistryIndex.Key(symbol.Symbol, symbol.Version), out var hash) ? hash
            : throw new RttException(ErrorCodes.CasMissing, $"MCP tool object {symbol.Symbol}@{symbol.Version} is not in the registry", symbol.Symbol, "run `rtt mcp ingest` again");

    /// <summary>
    /// The symbol table's rows in file order: symbol (ordinal), then version (SemVer order, then ordinal), one row per
    /// symbol@version (the last file in path order whose entry has the object of the first; another object is an
    /// error). A flat array of references to the cached entries: nothing of the table is built as a JSON tree.
    /// </summary>
    private static List<SymbolRow> BuildSymbols(SortedDictionary<string, CacheEntry> cache, ScanReport report)
    {
        var rows = new List<SymbolRow>();
        var versions = new Dictionary<string, (string Text, NuGet.Versioning.SemanticVersion Parsed)>(StringComparer.Ordinal); // few distinct ones
        var sequence = 0;
        foreach (var (rel, entry) in cache)
        {
            foreach (var symbol in entry.Symbols)
            {
                var text = ReadMember(symbol.Entry, "version"u8) ?? "";
                if (!versions.TryGetValue(text, out var version))
                {
                    versions[text] = version = (text, NuGet.Versioning.SemanticVersion.Parse(text));
                }

                rows.Add(new SymbolRow(symbol.Symbol, version.Text, version.Parsed, rel, symbol.Entry, sequence++, First: false));
            }
        }

        rows.Sort(static (a, b) =>
        {
            var bySymbol = string.CompareOrdinal(a.Symbol, b.Symbol);
            if (bySymbol != 0)
            {
                return bySymbol;
            }

            var bySemver = a.SemVer.CompareTo(b.SemVer);
            if (bySemver != 0)
            {
                return bySemver;
            }

            var byVersion = string.CompareOrdinal(a.Version, b.Version);
            return byVersion != 0 ? byVersion : a.Sequence.CompareTo(b.Sequence);
        });

        // One row per symbol@version; errors in the order files (then their symbols) were read.
        var kept = new List<SymbolRow>(rows.Count);
        var errors = new List<(int Sequence, ScanError Error)>();
        for (var i = 0; i < rows.Count;)
        {
            var first = rows[i];
            var firstObject = ReadMember(first.Entry, "object"u8);
            var winner = first;
            var j = i + 1;
            for (; j < rows.Count && rows[j].Symbol == first.Symbol && rows[j].Version == first.Version; j++)
            {
                if (ReadMember(rows[j].Entry, "object"u8) != firstObject)
                {
                    errors.Add((rows[j].Sequence, new ScanError(rows[j].Source, new RttException(ErrorCodes.Immutable,
                        $"{first.Symbol}@{first.Version} is also exported by {ReadMember(winner.Entry, "source"u8)} with other content", rows[j].Source,
                        "give one of them another version or address"))));
                    continue;
                }

                winner = rows[j];
            }

            kept.Add(winner with { First = kept.Count == 0 || kept[^1].Symbol != first.Symbol });
            i = j;
        }

        errors.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        report.Errors.AddRange(errors.Select(e => e.Error));
        return kept;
    }

    /// <summary>A string member of a canonical entry (version, object, source), read without building a tree.</summary>
    private static string? ReadMember(byte[] entry, ReadOnlySpan<byte> name)
    {
        var reader = new System.Text.Json.Utf8JsonReader(entry);
        reader.Read(); // the object
        while (reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
        {
            var match = reader.ValueTextEquals(name);
            reader.Read();
            if (match)
            {
                return reader.TokenType == System.Text.Json.JsonTokenType.String ? reader.GetString() : null;
            }

            reader.Skip();
        }

        return null;
    }

    /// <summary>symbols.json, streamed from the rows: the bytes PrettyJson gives for the same table as one tree.</summary>
    private void WriteSymbols(List<SymbolRow> rows) => AtomicFile.Write(SymbolsPath, stream =>
    {
        using var writer = PrettyJson.Writer(stream);
        writer.WriteStartObject();
        for (var i = 0; i < rows.Count; i++)
        {
            if (rows[i].First)
            {
                if (i > 0)
                {
                    writer.WriteEndArray();
                }

                writer.WritePropertyName(rows[i].Symbol);
                writer.WriteStartArray();
            }

            using var entry = System.Text.Json.JsonDocument.Parse(rows[i].Entry);
            entry.RootElement.WriteTo(writer);
        }

        if (rows.Count > 0)
        {
            writer.WriteEndArray();
        }

        writer.WriteEndObject();
        PrettyJson.End(writer, stream);
    });

    private IEnumerable<(string Rel, Found File)> Enumerate(string root)
    {
        if (File.Exists(root))
        {
            var single = new FileInfo(root);
            var rel = Relative(single.FullName);
            if (IsSource(rel))
            {
                yield return (rel, new Found(single.Length, single.LastWriteTimeUtc.Ticks, IsDirectory: false));
            }

            yield break;
        }

        // Folders too: a folder named like a source (x.agent.json) is reported as an error, never skipped as if the
        // source were gone (which would drop its symbols).
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        var entries = new System.IO.Enumeration.FileSystemEnumerable<(string Full, Found File)>(root,
            (ref System.IO.Enumeration.FileSystemEntry e) => (e.ToFullPath(),
                new Found(e.IsDirectory ? 0 : e.Length, e.LastWriteTimeUtc.UtcDateTime.Ticks, e.IsDirectory)), options);
        foreach (var (full, file) in entries)
        {
            var rel = Relative(full);
            if (IsSource(rel))
            {
                yield return (rel, file);
            }
        }
    }

    /// <summary>Which workspace-relative paths discovery reads.</summary>
    public static bool IsSource(string rel)
    {
        var parts = rel.Split('/');
        if (parts.Length == 3 && parts[0] == ".rtt" && parts[1] == "manifests")
        {
            return rel.EndsWith(".json", StringComparison.Ordinal);
        }

        if (parts[0] == ".rtt" || parts.Any(p => SkippedFolders.Contains(p, StringComparer.Ordinal)))
        {
            return false;
        }

        if (rel.EndsWith(".agent.json", StringComparison.Ordinal) || IsToolList(rel))
        {
            return true;
        }

        // Claude Code subagents: .claude/agents/*.md and any subfolder of it.
        var agents = Array.IndexOf(parts, ".claude");
        return agents >= 0 && agents + 2 < parts.Length && parts[agents + 1] == "agents" && rel.EndsWith(".md", StringComparison.Ordinal);
    }

    /// <summary>A saved MCP tools/list result: <c>mcp/&lt;name&gt;.tools.json</c> at the workspace root.</summary>
    public static bool IsToolList(string rel) =>
        rel.StartsWith("mcp/", StringComparison.Ordinal) && rel.EndsWith(".tools.json", StringComparison.Ordinal) && rel.Count(c => c == '/') == 1;

    private static string ToolListName(string rel) => rel["mcp/".Length..^".tools.json".Length];

    private string Relative(string full) => Path.GetRelativePath(workspace.Root, full).Replace('\\', '/');

    private static bool IsUnder(string path, string root) =>
        string.Equals(path, root, StringComparison.Ordinal) || path.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal);

    private SortedDictionary<string, CacheEntry> LoadCache()
    {
        var cache = new SortedDictionary<string, CacheEntry>(StringComparer.Ordinal);
        try
        {
            if (!File.Exists(CachePath))
            {
                return cache;
            }

            // JsonDocument, not JsonNode: the cache of a large tree is read on every scan and must be cheap.
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(CachePath));
            var root = doc.RootElement;
            if (!root.TryGetProperty("format", out var format) || format.GetString() != CacheFormat || !root.TryGetProperty("files", out var files))
            {
                return cache;
            }

            foreach (var file in files.EnumerateObject())
            {
                var e = file.Value;
                cache[file.Name] = new CacheEntry(
                    e.GetProperty("size").GetInt64(),
                    long.Parse(e.GetProperty("mtime").GetString()!, CultureInfo.InvariantCulture),
                    [.. e.GetProperty("objects").EnumerateArray().Select(o => new CachedObject(o.GetProperty("key").GetString()!, o.GetProperty("hash").GetString()!))],
                    [.. e.GetProperty("symbols").EnumerateArray().Select(x => new CachedSymbol(x.GetProperty("symbol").GetString()!,
                        System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(x.GetProperty("entry")).ToArray()))]);
            }
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException or KeyNotFoundException or IOException)
        {
            cache.Clear(); // a damaged cache only costs a full re-read
        }

        return cache;
    }

    /// <summary>
    /// Writes the cache streamed, file by file, in the canonical form of the whole document (the same bytes as one
    /// tree serialized canonically): {"files":{rel:{"mtime","objects","size","symbols"}},"format"}.
    /// </summary>
    private void SaveCache(SortedDictionary<string, CacheEntry> cache) => AtomicFile.Write(CachePath, stream =>
    {
        // The cache is machine-local state (mtimes), so compact canonical bytes are enough.
        stream.Write("{\"files\":{"u8);
        var comma = false;
        foreach (var (rel, e) in cache)
        {
            if (comma)
            {
                stream.Write(","u8);
            }

            comma = true;
            stream.Write(CanonicalJson.Serialize(JsonValue.Create(rel)));
            stream.Write(":"u8);
            stream.Write(CanonicalJson.Serialize(new JsonObject
            {
                ["size"] = e.Size,
                ["mtime"] = e.MtimeTicks.ToString(CultureInfo.InvariantCulture), // ticks exceed 2^53: a JSON number would round
                ["objects"] = new JsonArray([.. e.Objects.Select(o => (JsonNode)new JsonObject { ["key"] = o.Key, ["hash"] = o.Hash })]),
                ["symbols"] = new JsonArray([.. e.Symbols.Select(s => (JsonNode)new JsonObject { ["symbol"] = s.Symbol, ["entry"] = JsonNode.Parse(s.Entry) })]),
            }));
        }

        stream.Write("},\"format\":"u8);
        stream.Write(CanonicalJson.Serialize(JsonValue.Create(CacheFormat)));
        stream.Write("}"u8);
    });

    /// <summary>What enumeration learnt of a source: all a scan keeps per file besides its cache entry.</summary>
    private readonly record struct Found(long Length, long MtimeTicks, bool IsDirectory);

    /// <summary>An exported symbol's symbols.json entry as canonical UTF-8 (a third of the string it was).</summary>
    private sealed record CachedSymbol(string Symbol, byte[] Entry);

    private readonly record struct SymbolRow(string Symbol, string Version, NuGet.Versioning.SemanticVersion SemVer, string Source, byte[] Entry, int Sequence, bool First);

    private sealed record CachedObject(string Key, string Hash);

    private sealed record CacheEntry(long Size, long MtimeTicks, IReadOnlyList<CachedObject> Objects, IReadOnlyList<CachedSymbol> Symbols);
}

/// <summary>What a scan did, per workspace-relative path.</summary>
public sealed class ScanReport
{
    public List<string> Added { get; } = [];
    public List<string> Changed { get; } = [];
    public List<string> Unchanged { get; } = [];
    public List<string> Removed { get; } = [];
    public List<ScanError> Errors { get; } = [];

    /// <summary>Files accepted with a remark (a front-matter line read leniently), each naming its file and line.</summary>
    public List<string> Warnings { get; } = [];
    public int Symbols { get; set; }
    public int Objects { get; set; }

    public JsonObject ToJson()
    {
        static JsonArray List(IEnumerable<string> items) => new([.. items.Select(i => (JsonNode)JsonValue.Create(i))]);
        return new JsonObject
        {
            ["added"] = List(Added),
            ["changed"] = List(Changed),
            ["unchanged"] = Unchanged.Count,
            ["removed"] = List(Removed),
            ["errors"] = new JsonArray([.. Errors.Select(e => (JsonNode)new JsonObject
            {
                ["path"] = e.Path,
                ["code"] = e.Error.Code,
                ["message"] = e.Error.Message,
                ["location"] = e.Error.Location,
            })]),
            ["warnings"] = new JsonArray([.. Warnings.Select(w => (JsonNode)JsonValue.Create(w))]),
            ["symbols"] = Symbols,
            ["objects"] = Objects,
        };
    }

    public string Summary => string.Create(CultureInfo.InvariantCulture,
        $"{Added.Count} added, {Changed.Count} changed, {Unchanged.Count} unchanged, {Removed.Count} removed, {Errors.Count} error(s); {Symbols} symbol(s), {Objects} object(s) indexed");
}

public sealed record ScanError(string Path, RttException Error);
