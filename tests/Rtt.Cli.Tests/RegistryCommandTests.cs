using System.Diagnostics;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

[Collection(ProcessCollection.Name)]
public sealed class RegistryCommandTests
{

    [Fact]
    public void Scan_pack_cat_verify_on_the_quickstart()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var scan = RttProcess.Run(ws, "scan", "--json");
        Assert.True(scan.ExitCode == 0, scan.ToString());
        var report = JsonNode.Parse(scan.Stdout)!;
        Assert.Equal(10, report["added"]!.AsArray().Count); // 6 manifests, 1 agent, 1 subagent, 2 MCP tool lists
        Assert.Equal(15, (int)report["symbols"]!); // with the 2 + 5 MCP tools

        var again = RttProcess.Run(ws, "scan");
        Assert.Contains("0 added, 0 changed, 10 unchanged", again.Stdout);

        var pack = RttProcess.Run(ws, "pack");
        Assert.True(pack.ExitCode == 0, pack.ToString());
        Assert.Contains("packed 17 object(s)", pack.Stdout);

        var cat = RttProcess.Run(ws, "cat", "summarize@1.0.0");
        Assert.True(cat.ExitCode == 0, cat.ToString());
        var obj = JsonNode.Parse(cat.Stdout)!;
        Assert.Equal("summarize", (string?)obj["id"]);
        Assert.NotNull(obj["sign"]);

        var byHash = RttProcess.Run(ws, "cat", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt/registry/index.json")))!["summarize@1.0.0"]!);
        Assert.Equal(cat.Stdout, byHash.Stdout);

        var verify = RttProcess.Run(ws, "verify");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains("ok: 17 object(s) verified", verify.Stdout);
    }

    [Fact]
    public void Verify_names_each_fault()
    {
        using var dir = TempDir.Quickstart(out var ws);
        Assert.Equal(0, RttProcess.Run(ws, "scan").ExitCode);
        Assert.Equal(0, RttProcess.Run(ws, "pack").ExitCode);
        var objects = Directory.GetFiles(Path.Combine(ws, ".rtt/registry/cas/sha256"), "*.json").Order(StringComparer.Ordinal).ToArray();
        var victim = objects[0];
        var bytes = File.ReadAllBytes(victim);
        bytes[bytes.Length / 2] ^= 0x20;
        File.WriteAllBytes(victim, bytes);
        var index = Path.Combine(ws, ".rtt/registry/pack/index.lut");
        var lut = File.ReadAllBytes(index);
        lut[16 + 1024 + 3] ^= 0x01; // first entry's hash
        File.WriteAllBytes(index, lut);

        var verify = RttProcess.Run(ws, "verify", "--json");
        Assert.Equal(1, verify.ExitCode);
        var faults = JsonNode.Parse(verify.Stdout)!["faults"]!.AsArray().Select(f => (string)f!).ToList();
        Assert.Contains(faults, f => f.Contains(ErrorCodes.CasHashMismatch, StringComparison.Ordinal) && f.Contains(Path.GetFileName(victim), StringComparison.Ordinal));
        Assert.Contains(faults, f => f.Contains("index.lut", StringComparison.Ordinal));

        var cat = RttProcess.Run(ws, "cat", "sha256:" + Path.GetFileNameWithoutExtension(victim));
        Assert.Equal(1, cat.ExitCode);
        Assert.Contains(ErrorCodes.CasHashMismatch, cat.Stderr);
    }

    [Fact]
    public void Bad_sources_make_scan_exit_1_naming_file_and_field()
    {
        using var dir = TempDir.Quickstart(out var ws);
        File.WriteAllText(Path.Combine(ws, "agents/common/bad.agent.json"), """{"id":"bad","version":"one","description":"d","instructions":"i"}""");
        var scan = RttProcess.Run(ws, "scan");
        Assert.Equal(1, scan.ExitCode);
        Assert.Contains(ErrorCodes.BadSemver, scan.Stderr);
        Assert.Contains("agents/common/bad.agent.json: /version", scan.Stderr);
        Assert.Contains("10 added", scan.Stdout); // the good files still went in
        Assert.Equal(0, RttProcess.Run(ws, "verify").ExitCode);
    }

    [Fact]
    public void Interrupted_scan_leaves_a_valid_registry()
    {
        using var dir = new TempDir();
        var ws = dir["ws"];
        Assert.Equal(0, RttProcess.Run(dir.Path, "init", ws).ExitCode);
        for (var i = 0; i < 3000; i++)
        {
            var path = Path.Combine(ws, "agents", $"g{i % 30}", $"a{i}.agent.json");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, $$"""{"id":"a{{i}}","version":"1.0.0","description":"generated","instructions":"do {{i}}"}""");
        }

        using (var scan = RttProcess.Start(ws, null, "scan"))
        {
            // Kill it once it is writing objects, before it can finish.
            var cas = Path.Combine(ws, ".rtt/registry/cas/sha256");
            var sw = Stopwatch.StartNew();
            while (Directory.GetFiles(cas).Length < 50 && sw.Elapsed < TimeSpan.FromSeconds(60) && !scan.HasExited)
            {
                Thread.Sleep(10);
            }

            Assert.False(scan.HasExited, "scan finished before it could be interrupted");
            scan.Kill();
        }

        var verify = RttProcess.Run(ws, "verify");
        Assert.True(verify.ExitCode == 0, verify.ToString());
        var resumed = RttProcess.Run(ws, "scan");
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Contains("3000 added", resumed.Stdout);
        Assert.Equal(0, RttProcess.Run(ws, "verify").ExitCode);
    }
}

[Collection(ProcessCollection.Name)]
public sealed class McpCommandTests(EverythingServer server) : IClassFixture<EverythingServer>
{
    [Fact]
    public void Ingests_the_real_server_everything_and_pins_its_tools()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var ingest = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "everything", "--json", "--", "node", server.Entry, "stdio");
        Assert.True(ingest.ExitCode == 0, ingest.ToString());
        var report = JsonNode.Parse(ingest.Stdout)!;
        Assert.True((int)report["tools"]! >= 10, ingest.Stdout);
        Assert.Contains(report["added"]!.AsArray(), t => (string?)t == "echo");

        var manifest = JsonNode.Parse(File.ReadAllText(dir[".rtt/manifests/mcp.everything.json"]))!;
        var echo = manifest["tools"]!.AsArray().Single(t => (string?)t!["name"] == "echo")!;
        Assert.Equal("rtt://mcp/everything/echo", (string?)echo["symbol"]);
        Assert.StartsWith("sha256:", (string?)echo["pin"]);
        Assert.NotNull(manifest["sign"]);

        var cat = RttProcess.Run(dir.Path, "cat", $"rtt://mcp/everything/echo@{echo["version"]}");
        Assert.True(cat.ExitCode == 0, cat.ToString());
        Assert.Equal("object", (string?)JsonNode.Parse(cat.Stdout)!["input_schema"]!["type"]);

        var again = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "everything", "--json", "--", "node", server.Entry, "stdio");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Empty(JsonNode.Parse(again.Stdout)!["added"]!.AsArray());

        var scan = RttProcess.Run(dir.Path, "scan", "--json");
        Assert.True(scan.ExitCode == 0, scan.ToString());
        Assert.True((int)JsonNode.Parse(scan.Stdout)!["symbols"]! >= 10);
        Assert.Equal(0, RttProcess.Run(dir.Path, "verify").ExitCode);
    }

    [Fact]
    public void A_server_that_exits_at_start_is_a_clear_error_and_writes_nothing()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var result = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "dead", "--timeout", "20", "--", "node", "-e", "console.error('boom'); process.exit(3)");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.McpServerFailed, result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.False(File.Exists(dir[".rtt/manifests/mcp.dead.json"]));
    }

    [Fact]
    public void Drift_in_a_saved_tool_list_is_refused_until_accepted()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        File.WriteAllText(dir["tools.json"], """{"tools":[{"name":"echo","description":"one","inputSchema":{"type":"object"}}]}""");
        Assert.Equal(0, RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "saved", "--from", dir["tools.json"]).ExitCode);
        File.WriteAllText(dir["tools.json"], """{"tools":[{"name":"echo","description":"two","inputSchema":{"type":"object"}}]}""");
        var drift = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "saved", "--from", dir["tools.json"]);
        Assert.Equal(1, drift.ExitCode);
        Assert.Contains(ErrorCodes.McpDrift, drift.Stderr);
        Assert.Contains("--accept-drift", drift.Stderr);
        var accepted = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "saved", "--from", dir["tools.json"], "--accept-drift");
        Assert.True(accepted.ExitCode == 0, accepted.ToString());
        Assert.Contains("accepted drift: echo changed", accepted.Stdout);

        File.WriteAllText(dir["tools.json"], """{"tools":[{"name":"echo","inputSchema":{"type":"string"}}]}""");
        var invalid = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "saved", "--from", dir["tools.json"]);
        Assert.Equal(1, invalid.ExitCode);
        Assert.Contains(ErrorCodes.McpToolInvalid, invalid.Stderr);
        Assert.Contains("/tools/0/inputSchema", invalid.Stderr);
    }

    [Fact]
    public void A_saved_listing_with_prompts_and_resources_pins_them_from_ingest_from_and_from_a_scanned_tools_file()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        const string Listing = """
            {"serverInfo":{"name":"notes-server","version":"1.2.0"},
             "tools":[{"name":"echo","inputSchema":{"type":"object"}}],
             "prompts":[{"name":"greet","description":"Greets","arguments":[{"name":"who","required":true}]}],
             "resources":[{"uri":"file:///notes/a.txt","name":"a","mimeType":"text/plain"}],
             "resourceTemplates":[{"uriTemplate":"file:///notes/{name}","name":"note"}]}
            """;
        File.WriteAllText(dir["saved.json"], Listing);
        var ingest = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "notes", "--from", dir["saved.json"]);
        Assert.True(ingest.ExitCode == 0, ingest.ToString());
        var manifest = JsonNode.Parse(File.ReadAllText(dir[".rtt/manifests/mcp.notes.json"]))!;
        Assert.Equal("rtt://mcp/notes/prompt.greet", (string?)manifest["prompts"]![0]!["symbol"]);
        Assert.Single(manifest["resources"]!.AsArray());
        Assert.Single(manifest["resource_templates"]!.AsArray());
        var symbols = File.ReadAllText(dir[".rtt/registry/symbols.json"]);
        Assert.Contains("rtt://mcp/notes/prompt.greet", symbols);
        Assert.Contains("mcp-resource-template", symbols);

        // The same listing as a workspace file is ingested by rtt scan, prompts and resources with it.
        Directory.CreateDirectory(dir["mcp"]);
        File.WriteAllText(dir["mcp/files.tools.json"], Listing);
        var scan = RttProcess.Run(dir.Path, "scan");
        Assert.True(scan.ExitCode == 0, scan.ToString());
        var scanned = JsonNode.Parse(File.ReadAllText(dir[".rtt/manifests/mcp.files.json"]))!;
        Assert.Equal("rtt://mcp/files/prompt.greet", (string?)scanned["prompts"]![0]!["symbol"]);
        Assert.Contains("rtt://mcp/files/prompt.greet", File.ReadAllText(dir[".rtt/registry/symbols.json"]));

        // Prompts that are not an array: a clear error naming the member, no stack trace, no manifest written.
        File.WriteAllText(dir["bad.json"], """{"tools":[{"name":"echo","inputSchema":{"type":"object"}}],"prompts":5}""");
        var bad = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "bad", "--from", dir["bad.json"]);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(ErrorCodes.McpToolInvalid, bad.Stderr);
        Assert.Contains("/prompts", bad.Stderr);
        Assert.DoesNotContain("   at ", bad.Stderr);
        Assert.False(File.Exists(dir[".rtt/manifests/mcp.bad.json"]));
    }
}
