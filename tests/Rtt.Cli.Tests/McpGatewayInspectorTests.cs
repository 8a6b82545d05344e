using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Rtt.Cli.Tests;

/// <summary>
/// <c>rtt mcp serve --http</c> driven by another implementation's client: the npm <c>@modelcontextprotocol/inspector-cli</c>
/// lists and calls, through RTT, tools of the npm reference servers <c>server-everything</c> and <c>server-memory</c>
/// (both ingested, routed and started by the silo).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class McpGatewayInspectorTests(EverythingServer everything) : IClassFixture<EverythingServer>
{
    private const string Caller = "rtt://agents/inspector/client";

    [Fact]
    public void The_inspector_cli_lists_and_calls_server_everything_and_server_memory_through_rtt()
    {
        using var dir = TempDir.Quickstart(out var ws); // its mcp/everything.tools.json is a saved list: these servers get names of their own
        var modules = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(everything.Entry)!, "..", ".."));
        var memory = Path.Combine(modules, "server-memory", "dist", "index.js");
        var inspector = Path.Combine(modules, "inspector-cli", "build", "index.js");
        Assert.True(File.Exists(memory) && File.Exists(inspector), $"tests/mcp lacks server-memory or inspector-cli under {modules}: run npm ci there");
        var store = Path.Combine(dir.Path, "memory.jsonl");
        McpGatewayTests.Ok(ws, "mcp", "ingest", "--name", "ev", "--", "node", everything.Entry, "stdio");
        McpGatewayTests.Ok(ws, "mcp", "ingest", "--name", "mem", "--", "env", $"MEMORY_FILE_PATH={store}", "node", memory);
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", "agents.inspector.client.json"), new JsonObject
        {
            ["address"] = Caller,
            ["version"] = "1.0.0",
            ["input"] = "rtt.types/Void",
            ["output"] = JsonNode.Parse("""
                {"type":"object","required":["message","query","entities"],
                 "properties":{"message":{"type":"string"},"query":{"type":"string"},"entities":{"type":"array"}}}
                """),
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 50,
            ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
        }.ToJsonString());
        using var silo = McpGatewayTests.RouteAndApply(ws, Caller, new[] { "ev/echo", "mem/create_entities", "mem/search_nodes", "mem/read_graph" }.Select(to => $"rtt://mcp/{to}"));
        using var gateway = McpGatewayTests.StartHttpGateway(ws, Caller, out var url, out var token);
        try
        {
            var list = Inspector(inspector, url, token, "--method", "tools/list");
            var names = list["tools"]!.AsArray().Select(t => (string?)t!["name"]).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(["ev__echo", "mem__create_entities", "mem__read_graph", "mem__search_nodes"], names);

            var echo = Inspector(inspector, url, token, "--method", "tools/call", "--tool-name", "ev__echo", "--tool-arg", "message=through rtt");
            Assert.Equal("Echo: through rtt", (string?)echo["content"]![0]!["text"]);

            Inspector(inspector, url, token, "--method", "tools/call", "--tool-name", "mem__create_entities",
                "--tool-arg", """entities=[{"name":"rtt","entityType":"project","observations":["routes MCP tools"]}]""");
            var found = Inspector(inspector, url, token, "--method", "tools/call", "--tool-name", "mem__search_nodes", "--tool-arg", "query=rtt");
            Assert.Contains("routes MCP tools", found.ToJsonString(), StringComparison.Ordinal);
            Assert.Contains("routes MCP tools", File.ReadAllText(store), StringComparison.Ordinal); // the server wrote it, as asked through RTT

            // Without the credential the inspector gets nowhere.
            var refused = Run(inspector, url, null, "--method", "tools/list");
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("Failed to connect", refused.Output, StringComparison.Ordinal); // the 401 itself: McpGatewayTests
        }
        finally
        {
            gateway.Terminate();
            gateway.WaitForExit(TimeSpan.FromSeconds(20));
            silo.Terminate();
            silo.WaitForExit(TimeSpan.FromSeconds(30));
        }
    }

    private static JsonNode Inspector(string inspector, string url, string token, params string[] args)
    {
        var (exit, output) = Run(inspector, url, token, args);
        Assert.True(exit == 0, $"inspector-cli {string.Join(' ', args)}: exit {exit}\n{output}");
        return JsonNode.Parse(output[output.IndexOf('{', StringComparison.Ordinal)..])!;
    }

    private static (int ExitCode, string Output) Run(string inspector, string url, string? token, params string[] args)
    {
        // Run from its build folder: inspector-cli 1.0.3 checks for "../package.json" relative to the working directory.
        var info = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetDirectoryName(inspector)! };
        foreach (var a in new[] { inspector, url, "--transport", "http" }.Concat(token is null ? [] : ["--header", $"Authorization: Bearer {token}"]).Concat(args))
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(60_000), "inspector-cli hung");
        return (p.ExitCode, stdout + stderr.Result);
    }
}
