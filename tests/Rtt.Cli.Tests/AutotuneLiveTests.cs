using System.Text.Json.Nodes;
using Rtt.Client.Calls;
using Rtt.Core.Autotune;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Tests;

/// <summary>
/// `rtt autotune live` on a real silo under traffic: the profile reaches the lanes through a signed plan (rings, idle
/// settings in the worker), the apply's SLO gates judge the changed lanes, and a re-tune that breaches them is rolled back
/// by the reconciler.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class AutotuneLiveTests
{
    private const string Upper = "rtt://core/api/upper";

    [Fact]
    public async Task A_profile_is_applied_through_a_gated_plan_and_a_retune_that_breaches_the_slo_is_rolled_back()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: false);
        Slo(ws, p99Ms: 1000);
        Assert.Equal(0, RttProcess.Run(ws, "scan").ExitCode);
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60));
        Ok(ws, "plan");
        Ok(ws, "apply");
        var first = Applied(ws);
        Assert.Null(first["tuning"]);

        var none = RttProcess.Run(ws, "autotune", "live");
        Assert.True(none.ExitCode == 1, none.ToString());
        Assert.Contains($"{ErrorCodes.TuneLiveRefused}: there is no tuned profile", none.Stderr, StringComparison.Ordinal);
        Assert.Equal((string?)first["plan_id"], (string?)Applied(ws)["plan_id"]);

        // A trace of the live traffic (the silo's flight recorder), readable by the replay.
        var record = await UnderTraffic(ws, () => RttProcess.Run(ws, "autotune", "record", "--seconds", "1", "--out", "live.ndjson"));
        Assert.True(record.ExitCode == 0, record.ToString());
        var trace = TraceFile.Read(Path.Combine(ws, "live.ndjson"));
        Assert.True(trace.Frames.Count >= 2, $"{trace.Frames.Count} frame(s) recorded"); // the client calls every few ms; a loaded machine slows it
        Assert.Equal([Upper], trace.Routes);

        var profile = Profile(ws, ringSize: 1024, spins: 10_000, yields: 100);
        var live = await UnderTraffic(ws, () => RttProcess.Run(ws, "autotune", "live", "--json"));
        Assert.True(live.ExitCode == 0, live.ToString());
        Assert.Equal("applied", (string?)JsonNode.Parse(live.Stdout)!["outcome"]);
        Assert.Null(JsonNode.Parse(live.Stdout)!["code"]);
        var tuned = Applied(ws);
        Assert.Equal(profile.Hash, (string?)tuned["tuning"]!["profile"]);
        Assert.Equal(10_000, (int)tuned["tuning"]!["spins"]!);
        Assert.Equal(100, (int)tuned["tuning"]!["yields"]!);
        var shm = ((JsonArray)tuned["lanes"]!).Where(l => (string?)l!["kind"] == "shm").ToList();
        Assert.NotEmpty(shm);
        Assert.All(shm, l => Assert.True((int)l!["ring_size"]! >= 1024, l!.ToJsonString()));
        Assert.Contains("slo rtt://core/api/upper", live.Stdout, StringComparison.Ordinal); // the gate judged the changed lane
        await Eventually(() => Log(silo).Contains("idle spins 10000, yields 100 (from the applied plan's tuning)", StringComparison.Ordinal), silo);

        var again = RttProcess.Run(ws, "autotune", "live");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("unchanged", again.Stdout, StringComparison.Ordinal);

        // A re-tune under an SLO no lane meets (1 µs p99): verify fails under the traffic and the reconciler restores the tuned plan.
        Slo(ws, p99Ms: 0.001);
        Profile(ws, ringSize: 2048, spins: 2_000, yields: 0);
        var breach = await UnderTraffic(ws, () => RttProcess.Run(ws, "autotune", "live", "--json"));
        Assert.True(breach.ExitCode == 4, breach.ToString());
        Assert.Equal("rolled-back", (string?)JsonNode.Parse(breach.Stdout)!["outcome"]);
        Assert.Equal(ErrorCodes.ApplyRolledBack, (string?)JsonNode.Parse(breach.Stdout)!["code"]);
        Assert.Contains("SLO breached: route rtt://core/api/upper", breach.Stdout, StringComparison.Ordinal);
        Assert.Equal((string?)tuned["plan_id"], (string?)Applied(ws)["plan_id"]);
        // The worker ran with the re-tune's settings during verify, then got the restored plan's back.
        await Eventually(() => Log(silo).Contains("idle spins 2000, yields 0", StringComparison.Ordinal)
            && Log(silo).LastIndexOf("idle spins 10000, yields 100", StringComparison.Ordinal) > Log(silo).LastIndexOf("idle spins 2000, yields 0", StringComparison.Ordinal), silo);
        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
    }

    /// <summary>Runs <paramref name="run"/> while a client calls the upper route every few ms (the gates judge the traffic in their window).</summary>
    private static async Task<RttResult> UnderTraffic(string ws, Func<RttResult> run)
    {
        var route = CallRoutes.Resolve(CallRoutes.Of(Applied(ws)), Upper, null, null);
        using var caller = new LaneCaller(RttWorkspace.Open(ws).LaneControlSocket);
        using var stop = new CancellationTokenSource();
        var load = Task.Run(async () =>
        {
            var calls = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await caller.CallAsync(route, "x"u8.ToArray(), TimeSpan.FromSeconds(30));
                    calls++;
                }
                catch (RttException)
                {
                }

                await Task.Delay(3);
            }

            return calls;
        });
        await Task.Delay(300);
        var result = await Task.Run(run);
        await stop.CancelAsync();
        Assert.True(await load > 20, $"{await load} calls");
        return result;
    }

    private static void Slo(string ws, double p99Ms)
    {
        var path = Path.Combine(ws, ".rtt", "policy.json");
        var policy = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        policy["slo"] = new JsonArray(new JsonObject { ["match"] = Upper, ["p99_ms"] = p99Ms, ["min_samples"] = 10, ["window_s"] = 2 });
        File.WriteAllText(path, policy.ToJsonString());
    }

    private static TunedProfile Profile(string ws, int ringSize, int spins, int yields)
    {
        var workspace = RttWorkspace.Open(ws);
        using var key = workspace.LoadSigningKey();
        var figures = new ReplayFigures(100_000, 1_000_000, 100_000, 1_000, 1_000);
        return TunedProfile.Write(workspace, key, MachineKey.Local(), TuneSettings.Defaults with { RingSize = ringSize, Spins = spins, Yields = yields },
            SyntheticTrace.Generate(SyntheticTraceSpec.Steady(0.05)), "shm", figures, figures,
            new Dictionary<string, double> { ["shm"] = 50, ["uds"] = 300, ["tcp"] = 10_000 }); // the planner's defaults: same lanes as before
    }

    /// <summary>What the silo wrote (its log lines go to stderr).</summary>
    private static string Log(RttProcess silo) => silo.Stdout + silo.Stderr;

    private static JsonObject Applied(string ws) => JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))!.AsObject();

    private static async Task Eventually(Func<bool> condition, RttProcess silo)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, Log(silo)[Math.Max(0, Log(silo).Length - 4000)..]);
            await Task.Delay(100);
        }
    }

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
