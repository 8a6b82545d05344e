using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Core.Tests;

public sealed class ScannerTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private ScanReport Scan(params string[] paths)
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        return new Scanner(_ws.Workspace, store).Run(paths);
    }

    [Fact]
    public void A_cache_written_before_the_streamed_scan_finds_every_file_unchanged_after_the_upgrade()
    {
        _ws.Write("agents/common/a.agent.json", TestWorkspace.Agent("alpha"));
        _ws.Write("agents/b.agent.json", TestWorkspace.Agent("beta"));
        _ws.Write(".claude/agents/reviewer.md", Subagent);
        var first = Scan();
        var symbolsPath = Path.Combine(_ws.Workspace.Registry, "symbols.json");
        var symbols = File.ReadAllBytes(symbolsPath);

        // The same cache as the scanner before the streamed scan wrote it: {"files":{path:{…}},"format":"rtt.scan-cache/4"}.
        var cachePath = Path.Combine(_ws.Workspace.State, "scan-cache.json");
        var files = new JsonObject();
        foreach (var line in File.ReadAllLines(cachePath).Skip(1).SkipLast(1))
        {
            var member = JsonNode.Parse("{" + line.TrimEnd(',') + "}")!.AsObject().Single();
            files[member.Key] = member.Value!.DeepClone();
        }

        Assert.Equal(3, files.Count);
        File.WriteAllText(cachePath, new JsonObject { ["files"] = files, ["format"] = "rtt.scan-cache/4" }.ToJsonString());

        var upgraded = Scan();
        Assert.Empty(upgraded.Added);
        Assert.Empty(upgraded.Changed);
        Assert.Empty(upgraded.Removed);
        Assert.Equal(first.Added.Count, upgraded.Unchanged);
        Assert.Equal(first.Symbols, upgraded.Symbols);
        Assert.Equal(symbols, File.ReadAllBytes(symbolsPath));
        Assert.StartsWith("{\"format\":\"rtt.scan-cache/5\"", File.ReadAllText(cachePath), StringComparison.Ordinal); // written in the new format

        // A cache in neither format costs a full re-read, nothing more.
        File.WriteAllText(cachePath, "{\"format\":\"rtt.scan-cache/3\",\"files\":{}}");
        var reread = Scan();
        Assert.Equal(first.Added, reread.Added);
        Assert.Empty(reread.Errors);
        Assert.Equal(symbols, File.ReadAllBytes(symbolsPath));
    }

    private const string Manifest = """
        {"address":"rtt://core/api/metrics","version":"1.2.0","input":"rtt.types/Q","output":"rtt.types/R","lanes":["shm"],"latency_us":200,"demand":{"cpu_millis":500,"memory_mb":128}}
        """;

    private const string Subagent = """
        ---
        name: reviewer
        description: Reviews code.
        tools: Read, Grep
        model: sonnet
        ---
        You review code.
        """;

    [Fact]
    public void Scan_ingests_agents_subagents_and_manifests_then_is_incremental()
    {
        _ws.Write("agents/common/a.agent.json", TestWorkspace.Agent("alpha"));
        _ws.Write("agents/b.agent.json", TestWorkspace.Agent("beta"));
        _ws.Write(".claude/agents/reviewer.md", Subagent);
        _ws.Write(".rtt/manifests/core.json", Manifest);
        _ws.Write("providers/claude/x.agent.json", TestWorkspace.Agent("ignored")); // materialized views are not sources

        var first = Scan();
        Assert.Empty(first.Errors);
        Assert.Equal([".claude/agents/reviewer.md", ".rtt/manifests/core.json", "agents/b.agent.json", "agents/common/a.agent.json"], first.Added);
        Assert.Equal(4, first.Symbols);

        var second = Scan();
        Assert.Empty(second.Added);
        Assert.Equal(4, second.Unchanged);

        _ws.Write("agents/b.agent.json", TestWorkspace.Agent("beta", "1.1.0"));
        File.Delete(Path.Combine(_ws.Root, "agents/common/a.agent.json"));
        var third = Scan();
        Assert.Equal(["agents/b.agent.json"], third.Changed);
        Assert.Equal(["agents/common/a.agent.json"], third.Removed);

        var symbols = RttWorkspace.ReadObject(Path.Combine(_ws.Workspace.Registry, "symbols.json"));
        Assert.Null(symbols["rtt://agents/agent/alpha"]);
        Assert.Equal("1.1.0", (string?)symbols["rtt://agents/agent/beta"]![0]!["version"]);
        Assert.Equal("service", (string?)symbols["rtt://core/api/metrics"]![0]!["kind"]);
        var reviewer = symbols["rtt://agents/agent/reviewer"]![0]!;
        Assert.Equal(".claude/agents/reviewer.md", (string?)reviewer["source"]);
    }

    [Fact]
    public void Unchanged_files_are_not_read_again()
    {
        var path = _ws.Write("agents/a.agent.json", TestWorkspace.Agent("alpha"));
        Scan();
        // Same size and mtime but unreadable content: an incremental scan must not open the file.
        var mtime = File.GetLastWriteTimeUtc(path);
        var size = new FileInfo(path).Length;
        File.WriteAllText(path, new string('x', (int)size));
        File.SetLastWriteTimeUtc(path, mtime);
        var report = Scan();
        Assert.Empty(report.Errors);
        Assert.Empty(report.Added);
        Assert.Empty(report.Changed);
        Assert.Equal(1, report.Unchanged);
    }

    [Fact]
    public void Outcome_does_not_depend_on_file_creation_order_or_culture()
    {
        string Run(IEnumerable<int> order, string culture)
        {
            using var ws = new TestWorkspace();
            File.Copy(_ws.Workspace.PrivateKeyPath("default"), ws.Workspace.PrivateKeyPath("default"), overwrite: true);
            File.Copy(Path.Combine(_ws.Workspace.TrustKeys, "default.pub"), Path.Combine(ws.Workspace.TrustKeys, "default.pub"), overwrite: true);
            foreach (var i in order)
            {
                ws.Write($"agents/{(i % 2 == 0 ? "x" : "X")}/a{i}.agent.json", TestWorkspace.Agent($"agent{i}", $"1.{i}.0"));
            }

            var saved = CultureInfo.CurrentCulture;
            CultureInfo.CurrentCulture = new CultureInfo(culture);
            try
            {
                using var store = RegistryStore.Open(ws.Workspace);
                new Scanner(ws.Workspace, store).Run();
            }
            finally
            {
                CultureInfo.CurrentCulture = saved;
            }

            return File.ReadAllText(ws.Workspace.IndexPath) + File.ReadAllText(Path.Combine(ws.Workspace.Registry, "symbols.json"));
        }

        var a = Run(Enumerable.Range(0, 12), "en-US");
        var b = Run(Enumerable.Range(0, 12).Reverse(), "tr-TR");
        Assert.Equal(a, b);
    }

    [Fact]
    public void Symbols_sorted_in_runs_on_disk_match_one_sort_in_memory_and_a_rescan_joins_the_cache_in_path_order()
    {
        // Folder listings sort "a" before "a-b" and "a.agent.json"; path order puts "a-b/…" < "a.agent.json" < "a/…" < "a0/…".
        string[] folders = ["a-b", "a", "a/b", "a0"];
        string[] versions = ["1.0.0", "1.10.0", "1.9.0", "1.2.0-beta", "1.2.0", "0.1.0"];
        var paths = new List<string> { "agents/a.agent.json" };
        _ws.Write("agents/a.agent.json", TestWorkspace.Agent("top"));
        for (var i = 0; i < 48; i++)
        {
            var rel = $"agents/{folders[i % 4]}/x{i}.agent.json";
            paths.Add(rel);
            // Files i and i + 18 export one shared symbol at one version with other content: an error, in file order.
            _ws.Write(rel, new JsonObject
            {
                ["id"] = $"agent{i}",
                ["version"] = versions[i % 6],
                ["description"] = $"agent {i}",
                ["instructions"] = "x",
                ["exports"] = new JsonArray(
                    new JsonObject { ["symbol"] = $"rtt://agents/agent/a{i}", ["input"] = "rtt.types/Text", ["output"] = "rtt.types/Text" },
                    new JsonObject { ["symbol"] = $"rtt://agents/shared/s{i % 3}", ["input"] = "rtt.types/Text", ["output"] = "rtt.types/Text" }),
            }.ToJsonString());
        }

        var symbolsPath = Path.Combine(_ws.Workspace.Registry, "symbols.json");
        var inMemory = Scan();
        var expected = File.ReadAllBytes(symbolsPath);
        Assert.Equal(paths.Order(StringComparer.Ordinal), inMemory.Added);
        Assert.Contains(inMemory.Errors, e => e.Error.Code == ErrorCodes.Immutable);

        File.Delete(symbolsPath);
        File.Delete(Path.Combine(_ws.Workspace.State, "scan-cache.json"));
        ScanReport spilled;
        using (var store = RegistryStore.Open(_ws.Workspace))
        {
            spilled = new Scanner(_ws.Workspace, store) { SymbolRunBytes = 512 }.Run(); // a run of one or two rows
        }

        Assert.Equal(expected, File.ReadAllBytes(symbolsPath));
        Assert.Equal(inMemory.Errors.Select(e => (e.Path, e.Error.Message)), spilled.Errors.Select(e => (e.Path, e.Error.Message)));
        Assert.Equal(inMemory.Symbols, spilled.Symbols);
        Assert.Empty(Directory.GetFiles(_ws.Workspace.State, ".scan-*")); // the runs and the pass's temp file are gone

        // The walk and the cache agree on path order: every file is found unchanged, none added or removed.
        var again = Scan("agents");
        Assert.Empty(again.Added);
        Assert.Empty(again.Removed);
        Assert.Empty(again.Changed);
        Assert.Equal(paths.Count, again.Unchanged);
        Assert.Equal(expected, File.ReadAllBytes(symbolsPath));
    }

    [Fact]
    public void Bad_files_are_reported_with_their_location_and_the_rest_is_ingested()
    {
        _ws.Write("agents/good.agent.json", TestWorkspace.Agent("good"));
        _ws.Write("agents/syntax.agent.json", "{\"id\": \"x\",\n\"version\": }");
        _ws.Write("agents/schema.agent.json", TestWorkspace.Agent("schema").Replace("\"rtt://agents/agent/schema\"", "\"not-a-symbol\"", StringComparison.Ordinal));
        _ws.Write("agents/semver.agent.json", TestWorkspace.Agent("semver", "1.0"));
        _ws.Write(".claude/agents/broken.md", "---\nname: [unclosed\n---\nbody\n");
        var report = Scan();
        Assert.Equal(["agents/good.agent.json"], report.Added);
        var errors = report.Errors.ToDictionary(e => e.Path, e => e.Error);
        Assert.Equal(ErrorCodes.JsonInvalid, errors["agents/syntax.agent.json"].Code);
        Assert.StartsWith("agents/syntax.agent.json:2:", errors["agents/syntax.agent.json"].Location);
        Assert.Equal(ErrorCodes.SchemaViolation, errors["agents/schema.agent.json"].Code);
        Assert.Equal("agents/schema.agent.json: /exports/0/symbol", errors["agents/schema.agent.json"].Location);
        Assert.Equal(ErrorCodes.BadSemver, errors["agents/semver.agent.json"].Code);
        Assert.Equal(ErrorCodes.YamlInvalid, errors[".claude/agents/broken.md"].Code);
    }

    [Fact]
    public void A_changed_file_that_reuses_a_published_version_is_refused()
    {
        _ws.Write("agents/a.agent.json", TestWorkspace.Agent("alpha"));
        Scan();
        _ws.Write("agents/a.agent.json", TestWorkspace.Agent("alpha", description: "something else"));
        var report = Scan();
        Assert.Equal(ErrorCodes.Immutable, Assert.Single(report.Errors).Error.Code);
    }

    [Fact]
    public void Mcp_tool_list_becomes_pinned_tool_symbols_and_drift_is_refused()
    {
        static string Tools(string description) => new JsonObject
        {
            ["serverInfo"] = new JsonObject { ["name"] = "demo-server", ["version"] = "2.0.0" },
            ["tools"] = new JsonArray(
                new JsonObject { ["name"] = "echo", ["description"] = description, ["inputSchema"] = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["message"] = new JsonObject { ["type"] = "string" } } } },
                new JsonObject { ["name"] = "add", ["description"] = "adds", ["inputSchema"] = new JsonObject { ["type"] = "object" } }),
        }.ToJsonString();

        _ws.Write("mcp/demo.tools.json", Tools("echoes"));
        var first = Scan();
        Assert.Empty(first.Errors);
        var symbols = RttWorkspace.ReadObject(Path.Combine(_ws.Workspace.Registry, "symbols.json"));
        var echo = symbols["rtt://mcp/demo/echo"]![0]!;
        Assert.Equal("mcp-tool", (string?)echo["kind"]);
        Assert.Equal("string", (string?)echo["input"]!["properties"]!["message"]!["type"]);
        Assert.True(File.Exists(McpCatalog.ManifestPath(_ws.Workspace, "demo")));

        _ws.Write("mcp/demo.tools.json", Tools("echoes, differently"));
        var drift = Scan();
        var error = Assert.Single(drift.Errors).Error;
        Assert.Equal(ErrorCodes.McpDrift, error.Code);
        Assert.Contains("echo changed", error.Message);

        using (var store = RegistryStore.Open(_ws.Workspace))
        {
            var tools = (JsonObject)JsonNode.Parse(Tools("echoes, differently"))!;
            var accepted = McpCatalog.Ingest(_ws.Workspace, store, "demo", "demo-server", "2.0.0", ["--from", "x"],
                new JsonObject { ["tools"] = tools["tools"]!.DeepClone() }, "x", acceptDrift: true);
            Assert.Equal(["echo changed"], accepted.Drift.Select(d => d[..12]));
            Assert.True(store.Index.Entries.Keys.Count(k => k.StartsWith("rtt://mcp/demo/echo@2.0.0", StringComparison.Ordinal)) == 2);
        }

        Assert.Empty(Scan().Errors);
        symbols = RttWorkspace.ReadObject(Path.Combine(_ws.Workspace.Registry, "symbols.json"));
        Assert.StartsWith("2.0.0+pin.", (string?)symbols["rtt://mcp/demo/echo"]![0]!["version"]);
    }

    [Fact]
    public void Invalid_mcp_tool_schema_is_refused_and_nothing_is_written()
    {
        _ws.Write("mcp/bad.tools.json", """{"tools":[{"name":"x","inputSchema":{"type":"string"}}]}""");
        var report = Scan();
        var error = Assert.Single(report.Errors).Error;
        Assert.Equal(ErrorCodes.McpToolInvalid, error.Code);
        Assert.Contains("/tools/0/inputSchema", error.Location);
        Assert.False(File.Exists(McpCatalog.ManifestPath(_ws.Workspace, "bad")));
    }

    [Fact]
    public void Paths_outside_the_workspace_are_refused()
    {
        var ex = Assert.Throws<WorkspaceException>(() => Scan("/"));
        Assert.Equal(ErrorCodes.WorkspaceFileMissing, ex.Code);
    }
}
