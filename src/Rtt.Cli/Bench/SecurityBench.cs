using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HdrHistogram;
using Microsoft.Extensions.Logging.Abstractions;
using Rtt.Client.Lanes;
using Rtt.Core.Calls;
using Rtt.Core.Json;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Silo.Endpoints;

namespace Rtt.Cli.Bench;

/// <summary>
/// <c>rtt bench security</c> (docs/security.md): what the security layer costs, each against its baseline in the same run,
/// alternating: an attach with token verification against one without (ms per attach), and a call's latency through a
/// sandboxed <c>process</c> driver (bubblewrap + seccomp) against the same driver unsandboxed (goal p50 ≤ 1.1×).
/// </summary>
public static class SecurityBench
{
    public const double SandboxGoal = 1.1;

    public static Command Create()
    {
        var seconds = new Option<double>("--seconds") { Description = "Measured time per call case (alternating slices)", DefaultValueFactory = _ => 3 };
        var attaches = new Option<int>("--attaches") { Description = "Attaches per attach case", DefaultValueFactory = _ => 400 };
        var withoutSeccomp = new Option<bool>("--without-seccomp")
        {
            Description = "On a kernel that loads no seccomp filter, measure the namespace sandbox without it (as Security:SandboxWithoutSeccomp)",
        };
        var json = RttCommands.JsonOption();
        var command = new Command("security", "Attach with vs without token verification; a call through a sandboxed process driver vs unsandboxed") { seconds, attaches, withoutSeccomp, json };
        command.SetAction(RttCommands.Guard(async (parse, _) =>
        {
            Rtt.Silo.Endpoints.Sandbox.AllowWithoutSeccomp = parse.GetValue(withoutSeccomp);
            var result = await RunAsync(parse.GetValue(seconds), parse.GetValue(attaches), parse.GetValue(json) ? null : Console.Error.WriteLine);
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(result));
            }
            else
            {
                Print(result);
            }

            return RttCommands.Ok;
        }));
        return command;
    }

    public static async Task<JsonObject> RunAsync(double seconds, int attaches, Action<string>? progress)
    {
        var dir = Directory.CreateTempSubdirectory("rtt-bench-sec-").FullName;
        try
        {
            var ws = WorkspaceInitializer.Create(dir).Workspace;
            using var key = ws.LoadSigningKey();
            using var host = new LaneHost();
            var control = Path.Combine(ws.State, "bench.sock");
            WorkspaceModes.CreatePrivateDirectory(ws.State);
            await host.SwapAsync(new RouteTable([new RouteEntry(1, "rtt://bench/echo", new DriverEndpoint(new EchoDriver()))]));
            using var listener = new LaneHostListener(host, new LaneOptions(), control,
                admission: new LaneAdmission(TokenVerifier.ForWorkspace(ws, null, new ReplayCache(attaches * 4)), strict: false));

            progress?.Invoke($"attach: {attaches} with a token and {attaches} without, alternating");
            var attach = AttachCases(control, key, attaches);

            progress?.Invoke($"starting the text service twice: unsandboxed and under bubblewrap{(Rtt.Silo.Endpoints.Sandbox.SeccompUnavailable() is null ? " + seccomp" : " (no seccomp filter: --without-seccomp)")}");
            var plain = await Start(ws, host, sandbox: false);
            var boxed = await Start(ws, host, sandbox: true);
            try
            {
                await host.SwapAsync(new RouteTable([
                    new RouteEntry(1, "rtt://bench/echo", new DriverEndpoint(new EchoDriver())),
                    new RouteEntry(2, "rtt://bench/plain", plain.Endpoint),
                    new RouteEntry(3, "rtt://bench/boxed", boxed.Endpoint),
                ]));
                using var toPlain = LaneClient.Attach(control, "2", LaneKind.Shm, inlineContinuations: true);
                using var toBoxed = LaneClient.Attach(control, "3", LaneKind.Shm, inlineContinuations: true);
                var payload = "hello sandbox"u8.ToArray();
                progress?.Invoke($"calls: {seconds:0.#} s each, alternating 100 ms slices");
                var calls = await CallsBench.Alternate([
                    ("unsandboxed", async () => await toPlain.RequestAsync(payload)),
                    ("sandboxed", async () => await toBoxed.RequestAsync(payload)),
                ], seconds, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));
                var ratio = (double)calls[1]["p50_us"]! / (double)calls[0]["p50_us"]!;
                return new JsonObject
                {
                    ["load_average"] = Stubs.StubBench.Load(),
                    ["seccomp"] = Rtt.Silo.Endpoints.Sandbox.SeccompUnavailable() is null, // false: namespaces only (--without-seccomp)
                    ["attach"] = attach,
                    ["calls"] = new JsonArray([.. calls]),
                    ["sandboxed_unsandboxed_p50"] = Math.Round(ratio, 3),
                    ["sandboxed_unsandboxed_p50_goal_max"] = SandboxGoal,
                };
            }
            finally
            {
                // Swapped out (drained, no longer polled by the worker) before their lanes are unmapped: disposing an
                // endpoint the host still routes to pulls its ring from under the worker (an access violation).
                await host.SwapAsync(new RouteTable([new RouteEntry(1, "rtt://bench/echo", new DriverEndpoint(new EchoDriver()))]));
                await plain.DisposeAsync();
                await boxed.DisposeAsync();
            }
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Attaches (SHM, the default lane) in alternating turns of 20, with and without a token; tokens are minted before each turn.</summary>
    private static JsonObject AttachCases(string control, Rtt.Core.Signing.SigningKey key, int count)
    {
        var without = new LongHistogram(Stopwatch.Frequency * 10, 3);
        var with = new LongHistogram(Stopwatch.Frequency * 10, 3);
        for (var warm = 0; warm < 20; warm++)
        {
            LaneAttach.ConnectUnix(control, "1", LaneKind.Shm, null, warm % 2 == 0 ? null : ManagementTokens.MintLane(key, "rtt://bench/echo", TimeSpan.FromMinutes(10))).Lane.Dispose();
        }

        for (var done = 0; done < count; done += 20)
        {
            var tokens = Enumerable.Range(0, 20).Select(_ => ManagementTokens.MintLane(key, "rtt://bench/echo", TimeSpan.FromMinutes(10))).ToArray();
            foreach (var (histogram, withToken) in new[] { (without, false), (with, true) })
            {
                for (var i = 0; i < 20; i++)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    var (lane, _) = LaneAttach.ConnectUnix(control, "1", LaneKind.Shm, null, withToken ? tokens[i] : null);
                    histogram.RecordValue(Stopwatch.GetTimestamp() - t0);
                    lane.Dispose();
                }
            }
        }

        double Ms(LongHistogram h, double p) => Math.Round(h.GetValueAtPercentile(p) * 1000.0 / Stopwatch.Frequency, 3);
        return new JsonObject
        {
            ["attaches_each"] = without.TotalCount,
            ["without_token_p50_ms"] = Ms(without, 50),
            ["without_token_p99_ms"] = Ms(without, 99),
            ["with_token_p50_ms"] = Ms(with, 50),
            ["with_token_p99_ms"] = Ms(with, 99),
            ["verification_cost_p50_ms"] = Math.Round(Ms(with, 50) - Ms(without, 50), 3),
        };
    }

    private static async Task<IServedEndpoint> Start(RttWorkspace ws, LaneHost host, bool sandbox)
    {
        var serve = new JsonObject
        {
            ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--tag", sandbox ? "boxed" : "plain"),
        };
        if (sandbox)
        {
            serve["sandbox"] = new JsonObject { ["network"] = false };
        }

        var normalized = ServeSpec.Normalize(serve, "rtt bench security");
        var context = new EndpointContext(ServeSpec.Hash(normalized), ws, NullLogger.Instance, (_, _) => Task.CompletedTask, host.Doorbell);
        return await ProcessService.StartAsync(normalized, context, CancellationToken.None);
    }

    private static void Print(JsonObject r)
    {
        var a = r["attach"]!;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"attach ({a["attaches_each"]} each, SHM): without token p50 {(double)a["without_token_p50_ms"]!:0.000} ms p99 {(double)a["without_token_p99_ms"]!:0.000} ms; with token p50 {(double)a["with_token_p50_ms"]!:0.000} ms p99 {(double)a["with_token_p99_ms"]!:0.000} ms; verification +{(double)a["verification_cost_p50_ms"]!:0.000} ms"));
        foreach (var c in r["calls"]!.AsArray())
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {c!["case"],-12} calls {(long)c["calls"]!,8}  p50 {(double)c["p50_us"]!,8:0.0} µs  p99 {(double)c["p99_us"]!,8:0.0} µs"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"sandboxed/unsandboxed p50 {(double)r["sandboxed_unsandboxed_p50"]!:0.000}x (goal <= {SandboxGoal}){((bool)r["seccomp"]! ? "" : ", sandbox WITHOUT the seccomp filter")}; load average {r["load_average"]}"));
    }
}
