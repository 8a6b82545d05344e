using System.Text.Json.Nodes;
using Rtt.Planning;

namespace Rtt.Cli.Tests;

public sealed partial class ClusterProcessTests
{
    /// <summary>
    /// policy.json auto_replan (docs/operations.md, "Losing a silo"): kill -9 of node2's silo makes the leading survivor
    /// plan without node2 (the routes of symbols pinned there rejected as node-down) and apply it through 2PC; the
    /// survivors serve it; node2's silo started again makes them plan with node2 again, and its routes come back.
    /// </summary>
    [Fact]
    public async Task With_auto_replan_the_survivors_plan_without_a_dead_silos_node_and_with_it_again_when_it_returns()
    {
        using var dir = new TempDir();
        var database = pg.NewDatabase();
        Assert.Equal(0, RttProcess.Run(dir.Path, "db", "init", database).ExitCode);
        var (ws, p1, _) = Workspaces(dir);
        foreach (var w in ws)
        {
            var policyPath = Path.Combine(w, ".rtt", "policy.json");
            var policy = JsonNode.Parse(File.ReadAllText(policyPath))!;
            policy["auto_replan"] = true;
            File.WriteAllText(policyPath, policy.ToJsonString());
            WriteRoutes(Path.Combine(w, ".rtt"), 0, 1, 2); // plan 1's routes (Workspaces leaves plan 3's): a replan starts from what was applied
        }

        var ports = Nodes.Select(_ => (Silo: RttProcess.FreePort(), Gateway: RttProcess.FreePort())).ToArray();
        var silos = new RttProcess?[3];
        try
        {
            silos[0] = Start(ws[0], 0, ports[0], database, Membership);
            var others = Enumerable.Range(1, 2).Select(i => Task.Run(() => Start(ws[i], i, ports[i], database, Membership))).ToArray();
            silos[1] = await others[0];
            silos[2] = await others[1];
            var first = PlanId(File.ReadAllText(p1));
            Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws[0], "apply", p1, "--json"))!["outcome"]);
            var served = Route(ws[2], Routes[2].To);
            Assert.True(served.ExitCode == 0, served.ToString());

            silos[2]!.Kill(); // kill -9
            var without = await AppliedOtherThan(ws[1], first, TimeSpan.FromSeconds(120), silos);
            var plan = FindPlan(ws, without);
            var rejected = plan["rejected"]!.AsArray();
            Assert.Equal(2, rejected.Count); // node2's own route and the cross route, both pinned to node2
            Assert.All(rejected, r => Assert.Equal(Constraint.NodeDown, (string?)r!["constraint"]));
            Assert.All(rejected, r => Assert.Equal("node2", (string?)r!["values"]!["node"]));
            Assert.DoesNotContain(plan["placement"]!.AsObject(), p => (string?)p.Value == "node2");
            Assert.Contains(silos.Take(2), s => s!.Stderr.Contains("auto_replan: nodes down [node2]", StringComparison.Ordinal));
            for (var i = 0; i < 2; i++)
            {
                var survivor = Route(ws[i], Routes[i].To);
                Assert.True(survivor.ExitCode == 0, $"{Nodes[i]} under the new plan: {survivor}\n{Ok(ws[1], "history", "--json")}\n--- node0\n{silos[0]!.Stderr}\n--- node1\n{silos[1]!.Stderr}");
            }

            // node2 back: the survivors plan with it again, and its routes are served again.
            silos[2]!.Dispose();
            silos[2] = Start(ws[2], 2, ports[2], database, Membership);
            var back = await AppliedOtherThan(ws[1], without, TimeSpan.FromSeconds(120), silos);
            Assert.Empty(FindPlan(ws, back)["rejected"]!.AsArray());
            var restored = Route(ws[2], Routes[2].To);
            Assert.True(restored.ExitCode == 0, $"{restored}\n--- node2\n{silos[2]!.Stderr}");
            var crossed = Route(ws[1], Cross.To);
            Assert.True(crossed.ExitCode == 0, crossed.ToString());
            var verify = RttProcess.RunWith(ws[1], ClusterEnv(database), "wal", "verify");
            Assert.True(verify.ExitCode == 0, verify.ToString());

            StopAll(silos);
        }
        finally
        {
            DisposeAll(silos);
        }
    }

    /// <summary>SIGTERM to every silo, and each must stop within 30 s.</summary>
    private static void StopAll(RttProcess?[] silos)
    {
        foreach (var silo in silos)
        {
            silo!.Terminate();
        }

        Assert.All(silos, s => Assert.True(s!.WaitForExit(TimeSpan.FromSeconds(30)), s.Stderr));
    }

    private static void DisposeAll(RttProcess?[] silos)
    {
        foreach (var silo in silos)
        {
            silo?.Dispose();
        }
    }

    /// <summary>`rtt history --json` until the applied plan is another than <paramref name="planId"/>.</summary>
    private static async Task<string> AppliedOtherThan(string ws, string planId, TimeSpan timeout, RttProcess?[] silos)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var r = RttProcess.Run(ws, "history", "--json");
            if (r.ExitCode == 0 && (string?)JsonNode.Parse(r.Stdout)!["applied"] is { } applied && applied != planId)
            {
                return applied;
            }

            Assert.True(clock.Elapsed < timeout, $"no plan replaced {planId} in {timeout}\n{r}\n{string.Join("\n", silos.Where(s => s is not null).Select((s, i) => $"--- silo {i}\n{s!.Stderr}"))}");
            await Task.Delay(1000);
        }
    }

    /// <summary>A plan by id from whichever workspace's plan store has it (the leader saved it).</summary>
    private static JsonNode FindPlan(string[] ws, string planId)
    {
        var name = planId["sha256:".Length..] + ".json";
        var path = ws.Select(w => Path.Combine(w, ".rtt", "plans", name)).FirstOrDefault(File.Exists);
        Assert.True(path is not null, $"no workspace has plan {planId}");
        return JsonNode.Parse(File.ReadAllText(path))!;
    }
}
