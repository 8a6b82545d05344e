using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Client;
using Rtt.Client.Calls;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Tests;

/// <summary>
/// Calls through RTT to real endpoints with real processes: the silo (`rtt up`), the quickstart's process service
/// (its own OS process, over SHM) and plugin (in the silo's own load context), `rtt call` and the client library.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class CallProcessTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private const string Upper = "rtt://core/api/upper";
    private const string Reverse = "rtt://core/api/reverse";

    [Fact]
    public async Task Rtt_call_and_the_client_reach_the_process_service_and_the_plugin_and_bad_calls_are_clear_errors()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = Applied(ws);

        var upper = RttProcess.Run(ws, "call", Upper, "--args", "hello");
        Assert.True(upper.ExitCode == 0, upper.ToString());
        Assert.Equal("v1:HELLO", upper.Stdout.Trim());
        var reverse = JsonNode.Parse(Ok(ws, "call", Reverse, "--args", "abc", "--json"))!;
        Assert.Equal("v1:cba", (string?)reverse["answer_text"]);
        Assert.Equal("dotnet", (string?)reverse["endpoint"]!["kind"]);
        Assert.Equal("rtt://ui/chat/console", (string?)reverse["route"]!["from"]);
        Assert.True((double)reverse["latency_ms"]! > 0);
        var file = Path.Combine(dir.Path, "input.txt");
        File.WriteAllText(file, "from a file");
        Assert.Equal("v1:FROM A FILE", Ok(ws, "call", Upper, "--args-file", file).Trim());

        // A plugin that throws answers that call with RTT-CALL-004 (exit 5) and keeps serving.
        var thrown = RttProcess.Run(ws, "call", Reverse, "--args", "throw");
        Assert.Equal(5, thrown.ExitCode);
        Assert.Contains(ErrorCodes.DriverFault, thrown.Stderr, StringComparison.Ordinal);
        Assert.Contains("asked to throw", thrown.Stderr, StringComparison.Ordinal);
        Assert.Equal("v1:yako", Ok(ws, "call", Reverse, "--args", "okay").Trim());

        // Bad input: exit 1 with its code, no stack trace.
        var noRoute = RttProcess.Run(ws, "call", "rtt://core/api/nothing");
        Assert.Equal(1, noRoute.ExitCode);
        Assert.Contains(ErrorCodes.CallNoRoute, noRoute.Stderr, StringComparison.Ordinal);
        var twice = RttProcess.Run(ws, "call", Upper, "--args", "a", "--stdin");
        Assert.Equal(1, twice.ExitCode);
        Assert.Contains(ErrorCodes.CallInputInvalid, twice.Stderr, StringComparison.Ordinal);
        var badTimeout = RttProcess.Run(ws, "call", Upper, "--timeout", "0");
        Assert.Equal(1, badTimeout.ExitCode);
        Assert.Contains(ErrorCodes.CallInputInvalid, badTimeout.Stderr, StringComparison.Ordinal);
        Assert.All(new[] { noRoute, twice, badTimeout, thrown }, r => Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal));

        // A client app: the symbol resolves through the reconciler grain's applied routes; lanes are reused.
        var workspace = RttWorkspace.Open(ws);
        await using var client = await RttClient.ConnectAsync(RttClientOptions.FromWorkspace(workspace)!);
        for (var i = 0; i < 50; i++)
        {
            var answer = await client.CallAsync(Upper, Encoding.UTF8.GetBytes($"n{i}"));
            Assert.Equal($"v1:N{i}", Encoding.UTF8.GetString(answer));
        }

        var missing = await Assert.ThrowsAsync<RttException>(() => client.CallAsync("rtt://core/api/nothing", "x"u8.ToArray()));
        Assert.Equal(ErrorCodes.CallNoRoute, missing.Code);
        var notMcp = await Assert.ThrowsAsync<RttException>(() => client.CallToolAsync(Upper, []));
        Assert.Equal(ErrorCodes.CallInputInvalid, notMcp.Code);
        Stop(silo);
    }

    [Fact]
    public async Task Hot_swap_of_a_process_service_and_a_plugin_under_load_loses_and_duplicates_nothing_and_rollback_swaps_back()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = Applied(ws);
        var v1Plan = (string)JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!["plan_id"]!;

        // Version 2 of both endpoints: the service started with --tag v2, the plugin loaded from another folder with tag v2.
        var pluginV2 = Path.Combine(ws, "plugins-v2");
        Directory.CreateDirectory(pluginV2);
        foreach (var f in Directory.GetFiles(Path.Combine(RttProcess.CliDirectory, "samples", "plugin")))
        {
            File.Copy(f, Path.Combine(pluginV2, Path.GetFileName(f)));
        }

        WriteManifest(ws, "core.api.upper.v2.json", Upper, "1.1.0", new JsonObject
        {
            ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--tag", "v2"),
        });
        WriteManifest(ws, "core.api.reverse.v2.json", Reverse, "1.1.0", new JsonObject
        {
            ["kind"] = "dotnet", ["assembly"] = "plugins-v2/Rtt.Samples.Plugin.dll", ["type"] = "Rtt.Samples.Plugin.ReversePlugin", ["config"] = new JsonObject { ["tag"] = "v2" },
        });
        Ok(ws, "scan");
        var plan2 = JsonNode.Parse(Ok(ws, "plan", "--json"))!;
        Assert.Equal(2, plan2["endpoints"]!.AsObject().Count(e => e.Value!["kind"]!.ToString() is "process" or "dotnet"));

        var applied = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!.AsObject();
        var routes = CallRoutes.Of(applied);
        using var caller = new LaneCaller(RttWorkspace.Open(ws).LaneControlSocket);
        using var stop = new CancellationTokenSource();
        var loads = new List<Task<List<string>>>();
        foreach (var (symbol, transform) in new (string, Func<string, string>)[] { (Upper, s => s.ToUpperInvariant()), (Reverse, s => new string(s.Reverse().ToArray())) })
        {
            var route = CallRoutes.Resolve(routes, symbol, null, null);
            for (var c = 0; c < 2; c++)
            {
                var id = c;
                loads.Add(Task.Run(async () =>
                {
                    var tags = new List<string>();
                    for (var seq = 0; !stop.IsCancellationRequested || seq < 20; seq++)
                    {
                        var text = $"c{id}-{seq}";
                        var answer = Encoding.UTF8.GetString(await caller.CallAsync(route, Encoding.UTF8.GetBytes(text), TimeSpan.FromSeconds(20)));
                        var colon = answer.IndexOf(':', StringComparison.Ordinal);
                        Assert.True(colon > 0, answer);
                        Assert.Equal(transform(text), answer[(colon + 1)..]); // each answer is this request's, exactly once, in order
                        tags.Add(answer[..colon]);
                    }

                    return tags;
                }));
            }
        }

        await Task.Delay(300);
        var swap = JsonNode.Parse(Ok(ws, "apply", "--json"))!;
        Assert.Equal("applied", (string?)swap["outcome"]);
        await Task.Delay(300);
        var back = JsonNode.Parse(Ok(ws, "rollback", "--json"))!;
        Assert.Equal("rolled-back", (string?)back["outcome"]);
        Assert.Equal(v1Plan, (string?)back["plan_id"]);
        await Task.Delay(300);
        stop.Cancel();
        var all = await Task.WhenAll(loads).WaitAsync(TimeSpan.FromSeconds(60));
        foreach (var tags in all)
        {
            // Every answer came from v1 before the switch, v2 after it, and v1 again after the rollback: no interleaving.
            var runs = tags.Aggregate(new List<string>(), (acc, t) =>
            {
                if (acc.Count == 0 || acc[^1] != t)
                {
                    acc.Add(t);
                }

                return acc;
            });
            Assert.Equal(["v1", "v2", "v1"], runs);
        }

        Stop(silo);
    }

    [Fact]
    public void Endpoints_that_cannot_start_fail_verify_and_roll_back_and_bad_serve_blocks_are_refused_at_scan()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = Applied(ws);

        // A service that exits at start, one that never attaches, a plugin type that does not exist: each apply is rolled back.
        var cases = new (string File, JsonObject Serve, string Expect)[]
        {
            ("bad1.json", new JsonObject { ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--fail-at-start") }, "exited at start"),
            ("bad2.json", new JsonObject { ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--never-attach"), ["start_timeout_ms"] = 1500 }, "did not attach within 1500 ms"),
            ("bad3.json", new JsonObject { ["kind"] = "dotnet", ["assembly"] = "${RTT_HOME}/samples/plugin/Rtt.Samples.Plugin.dll", ["type"] = "Nope.Missing" }, "has no type Nope.Missing"),
            ("bad4.json", new JsonObject { ["kind"] = "dotnet", ["assembly"] = "${RTT_HOME}/samples/plugin/Rtt.Samples.Plugin.dll", ["type"] = "Rtt.Samples.Plugin.ReversePlugin", ["config"] = new JsonObject { ["fail"] = true } }, "failed to start"),
            ("bad5.json", new JsonObject { ["kind"] = "process", ["command"] = "/nonexistent/service" }, "cannot start"),
        };
        var version = 1;
        foreach (var (file, serve, expect) in cases)
        {
            WriteManifest(ws, file, Upper, $"1.{version++}.0", serve);
            Ok(ws, "scan");
            Ok(ws, "plan");
            var apply = RttProcess.Run(ws, "apply", "--json");
            Assert.True(apply.ExitCode == 4, $"{file}: {apply}");
            var report = JsonNode.Parse(apply.Stdout)!;
            Assert.Contains((string?)report["outcome"], new[] { "rolled-back", "verify-failed" });
            Assert.Contains(expect, apply.Stdout, StringComparison.Ordinal);
            Assert.Contains(ErrorCodes.EndpointUnavailable, apply.Stdout, StringComparison.Ordinal);

            // The old plan is still in force and serving.
            Assert.Equal("v1:STILL", Ok(ws, "call", Upper, "--args", "still").Trim());
            File.Delete(Path.Combine(ws, ".rtt", "manifests", file));
        }

        // A serve block that is not one: refused at scan with the JSON Pointer of the field.
        WriteManifest(ws, "bad6.json", Upper, "2.0.0", new JsonObject { ["kind"] = "pigeon" });
        var scan = RttProcess.Run(ws, "scan");
        Assert.Equal(1, scan.ExitCode);
        Assert.Contains(ErrorCodes.ServeInvalid, scan.Stdout + scan.Stderr, StringComparison.Ordinal);
        Assert.Contains("/serve/kind", scan.Stdout + scan.Stderr, StringComparison.Ordinal);
        Stop(silo);
    }

    [Fact]
    public void The_endpoints_a_plan_adds_start_side_by_side()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = Applied(ws);

        // Two services that each attach only once the other has started: started one after the other, the first would
        // wait for a start that comes only after it gave up (its start_timeout_ms), and the plan would roll back.
        var a = Path.Combine(ws, "a.started");
        var b = Path.Combine(ws, "b.started");
        WriteManifest(ws, "core.api.upper.a.json", Upper, "1.2.0", new JsonObject
        {
            ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--tag", "a", "--touch", a, "--attach-after", b),
            ["start_timeout_ms"] = 20_000,
        });
        WriteManifest(ws, "core.api.reverse.b.json", Reverse, "1.2.0", new JsonObject
        {
            ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--tag", "b", "--touch", b, "--attach-after", a),
            ["start_timeout_ms"] = 20_000,
        });
        Ok(ws, "scan");
        Ok(ws, "plan");
        var apply = JsonNode.Parse(Ok(ws, "apply", "--json"))!;
        Assert.Equal("applied", (string?)apply["outcome"]);
        Assert.Equal("a:SIDE", Ok(ws, "call", Upper, "--args", "side").Trim());
        Assert.Equal("b:BY SIDE", Ok(ws, "call", Reverse, "--args", "by side").Trim());
        Stop(silo);
    }

    [Fact]
    public async Task A_killed_service_fails_its_calls_with_lane_005_and_is_restarted_by_the_silo()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = Applied(ws);
        Assert.Equal("v1:A", Ok(ws, "call", Upper, "--args", "a").Trim());
        var services = Process.GetProcessesByName("Rtt.Samples.TextService").Where(p => ParentOf(p.Id) == silo.Id).ToList();
        var service = Assert.Single(services);
        service.Kill();
        Assert.True(service.WaitForExit(10_000));

        // The silo restarts it (backoff from 1/4 s) and the route works again; calls in between fail fast with a code.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        var failures = new List<string>();
        RttResult call;
        while (true)
        {
            call = RttProcess.Run(ws, "call", Upper, "--args", "b", "--timeout", "5");
            if (call.ExitCode == 0 || DateTime.UtcNow > deadline)
            {
                break;
            }

            failures.Add(call.Stderr);
            await Task.Delay(100);
        }

        Assert.True(call.ExitCode == 0, $"{call}\n{string.Join("\n", failures)}");
        Assert.Equal("v1:B", call.Stdout.Trim());
        Assert.All(failures, f => Assert.Contains(ErrorCodes.LaneUpstreamGone, f, StringComparison.Ordinal));
        var restarted = Process.GetProcessesByName("Rtt.Samples.TextService").Where(p => ParentOf(p.Id) == silo.Id).ToList();
        Assert.Single(restarted);
        Assert.NotEqual(service.Id, restarted[0].Id);
        Stop(silo);
        Assert.True(SpinWait.SpinUntil(() => restarted[0].HasExited, TimeSpan.FromSeconds(15)), "the silo left its service running");
    }

    [Fact]
    public void Rtt_call_reaches_an_mcp_tool_over_stdio_and_one_over_streamable_http_and_their_failures_have_codes()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = Applied(ws);

        // The quickstart's C# MCP server over stdio, started by the silo.
        Assert.Equal("ÉTÉ", Ok(ws, "call", "rtt://mcp/sample/upper", "--args", """{"text":"été"}""").Trim());
        var result = JsonNode.Parse(Ok(ws, "call", "rtt://mcp/sample/upper", "--args", """{"text":"x"}""", "--json"))!;
        Assert.Equal("mcp-stdio", (string?)result["endpoint"]!["kind"]);
        var badArgs = RttProcess.Run(ws, "call", "rtt://mcp/sample/upper", "--args", """{"txt":1}""");
        Assert.Equal(5, badArgs.ExitCode);
        Assert.Contains(ErrorCodes.CallArgsInvalid, badArgs.Stderr, StringComparison.Ordinal);

        // The same server on Streamable HTTP, reached by URL: ingested with --url, routed, applied, called.
        var port = RttProcess.FreePort();
        var url = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/mcp";
        using var web = Process.Start(new ProcessStartInfo(Path.Combine(RttProcess.CliDirectory, "rtt-sample-mcp"), ["--http", url])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        try
        {
            Assert.Contains("listening", web.StandardError.ReadLine() ?? string.Empty, StringComparison.Ordinal);
            Ok(ws, "mcp", "ingest", "--name", "web", "--url", url);
            var routes = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "routes.json")))!;
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = "rtt://ui/chat/tools", ["to"] = "rtt://mcp/web/upper", ["version"] = "^1.0.0" });
            File.WriteAllText(Path.Combine(ws, ".rtt", "routes.json"), routes.ToJsonString());
            var policy = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "policy.json")))!;
            policy["acl"]!.AsArray().Add(new JsonObject { ["allow"] = new JsonObject { ["from"] = "rtt://ui/chat/tools", ["to"] = "rtt://mcp/web/*" } });
            File.WriteAllText(Path.Combine(ws, ".rtt", "policy.json"), policy.ToJsonString());
            Ok(ws, "plan");
            Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws, "apply", "--json"))!["outcome"]);

            var viaHttp = JsonNode.Parse(Ok(ws, "call", "rtt://mcp/web/upper", "--args", """{"text":"over http"}""", "--json"))!;
            Assert.Equal("mcp-http", (string?)viaHttp["endpoint"]!["kind"]);
            Assert.Equal("OVER HTTP", (string?)viaHttp["result"]!["content"]![0]!["text"]);
            Assert.False((bool?)viaHttp["result"]!["isError"] ?? false);
            var toolError = RttProcess.Run(ws, "call", "rtt://mcp/sample/upper", "--args", """{"text":"still here"}""");
            Assert.Equal("STILL HERE", toolError.Stdout.Trim()); // the stdio server is unaffected by the new route

            // The HTTP server goes away: the call fails with the endpoint's code (exit 5), no stack trace.
            web.Kill();
            Assert.True(web.WaitForExit(10_000));
            var gone = RttProcess.Run(ws, "call", "rtt://mcp/web/upper", "--args", """{"text":"x"}""", "--timeout", "10");
            Assert.Equal(5, gone.ExitCode);
            Assert.Contains("RTT-CALL-00", gone.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", gone.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            if (!web.HasExited)
            {
                web.Kill();
            }
        }

        Stop(silo);
    }

    private static int ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return -1;
        }
    }

    private static RttProcess Applied(string ws)
    {
        var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, StartTimeout);
        Ok(ws, "plan");
        var apply = JsonNode.Parse(Ok(ws, "apply", "--json"))!;
        Assert.Equal("applied", (string?)apply["outcome"]);
        return silo;
    }

    private static void Stop(RttProcess silo)
    {
        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
    }

    private static void WriteManifest(string ws, string file, string address, string version, JsonObject serve) =>
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", file), new JsonObject
        {
            ["address"] = address,
            ["version"] = version,
            ["input"] = "rtt.types/Text",
            ["output"] = "rtt.types/Text",
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 100,
            ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
            ["serve"] = serve,
        }.ToJsonString());

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
