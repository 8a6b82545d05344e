using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Client.Calls;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Tests;

/// <summary>
/// Observability with real processes: the quickstart silo (`rtt up --metrics-port`), calls to its process service and
/// its plugin, then `rtt metrics --json`, `rtt top --once`, `rtt tap --flight`, the Prometheus endpoint, and the plugin's
/// breaker opened by failing calls (with its flight dump) and closed again once it answers.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class TelemetryProcessTests
{
    private const string Upper = "rtt://core/api/upper";
    private const string Reverse = "rtt://core/api/reverse";

    [Fact]
    public async Task Metrics_top_tap_and_prometheus_show_per_route_traffic_and_a_breaker_opens_dumps_and_closes()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: false);
        var policyPath = Path.Combine(ws, ".rtt", "policy.json");
        var policy = JsonNode.Parse(File.ReadAllText(policyPath))!.AsObject();
        policy["breakers"] = new JsonObject
        {
            ["default"] = new JsonObject { ["min_calls"] = 50 },
            ["routes"] = new JsonArray(new JsonObject { ["match"] = "rtt://core/api/rev*", ["min_calls"] = 5, ["failure_ratio"] = 0.5, ["open_s"] = 1, ["half_open_calls"] = 1 }),
        };
        File.WriteAllText(policyPath, policy.ToJsonString());
        Assert.Equal(0, RttProcess.Run(ws, "scan").ExitCode);

        var metricsPort = RttProcess.FreePort();
        var otlpPort = RttProcess.FreePort();
        using var collector = new System.Net.HttpListener(); // a stand-in OTLP/HTTP collector: keeps what the silo pushes
        collector.Prefixes.Add($"http://127.0.0.1:{otlpPort}/");
        collector.Start();
        var pushed = new List<byte[]>();
        var collecting = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                var context = await collector.GetContextAsync();
                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                lock (pushed)
                {
                    pushed.Add(body.ToArray());
                }

                context.Response.StatusCode = 200;
                context.Response.Close();
            }
        });
        var env = new Dictionary<string, string>
        {
            ["RTT_Metrics__OtlpEndpoint"] = $"http://127.0.0.1:{otlpPort}/v1/metrics",
            ["RTT_Metrics__ExportIntervalMs"] = "300",
        };
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), env, TimeSpan.FromSeconds(60), "--metrics-port", metricsPort.ToString(CultureInfo.InvariantCulture));
        Ok(ws, "plan");
        Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws, "apply", "--json"))!["outcome"]);

        var applied = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!.AsObject();
        var routes = CallRoutes.Of(applied);
        var upper = CallRoutes.Resolve(routes, Upper, null, null);
        var reverse = CallRoutes.Resolve(routes, Reverse, null, null);
        using (var caller = new LaneCaller(RttWorkspace.Open(ws).LaneControlSocket))
        {
            for (var i = 0; i < 25; i++)
            {
                Assert.Equal($"v1:N{i}", Encoding.UTF8.GetString(await caller.CallAsync(upper, Encoding.UTF8.GetBytes($"n{i}"), TimeSpan.FromSeconds(30))));
            }

            for (var i = 0; i < 5; i++)
            {
                var e = await Assert.ThrowsAsync<RttException>(() => caller.CallAsync(reverse, "throw"u8.ToArray(), TimeSpan.FromSeconds(30)));
                Assert.Equal(ErrorCodes.DriverFault, e.Code);
            }

            var open = await Assert.ThrowsAsync<RttException>(() => caller.CallAsync(reverse, "okay"u8.ToArray(), TimeSpan.FromSeconds(30)));
            Assert.Equal(ErrorCodes.LaneBreakerOpen, open.Code);

            var metrics = JsonNode.Parse(Ok(ws, "metrics", "--json"))!;
            var byRoute = metrics["routes"]!.AsArray().ToDictionary(r => (string)r!["route"]!, r => r!);
            var u = byRoute[Upper];
            Assert.Equal(25, (long)u["requests"]!); // the apply's verify probes are answered by the host and not counted
            Assert.Equal(25, (long)u["answers"]!);
            Assert.Equal(0, (long)u["in_flight"]!);
            Assert.True((long)u["latency_ns"]!["p50"]! > 0);
            Assert.Equal("closed", (string)u["breaker"]!["state"]!);
            var r = byRoute[Reverse];
            Assert.Equal(6, (long)r["requests"]!);
            Assert.Equal(5, (long)r["errors_by_code"]![ErrorCodes.DriverFault]!);
            Assert.Equal(1, (long)r["errors_by_code"]![ErrorCodes.LaneBreakerOpen]!);
            Assert.Equal(1, (long)r["drops"]!["breaker_open"]!);
            Assert.Equal("open", (string)r["breaker"]!["state"]!);
            Assert.Equal(1, (long)r["breaker"]!["trips"]!);

            var top = Ok(ws, "top", "--once", "--interval", "0.2");
            Assert.Contains(Upper, top, StringComparison.Ordinal);
            Assert.Contains("open", top, StringComparison.Ordinal);

            // Each second's counts: the telemetry thread samples every route once a second, so the first sample after
            // the table went in may come up to a second after it; the calls and commands above can take less than that.
            List<JsonNode> tap;
            var sampled = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                tap = Ok(ws, "tap", "--flight", "60s").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
                if (tap.Any(l => (string)l["type"]! == "metrics" && (string?)l["route"] == Upper) || DateTime.UtcNow > sampled)
                {
                    break;
                }

                Thread.Sleep(200);
            }

            Assert.Equal("window", (string)tap[0]["type"]!);
            var frames = tap.Where(l => (string)l["type"]! == "frame").ToList();
            Assert.Contains(tap, l => (string)l["type"]! == "metrics" && (string?)l["route"] == Upper);
            Assert.Equal(31, frames.Count);
            Assert.Equal(25, frames.Count(f => (string)f["route"]! == Upper && (string)f["outcome"]! == "ok"));
            Assert.Equal(5, frames.Count(f => (string)f["route"]! == Reverse && (string)f["code"]! == ErrorCodes.DriverFault));
            Assert.Equal("breaker_open", (string)frames[^1]["outcome"]!);

            // The breaker's trip wrote the flight window by itself.
            var flightDir = Path.Combine(ws, ".rtt", "flight");
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!(Directory.Exists(flightDir) && Directory.GetFiles(flightDir, "*.ndjson").Length > 0) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(50);
            }

            var dump = Assert.Single(Directory.GetFiles(flightDir, "*-breaker-*.ndjson"));
            var dumped = File.ReadAllLines(dump).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(5, dumped.Count(f => (string?)f["code"] == ErrorCodes.DriverFault));

            // Prometheus: the per-route series of the Rtt meter.
            using var http = new HttpClient();
            // Scraped until the series are there (the exporter serves a cached scrape for a moment, and the observable
            // instruments are read at collection time), at most 15 s.
            var scrapeDeadline = DateTime.UtcNow.AddSeconds(15);
            var scrape = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
            while (DateTime.UtcNow < scrapeDeadline && !(Series(scrape, "rtt_route_requests_total", 25, $"route=\"{Upper}\"")
                && Series(scrape, "rtt_route_errors_total", 5, $"route=\"{Reverse}\"", $"code=\"{ErrorCodes.DriverFault}\"")
                && Series(scrape, "rtt_route_breaker_state", 1, $"route=\"{Reverse}\"")))
            {
                await Task.Delay(250);
                scrape = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
            }

            Assert.True(Series(scrape, "rtt_route_requests_total", 25, $"route=\"{Upper}\""), scrape);
            Assert.True(Series(scrape, "rtt_route_errors_total", 5, $"route=\"{Reverse}\"", $"code=\"{ErrorCodes.DriverFault}\""), scrape);
            Assert.True(Series(scrape, "rtt_route_breaker_state", 1, $"route=\"{Reverse}\""), scrape);

            // OTLP: the same series pushed to the collector.
            var otlpDeadline = DateTime.UtcNow.AddSeconds(15);
            bool Pushed()
            {
                lock (pushed)
                {
                    return pushed.Any(b => Encoding.UTF8.GetString(b) is var text && text.Contains("rtt.route.requests", StringComparison.Ordinal) && text.Contains(Upper, StringComparison.Ordinal));
                }
            }

            while (!Pushed() && DateTime.UtcNow < otlpDeadline)
            {
                Thread.Sleep(100);
            }

            Assert.True(Pushed(), $"{pushed.Count} OTLP pushes, none with rtt.route.requests for {Upper}");

            // Recovered: after open_s, one good trial call closes it.
            Thread.Sleep(1200);
            Assert.Equal("v1:yako", Encoding.UTF8.GetString(await caller.CallAsync(reverse, "okay"u8.ToArray(), TimeSpan.FromSeconds(30))));
            var after = JsonNode.Parse(Ok(ws, "metrics", "--json"))!["routes"]!.AsArray().Single(x => (string)x!["route"]! == Reverse)!;
            Assert.Equal("closed", (string)after["breaker"]!["state"]!);
            Assert.Equal(3, (long)after["breaker"]!["changes"]!);
        }

        collector.Stop();
        var bad = RttProcess.Run(ws, "tap", "--flight", "soon");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(ErrorCodes.ObsInputInvalid, bad.Stderr, StringComparison.Ordinal);
        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
        Assert.Contains("Breaker of route rtt://core/api/reverse", silo.Stdout + silo.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_slo_gate_breached_under_live_traffic_fails_verify_and_rolls_back_naming_the_route_and_the_values()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: false);
        var policyPath = Path.Combine(ws, ".rtt", "policy.json");
        var policy = JsonNode.Parse(File.ReadAllText(policyPath))!.AsObject();
        policy["slo"] = new JsonArray(new JsonObject { ["match"] = Reverse, ["error_rate"] = 0.1, ["min_samples"] = 10, ["window_s"] = 2 });
        policy["breakers"] = new JsonObject { ["default"] = new JsonObject { ["enabled"] = false } };
        File.WriteAllText(policyPath, policy.ToJsonString());
        Assert.Equal(0, RttProcess.Run(ws, "scan").ExitCode);
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60));
        Ok(ws, "plan");
        var first = JsonNode.Parse(Ok(ws, "apply", "--json"))!;
        Assert.Equal("applied", (string?)first["outcome"]);
        Assert.Contains("fewer than min_samples 10: not judged", first.ToJsonString(), StringComparison.Ordinal); // no traffic yet
        var v1 = (string)JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!["plan_id"]!;

        // A new version of the reverse endpoint, applied while the route's traffic fails.
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", "core.api.reverse.v2.json"), new JsonObject
        {
            ["address"] = Reverse, ["version"] = "1.1.0", ["input"] = "rtt.types/Text", ["output"] = "rtt.types/Text",
            ["lanes"] = new JsonArray("shm", "uds", "tcp"), ["latency_us"] = 100, ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
            ["serve"] = new JsonObject
            {
                ["kind"] = "dotnet", ["assembly"] = "${RTT_HOME}/samples/plugin/Rtt.Samples.Plugin.dll", ["type"] = "Rtt.Samples.Plugin.ReversePlugin",
                ["config"] = new JsonObject { ["tag"] = "v2" },
            },
        }.ToJsonString());
        Ok(ws, "scan");
        Ok(ws, "plan");
        var applied = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!.AsObject();
        var reverse = CallRoutes.Resolve(CallRoutes.Of(applied), Reverse, null, null);
        using var caller = new LaneCaller(RttWorkspace.Open(ws).LaneControlSocket);
        using var stop = new CancellationTokenSource();
        var load = Task.Run(async () =>
        {
            var calls = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await caller.CallAsync(reverse, "throw"u8.ToArray(), TimeSpan.FromSeconds(30));
                }
                catch (RttException)
                {
                }

                calls++;
                await Task.Delay(5);
            }

            return calls;
        });
        var apply = RttProcess.Run(ws, "apply", "--json");
        await stop.CancelAsync();
        Assert.True(await load > 20);
        Assert.True(apply.ExitCode == 4, apply.ToString());
        var report = JsonNode.Parse(apply.Stdout)!;
        Assert.Equal("rolled-back", (string?)report["outcome"]);
        Assert.Contains("SLO breached: route rtt://core/api/reverse", apply.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"error rate 1 > budget 0\.1 \(\d+ requests, \d+ errors", apply.Stdout);
        Assert.Equal(v1, (string)JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!["plan_id"]!);

        var sloDump = Assert.Single(Directory.GetFiles(Path.Combine(ws, ".rtt", "flight"), "*-slo-*.ndjson"));
        Assert.Contains(Path.GetFileName(sloDump), apply.Stdout, StringComparison.Ordinal);
        Assert.Contains(File.ReadLines(sloDump).Skip(1), l => l.Contains("\"route\":\"rtt://core/api/reverse\"", StringComparison.Ordinal));
        var history = Ok(ws, "history", "--json");
        Assert.Contains("SLO breached: route rtt://core/api/reverse", history, StringComparison.Ordinal);
        var wal = Ok(ws, "wal", "export").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => Encoding.UTF8.GetString(Convert.FromBase64String((string)JsonNode.Parse(l)!["leaf"]!))).ToList();
        var failed = Assert.Single(wal, e => e.Contains("\"verify-failed\"", StringComparison.Ordinal));
        Assert.Contains("route rtt://core/api/reverse", failed, StringComparison.Ordinal);
        Assert.Contains("error rate 1 > budget 0.1", failed, StringComparison.Ordinal);
        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
    }

    /// <summary>A Prometheus text line of <paramref name="metric"/> with all <paramref name="labels"/> (in any order) and <paramref name="value"/>.</summary>
    private static bool Series(string scrape, string metric, long value, params string[] labels) =>
        scrape.Split('\n').Any(l => l.StartsWith(metric + "{", StringComparison.Ordinal) && labels.All(x => l.Contains(x, StringComparison.Ordinal))
            && l[(l.LastIndexOf('}') + 1)..].Trim().Split(' ')[0] == value.ToString(CultureInfo.InvariantCulture)); // a timestamp may follow the value

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
