using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Tests;
using Rtt.Reconciling;

namespace Rtt.Cli.Tests;

/// <summary>
/// A cluster of real silo processes (`rtt up --cluster`) on a private PostgreSQL server (one per class): three silos,
/// one per node, each on its own copy of one workspace (same keys, routes, policy and topology), a plan across the
/// three applied through the reconciler's 2PC, and kill -9 of a silo at a phase boundary of the next plan while a
/// client sends traffic through another silo's lane. Afterwards the WAL verifies, every participant holds the decided
/// plan with nothing reserved, the survivors' lanes never stopped answering, and the killed silo, started again,
/// serves the decided plan's lanes.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed partial class ClusterProcessTests(PostgresServerFixture pg) : IClassFixture<PostgresServerFixture>
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    /// <summary>Quick failure detection, so the tests do not wait for the production defaults.</summary>
    private static readonly Dictionary<string, string> Membership = new()
    {
        ["RTT_Cluster__Membership__ProbeTimeout"] = "00:00:01",
        ["RTT_Cluster__Membership__NumMissedProbesLimit"] = "2",
        ["RTT_Cluster__Membership__IAmAliveTablePublishTimeout"] = "00:00:05",
    };

    private static readonly string[] Nodes = ["node0", "node1", "node2"];

    /// <summary>A route across nodes (caller pinned to node1, provider to node2), in every plan: node1's lane host forwards it to node2's.</summary>
    private static readonly (string From, string To) Cross = ("rtt://ui/chat/console", "rtt://core/api/echo3");

    /// <summary>The echo route each node serves: (caller, provider).</summary>
    private static readonly (string From, string To)[] Routes =
    [
        ("rtt://ui/hook/refresh", "rtt://core/api/metrics"),
        ("rtt://ui/chat/console", "rtt://core/api/echo1"),
        ("rtt://ui/chat/tools", "rtt://core/api/echo2"),
    ];

    [Fact]
    public void Db_init_is_idempotent_and_a_silo_names_what_the_database_lacks()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var database = pg.NewDatabase();
        var (siloPort, gatewayPort) = (RttProcess.FreePort(), RttProcess.FreePort());

        var refused = RttProcess.Run(ws, "up", "--cluster", database, "--silo-port", Port(siloPort), "--gateway-port", Port(gatewayPort));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("RTT-CLUSTER-001", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("table rtt_membership", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("rtt db init", refused.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(pg.Password, refused.Stderr, StringComparison.Ordinal);

        var check = RttProcess.Run(ws, "db", "check", database);
        Assert.Equal(1, check.ExitCode);
        Assert.Contains("function rtt_membership_insert", check.Stderr, StringComparison.Ordinal);

        Assert.Equal(0, RttProcess.Run(ws, "db", "init", database).ExitCode);
        Assert.Equal(0, RttProcess.Run(ws, "db", "init", database).ExitCode); // again: idempotent
        var ok = RttProcess.Run(ws, "db", "check", database);
        Assert.True(ok.ExitCode == 0, ok.ToString());

        // One provider query removed by hand: named.
        PostgresServerFixture.Sql(database, "DELETE FROM OrleansQuery WHERE QueryKey = 'UpdateMembershipKey';");
        var partial = RttProcess.Run(ws, "db", "check", database);
        Assert.Equal(1, partial.ExitCode);
        Assert.Contains("query UpdateMembershipKey", partial.Stderr, StringComparison.Ordinal);

        var unreachable = RttProcess.Run(ws, "db", "check", $"Host=127.0.0.1;Port={RttProcess.FreePort()};Database=rtt;Username=rtt;Password=nope;Timeout=3");
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains("RTT-CLUSTER-002", unreachable.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The phase boundaries run: after-commit-decision by default (a decided plan the killed coordinator never
    /// applied; about a minute on a quiet 2-core machine); RTT_CLUSTER_FAULTS=all adds after-prepare-logged and after-votes (undecided:
    /// the old plan stays) and during-verify.
    /// </summary>
    public static TheoryData<string, bool> FaultCases()
    {
        var all = Environment.GetEnvironmentVariable("RTT_CLUSTER_FAULTS") == "all";
        var cases = new TheoryData<string, bool> { { "after-commit-decision", true } };
        if (all)
        {
            cases.Add("after-prepare-logged", false);
            cases.Add("after-votes", false);
            cases.Add("during-verify", true);
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(FaultCases))]
    public async Task A_silo_killed_at_a_phase_boundary_leaves_the_cluster_on_the_decided_plan(string point, bool newPlanWins)
    {
        using var dir = new TempDir();
        var database = pg.NewDatabase();
        Assert.Equal(0, RttProcess.Run(dir.Path, "db", "init", database).ExitCode);
        var (ws, p1, p2) = Workspaces(dir);

        // Every silo is armed for plan 2 at the point: only the silo that reaches it (the reconciler's) dies.
        var env = new Dictionary<string, string>(Membership) { [FaultPoints.Variable] = point, [FaultPoints.WhenVariable] = PlanId(File.ReadAllText(p2)) };
        var ports = Nodes.Select(_ => (Silo: RttProcess.FreePort(), Gateway: RttProcess.FreePort())).ToArray();
        var silos = new RttProcess?[3];
        try
        {
            // node0 first and alone: its start activates the reconciler and the WAL grain there, so they live on node0.
            silos[0] = Start(ws[0], 0, ports[0], database, env);
            var others = Enumerable.Range(1, 2).Select(i => Task.Run(() => Start(ws[i], i, ports[i], database, env))).ToArray();
            silos[1] = await others[0];
            silos[2] = await others[1];

            var applied = JsonNode.Parse(Ok(ws[0], "apply", p1, "--json"))!;
            Assert.Equal("applied", (string?)applied["outcome"]);
            for (var i = 0; i < 3; i++)
            {
                var served = Route(ws[i], Routes[i].To);
                Assert.True(served.ExitCode == 0, $"{Nodes[i]}: {served}");
            }

            // Lanes across silos: a client of node1's silo reaches echo3, served by node2's silo, through node1's lane host,
            // which forwards the route over a UDS lane to node2's lane host (the plan gives it a uds lane: another NUMA node).
            var crossed = Route(ws[1], Cross.To);
            Assert.True(crossed.ExitCode == 0, $"{crossed}\n--- node1\n{silos[1]!.Stderr}\n--- node2\n{silos[2]!.Stderr}");
            var forwards = JsonNode.Parse(Ok(ws[1], "status", "--json"))!["placements"]!.AsArray();
            Assert.Contains($"{Cross.To} uds -> node2", forwards.Single(p => (string?)p!["node_id"] == "node1")!["lanes"]!.AsArray().Select(l => (string?)l));
            Assert.Contains($"{Cross.To} uds", forwards.Single(p => (string?)p!["node_id"] == "node2")!["lanes"]!.AsArray().Select(l => (string?)l));

            // Traffic through node1's lane (a survivor) while plan 2 is applied through node2's gateway and node0 dies.
            using var stop = new CancellationTokenSource();
            var traffic = Task.Run(() =>
            {
                var runs = new List<RttResult>();
                while (!stop.IsCancellationRequested)
                {
                    runs.Add(Route(ws[1], Routes[1].To, count: 500));
                }

                return runs;
            });
            // A client that finds no gateway in its connect timeout (a loaded machine) tries again; any other end is kept.
            RttProcess? apply = null;
            try
            {
                for (var attempt = 1; ; attempt++)
                {
                    apply = RttProcess.Start(ws[2], null, "apply", p2, "--json");
                    while (!apply.HasExited && !silos[0]!.HasExited)
                    {
                        Thread.Sleep(100);
                    }

                    if (silos[0]!.HasExited || attempt == 3 || !apply.Stderr.Contains("RTT-CLIENT-001", StringComparison.Ordinal))
                    {
                        break;
                    }

                    apply.Dispose();
                }

                Assert.True(silos[0]!.WaitForExit(TimeSpan.FromSeconds(90)), $"node0 was not killed at {point}\n--- apply: {(apply.HasExited ? $"exit {apply.ExitCode}" : "running")}\n{apply.Stdout}\n{apply.Stderr}\n--- node0\n{silos[0]!.Stderr}");
                Assert.Contains($"{FaultPoints.Variable}={point}", silos[0]!.Stderr, StringComparison.Ordinal);
                if (!apply.WaitForExit(TimeSpan.FromSeconds(60)))
                {
                    apply.Kill(); // the client may wait for its call's timeout; what matters is the state after recovery
                }
            }
            finally
            {
                apply?.Dispose();
            }

            // The survivors: a history call re-activates the reconciler on one of them, which recovers from the shared WAL.
            var expected = PlanId(File.ReadAllText(newPlanWins ? p2 : p1));
            var history = JsonNode.Parse(Ok(ws[1], "history", "--json"))!;
            stop.Cancel();
            var runs = await traffic;
            Assert.NotEmpty(runs);
            Assert.All(runs, r => Assert.True(r.ExitCode == 0, $"traffic through node1 failed: {r}"));

            Assert.Equal(expected, (string?)history["applied"]);
            Assert.NotNull((string?)history["recovery"]);
            var participants = history["participants"]!.AsArray();
            Assert.Contains(participants, p => (string?)p!["name"] == "node:node0"); // the dead node's participant too
            Assert.All(participants, p => Assert.Equal(-1, (long)p!["reserved_tx"]!));
            var last = history["transactions"]!.AsArray()[^1]!;
            Assert.Equal(newPlanWins ? "commit" : "abort", (string?)last["decision"]);
            var involved = last["participants"]!.AsArray().Select(p => (string)p!).ToHashSet(StringComparer.Ordinal);
            Assert.Contains("node:node2", involved); // plan 2 takes node2's route away
            Assert.All(participants.Where(p => involved.Contains((string)p!["name"]!)), p => Assert.Equal(expected, (string?)p!["applied_plan"]));
            var verify = RttProcess.RunWith(ws[1], ClusterEnv(database), "wal", "verify");
            Assert.True(verify.ExitCode == 0, verify.ToString());

            // node0 again (not armed): it restores its lanes from the decided plan; plan 2 closed node2's lane.
            silos[0]!.Dispose();
            silos[0] = Start(ws[0], 0, ports[0], database, Membership);
            var restored = Route(ws[0], Routes[0].To);
            Assert.True(restored.ExitCode == 0, $"{restored}\n--- node0\n{silos[0]!.Stderr}");
            Assert.Equal(!newPlanWins, Route(ws[2], Routes[2].To).ExitCode == 0);

            // The placement director: every node's grain back on its own silo (metadata node = key), within seconds of
            // the restart, without the registration's fallback of serving from the ledger store.
            var placed = WaitForPlacements(ws[1], TimeSpan.FromSeconds(20));
            Assert.All(Nodes, n => Assert.Contains(placed["members"]!.AsArray(), m => (string?)m!["node"] == n && (string?)m["status"] == "Active"));
            Assert.All(placed["placements"]!.AsArray(), p => Assert.True((bool)p!["on_own_silo"]!, placed.ToJsonString()));
            Assert.DoesNotContain("stayed on another silo", silos[0]!.Stderr, StringComparison.Ordinal);
            if (newPlanWins)
            {
                // A plan that changes the restarted node applies (it used to abort while node0's grain lingered on a survivor).
                var third = JsonNode.Parse(Ok(ws[1], "apply", dir["p3.json"], "--json"))!;
                Assert.True((string?)third["outcome"] == "applied", third.ToJsonString());
                Assert.NotEqual(0, Route(ws[0], Routes[0].To).ExitCode);
                var back = Route(ws[2], Routes[2].To);
                Assert.True(back.ExitCode == 0, back.ToString());
                var stillCrossed = Route(ws[1], Cross.To);
                Assert.True(stillCrossed.ExitCode == 0, stillCrossed.ToString());
            }

            StopAll(silos);
        }
        finally
        {
            DisposeAll(silos);
        }
    }

    /// <summary>
    /// A rolling restart (operations.md, "Rolling restart"): each of the three silos in turn is stopped with SIGTERM and
    /// started again while a client sends traffic through another silo's lane, and a new plan is applied between two of
    /// the restarts. Afterwards the decided plan is the applied one everywhere (the restarted silos restored it, not an
    /// older one), no transaction is left undecided or reservation held, the WAL verifies, and no call failed.
    /// </summary>
    [Fact]
    public async Task A_rolling_restart_of_every_silo_under_traffic_loses_no_committed_plan()
    {
        using var dir = new TempDir();
        var database = pg.NewDatabase();
        Assert.Equal(0, RttProcess.Run(dir.Path, "db", "init", database).ExitCode);
        var (ws, p1, p2) = Workspaces(dir);
        var ports = Nodes.Select(_ => (Silo: RttProcess.FreePort(), Gateway: RttProcess.FreePort())).ToArray();
        var silos = new RttProcess?[3];
        try
        {
            silos[0] = Start(ws[0], 0, ports[0], database, Membership);
            var others = Enumerable.Range(1, 2).Select(i => Task.Run(() => Start(ws[i], i, ports[i], database, Membership))).ToArray();
            silos[1] = await others[0];
            silos[2] = await others[1];
            Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws[0], "apply", p1, "--json"))!["outcome"]);

            var calls = 0;
            for (var i = 0; i < 3; i++)
            {
                // Traffic through another silo's own route while this one restarts (not node2's: plan 2 removes it).
                var survivor = i == 0 ? 1 : i == 1 ? 0 : 1;
                using var stop = new CancellationTokenSource();
                var traffic = Task.Run(() =>
                {
                    var runs = new List<RttResult>();
                    while (!stop.IsCancellationRequested)
                    {
                        runs.Add(Route(ws[survivor], Routes[survivor].To, count: 300));
                    }

                    return runs;
                });

                silos[i]!.Terminate();
                Assert.True(silos[i]!.WaitForExit(TimeSpan.FromSeconds(30)), $"{Nodes[i]} did not stop on SIGTERM\n{silos[i]!.Stderr}");
                silos[i]!.Dispose();
                silos[i] = null;
                silos[i] = Start(ws[i], i, ports[i], database, Membership);
                var placed = WaitForPlacements(ws[survivor], TimeSpan.FromSeconds(30));
                Assert.Contains(placed["members"]!.AsArray(), m => (string?)m!["node"] == Nodes[i] && (string?)m["status"] == "Active");
                if (i == 1)
                {
                    // Between two restarts: a new plan (node2's route removed) applies through the restarted silo's gateway.
                    var applied = JsonNode.Parse(Ok(ws[1], "apply", p2, "--json"))!;
                    Assert.True((string?)applied["outcome"] == "applied", applied.ToJsonString());
                }

                stop.Cancel();
                var runs = await traffic;
                Assert.NotEmpty(runs);
                Assert.All(runs, r => Assert.True(r.ExitCode == 0, $"traffic through {Nodes[survivor]} failed while {Nodes[i]} restarted: {r}"));
                calls += runs.Count * 300;
            }

            // The decided plan everywhere: node2, restarted last, restored plan 2 (its route gone), not plan 1.
            var history = JsonNode.Parse(Ok(ws[0], "history", "--json"))!;
            Assert.Equal(PlanId(File.ReadAllText(p2)), (string?)history["applied"]);
            Assert.All(history["transactions"]!.AsArray(), t => Assert.NotNull((string?)t!["decision"]));
            Assert.All(history["participants"]!.AsArray(), p => Assert.Equal(-1, (long)p!["reserved_tx"]!));
            Assert.True(Route(ws[0], Routes[0].To).ExitCode == 0);
            Assert.True(Route(ws[1], Routes[1].To).ExitCode == 0);
            Assert.NotEqual(0, Route(ws[2], Routes[2].To).ExitCode);
            var crossed = Route(ws[1], Cross.To);
            Assert.True(crossed.ExitCode == 0, crossed.ToString());
            var verify = RttProcess.RunWith(ws[1], ClusterEnv(database), "wal", "verify");
            Assert.True(verify.ExitCode == 0, verify.ToString());
            Assert.True(calls > 0);
            StopAll(silos);
        }
        finally
        {
            DisposeAll(silos);
        }
    }

    /// <summary>
    /// Lanes across hosts (issue 19, item 3): the topology puts node0 and node1 on two hosts, so the planner gives the
    /// route from a caller pinned to node0 to a provider pinned to node1 a <c>tcp</c> lane. node0's lane host forwards it
    /// over TCP to node1's lane host (its <c>Lanes:TcpPort</c>, published at registration), with a lane token; a client
    /// of node0's silo calls the symbol served on node1. node1 killed: the forwarded lane answers with an error naming
    /// the node; node1 back on the same port: the lane attaches again and the calls go through.
    /// </summary>
    [Fact]
    public async Task A_route_across_hosts_is_forwarded_over_tcp_to_the_other_silos_lane_host_and_reattaches_after_a_restart()
    {
        using var dir = new TempDir();
        var database = pg.NewDatabase();
        Assert.Equal(0, RttProcess.Run(dir.Path, "db", "init", database).ExitCode);
        var first = dir["node0"];
        Assert.Equal(0, RttProcess.Run(dir.Path, "init", "--example", "quickstart", first).ExitCode);
        var rtt = Path.Combine(first, ".rtt");
        const string caller = "rtt://ui/chat/console";
        const string far = "rtt://core/api/far";
        File.WriteAllText(Path.Combine(rtt, "manifests", "core.api.far.json"), new JsonObject
        {
            ["address"] = far,
            ["version"] = "1.0.0",
            ["input"] = "rtt.types/Text",
            ["output"] = "rtt.types/Text",
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 50,
            ["demand"] = new JsonObject { ["cpu_millis"] = 100, ["memory_mb"] = 16 },
        }.ToJsonString());
        var policy = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "policy.json")))!;
        const string tools = "rtt://ui/chat/tools";
        const string upper = "rtt://mcp/sample/upper"; // an MCP tool: its lane host needs the pinned tool object from the registry
        policy["pins"] = new JsonObject { [caller] = "node0", [far] = "node1", [tools] = "node1", [upper] = "node1" };
        File.WriteAllText(Path.Combine(rtt, "policy.json"), policy.ToJsonString());
        var topology = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "topology.json")))!;
        topology["hosts"] = new JsonArray(
            new JsonObject { ["name"] = "host-a", ["numa_nodes"] = new JsonArray(new JsonObject { ["id"] = "node0", ["cpu_millis"] = 1000, ["memory_mb"] = 1024 }) },
            new JsonObject { ["name"] = "host-b", ["numa_nodes"] = new JsonArray(new JsonObject { ["id"] = "node1", ["cpu_millis"] = 1000, ["memory_mb"] = 1024 }) });
        File.WriteAllText(Path.Combine(rtt, "topology.json"), topology.ToJsonString());
        File.WriteAllText(Path.Combine(rtt, "routes.json"), new JsonObject
        {
            ["routes"] = new JsonArray(new JsonObject { ["from"] = caller, ["to"] = far }, new JsonObject { ["from"] = tools, ["to"] = upper }),
        }.ToJsonString());
        Ok(first, "scan");
        var plan = dir["plan.json"];
        Ok(first, "plan", "--out", plan);
        var lane = JsonNode.Parse(File.ReadAllText(plan))!["routes_add"]!.AsArray().Single(r => (string?)r!["to"] == far)!;
        Assert.True((string?)lane["lane"] == "tcp", lane.ToJsonString()); // two hosts: the planner's lane across them
        var second = dir["node1"];
        WorkspaceCopy.CopyTree(first, second);
        var third = dir["dup"]; // for a silo that claims node1 too
        WorkspaceCopy.CopyTree(first, third);
        // The registry everywhere: node1's workspace has no registry objects; its silo reads what it serves from the
        // cluster database, where node0's silo published its workspace's objects at start.
        Directory.Delete(Path.Combine(second, ".rtt", "registry", "cas"), recursive: true);
        if (Directory.Exists(Path.Combine(second, ".rtt", "registry", "pack")))
        {
            Directory.Delete(Path.Combine(second, ".rtt", "registry", "pack"), recursive: true);
        }
        var ws = new[] { first, second };

        var ports = ws.Select(_ => (Silo: RttProcess.FreePort(), Gateway: RttProcess.FreePort(), Tcp: RttProcess.FreePort())).ToArray();
        Dictionary<string, string> Env(int i) => new(Membership) { ["RTT_Lanes__TcpPort"] = Port(ports[i].Tcp) };
        var silos = new RttProcess?[2];
        try
        {
            silos[0] = Start(ws[0], 0, (ports[0].Silo, ports[0].Gateway), database, Env(0));
            silos[1] = Start(ws[1], 1, (ports[1].Silo, ports[1].Gateway), database, Env(1));
            var applied = JsonNode.Parse(Ok(ws[0], "apply", plan, "--json"))!;
            Assert.True((string?)applied["outcome"] == "applied", applied.ToJsonString());

            var crossed = Route(ws[0], far);
            Assert.True(crossed.ExitCode == 0, $"{crossed}\n--- node0\n{silos[0]!.Stderr}\n--- node1\n{silos[1]!.Stderr}");
            var called = RttProcess.Run(ws[1], "call", upper, "--from", tools, "--args", "{\"text\":\"from the database\"}");
            Assert.True(called.ExitCode == 0 && called.Stdout.Contains("FROM THE DATABASE", StringComparison.Ordinal), $"{called}\n--- node1\n{silos[1]!.Stderr}");
            Assert.Contains("Published", silos[0]!.Stdout + silos[0]!.Stderr, StringComparison.Ordinal);
            Assert.True(PostgresServerFixture.Scalar<long>(database, "SELECT count(*) FROM rtt_objects;") > 0);
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(second, ".rtt", "registry", "cas"), "*.json", SearchOption.AllDirectories)); // fetched, checked, kept

            // A second silo claiming node1 while node1's silo is active is refused at start; node1 keeps serving.
            var duplicate = RttProcess.RunWith(third, Membership, "up", "--cluster", database, "--node-id", "node1",
                "--silo-port", Port(RttProcess.FreePort()), "--gateway-port", Port(RttProcess.FreePort()));
            Assert.NotEqual(0, duplicate.ExitCode);
            Assert.Contains("RTT-CLUSTER-003", duplicate.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", duplicate.Stderr, StringComparison.Ordinal);
            Assert.True(Route(ws[0], far).ExitCode == 0);
            var status = JsonNode.Parse(Ok(ws[0], "status", "--json"))!;
            var node0 = status["placements"]!.AsArray().Single(p => (string?)p!["node_id"] == "node0")!;
            Assert.Contains($"{far} tcp -> node1", node0["lanes"]!.AsArray().Select(l => (string?)l));
            Assert.Contains($"127.0.0.1:{Port(ports[1].Tcp)}", silos[0]!.Stdout + silos[0]!.Stderr, StringComparison.Ordinal); // "attached (tcp://…)" in its log

            // node1 gone: the forwarded lane answers at once, naming the node (no hang, no silent echo).
            silos[1]!.Kill();
            silos[1]!.WaitForExit(TimeSpan.FromSeconds(30));
            RttResult down;
            var deadline = DateTime.UtcNow.AddSeconds(30);
            do
            {
                down = Route(ws[0], far, count: 1);
            }
            while (down.ExitCode == 0 && DateTime.UtcNow < deadline);
            Assert.NotEqual(0, down.ExitCode);
            // RTT-LANE-005 "the service behind endpoint forward:node1 went away" (or RTT-CALL-003 once the lane is replaced).
            Assert.Matches("RTT-LANE-005|RTT-CALL-003", down.Stdout + down.Stderr);
            Assert.Contains("node1", down.Stdout + down.Stderr, StringComparison.Ordinal);

            // node1 back on the same TCP port: it restores its lanes, node0's forward attaches again.
            silos[1]!.Dispose();
            silos[1] = Start(ws[1], 1, (ports[1].Silo, ports[1].Gateway), database, Env(1));
            RttResult back;
            deadline = DateTime.UtcNow.AddSeconds(60);
            do
            {
                await Task.Delay(500);
                back = Route(ws[0], far);
            }
            while (back.ExitCode != 0 && DateTime.UtcNow < deadline);
            Assert.True(back.ExitCode == 0, $"{back}\n--- node0\n{silos[0]!.Stderr}\n--- node1\n{silos[1]!.Stderr}");
            StopAll(silos);
        }
        finally
        {
            DisposeAll(silos);
        }
    }

    /// <summary>
    /// The quickstart with three echo routes, one per node (pinned), scanned once and copied for the other two silos;
    /// plan 1 (all three routes) and plan 2 (node2's route removed, plan 1 as base) computed up front.
    /// </summary>
    private static (string[] Workspaces, string Plan1, string Plan2) Workspaces(TempDir dir)
    {
        var first = dir["node0"];
        var init = RttProcess.Run(dir.Path, "init", "--example", "quickstart", first);
        Assert.True(init.ExitCode == 0, init.ToString());
        var rtt = Path.Combine(first, ".rtt");
        var tools = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "manifests", "ui.chat.tools.json")))!["output"]!.DeepClone();
        foreach (var (name, input) in new[] { ("echo1", (JsonNode)"rtt.types/Text"), ("echo2", tools), ("echo3", "rtt.types/Text") })
        {
            File.WriteAllText(Path.Combine(rtt, "manifests", $"core.api.{name}.json"), new JsonObject
            {
                ["address"] = $"rtt://core/api/{name}",
                ["version"] = "1.0.0",
                ["input"] = input.DeepClone(),
                ["output"] = input.DeepClone(),
                ["lanes"] = new JsonArray("shm", "uds", "tcp"),
                ["latency_us"] = 50,
                ["demand"] = new JsonObject { ["cpu_millis"] = 100, ["memory_mb"] = 16 },
            }.ToJsonString());
        }

        var pins = new JsonObject();
        for (var i = 0; i < 3; i++)
        {
            pins[Routes[i].From] = Nodes[i];
            pins[Routes[i].To] = Nodes[i];
        }

        pins[Cross.To] = Nodes[2];
        var policy = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "policy.json")))!;
        policy["pins"] = pins;
        File.WriteAllText(Path.Combine(rtt, "policy.json"), policy.ToJsonString());
        var topology = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "topology.json")))!;
        topology["hosts"] = new JsonArray(new JsonObject
        {
            ["name"] = "localhost",
            ["numa_nodes"] = new JsonArray([.. Nodes.Select(n => (JsonNode)new JsonObject { ["id"] = n, ["cpu_millis"] = 1000, ["memory_mb"] = 1024 })]),
        });
        File.WriteAllText(Path.Combine(rtt, "topology.json"), topology.ToJsonString());
        WriteRoutes(rtt, 0, 1, 2);
        Ok(first, "scan");
        var p1 = dir["p1.json"];
        Ok(first, "plan", "--out", p1);
        WriteRoutes(rtt, 0, 1);
        var p2 = dir["p2.json"];
        Ok(first, "plan", "--base", p1, "--out", p2);
        Assert.NotEqual(PlanId(File.ReadAllText(p1)), PlanId(File.ReadAllText(p2)));
        WriteRoutes(rtt, 1, 2); // plan 3 changes the killed node0 (its route goes) and node2 (its route comes back)
        Ok(first, "plan", "--base", p2, "--out", dir["p3.json"]);

        var all = new[] { first, dir["node1"], dir["node2"] };
        foreach (var copy in all.Skip(1))
        {
            WorkspaceCopy.CopyTree(first, copy);
        }

        return (all, p1, p2);
    }

    private static void WriteRoutes(string rtt, params int[] nodes) =>
        File.WriteAllText(Path.Combine(rtt, "routes.json"), new JsonObject
        {
            ["routes"] = new JsonArray([.. nodes.Select(i => Routes[i]).Append(Cross).Select(r => (JsonNode)new JsonObject { ["from"] = r.From, ["to"] = r.To })]),
        }.ToJsonString());

    private static RttProcess Start(string ws, int node, (int Silo, int Gateway) ports, string database, IReadOnlyDictionary<string, string> env) =>
        RttProcess.StartSilo(ws, ports.Silo, ports.Gateway, env, StartTimeout, "--cluster", database, "--node-id", Nodes[node]);

    private static Dictionary<string, string> ClusterEnv(string database) => new()
    {
        ["RTT_Cluster__Provider"] = "postgres",
        ["RTT_Cluster__ConnectionString"] = database,
    };

    private static RttResult Route(string ws, string symbol, int count = 200) =>
        RttProcess.Run(ws, "bench", "route-client", Path.Combine(ws, ".rtt", "state", "lanes.sock"), symbol, "--count", count.ToString(CultureInfo.InvariantCulture));

    /// <summary>Runs rtt to success; a client that found no gateway within its connect timeout (a loaded machine) tries again, twice.</summary>
    private static string Ok(string ws, params string[] args)
    {
        for (var attempt = 1; ; attempt++)
        {
            var r = RttProcess.Run(ws, args);
            if (r.ExitCode != 0 && attempt < 3 && r.Stderr.Contains("RTT-CLIENT-001", StringComparison.Ordinal))
            {
                continue;
            }

            Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
            return r.Stdout;
        }
    }

    /// <summary>`rtt status --json` until every node's grain runs on its own silo (or the time is up: the last status).</summary>
    private static JsonNode WaitForPlacements(string ws, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var status = JsonNode.Parse(Ok(ws, "status", "--json"))!;
            var placements = status["placements"]!.AsArray();
            if ((placements.Count == Nodes.Length && placements.All(p => (bool)p!["on_own_silo"]!)) || clock.Elapsed > timeout)
            {
                return status;
            }

            Thread.Sleep(500);
        }
    }

    private static string PlanId(string planJson) => (string)JsonNode.Parse(planJson)!["plan_id"]!;

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
