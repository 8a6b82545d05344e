using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Reconciling;

namespace Rtt.Cli.Tests;

/// <summary>
/// The reconciler with real processes: a silo (`rtt up`) and the `rtt apply` client. The fault switch kills the silo
/// (SIGKILL) at each phase boundary of a second plan's transaction; after a restart, recovery must leave the
/// applied state entirely the old plan or entirely the new one, no reservation behind, the lane host serving exactly
/// the applied plan's lanes, and a WAL that verifies.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ReconcilerProcessTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private const string Metrics = "rtt://core/api/metrics";

    /// <summary>Repetitions per fault point (RTT_FAULT_REPEAT, default 1; CI keeps the default).</summary>
    private static int Repeat => int.TryParse(Environment.GetEnvironmentVariable("RTT_FAULT_REPEAT"), CultureInfo.InvariantCulture, out var n) ? n : 1;

    [Theory]
    [InlineData("after-prepare-logged", false)]
    [InlineData("after-votes", false)]
    [InlineData("after-commit-decision", true)]
    [InlineData("mid-apply", true)]
    [InlineData("during-verify", true)]
    public void A_silo_killed_at_a_phase_boundary_recovers_to_entirely_the_old_or_the_new_plan(string point, bool newPlanWins)
    {
        for (var round = 0; round < Repeat; round++)
        {
            using var dir = TempDir.Quickstart(out var ws, scan: true);
            var (siloPort, gatewayPort) = (RttProcess.FreePort(), RttProcess.FreePort());

            // Plan 1 (the quickstart's route) applied normally.
            string p1;
            using (var silo = RttProcess.StartSilo(ws, siloPort, gatewayPort, null, StartTimeout))
            {
                p1 = PlanId(Ok(ws, "plan", "--json"));
                var applied = JsonNode.Parse(Ok(ws, "apply", "--json"))!;
                Assert.Equal("applied", (string?)applied["outcome"]);
                Assert.Equal(p1, (string?)applied["plan_id"]);
                Assert.Equal(0, Route(ws).ExitCode);
                silo.Terminate();
                Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)));
            }

            // Plan 2 removes the route (its lane closes): a transaction with a route and a node participant.
            File.WriteAllText(Path.Combine(ws, ".rtt", "routes.json"), """{ "routes": [] }""");
            var p2 = PlanId(Ok(ws, "plan", "--json"));
            Assert.NotEqual(p1, p2);

            using (var doomed = RttProcess.StartSilo(ws, siloPort, gatewayPort, new Dictionary<string, string> { [FaultPoints.Variable] = point }, StartTimeout))
            {
                using var apply = RttProcess.Start(ws, null, "apply", "--json");
                Assert.True(doomed.WaitForExit(TimeSpan.FromSeconds(60)), $"the silo was not killed at {point}\n{doomed.Stderr}");
                Assert.Contains($"{FaultPoints.Variable}={point}", doomed.Stderr, StringComparison.Ordinal);
                if (!apply.WaitForExit(TimeSpan.FromSeconds(45)))
                {
                    apply.Kill(); // the client may wait for its call's timeout; what matters is the state after recovery
                }
                else
                {
                    Assert.NotEqual(0, apply.ExitCode);
                }
            }

            // The plan files the reconciler keeps are copies of the WAL written without flushing: a crash may leave
            // them torn. Recovery must write them again from the WAL.
            var plans = Path.Combine(ws, ".rtt", "plans");
            foreach (var torn in new[] { "applied.json", p1[7..] + ".json", p2[7..] + ".json" })
            {
                File.WriteAllText(Path.Combine(plans, torn), "{\"plan_id\": \"sha256:");
            }

            using (var silo = RttProcess.StartSilo(ws, siloPort, gatewayPort, null, StartTimeout))
            {
                var history = JsonNode.Parse(Ok(ws, "history", "--json"))!;
                var expected = newPlanWins ? p2 : p1;
                Assert.Equal(expected, PlanId(File.ReadAllText(Path.Combine(plans, expected[7..] + ".json"))));
                Assert.Equal(expected, (string?)history["applied"]);
                Assert.NotNull((string?)history["recovery"]); // recovery had something to finish or abort
                Assert.All(history["participants"]!.AsArray(), p => Assert.Equal(-1, (long)p!["reserved_tx"]!)); // nothing left reserved
                Assert.All(history["participants"]!.AsArray(), p => Assert.Equal(expected, (string?)p!["applied_plan"]));
                var last = history["transactions"]!.AsArray()[^1]!;
                Assert.Equal(newPlanWins ? "commit" : "abort", (string?)last["decision"]);
                if (newPlanWins)
                {
                    Assert.NotNull(last["verified_index"]);
                }

                // The lane host serves exactly the applied plan: plan 1's lane answers, plan 2 has none.
                var route = Route(ws);
                Assert.True((route.ExitCode == 0) == !newPlanWins, route.ToString());
                Assert.Equal(expected, PlanId(File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json")))); // the planner's base follows

                var verify = RttProcess.Run(ws, "wal", "verify");
                Assert.True(verify.ExitCode == 0, verify.ToString());
                silo.Terminate();
                Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)));
            }

            // The WAL also checks with the silo down, and a rerun of the same plan is refused or a no-op, never applied twice.
            Assert.Equal(0, RttProcess.Run(ws, "wal", "verify").ExitCode);
        }
    }

    [Fact]
    public void Apply_without_a_silo_and_a_stale_plan_are_clear_errors_and_rollback_restores_the_previous_plan()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        var missing = RttProcess.Run(ws, "apply");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no plan file here", missing.Stderr, StringComparison.Ordinal);
        Ok(ws, "plan");
        var noSilo = RttProcess.Run(ws, "apply");
        Assert.Equal(1, noSilo.ExitCode);
        Assert.Contains("RTT-CLIENT-001", noSilo.Stderr, StringComparison.Ordinal);

        var (siloPort, gatewayPort) = (RttProcess.FreePort(), RttProcess.FreePort());
        using var silo = RttProcess.StartSilo(ws, siloPort, gatewayPort, null, StartTimeout);
        var p1 = PlanId(Ok(ws, "plan", "--json", "--out", Path.Combine(dir.Path, "p1.json")));
        var p1Again = PlanId(Ok(ws, "plan", "--json", "--out", Path.Combine(dir.Path, "p1-copy.json")));
        Assert.Equal(p1, p1Again); // deterministic
        var applied = RttProcess.Run(ws, "apply", Path.Combine(dir.Path, "p1.json"));
        Assert.True(applied.ExitCode == 0, applied.ToString());
        Assert.Contains("prepare", applied.Stdout, StringComparison.Ordinal);
        Assert.Contains("verify", applied.Stdout, StringComparison.Ordinal);
        Assert.Contains("answered a probe frame", applied.Stdout, StringComparison.Ordinal);

        var quickstartRoutes = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "routes.json")))!;
        File.WriteAllText(Path.Combine(ws, ".rtt", "routes.json"), """{ "routes": [] }""");
        var p2 = PlanId(Ok(ws, "plan", "--json", "--out", Path.Combine(dir.Path, "p2.json")));
        var second = RttProcess.Run(ws, "apply", Path.Combine(dir.Path, "p2.json"));
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains($"plan sent as a change to {p1}", second.Stdout, StringComparison.Ordinal); // applied.json is its base: the delta crosses, not the plan
        Assert.Contains("sent whole", applied.Stdout, StringComparison.Ordinal); // the first had no base
        Assert.NotEqual(0, Route(ws).ExitCode); // the lane closed

        // Plan 1 again: its base (none) is not the applied plan any more.
        var stale = RttProcess.Run(ws, "apply", Path.Combine(dir.Path, "p1.json"));
        Assert.Equal(1, stale.ExitCode);
        Assert.Contains("RTT-APPLY-001", stale.Stderr, StringComparison.Ordinal);
        Assert.Contains(p2, stale.Stderr, StringComparison.Ordinal);

        var back = JsonNode.Parse(Ok(ws, "rollback", "--json"))!;
        Assert.Equal("rolled-back", (string?)back["outcome"]);
        Assert.Equal(p1, (string?)back["plan_id"]);
        Assert.Equal(0, Route(ws).ExitCode); // the lane is back
        var history = JsonNode.Parse(Ok(ws, "history", "--json"))!;
        Assert.Equal(p1, (string?)history["applied"]);
        Assert.Equal(["apply", "apply", "rollback"], history["transactions"]!.AsArray().Select(t => (string)t!["transition"]!));

        // Plan 2 and the rollback to plan 1 were logged as deltas; the WAL alone rebuilds both, and `rtt plan verify` checks them.
        var entries = Ok(ws, "wal", "export").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!["entry"]!).Where(e => (string?)e["kind"] == "prepare").ToList();
        Assert.NotNull(entries[1]["delta"]);
        Assert.Null(entries[1]["plan"]);
        foreach (var id in new[] { p1, p2 })
        {
            var file = Path.Combine(dir.Path, $"rebuilt-{id[7..15]}.json");
            Ok(ws, "wal", "plan", id, "--out", file);
            Assert.Contains(id, Ok(ws, "plan", "verify", file), StringComparison.Ordinal);
        }

        var root = JsonNode.Parse(Ok(ws, "wal", "root", "--json"))!;
        Assert.Equal((long)history["wal"]!["size"]!, (long)root["size"]!);
        Assert.Matches("^[0-9a-f]{64}$", (string)root["root"]!);
        var lines = Ok(ws, "wal", "export").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal((long)root["size"]!, lines.Length);
        var first = JsonNode.Parse(lines[0])!;
        Assert.Equal(0, (long)first["index"]!);
        Assert.Equal("prepare", (string?)first["entry"]!["kind"]);
        Assert.Equal(Rtt.Core.Json.CanonicalJson.Serialize(first["entry"]), Convert.FromBase64String((string)first["leaf"]!)); // the leaf is the entry's canonical bytes
        var proof = JsonNode.Parse(Ok(ws, "wal", "proof", "inclusion", "2"))!;
        Assert.Equal((string)root["root"]!, (string?)proof["root"]);
        var consistency = JsonNode.Parse(Ok(ws, "wal", "proof", "consistency", "3", ((long)root["size"]!).ToString(CultureInfo.InvariantCulture)))!;
        Assert.NotEmpty(consistency["proof"]!.AsArray());
        var outOfRange = RttProcess.Run(ws, "wal", "proof", "inclusion", "999");
        Assert.Equal(1, outOfRange.ExitCode);
        Assert.Contains("RTT-WAL-004", outOfRange.Stderr, StringComparison.Ordinal);

        // applied.json edited by hand (another plan's content under plan 1's id): the change made from it does not rebuild the
        // plan in the silo (RTT-PLAN-006), so rtt apply sends the whole plan, which applies.
        var fewer = quickstartRoutes.DeepClone();
        fewer["routes"]!.AsArray().RemoveAt(fewer["routes"]!.AsArray().Count - 1);
        File.WriteAllText(Path.Combine(ws, ".rtt", "routes.json"), fewer.ToJsonString());
        var p3Json = Ok(ws, "plan", "--json", "--out", Path.Combine(dir.Path, "p3.json"));
        var p3 = PlanId(p3Json);
        var forged = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "p3.json")))!;
        forged["plan_id"] = p1;
        forged["base"] = null;
        File.WriteAllText(Path.Combine(ws, ".rtt", "plans", "applied.json"), forged.ToJsonString());
        var third = RttProcess.Run(ws, "apply", Path.Combine(dir.Path, "p3.json"));
        Assert.True(third.ExitCode == 0, third.ToString());
        Assert.Contains("sent whole", third.Stdout, StringComparison.Ordinal);
        Assert.Equal(p3, (string?)JsonNode.Parse(Ok(ws, "history", "--json"))!["applied"]);
        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)));
    }

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }

    private static string PlanId(string planJson) => (string)JsonNode.Parse(planJson)!["plan_id"]!;

    /// <summary>A client process attaching to the quickstart route over SHM and sending requests through the silo.</summary>
    private static RttResult Route(string ws) =>
        RttProcess.Run(ws, "bench", "route-client", Path.Combine(ws, ".rtt", "state", "lanes.sock"), Metrics);
}
