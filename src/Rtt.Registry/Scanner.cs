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
public sealed partial class Scanner(RttWorkspace workspace, RegistryStore store)
{
    private static readonly string[] SkippedFolders = ["node_modules", ".git", "providers", "overlays", "bin", "obj"];

    public string CachePath => Path.Combine(workspace.State, "scan-cache.json");

    /// <summary>
    /// How many bytes of symbol rows are sorted in memory before a run is spilled to disk (tests make it small): about
    /// 2,000 rows of an agent each, 50 runs merged for 100,000 agents.
    /// </summary>
    internal long SymbolRunBytes { get; init; } = 1L << 20;

    public string SymbolsPath => Path.Combine(workspace.Registry, "symbols.json");

    /// <summary>Scans <paramref name="paths"/> (default: the whole workspace).</summary>
    /// <remarks>
    /// Streamed: the tree is walked in ordinal path order (each folder's entries sorted, one folder at a time) and
    /// joined with the previous cache, which is read line by line in the same order; each file's new cache line goes
    /// to a temp file as soon as the file is done, and the symbol table's rows are sorted in bounded runs on disk. What
    /// stays in memory besides the index: the subagents (read last, see below) and the report's path lists.
    /// </remarks>
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

            if (File.Exists(root) && !IsSource(Relative(root)))
            {
                throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "this file is not one discovery reads", root,
                    "scan *.agent.json files, Claude Code subagents under .claude/agents/ (subfolders too), .rtt/manifests/*.json or mcp/<name>.tools.json");
            }
        }

        // A tool list (mcp/<name>.tools.json) is the source of its MCP manifest: read the source, not both. Tool lists
        // live only in mcp/ at the workspace root, so only that folder is walked to find them.
        var toolLists = new HashSet<string>(Walk(roots, only: "mcp").Select(f => f.Rel).Where(IsToolList), StringComparer.Ordinal);
        bool Shadowed(string rel) => rel.StartsWith(".rtt/manifests/mcp.", StringComparison.Ordinal)
            && toolLists.Contains($"mcp/{rel[".rtt/manifests/mcp.".Length..^".json".Length]}.tools.json");
        var total = progress is null ? 0 : Walk(roots).Count(f => !Shadowed(f.Rel));

        var report = new ScanReport();
        var done = 0;
        var cacheDirty = false;
        var oldCache = CacheFile.Open(CachePath);
        var passOne = Path.Combine(workspace.State, $".scan-{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(workspace.State);
        try
        {
            // Which subagent file defines each agent ID: two may not define one agent (the first in ordinal order keeps it).
            var owners = new Dictionary<string, string>(StringComparer.Ordinal);
            // Subagents come last: their versions follow edits, so they yield a version an *.agent.json names itself.
            var subagents = new List<(string Rel, Found File, CacheLine? Old)>();

            // Pass one: every file but the subagents, joined with the old cache in path order; the lines of the new cache
            // (without the subagents') go to a temp file in that order.
            using (var lines = new FileStream(passOne, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                using var old = oldCache?.Lines().GetEnumerator();
                var oldNext = old is not null && old.MoveNext() ? old.Current : null;
                foreach (var (rel, file) in Walk(roots).Where(f => !Shadowed(f.Rel)))
                {
                    // Old lines before this path: files gone from the scanned roots leave the symbol table (their objects
                    // stay: the CAS is append-only); a line outside the scanned roots is kept as it is.
                    CacheLine? cached = null;
                    while (oldNext is not null && string.CompareOrdinal(oldNext.Rel, rel) <= 0)
                    {
                        if (oldNext.Rel == rel)
                        {
                            cached = oldNext;
                        }
                        else
                        {
                            KeepOrRemove(oldNext, roots, owners, lines, report);
                        }

                        oldNext = old!.MoveNext() ? old.Current : null;
                    }

                    if (IsSubagent(rel))
                    {
                        if (cached is not null)
                        {
                            foreach (var o in cached.Objects)
                            {
                                owners.TryAdd(IdOf(o.Key), rel);
                            }
                        }

                        subagents.Add((rel, file, cached));
                        continue;
                    }

                    progress?.Report((done++, total));
                    cacheDirty |= Process(rel, file, cached, owners, report, line => CacheFile.WriteLine(lines, line));
                }

                for (; oldNext is not null; oldNext = old!.MoveNext() ? old.Current : null)
                {
                    KeepOrRemove(oldNext, roots, owners, lines, report);
                }
            }

            // Pass two: the subagents, in path order; their lines are kept in memory (few) and merged in when the cache is written.
            var subagentLines = new List<CacheLine>();
            foreach (var (rel, file, cached) in subagents)
            {
                progress?.Report((done++, total));
                cacheDirty |= Process(rel, file, cached, owners, report, subagentLines.Add);
            }

            progress?.Report((total, total));
            report.Added.Sort(); // subagents were read last; the report is in path order all the same
            report.Changed.Sort();
            report.Errors.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
            report.Removed.Sort();
            subagentLines.Sort((a, b) => string.CompareOrdinal(a.Rel, b.Rel));
            IEnumerable<CacheLine> NewCache() => CacheFile.Merge(CacheFile.ReadLines(passOne), subagentLines);

            report.Objects = store.Index.Count;
            if (report.Added.Count + report.Changed.Count + report.Removed.Count == 0 && report.Errors.Count == 0 && File.Exists(SymbolsPath)
                && oldCache is not { Symbols: < 0 }) // an upgraded cache knows no symbol count: the table is written again (same bytes)
            {
                // Nothing changed: the symbol table on disk is still right; only refreshed mtimes are saved.
                report.Symbols = oldCache?.Symbols ?? 0;
                if (cacheDirty)
                {
                    CacheFile.Write(CachePath, report.Symbols, NewCache());
                }

                return report;
            }

            using var sorter = new SymbolSorter(workspace.State, SymbolRunBytes);
            foreach (var line in NewCache())
            {
                foreach (var symbol in line.Symbols)
                {
                    sorter.Add(symbol.Symbol, line.Rel, symbol.Entry);
                }
            }

            store.Save();                                                   // 1. objects synced, then the index
            report.Symbols = WriteSymbols(sorter.Sorted(), report);         // 2. symbols
            CacheFile.Write(CachePath, report.Symbols, NewCache());        // 3. cache last: a crash before it only costs a re-read
            return report;
        }
        finally
        {
            File.Delete(passOne);
        }
    }

    /// <summary>An old cache line whose file was not found: removed when under a scanned root, otherwise kept.</summary>
    private void KeepOrRemove(CacheLine line, List<string> roots, Dictionary<string, string> owners, Stream lines, ScanReport report)
    {
        if (roots.Any(r => IsUnder(Path.Combine(workspace.Root, line.Rel), r)))
        {
            report.Removed.Add(line.Rel);
            return;
        }

        if (IsSubagent(line.Rel))
        {
            foreach (var o in line.Objects)
            {
                owners.TryAdd(IdOf(o.Key), line.Rel);
            }
        }

        CacheFile.WriteLine(lines, line);
    }

    /// <summary>One found file: unchanged (its old line kept), ingested (a new line) or an error (the old line kept, if any).</summary>
    private bool Process(string rel, Found file, CacheLine? cached, Dictionary<string, string> owners, ScanReport report, Action<CacheLine> keep)
    {
        var fullPath = Path.Join(workspace.Root, rel);
        if (file.IsDirectory)
        {
            report.Errors.Add(new ScanError(rel, WorkspaceFiles.NotAFile(fullPath)));
            if (cached is not null)
            {
                keep(cached); // its last good objects stay in the symbol table, as for any source that fails to read
            }

            return false;
        }

        if (cached is not null && cached.Size == file.Length && cached.MtimeTicks == file.MtimeTicks
            && cached.Objects.All(o => store.Index.Has(o.Key, o.Hash)))
        {
            report.Unchanged++;
            keep(cached);
            return false;
        }

        try
        {
            var entry = Ingest(rel, fullPath, file, owners, report.Warnings);
            var changed = cached is not null && !cached.Objects.Select(o => o.Hash).SequenceEqual(entry.Objects.Select(o => o.Hash));
            keep(entry);
            if (cached is null || changed)
            {
                (cached is null ? report.Added : report.Changed).Add(rel);
            }
            else
            {
                report.Unchanged++;
            }

            return true; // an mtime-only change (touch) is remembered, so the next scan does not read the file again
        }
        catch (RttException ex)
        {
            report.Errors.Add(new ScanError(rel, ex));
            if (cached is not null)
            {
                keep(cached);
            }

            return false;
        }
    }

    /// <summary>
    /// symbols.json, streamed from the sorted rows (symbol ordinal, then SemVer, then version text, then file order): one
    /// row per symbol@version (the last file in path order whose entry has the object of the first; another object is an
    /// error, reported in file order after the others), the bytes PrettyJson gives for the same table as one tree.
    /// Returns the number of symbols.
    /// </summary>
    private int WriteSymbols(IEnumerable<SymbolRow> sorted, ScanReport report)
    {
        var errors = new List<(int Sequence, ScanError Error)>();
        var symbols = 0;
        AtomicFile.Write(SymbolsPath, stream =>
        {
            using var writer = PrettyJson.Writer(stream);
            writer.WriteStartObject();
            string? lastSymbol = null;
            SymbolRow? first = null;
            string? firstObject = null;
            var winner = default(SymbolRow);

            void Emit(SymbolRow row)
            {
                if (row.Symbol != lastSymbol)
                {
                    if (lastSymbol is not null)
                    {
                        writer.WriteEndArray();
                    }

                    writer.WritePropertyName(row.Symbol);
                    writer.WriteStartArray();
                    lastSymbol = row.Symbol;
                    symbols++;
                }

                JsonCopy.Write(row.Entry, writer); // no document per row
                PrettyJson.Spill(writer);
            }

            foreach (var row in sorted)
            {
                if (first is { } f && row.Symbol == f.Symbol && row.Version == f.Version)
                {
                    if (ReadMember(row.Entry, "object"u8) != firstObject)
                    {
                        errors.Add((row.Sequence, new ScanError(row.Source, new RttException(ErrorCodes.Immutable,
                            $"{f.Symbol}@{f.Version} is also exported by {ReadMember(winner.Entry, "source"u8)} with other content", row.Source,
                            "give one of them another version or address"))));
                        continue;
                    }

                    winner = row;
                    continue;
                }

                if (first is not null)
                {
                    Emit(winner);
                }

                first = row;
                firstObject = ReadMember(row.Entry, "object"u8);
                winner = row;
            }

            if (first is not null)
            {
                Emit(winner);
            }

            if (lastSymbol is not null)
            {
                writer.WriteEndArray();
            }

            writer.WriteEndObject();
            PrettyJson.End(writer, stream);
        });

        errors.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        report.Errors.AddRange(errors.Select(e => e.Error));
        return symbols;
    }

    /// <summary>
    /// The sources under <paramref name="roots"/> in ordinal order of their workspace-relative path, each path once
    /// (roots may overlap): a merge of one sorted walk per root. <paramref name="only"/>: walk only that top folder.
    /// </summary>
    private IEnumerable<(string Rel, Found File)> Walk(List<string> roots, string? only = null)
    {
        var walks = roots.Select(r => Walk(r, only).GetEnumerator()).ToList();
        try
        {
            var live = walks.Where(w => w.MoveNext()).ToList();
            while (live.Count > 0)
            {
                var next = live.MinBy(w => w.Current.Rel, StringComparer.Ordinal)!;
                var current = next.Current;
                yield return current;
                for (var i = live.Count - 1; i >= 0; i--)
                {
                    if (live[i].Current.Rel == current.Rel && !live[i].MoveNext())
                    {
                        live.RemoveAt(i);
                    }
                }
            }
        }
        finally
        {
            walks.ForEach(w => w.Dispose());
        }
    }

    /// <summary>
    /// One root's sources in ordinal path order: each folder's entries are read and sorted alone (a folder's content is
    /// ordered as "name/…"; a folder named like a source is reported at "name", as a file would be). Reparse points are
    /// skipped, unreadable folders ignored. Folders are reported too: one named like a source is an error, never skipped
    /// as if the source were gone (which would drop its symbols).
    /// </summary>
    private IEnumerable<(string Rel, Found File)> Walk(string root, string? only)
    {
        if (File.Exists(root))
        {
            var single = new FileInfo(root);
            var rel = Relative(single.FullName);
            if (IsSource(rel) && (only is null || rel.StartsWith(only + "/", StringComparison.Ordinal)))
            {
                yield return (rel, new Found(single.Length, single.LastWriteTimeUtc.Ticks, IsDirectory: false));
            }

            yield break;
        }

        var rootRel = Relative(root).TrimEnd('/');
        var stack = new Stack<(string Key, string Rel, string Full, Found File, bool Children)>();
        var options = new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        var prefix = rootRel == "." ? "" : rootRel + "/";
        Push(root, prefix);
        while (stack.Count > 0)
        {
            var item = stack.Pop();
            if (item.Children)
            {
                Push(item.Full, item.Rel + "/");
            }
            else if (IsSource(item.Rel))
            {
                yield return (item.Rel, item.File);
            }
        }

        void Push(string folder, string relPrefix)
        {
            if (only is not null && !(relPrefix.StartsWith(only + "/", StringComparison.Ordinal) || (only + "/").StartsWith(relPrefix, StringComparison.Ordinal)))
            {
                return;
            }

            var entries = new System.IO.Enumeration.FileSystemEnumerable<(string Name, Found File)>(folder,
                (ref System.IO.Enumeration.FileSystemEntry e) => (e.FileName.ToString(),
                    new Found(e.IsDirectory ? 0 : e.Length, e.LastWriteTimeUtc.UtcDateTime.Ticks, e.IsDirectory)), options);
            var items = new List<(string Key, string Rel, string Full, Found File, bool Children)>();
            foreach (var (name, file) in entries)
            {
                var rel = relPrefix + name;
                if (only is not null && !(rel == only || rel.StartsWith(only + "/", StringComparison.Ordinal)))
                {
                    continue;
                }

                items.Add((rel, rel, Path.Join(folder, name), file, false));
                if (file.IsDirectory)
                {
                    items.Add((rel + "/", rel, Path.Join(folder, name), file, true));
                }
            }

            // Descending onto the stack, so the smallest key pops first.
            items.Sort((a, b) => string.CompareOrdinal(b.Key, a.Key));
            foreach (var item in items)
            {
                stack.Push(item);
            }
        }
    }

    private static bool IsSubagent(string rel) => rel.EndsWith(".md", StringComparison.Ordinal);

    private static string IdOf(string key) => key[..key.LastIndexOf('@')];

    private CacheLine Ingest(string rel, string fullPath, Found file, Dictionary<string, string> owners, List<string> warnings)
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
        return CacheLine.Create(rel, file.Length, file.MtimeTicks, [new CachedObject(result.Key, result.Hash)],
            [.. symbols.Select(x => new CachedSymbol(x.s.Symbol, CanonicalJson.Serialize(x.s.ToJson(x.Hash, rel))))]);
    }

    private string ToolObject(SymbolEntry symbol) =>
        store.Index.TryGet(RegistryIndex.Key(symbol.Symbol, symbol.Version), out var hash) ? hash
            : throw new RttException(ErrorCodes.CasMissing, $"MCP tool object {symbol.Symbol}@{symbol.Version} is not in the registry", symbol.Symbol, "run `rtt mcp ingest` again");


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
}

/// <summary>
/// What a scan did, per workspace-relative path: the paths added, changed and removed (the ones <c>rtt scan</c> prints,
/// kept compact), and how many files were unchanged (a count only: nothing prints their paths, and a re-scan of a large
/// tree would hold every one).
/// </summary>
public sealed class ScanReport
{
    public PathList Added { get; } = new();
    public PathList Changed { get; } = new();
    public int Unchanged { get; set; }
    public PathList Removed { get; } = new();
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
            ["unchanged"] = Unchanged,
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
        $"{Added.Count} added, {Changed.Count} changed, {Unchanged} unchanged, {Removed.Count} removed, {Errors.Count} error(s); {Symbols} symbol(s), {Objects} object(s) indexed");
}

public sealed record ScanError(string Path, RttException Error);
