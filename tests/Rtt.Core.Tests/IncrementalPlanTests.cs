using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>
/// Planning again after a change (docs/planner.md, "Planning again"): the bytes the planner keeps and reuses between plans
/// in a process, and the plan's members written from its own values, give exactly the plan made with nothing kept.
/// </summary>
[Collection(nameof(PlannerCachesCollection))]
public sealed class IncrementalPlanTests
{
    private static readonly string[] Symbols = [.. Enumerable.Range(0, 40).Select(i => $"rtt://inc/svc/s{i:00}")];

    private static List<SymbolContract> Catalogue(int seed)
    {
        var rnd = new Random(seed);
        return [.. Symbols.SelectMany(s => Enumerable.Range(0, rnd.Next(1, 3)).Select(v =>
            PlannerTests.Contract(s, $"1.{v}.0", "T", "T", rnd.Next(0, 40), rnd.Next(0, 4) * 100, rnd.Next(0, 3) * 64,
                [.. new[] { "shm", "uds", "tcp" }.Where(_ => rnd.Next(5) > 0).DefaultIfEmpty("tcp")])))];
    }

    private static JsonObject RandomRoute(Random rnd) => PlannerTests.Route(Symbols[rnd.Next(Symbols.Length)], Symbols[rnd.Next(Symbols.Length)],
        rnd.Next(3) switch { 0 => "^1.0.0", 1 => "[1.1.0,2.0.0)", _ => null }, rnd.Next(3) == 0 ? null : rnd.Next(10, 900), rnd.Next(3) == 0 ? null : rnd.Next(3),
        rnd.Next(2) == 0 ? null : rnd.Next(0, 100_000) / 7.0);

    private static JsonObject Topology(bool tight) => tight
        ? PlannerTests.Topology(("h0", "n0", 600, 512), ("h0", "n1", 500, 512), ("h1", "n2", 400, 256))
        : PlannerTests.Topology(("h0", "n0", 100_000, 100_000), ("h0", "n1", 100_000, 100_000), ("h1", "n2", 100_000, 100_000));

    private static JsonObject Plan(JsonObject routes, JsonObject topology, List<SymbolContract> contracts, JsonObject? basePlan, SigningKey key) =>
        Planner.Seal(Planner.Compute(PlanInputs.Build(routes, PlannerTests.OpenPolicy(), topology, contracts, basePlan)), key);

    [Fact]
    public void Canonical_pieces_are_the_bytes_of_the_reference_writer()
    {
        Gen.Int.Sample(seed =>
        {
            var rnd = new Random(seed);
            var routes = PlannerTests.Routes([.. Enumerable.Range(0, rnd.Next(0, 12)).Select(_ => RandomRoute(rnd))]);
            // The same routes as parsed text: values of other CLR kinds (JsonElement), same meaning, same bytes.
            var parsed = CanonicalJson.ParseNode(Encoding.UTF8.GetBytes(routes.ToJsonString()))!.AsObject();
            foreach (var doc in new[] { routes, parsed })
            {
                Assert.True(InputShape.SurelyValidRoutes(doc));
                var pieces = PlanCanonical.Object([KeyValuePair.Create("routes", PlanCanonical.Array(PlanCanonical.Routes(doc["routes"]!.AsArray())))]);
                Assert.Equal(CanonicalJson.Serialize(doc), pieces);
            }

            var contracts = Catalogue(seed);
            Assert.Equal(CanonicalJson.Serialize(new JsonArray([.. contracts.Select(c => (JsonNode)c.ToJson())])), PlanCanonical.Array(PlanCanonical.Contracts(contracts)));
        }, iter: 100);
    }

    [Fact]
    public void A_sealed_outcome_has_the_bytes_of_the_sealed_body()
    {
        using var key = SigningKey.Generate();
        Gen.Int.Sample(seed =>
        {
            var rnd = new Random(seed);
            var contracts = Catalogue(seed);
            var routes = PlannerTests.Routes([.. Enumerable.Range(0, rnd.Next(0, 25)).Select(_ => RandomRoute(rnd))]);
            var basePlan = rnd.Next(2) == 0 ? null : Plan(PlannerTests.Routes([.. Enumerable.Range(0, 10).Select(_ => RandomRoute(rnd))]), Topology(true), contracts, null, key);
            var outcome = Planner.Compute(PlanInputs.Build(routes, PlannerTests.OpenPolicy(), Topology(rnd.Next(2) == 0), contracts, basePlan));
            var reference = Planner.Seal(outcome.Body, key); // writes the body: the reference
            var direct = Planner.Seal(outcome, key, out var content);
            Assert.Equal(CanonicalJson.Serialize(reference), CanonicalJson.Serialize(direct));
            Assert.True(key.PublicKey.Verify(ObjectSigner.SigningPayload(direct), ObjectSigner.ReadSignBlock(direct).Signature));
            // The signed bytes it gives are the plan's, and make its file form byte for byte (rtt plan writes it so).
            Assert.NotNull(content);
            Assert.Equal(ObjectSigner.SigningPayload(direct), content.SigningPayload);
            Assert.Equal((string)direct["plan_id"]!, content.PlanId);
            Assert.Equal(PrettyJson.ToUtf8(direct), content.Pretty(direct));
        }, iter: 100);
    }

    [Fact]
    public void A_sealed_outcome_with_endpoints_and_unsandboxed_lanes_has_the_bytes_of_the_sealed_body()
    {
        using var key = SigningKey.Generate();
        SymbolContract Served(string address, JsonObject? serve) =>
            new(address, NuGet.Versioning.NuGetVersion.Parse("1.0.0"), "service", JsonValue.Create("T"), JsonValue.Create("T"), [], ["shm", "tcp", "uds"], 10, 100, 64, false, serve);
        SymbolContract[] contracts =
        [
            Served("rtt://ui/x/caller", null),
            Served("rtt://core/api/plain", new JsonObject { ["kind"] = "process", ["command"] = "/bin/svc" }),
            Served("rtt://core/api/boxed", new JsonObject { ["kind"] = "process", ["command"] = "/bin/svc", ["sandbox"] = new JsonObject { ["network"] = false } }),
            Served("rtt://core/api/quoted", new JsonObject { ["kind"] = "process", ["command"] = "/bin/\"q\"" }),
        ];
        var routes = PlannerTests.Routes([.. contracts.Skip(1).Select(c => PlannerTests.Route("rtt://ui/x/caller", c.Address, rate: 5000))]);
        var policy = new JsonObject { ["strict"] = false, ["unsandboxed"] = new JsonArray("rtt://core/api/plain") };
        var outcome = Planner.Compute(PlanInputs.Build(routes, policy, Topology(false), [.. contracts], null));
        Assert.Contains("\"unsandboxed\":true", CanonicalJson.ToCanonicalString(outcome.Body), StringComparison.Ordinal);
        Assert.NotNull(outcome.Body["endpoints"]);
        var reference = Planner.Seal(outcome.Body, key);
        var sealedPlan = Planner.Seal(outcome, key, out var content);
        Assert.Equal(CanonicalJson.Serialize(reference), CanonicalJson.Serialize(sealedPlan));
        Assert.Equal(PrettyJson.ToUtf8(sealedPlan), content!.Pretty(sealedPlan)); // escapes in the text: the file form through a document
    }

    [Fact]
    public void A_large_plan_sealed_while_its_members_are_parsed_is_the_plan_sealed_from_its_body()
    {
        // From 1,000 admitted routes the body's lanes, placement and routes_add are parsed on a pool thread while the plan is
        // hashed and signed from their bytes; whoever reads the body first waits for them and puts them in, once.
        using var key = SigningKey.Generate();
        string[] symbols = [.. Enumerable.Range(0, 50).Select(i => $"rtt://big/svc/s{i:00}")];
        List<SymbolContract> contracts = [.. symbols.Select(s => PlannerTests.Contract(s, latency: 5))];
        var routes = PlannerTests.Routes([.. symbols.SelectMany(f => symbols.Where(t => t != f).Select(t => PlannerTests.Route(f, t, rate: 2_000))).Take(1_500)]);
        PlanOutcome Outcome() => Planner.Compute(PlanInputs.Build(routes, PlannerTests.OpenPolicy(), Topology(false), contracts, null));

        var sealedFirst = Outcome();
        Assert.Equal(1_500, sealedFirst.Admitted);
        var direct = Planner.Seal(sealedFirst, key, out var content);
        var reference = Planner.Seal(Outcome().Body, key); // the body read before sealing: complete, written by the reference writer
        Assert.Equal(CanonicalJson.Serialize(reference), CanonicalJson.Serialize(direct));
        Assert.Equal(1_500, direct["lanes"]!.AsArray().Count);
        Assert.Equal(1_500, direct["routes_add"]!.AsArray().Count);
        Assert.Equal(symbols.Length, direct["placement"]!.AsObject().Count);
        Assert.Equal(PrettyJson.ToUtf8(direct), content!.Pretty(direct));

        // Readers on several threads at once, and a copy of the outcome, see the one body, filled once.
        var outcome = Outcome();
        var copy = outcome with { Solver = "copy" };
        using var start = new Barrier(4);
        var readers = Enumerable.Range(0, 4).Select(i => Task.Run(() =>
        {
            start.SignalAndWait();
            return i % 2 == 0 ? outcome.Body : copy.Body;
        })).ToArray();
        var bodies = readers.Select(t => t.Result).ToList();
        Assert.All(bodies, b => Assert.Same(bodies[0], b));
        Assert.Equal(CanonicalJson.Serialize(Planner.Seal(bodies[0], key)), CanonicalJson.Serialize(reference));
    }

    [Fact]
    public void A_change_planned_after_its_base_is_the_plan_made_with_nothing_kept()
    {
        using var key = SigningKey.Generate();
        Gen.Int.Sample(seed =>
        {
            var rnd = new Random(seed);
            var contracts = Catalogue(seed);
            var topology = Topology(rnd.Next(2) == 0);
            var routes = PlannerTests.Routes([.. Enumerable.Range(0, rnd.Next(1, 30)).Select(_ => RandomRoute(rnd))]);
            var basePlan = Plan(routes, topology, contracts, null, key);
            var changed = (JsonObject)routes.DeepClone();
            var list = changed["routes"]!.AsArray();
            switch (rnd.Next(3))
            {
                case 0:
                    list[rnd.Next(list.Count)] = RandomRoute(rnd);
                    break;
                case 1:
                    list.RemoveAt(rnd.Next(list.Count));
                    break;
                default:
                    list.Insert(rnd.Next(list.Count + 1), RandomRoute(rnd));
                    break;
            }

            var warm = Plan(changed, topology, contracts, basePlan, key); // the base's routes and contracts were just written
            Planner.ForgetCanonicalBytes();
            var cold = Plan(changed, topology, contracts, basePlan, key);
            Assert.Equal(CanonicalJson.Serialize(cold), CanonicalJson.Serialize(warm));

            // The base's placement is read as symbols in ordinal order (walked beside the new plan's): a base edited by
            // hand, its members in another order, plans as the base the planner wrote.
            var shuffled = (JsonObject)basePlan.DeepClone();
            shuffled["placement"] = new JsonObject([.. basePlan["placement"]!.AsObject().OrderBy(_ => rnd.Next())
                .Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))]);
            Planner.ForgetCanonicalBytes();
            Assert.Equal(CanonicalJson.Serialize(cold), CanonicalJson.Serialize(Plan(changed, topology, contracts, shuffled, key)));
        }, iter: 100);
    }

    [Fact]
    public void A_catalogue_plans_as_the_same_contracts_in_a_list()
    {
        using var key = SigningKey.Generate();
        Gen.Int.Sample(seed =>
        {
            var rnd = new Random(seed);
            // Contracts in any order, some addresses with two equal versions (their order decides which is read first),
            // routes that name a symbol the catalogue lacks, and a pin.
            var contracts = Catalogue(seed).OrderBy(_ => rnd.Next()).ToList();
            foreach (var twin in contracts.Where(_ => rnd.Next(8) == 0).ToList())
            {
                contracts.Insert(rnd.Next(contracts.Count + 1), twin with { LatencyUs = twin.LatencyUs + 1 });
            }

            List<JsonObject> routeList = [.. Enumerable.Range(0, rnd.Next(1, 30)).Select(_ => RandomRoute(rnd))];
            if (rnd.Next(3) == 0)
            {
                routeList.Add(PlannerTests.Route("rtt://inc/svc/unknown", Symbols[rnd.Next(Symbols.Length)]));
            }

            var routes = PlannerTests.Routes([.. routeList]);
            var policy = PlannerTests.OpenPolicy();
            if (rnd.Next(2) == 0)
            {
                policy["pins"] = new JsonObject { [Symbols[rnd.Next(Symbols.Length)]] = "n1" };
            }

            var topology = Topology(rnd.Next(2) == 0);
            var basePlan = rnd.Next(2) == 0 ? null : Plan(PlannerTests.Routes([.. Enumerable.Range(0, 10).Select(_ => RandomRoute(rnd))]), topology, contracts, null, key);
            var fromList = PlanInputs.Build(routes, policy, topology, contracts, basePlan);
            var fromCatalogue = PlanInputs.Build(routes, policy, topology, new SymbolCatalogue(contracts), basePlan);
            Assert.Equal(fromList.Hash, fromCatalogue.Hash);
            Assert.Equal(fromList.Contracts.Keys.Order(StringComparer.Ordinal), fromCatalogue.Contracts.Keys.Order(StringComparer.Ordinal));
            foreach (var (address, versions) in fromList.Contracts)
            {
                Assert.Equal(versions, fromCatalogue.Contracts[address]); // the same instances in the same order
            }

            Assert.Equal(CanonicalJson.Serialize(Planner.Seal(Planner.Compute(fromList), key)), CanonicalJson.Serialize(Planner.Seal(Planner.Compute(fromCatalogue), key)));
        }, iter: 100);
    }

    [Fact]
    public void Candidates_by_priority_are_the_sorted_order()
    {
        // One pass per priority for candidates in route order with a few priorities, a sort otherwise: the same order.
        var contract = PlannerTests.Contract("rtt://p/svc/a", "1.0.0", "T", "T", 1, 1, 1);
        Gen.Select(Gen.Int[1, 12], Gen.Int[0, 200], Gen.Bool).Sample((distinct, count, shuffled) =>
        {
            var rnd = new Random(distinct * 1000 + count);
            var candidates = Enumerable.Range(0, count).Select(i => new Candidate(
                new RouteSpec(i * 2, "rtt://p/svc/a", "rtt://p/svc/a", "*", NuGet.Versioning.VersionRange.All, null, 0, rnd.Next(distinct) - 3), contract, contract, ["shm"], null)).ToList();
            if (shuffled)
            {
                candidates = [.. candidates.OrderBy(_ => rnd.Next())];
            }

            var expected = candidates.OrderByDescending(c => c.Route.Priority).ThenBy(c => c.Route.Index).ToArray();
            Assert.Equal(expected, Placement.ByPriority(candidates));
        }, iter: 300);
    }

    [Fact]
    public void A_catalogue_looked_up_in_parts_plans_as_the_list()
    {
        // Enough routes that the catalogue's lookups are split between cores (PlanInputs.Build: 2,048 routes a part at least).
        using var key = SigningKey.Generate();
        var rnd = new Random(20);
        var contracts = Enumerable.Range(0, 3000).Select(i => PlannerTests.Contract($"rtt://big/svc/s{i:0000}", $"1.{i % 3}.0", "T", "T", rnd.Next(0, 40), 1, 1)).ToList();
        var routes = PlannerTests.Routes([.. Enumerable.Range(0, 6000).Select(i => PlannerTests.Route($"rtt://big/svc/s{rnd.Next(3100):0000}", $"rtt://big/svc/s{rnd.Next(3100):0000}"))]);
        var topology = PlannerTests.Topology(("h0", "n0", 1e9, 1e9), ("h0", "n1", 1e9, 1e9));
        var fromList = PlanInputs.Build(routes, PlannerTests.OpenPolicy(), topology, contracts, null);
        var fromCatalogue = PlanInputs.Build(routes, PlannerTests.OpenPolicy(), topology, new SymbolCatalogue(contracts), null);
        Assert.Equal(fromList.Hash, fromCatalogue.Hash);
        Assert.Equal(fromList.Routes.Select(r => (r.FromId, r.ToId)), fromCatalogue.Routes.Select(r => (r.FromId, r.ToId)));
        Assert.Contains(fromList.Routes, r => r.FromId < 0); // some name symbols the catalogue lacks
        var plan = Planner.Seal(Planner.Compute(fromCatalogue), key);
        Assert.Equal(CanonicalJson.Serialize(Planner.Seal(Planner.Compute(fromList), key)), CanonicalJson.Serialize(plan));
        Assert.True(plan["lanes"]!.AsArray().Count > 4000);
    }

    [Fact]
    public void A_change_that_frees_capacity_admits_what_the_base_rejected_and_one_that_takes_it_rejects()
    {
        using var key = SigningKey.Generate();
        List<SymbolContract> contracts =
        [
            PlannerTests.Contract("rtt://inc/svc/a", cpu: 400, mem: 64), PlannerTests.Contract("rtt://inc/svc/b", cpu: 400, mem: 64),
            PlannerTests.Contract("rtt://inc/svc/c", cpu: 400, mem: 64), PlannerTests.Contract("rtt://inc/svc/d", cpu: 400, mem: 64),
            PlannerTests.Contract("rtt://inc/svc/small", cpu: 10, mem: 1),
        ];
        var topology = PlannerTests.Topology(("h0", "n0", 1300, 1000));
        var routes = PlannerTests.Routes(PlannerTests.Route("rtt://inc/svc/a", "rtt://inc/svc/b", priority: 2), PlannerTests.Route("rtt://inc/svc/c", "rtt://inc/svc/d"));
        var basePlan = Plan(routes, topology, contracts, null, key);
        Assert.Single(basePlan["lanes"]!.AsArray());
        Assert.Equal("rtt://inc/svc/d", (string)basePlan["rejected"]![0]!["route"]!["to"]!); // capacity went to a -> b (CP-SAT: admission)

        // a -> b now goes to a small provider: b's capacity is freed, and c -> d fits.
        var freed = (JsonObject)routes.DeepClone();
        freed["routes"]![0]!["to"] = "rtt://inc/svc/small";
        var afterFree = Plan(freed, topology, contracts, basePlan, key);
        Assert.Equal(2, afterFree["lanes"]!.AsArray().Count);
        Assert.Empty(afterFree["rejected"]!.AsArray());
        Assert.Equal(["rtt://inc/svc/a -> rtt://inc/svc/small", "rtt://inc/svc/c -> rtt://inc/svc/d"],
            afterFree["routes_add"]!.AsArray().Select(r => $"{r!["from"]} -> {r["to"]}").Order(StringComparer.Ordinal));
        Assert.Equal("rtt://inc/svc/b", (string)afterFree["routes_remove"]![0]!["to"]!);

        // Back to b, now as the less important route: c -> d keeps its place (priority 0 each, file order) and a -> b is rejected.
        var contested = (JsonObject)freed.DeepClone();
        contested["routes"]![0]!["to"] = "rtt://inc/svc/b";
        contested["routes"]![0]!["qos"]!["priority"] = 0;
        contested["routes"] = new JsonArray(contested["routes"]![1]!.DeepClone(), contested["routes"]![0]!.DeepClone());
        var afterContest = Plan(contested, topology, contracts, afterFree, key);
        Assert.Equal("rtt://inc/svc/d", (string)afterContest["lanes"]!.AsArray().Single()!["route"]!["to"]!);
        Assert.Equal("rtt://inc/svc/b", (string)afterContest["rejected"]![0]!["route"]!["to"]!);

        Planner.ForgetCanonicalBytes();
        Assert.Equal((string)afterContest["plan_id"]!, (string)Plan(contested, topology, contracts, afterFree, key)["plan_id"]!);
    }

    [Fact]
    public void Changes_decided_by_cp_sat_against_a_base_from_the_same_catalogue_are_the_plans_made_from_scratch()
    {
        // Tight nodes, so the greedy pass leaves routes out and CP-SAT decides (moving symbols the base placed); the base is
        // planned from the catalogue in this process, so the change reads the base's nodes by rank (BaseIndex.ByRank).
        using var key = SigningKey.Generate();
        var (fromModel, moved) = (0, 0);
        for (var seed = 0; seed < 40; seed++)
        {
            var rnd = new Random(seed);
            var contracts = Catalogue(seed);
            var catalogue = new SymbolCatalogue(contracts);
            var topology = Topology(tight: true);
            var routes = PlannerTests.Routes([.. Enumerable.Range(0, rnd.Next(8, 24)).Select(_ => RandomRoute(rnd))]);
            var basePlan = Planner.Seal(Planner.Compute(PlanInputs.Build(routes, PlannerTests.OpenPolicy(), topology, catalogue, null)), key);
            var changed = (JsonObject)routes.DeepClone();
            for (var n = rnd.Next(1, 4); n > 0; n--)
            {
                changed["routes"]![rnd.Next(changed["routes"]!.AsArray().Count)] = RandomRoute(rnd);
            }

            var outcome = Planner.Compute(PlanInputs.Build(changed, PlannerTests.OpenPolicy(), topology, catalogue, basePlan));
            fromModel += outcome.Solver == "cp-sat" ? 1 : 0;
            var warm = CanonicalJson.Serialize(Planner.Seal(outcome, key));
            moved += JsonNode.Parse(warm)!["moves"]!.AsArray().Count;
            Planner.ForgetCanonicalBytes();
            var cold = CanonicalJson.Serialize(Plan(changed, topology, contracts, basePlan, key));
            Assert.Equal(Encoding.UTF8.GetString(cold), Encoding.UTF8.GetString(warm));
        }

        Assert.True(fromModel >= 5, $"only {fromModel} changes were decided by CP-SAT");
        Assert.True(moved >= 3, $"only {moved} symbols moved");
    }

    [Fact]
    public void A_change_gives_one_plan_id_in_any_order_and_locale()
    {
        using var key = SigningKey.Generate();
        var rnd = new Random(20);
        var contracts = Catalogue(20);
        var routes = PlannerTests.Routes([.. Enumerable.Range(0, 40).Select(_ => RandomRoute(rnd))]);
        var basePlan = Plan(routes, Topology(true), contracts, null, key);
        var changed = (JsonObject)routes.DeepClone();
        changed["routes"]![7] = RandomRoute(rnd);
        var ids = new HashSet<string>();
        var culture = CultureInfo.CurrentCulture;
        try
        {
            foreach (var name in new[] { "en-US", "de-DE", "tr-TR", "ar-SA", "fa-IR" })
            {
                CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = new CultureInfo(name);
                var shuffle = new Random(name.GetHashCode(StringComparison.Ordinal));
                List<SymbolContract> order = [.. contracts.OrderBy(_ => shuffle.Next())];
                var topology = Topology(true);
                topology["hosts"] = new JsonArray([.. topology["hosts"]!.AsArray().Select(h => h!.DeepClone()).OrderBy(_ => shuffle.Next())]);
                Plan(routes, topology, order, null, key); // the base again, in this order: what is kept comes from it
                ids.Add((string)Plan(changed, topology, order, basePlan, key)["plan_id"]!);
                Planner.ForgetCanonicalBytes();
                ids.Add((string)Plan(changed, topology, order, basePlan, key)["plan_id"]!);
            }
        }
        finally
        {
            CultureInfo.CurrentCulture = CultureInfo.CurrentUICulture = culture;
        }

        Assert.Single(ids);
    }

    [Fact]
    public void Chains_of_random_changes_to_a_few_hundred_routes_are_the_plans_made_from_scratch()
    {
        // Each step changes one kind of input: a route added, removed, given another provider; a contract changed; the
        // policy changed; the topology changed or a node down. The steps are planned one after another in this process
        // (each with the one before as its base, as a silo re-planning does), then each again with nothing kept.
        using var key = SigningKey.Generate();
        string[] symbols = [.. Enumerable.Range(0, 160).Select(i => $"rtt://big/svc/s{i:000}")];
        var kinds = new HashSet<int>();
        for (var seed = 0; seed < 8; seed++)
        {
            var rnd = new Random(1000 + seed);
            JsonObject Route() => PlannerTests.Route(symbols[rnd.Next(symbols.Length)], symbols[rnd.Next(symbols.Length)],
                rnd.Next(4) switch { 0 => "^1.0.0", 1 => "[1.1.0,2.0.0)", _ => null }, rnd.Next(4) == 0 ? rnd.Next(10, 900) : null, rnd.Next(3), rnd.Next(0, 50_000) / 3.0);
            List<SymbolContract> contracts = [.. symbols.SelectMany(s => Enumerable.Range(0, rnd.Next(1, 3)).Select(v =>
                PlannerTests.Contract(s, $"1.{v}.0", "T", rnd.Next(12) == 0 ? "U" : "T", rnd.Next(0, 40), rnd.Next(0, 4) * 10, rnd.Next(0, 3) * 8,
                    [.. new[] { "shm", "uds", "tcp" }.Where(_ => rnd.Next(6) > 0).DefaultIfEmpty("tcp")])))];
            contracts.RemoveAt(rnd.Next(contracts.Count)); // an unknown symbol or a missing version
            var routes = PlannerTests.Routes([.. Enumerable.Range(0, 300).Select(_ => Route())]);
            var policy = PlannerTests.OpenPolicy();
            var topology = PlannerTests.Topology(("h0", "n0", 100_000, 100_000), ("h0", "n1", 100_000, 100_000), ("h1", "n2", 100_000, 100_000));
            IReadOnlyCollection<string>? down = null;

            // The same chain planned a second time from a catalogue, made again only when a contract changed (a planner that
            // holds the registry in memory): routes keep what was learned of them (their ends' ranks and their checks' outcome)
            // while the catalogue and the rules stay, and must learn again when either changes.
            var catalogue = new SymbolCatalogue(contracts);
            var steps = new List<(JsonObject Routes, JsonObject Policy, JsonObject Topology, List<SymbolContract> Contracts, IReadOnlyCollection<string>? Down, JsonObject? Base, byte[] Warm, byte[] FromCatalogue)>();
            JsonObject? previous = null;
            for (var step = 0; step < 5; step++)
            {
                if (step > 0)
                {
                    (routes, policy, topology, contracts) = ((JsonObject)routes.DeepClone(), (JsonObject)policy.DeepClone(), (JsonObject)topology.DeepClone(), [.. contracts]);
                    var list = routes["routes"]!.AsArray();
                    var kind = rnd.Next(6);
                    kinds.Add(kind);
                    switch (kind)
                    {
                        case 0:
                            list.Insert(rnd.Next(list.Count + 1), Route());
                            break;
                        case 1:
                            list.RemoveAt(rnd.Next(list.Count));
                            break;
                        case 2:
                            list[rnd.Next(list.Count)]!["to"] = symbols[rnd.Next(symbols.Length)];
                            break;
                        case 3:
                            var at = rnd.Next(contracts.Count);
                            contracts[at] = contracts[at] with
                            {
                                LatencyUs = rnd.Next(0, 2_000), CpuMillis = rnd.Next(0, 4) * 10,
                                Output = JsonValue.Create(rnd.Next(2) == 0 ? "T" : "U"), Lanes = rnd.Next(2) == 0 ? ["tcp"] : ["shm", "tcp", "uds"],
                            };
                            if (rnd.Next(2) == 0)
                            {
                                // A new address ahead of every other in ordinal order: every symbol's rank in the catalogue moves.
                                contracts.Add(PlannerTests.Contract($"rtt://big/svc/a{step}", "1.0.0", "T", "T", 1, 10, 8));
                            }

                            catalogue = new SymbolCatalogue(contracts);
                            break;
                        case 4:
                            switch (rnd.Next(3))
                            {
                                case 0:
                                    policy["qos"] = new JsonArray(new JsonObject { ["match"] = "rtt://big/svc/s0*", ["p99_budget_us"] = rnd.Next(20, 400) });
                                    break;
                                case 1:
                                    policy["acl"] = new JsonArray(new JsonObject { ["deny"] = new JsonObject { ["from"] = "rtt://big/svc/s1*", ["to"] = "rtt://big/**" } });
                                    break;
                                default:
                                    policy["strict"] = true;
                                    policy["acl"] = new JsonArray(new JsonObject { ["allow"] = new JsonObject { ["from"] = "rtt://big/svc/*", ["to"] = $"rtt://big/svc/s{rnd.Next(2)}*" } });
                                    break;
                            }

                            break;
                        default:
                            if (rnd.Next(2) == 0)
                            {
                                down = ["n1"];
                            }
                            else
                            {
                                topology["lanes"]!["uds"]!["p99_us"] = rnd.Next(20, 200);
                                topology["hosts"]![0]!["numa_nodes"]![0]!["cpu_millis"] = rnd.Next(200, 2_000); // tight: capacity decides
                            }

                            break;
                    }
                }

                var warm = Plan(routes, policy, topology, contracts, down, previous, key);
                var fromCatalogue = Plan(routes, policy, topology, catalogue, down, previous, key);
                steps.Add((routes, policy, topology, contracts, down, previous, CanonicalJson.Serialize(warm), CanonicalJson.Serialize(fromCatalogue)));
                previous = warm;
            }

            foreach (var s in steps)
            {
                Planner.ForgetCanonicalBytes();
                var cold = Plan(s.Routes, s.Policy, s.Topology, s.Contracts, s.Down, s.Base, key);
                Assert.Equal(Encoding.UTF8.GetString(CanonicalJson.Serialize(cold)), Encoding.UTF8.GetString(s.Warm));
                Assert.Equal(Encoding.UTF8.GetString(s.Warm), Encoding.UTF8.GetString(s.FromCatalogue));
            }
        }

        Assert.Equal(6, kinds.Count); // every kind of change was tried

        static JsonObject Plan(JsonObject routes, JsonObject policy, JsonObject topology, IEnumerable<SymbolContract> contracts, IReadOnlyCollection<string>? down, JsonObject? basePlan, SigningKey key) =>
            Planner.Seal(Planner.Compute(PlanInputs.Build(routes, policy, topology, contracts, basePlan, down: down)), key);
    }
}

/// <summary>Tests that clear the planner's process-wide caches run one at a time.</summary>
[CollectionDefinition(nameof(PlannerCachesCollection), DisableParallelization = true)]
public sealed class PlannerCachesCollection;
