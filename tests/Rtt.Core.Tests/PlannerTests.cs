using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Planning;

namespace Rtt.Core.Tests;

public sealed class PlannerTests
{
    internal static SymbolContract Contract(string address, string version = "1.0.0", string input = "T", string output = "T", double latency = 10,
        double cpu = 100, double mem = 64, string[]? lanes = null, string[]? compatible = null, bool acyclic = false) =>
        new(address, NuGet.Versioning.NuGetVersion.Parse(version), "service", JsonValue.Create(input), JsonValue.Create(output),
            compatible ?? [], lanes ?? ["shm", "tcp", "uds"], latency, cpu, mem, acyclic);

    internal static JsonObject Routes(params JsonObject[] routes) => new() { ["routes"] = new JsonArray([.. routes]) };

    internal static JsonObject Route(string from, string to, string? version = null, double? budget = null, int? priority = null, double? rate = null)
    {
        var r = new JsonObject { ["from"] = from, ["to"] = to };
        if (version is not null)
        {
            r["version"] = version;
        }

        var qos = new JsonObject();
        if (budget is not null)
        {
            qos["p99_budget_us"] = budget;
        }

        if (priority is not null)
        {
            qos["priority"] = priority;
        }

        if (rate is not null)
        {
            qos["rate_hz"] = rate;
        }

        if (qos.Count > 0)
        {
            r["qos"] = qos;
        }

        return r;
    }

    internal static JsonObject Topology(params (string Host, string Id, double Cpu, double Mem)[] nodes) => new()
    {
        ["hosts"] = new JsonArray([.. nodes.GroupBy(n => n.Host).Select(h => (JsonNode)new JsonObject
        {
            ["name"] = h.Key,
            ["numa_nodes"] = new JsonArray([.. h.Select(n => (JsonNode)new JsonObject { ["id"] = n.Id, ["cpu_millis"] = n.Cpu, ["memory_mb"] = n.Mem })]),
        })]),
        ["lanes"] = new JsonObject { ["shm"] = new JsonObject { ["p99_us"] = 5 }, ["uds"] = new JsonObject { ["p99_us"] = 50 }, ["tcp"] = new JsonObject { ["p99_us"] = 500 } },
    };

    internal static JsonObject OpenPolicy(bool strict = false) => new() { ["strict"] = strict };

    internal static PlanOutcome Plan(JsonObject routes, IEnumerable<SymbolContract> contracts, JsonObject? topology = null, JsonObject? policy = null, JsonObject? basePlan = null) =>
        Planner.Compute(PlanInputs.Build(routes, policy ?? OpenPolicy(), topology ?? Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 1000, 1000)), contracts, basePlan));

    private static string Rejection(PlanOutcome o) => (string)o.Body["rejected"]![0]!["constraint"]!;

    [Fact]
    public void Type_exact_declared_and_structural()
    {
        var a = Contract("rtt://a/x/a", output: "Q");
        Assert.Equal(Constraint.Type, Rejection(Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), [a, Contract("rtt://b/x/b", input: "R")])));
        Assert.Empty(Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), [a, Contract("rtt://b/x/b", input: "Q")]).Rejected);
        Assert.Empty(Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), [a, Contract("rtt://b/x/b", input: "R", compatible: ["Q"])]).Rejected);

        var output = JsonNode.Parse("""{"type":"object","required":["message","n"],"properties":{"message":{"type":"string"},"n":{"type":"number"}}}""")!.AsObject();
        var input = JsonNode.Parse("""{"type":"object","required":["message"],"properties":{"message":{"type":"string"}}}""")!.AsObject();
        Assert.True(Checks.Contains(output, input));
        Assert.False(Checks.Contains(input, JsonNode.Parse("""{"type":"object","required":["n"]}""")!.AsObject()));
        Assert.False(Checks.Contains(output, JsonNode.Parse("""{"type":"object","required":["message"],"properties":{"message":{"type":"number"}}}""")!.AsObject()));
    }

    [Fact]
    public void Version_meet_takes_the_highest_satisfying_version()
    {
        var contracts = new[] { Contract("rtt://a/x/a"), Contract("rtt://b/x/b", "1.0.0"), Contract("rtt://b/x/b", "1.4.2"), Contract("rtt://b/x/b", "2.0.0") };
        var plan = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b", "^1.0.0")), contracts);
        Assert.Equal("1.4.2", (string?)plan.Body["routes_add"]![0]!["version"]);
        Assert.Equal("2.0.0", (string?)Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), contracts).Body["routes_add"]![0]!["version"]);
        var none = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b", "[3.0.0,4.0.0)")), contracts);
        Assert.Equal(Constraint.Version, Rejection(none));
        Assert.Equal(3, none.Body["rejected"]![0]!["values"]!["available"]!.AsArray().Count);
        Assert.Equal(ErrorCodes.PlanRangeInvalid, Assert.Throws<RttException>(() => PlanInputs.ParseRange("not a range", "x")).Code);
    }

    [Fact]
    public void Qos_budget_limits_the_lane_kinds_and_placement_follows()
    {
        var contracts = new[] { Contract("rtt://a/x/a", latency: 0), Contract("rtt://b/x/b", latency: 20) };
        // 5 (shm) + 20 <= 30, but uds (50) and tcp (500) are too slow: only shm, so co-located.
        var plan = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b", budget: 30)), contracts);
        Assert.Empty(plan.Rejected);
        Assert.Equal("shm", (string?)plan.Body["lanes"]![0]!["kind"]);
        Assert.Equal((string?)plan.Body["placement"]!["rtt://a/x/a"], (string?)plan.Body["placement"]!["rtt://b/x/b"]);
        var tooTight = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b", budget: 10)), contracts);
        Assert.Equal(Constraint.Qos, Rejection(tooTight));
        Assert.Equal(5, (double)tooTight.Body["rejected"]![0]!["values"]!["best_lane_p99_us"]!);
        // A policy budget by pattern applies when the route has none.
        var policy = new JsonObject { ["strict"] = false, ["qos"] = new JsonArray(new JsonObject { ["match"] = "rtt://b/**", ["p99_budget_us"] = 10 }) };
        Assert.Equal(Constraint.Qos, Rejection(Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), contracts, policy: policy)));
    }

    [Fact]
    public void Acl_deny_wins_and_strict_mode_denies_by_default()
    {
        var contracts = new[] { Contract("rtt://ui/hook/a"), Contract("rtt://core/api/b") };
        var routes = Routes(Route("rtt://ui/hook/a", "rtt://core/api/b"));
        Assert.Equal(Constraint.Acl, Rejection(Plan(routes, contracts, policy: OpenPolicy(strict: true))));
        var allow = new JsonObject { ["strict"] = true, ["acl"] = new JsonArray(new JsonObject { ["allow"] = new JsonObject { ["from"] = "rtt://ui/**", ["to"] = "rtt://core/api/*" } }) };
        Assert.Empty(Plan(routes, contracts, policy: allow).Rejected);
        allow["acl"]!.AsArray().Add(new JsonObject { ["deny"] = new JsonObject { ["from"] = "rtt://ui/hook/*", ["to"] = "rtt://**" } });
        var denied = Plan(routes, contracts, policy: allow);
        Assert.Equal("deny", (string?)denied.Body["rejected"]![0]!["values"]!["rule"]);
        Assert.False(AddressPattern.Matches("rtt://core/*", "rtt://core/api/b"));
        Assert.True(AddressPattern.Matches("rtt://core/**", "rtt://core/api/b"));
    }

    [Fact]
    public void Capacity_is_respected_and_rejections_name_it()
    {
        var contracts = new[] { Contract("rtt://a/x/a", cpu: 600), Contract("rtt://b/x/b", cpu: 600), Contract("rtt://c/x/c", cpu: 600) };
        var plan = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b"), Route("rtt://a/x/a", "rtt://c/x/c")), contracts, Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 1000, 1000)));
        Assert.Single(plan.Body["lanes"]!.AsArray());
        Assert.Equal(Constraint.Capacity, Rejection(plan));
        Assert.Equal(ErrorCodes.PlanTopologyInvalid, Assert.Throws<RttException>(() => Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), contracts, new JsonObject { ["hosts"] = new JsonArray() })).Code);
        Assert.Equal(ErrorCodes.PlanInputInvalid, Assert.Throws<RttException>(() => Plan(Routes(), contracts, Topology(("h1", "n0", 0, 1000)))).Code);
    }

    [Fact]
    public void Placement_prefers_the_same_node_then_the_same_host_and_honours_pins()
    {
        var contracts = new[] { Contract("rtt://a/x/a", cpu: 600), Contract("rtt://b/x/b", cpu: 600) };
        var topo = Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 1000, 1000), ("h2", "n2", 1000, 1000));
        var plan = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), contracts, topo);
        Assert.Equal("uds", (string?)plan.Body["lanes"]![0]!["kind"]); // both cannot share one node: same host instead

        var pinned = new JsonObject { ["strict"] = false, ["pins"] = new JsonObject { ["rtt://a/x/a"] = "n2" } };
        var p2 = Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), contracts, topo, pinned);
        Assert.Equal("n2", (string?)p2.Body["placement"]!["rtt://a/x/a"]);
        Assert.Equal("tcp", (string?)p2.Body["lanes"]![0]!["kind"]);

        pinned["pins"]!["rtt://a/x/a"] = "n9";
        Assert.Equal(ErrorCodes.PlanPinUnknownNode, Assert.Throws<RttException>(() => Plan(Routes(), contracts, topo, pinned)).Code);
    }

    [Fact]
    public void Unknown_symbols_duplicates_and_forbidden_cycles_are_rejected_with_reasons()
    {
        var contracts = new[] { Contract("rtt://a/x/a"), Contract("rtt://b/x/b", acyclic: true) };
        var routes = Routes(
            Route("rtt://a/x/a", "rtt://b/x/b"),
            Route("rtt://a/x/a", "rtt://b/x/b"),
            Route("rtt://a/x/a", "rtt://z/x/z"),
            Route("rtt://b/x/b", "rtt://a/x/a"),
            Route("rtt://a/x/a", "rtt://z/x/z")); // a duplicate with an unknown end: told by its key, not its ends' numbers
        foreach (var given in new IEnumerable<SymbolContract>[] { contracts, new SymbolCatalogue(contracts) }) // a list, and a catalogue (which knows it has an acyclic contract)
        {
            var plan = Plan(routes, given);
            var constraints = plan.Body["rejected"]!.AsArray().Select(r => ((int)r!["route"]!["index"]!, (string)r["constraint"]!)).ToList();
            Assert.Equal([(0, Constraint.Cycle), (1, Constraint.Duplicate), (2, Constraint.UnknownSymbol), (3, Constraint.Cycle), (4, Constraint.Duplicate)], constraints);
            Assert.Equal([0, 2], plan.Body["rejected"]!.AsArray().Where(r => (string)r!["constraint"]! == Constraint.Duplicate).Select(r => (int)r!["values"]!["first"]!));
        }

        // Without an acyclic contract the cycle is allowed, from a catalogue as from a list.
        var plain = new[] { Contract("rtt://a/x/a"), Contract("rtt://b/x/b") };
        Assert.DoesNotContain(Constraint.Cycle, Plan(routes, new SymbolCatalogue(plain)).Body["rejected"]!.AsArray().Select(r => (string)r!["constraint"]!));
        Assert.DoesNotContain(Constraint.Cycle, Plan(routes, plain).Body["rejected"]!.AsArray().Select(r => (string)r!["constraint"]!));
    }

    [Fact]
    public void Routes_are_equal_by_their_members_whether_or_not_their_key_was_written()
    {
        RouteSpec Make(int priority = 1) => new(3, "rtt://a/x/a", "rtt://b/x/b", "^1.0.0", PlanInputs.ParseRange("^1.0.0", "x"), 100, 50, priority);
        var (read, unread) = (Make(), Make());
        Assert.Equal("rtt://a/x/a -> rtt://b/x/b", read.Key);
        Assert.Equal(read, unread);
        Assert.Equal(read.GetHashCode(), unread.GetHashCode());
        Assert.NotEqual(read, Make(priority: 2));
        unread.ToId = 7;
        Assert.NotEqual(read, unread);
    }

    [Fact]
    public void Ilp_admits_by_priority_when_not_everything_fits()
    {
        // One node fits two of three providers; the high-priority route must win even though it comes last.
        var contracts = new[] { Contract("rtt://c/x/c", cpu: 0), Contract("rtt://p/x/p1", cpu: 400), Contract("rtt://p/x/p2", cpu: 400), Contract("rtt://p/x/p3", cpu: 400) };
        var plan = Plan(Routes(
            Route("rtt://c/x/c", "rtt://p/x/p1", priority: 0),
            Route("rtt://c/x/c", "rtt://p/x/p2", priority: 0),
            Route("rtt://c/x/c", "rtt://p/x/p3", priority: 5)), contracts, Topology(("h1", "n0", 1000, 1000)));
        var admitted = plan.Body["lanes"]!.AsArray().Select(l => (string)l!["route"]!["to"]!).ToList();
        Assert.Contains("rtt://p/x/p3", admitted);
        Assert.Equal(2, admitted.Count);
        Assert.Single(plan.Rejected);
    }

    [Fact]
    public void Ilp_moves_a_placement_only_to_admit_more_routes_and_says_why()
    {
        // Greedy puts a and b on the emptiest node (n0); then c fits nowhere. CP-SAT puts a and b on n1 and c on n0.
        var contracts = new[] { Contract("rtt://a/x/a", cpu: 400), Contract("rtt://b/x/b", cpu: 400), Contract("rtt://c/x/c", cpu: 900) };
        var topo = Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 800, 1000));
        var routes = Routes(Route("rtt://a/x/a", "rtt://b/x/b", budget: 60), Route("rtt://c/x/c", "rtt://c/x/c", budget: 60));
        var plan = Plan(routes, contracts, topo);
        Assert.Empty(plan.Rejected);
        Assert.Equal("n1", (string?)plan.Body["placement"]!["rtt://a/x/a"]);
        Assert.Equal("n0", (string?)plan.Body["placement"]!["rtt://c/x/c"]);

        // Against a base plan that had a and b on n0, the move is listed with its reason.
        var basePlan = new JsonObject
        {
            ["plan_id"] = "sha256:" + new string('1', 64),
            ["placement"] = new JsonObject { ["rtt://a/x/a"] = "n0", ["rtt://b/x/b"] = "n0" },
            ["lanes"] = new JsonArray(new JsonObject { ["route"] = new JsonObject { ["from"] = "rtt://a/x/a", ["to"] = "rtt://b/x/b" }, ["kind"] = "shm", ["ring_size"] = 256 }),
        };
        var moved = Plan(routes, contracts, topo, basePlan: basePlan);
        Assert.Empty(moved.Rejected);
        Assert.Equal(["rtt://a/x/a", "rtt://b/x/b"], moved.Body["moves"]!.AsArray().Select(m => (string)m!["symbol"]!));
        Assert.All(moved.Body["moves"]!.AsArray(), m => Assert.Equal("admission", (string?)m!["reason"]));
        Assert.Equal("cp-sat", plan.Solver);
    }

    [Fact]
    public void Ilp_answers_a_contested_set_it_solved_before_from_its_cache_with_the_same_plan()
    {
        // The same contested set is served from the cache; another priority or demand is another model.
        var contracts = new List<SymbolContract> { Contract("rtt://c/x/c", cpu: 0), Contract("rtt://p/x/p1", cpu: 400), Contract("rtt://p/x/p2", cpu: 400), Contract("rtt://p/x/p3", cpu: 400) };
        var topology = Topology(("h1", "n0", 1000, 1000));
        JsonObject Contested(int priority) => Routes(
            Route("rtt://c/x/c", "rtt://p/x/p1", priority: 0),
            Route("rtt://c/x/c", "rtt://p/x/p2", priority: 0),
            Route("rtt://c/x/c", "rtt://p/x/p3", priority: priority));

        var first = Plan(Contested(5), contracts, topology);
        Assert.Equal("cp-sat", first.Solver);
        var again = Plan(Contested(5), contracts, topology);
        Assert.True(Ilp.LastFromCache);
        Assert.Equal(CanonicalJson.ToCanonicalString(first.Body), CanonicalJson.ToCanonicalString(again.Body));

        var other = Plan(Contested(4), contracts, topology); // another model: solved, not served
        Assert.False(Ilp.LastFromCache);
        Assert.Equal(CanonicalJson.ToCanonicalString(first.Body["lanes"]), CanonicalJson.ToCanonicalString(other.Body["lanes"]));
        var heavier = Plan(Contested(5), [.. contracts.Select(c => c.Address == "rtt://p/x/p1" ? c with { CpuMillis = 450 } : c)], topology);
        Assert.False(Ilp.LastFromCache);
        Assert.Equal("cp-sat", heavier.Solver);
    }

    [Fact]
    public void Greedy_places_a_new_component_whole_so_routes_that_join_it_later_need_no_solver()
    {
        // Route by route, b and a would go to n0, then d and c to the emptier n2 on the other host, and c->b
        // (no tcp within its budget) would need CP-SAT. Placed as one component, all four share a node.
        var contracts = new[] { Contract("rtt://s/x/a", cpu: 100), Contract("rtt://s/x/b", cpu: 100), Contract("rtt://s/x/c", cpu: 100), Contract("rtt://s/x/d", cpu: 100) };
        var topo = Topology(("h1", "n0", 1000, 1000), ("h2", "n2", 1000, 1000));
        var routes = Routes(Route("rtt://s/x/a", "rtt://s/x/b", budget: 400), Route("rtt://s/x/c", "rtt://s/x/d", budget: 400), Route("rtt://s/x/c", "rtt://s/x/b", budget: 400));
        var plan = Plan(routes, contracts, topo);
        Assert.Empty(plan.Rejected);
        Assert.Equal("greedy", plan.Solver);
        Assert.Single(plan.Body["placement"]!.AsObject().Select(p => (string?)p.Value).Distinct());
        Assert.All(plan.Body["lanes"]!.AsArray(), l => Assert.Equal("shm", (string?)l!["kind"]));

        // A component that fits on no single node is placed route by route (and still admitted across nodes of a host).
        var big = contracts.Select(c => c with { CpuMillis = 400 }).ToList();
        var split = Plan(routes, big, Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 1000, 1000)));
        Assert.Empty(split.Rejected);
        Assert.Equal(2, split.Body["placement"]!.AsObject().Select(p => (string?)p.Value).Distinct().Count());
    }

    [Fact]
    public void Churn_keeps_placements_and_a_small_change_moves_nothing_else()
    {
        var contracts = Enumerable.Range(0, 6).Select(i => Contract($"rtt://s/x/s{i}", cpu: 200)).ToList();
        var topo = Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 1000, 1000), ("h2", "n2", 1000, 1000));
        var routes = Routes(Route("rtt://s/x/s0", "rtt://s/x/s1"), Route("rtt://s/x/s2", "rtt://s/x/s3"));
        using var key = SigningKey.Generate();
        var first = Planner.Seal(Plan(routes, contracts, topo).Body, key);

        var more = Routes(Route("rtt://s/x/s0", "rtt://s/x/s1"), Route("rtt://s/x/s2", "rtt://s/x/s3"), Route("rtt://s/x/s4", "rtt://s/x/s5"));
        var second = Plan(more, contracts, topo, basePlan: first).Body;
        Assert.Empty(second["moves"]!.AsArray());
        Assert.Equal((string?)first["plan_id"], (string?)second["base"]);
        Assert.Equal(["rtt://s/x/s4"], second["routes_add"]!.AsArray().Select(r => (string)r!["from"]!));
        foreach (var (symbol, node) in first["placement"]!.AsObject())
        {
            Assert.Equal((string?)node, (string?)second["placement"]![symbol]);
        }

        // Remove a node: only the symbols that were on it move, each with its reason.
        var smaller = Topology(("h1", "n0", 1000, 1000), ("h2", "n2", 1000, 1000));
        var third = Plan(routes, contracts, smaller, basePlan: first).Body;
        var onRemoved = first["placement"]!.AsObject().Where(p => (string?)p.Value == "n1").Select(p => p.Key).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(onRemoved, third["moves"]!.AsArray().Select(m => (string)m!["symbol"]!).Order(StringComparer.Ordinal));
        Assert.All(third["moves"]!.AsArray(), m => Assert.Equal("node-removed", (string?)m!["reason"]));
        var routesRemoved = Plan(Routes(Route("rtt://s/x/s0", "rtt://s/x/s1")), contracts, topo, basePlan: first).Body;
        Assert.Equal("rtt://s/x/s2", (string?)routesRemoved["routes_remove"]![0]!["from"]);
    }

    [Fact]
    public void Plan_is_signed_and_its_id_is_the_hash_of_the_rest()
    {
        using var key = SigningKey.Generate();
        var plan = Planner.Seal(Plan(Routes(Route("rtt://a/x/a", "rtt://b/x/b")), [Contract("rtt://a/x/a"), Contract("rtt://b/x/b")]).Body, key);
        Assert.Equal(Planner.PlanId(plan), (string?)plan["plan_id"]);
        Assert.Equal(key.KeyId, (string?)plan["sign"]!["key_id"]);
        // Seal writes the plan once and splices plan_id in: the signature covers exactly ObjectSigner's payload.
        var signature = ObjectSigner.ReadSignBlock(plan).Signature;
        Assert.True(key.PublicKey.Verify(ObjectSigner.SigningPayload(plan), signature));
        plan["placement"]!["rtt://a/x/a"] = "elsewhere";
        Assert.False(key.PublicKey.Verify(ObjectSigner.SigningPayload(plan), signature));
        var empty = Planner.Seal([], key);
        Assert.Equal(Planner.PlanId(empty), (string?)empty["plan_id"]);
        Assert.True(key.PublicKey.Verify(ObjectSigner.SigningPayload(empty), ObjectSigner.ReadSignBlock(empty).Signature));
        foreach (var member in new[] { "plan_id", "routes_add", "placement", "sign", "routes_remove", "moves", "rejected", "lanes", "base", "inputs" })
        {
            Assert.True(plan.ContainsKey(member), member);
        }

        Assert.Equal(256, Planner.RingSize(0));
        Assert.Equal(1024, Planner.RingSize(100_000));
        Assert.Equal(65_536, Planner.RingSize(1e9));
    }

    [Theory]
    [InlineData(0, 10)]
    [InlineData(1, 1)]
    [InlineData(64, 64)]
    [InlineData(1000, 100_000)]
    [InlineData(20_000, 20_000)]
    public void Slots_come_out_in_the_order_of_their_ranks_as_a_sort_would_give_them(int slots, int rankCount)
    {
        // Distinct ranks taken in a random first-seen order, as PlanInputs gives each rank its slot.
        var rnd = new Random(slots + rankCount);
        var ranks = Enumerable.Range(0, rankCount).OrderBy(_ => rnd.Next()).Take(slots).ToList();
        var slotOfRank = ranks.Select((rank, slot) => (rank, slot)).ToDictionary(p => p.rank, p => p.slot);
        var sorted = Enumerable.Range(0, ranks.Count).ToArray();
        Array.Sort([.. ranks], sorted);
        Assert.Equal(sorted, PlanInputs.SlotsByRank(ranks, slotOfRank, rankCount));
    }
}
