using System.Text.Json.Nodes;
using CsCheck;
using NuGet.Versioning;
using Rtt.Core.Json;
using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>
/// Random workspaces through the planner, checked by an independent checker (this file does not call the
/// planner's own checks): every admitted route satisfies every constraint, every route is either admitted or
/// rejected with a reason, and the plan does not depend on the order of nodes, hosts, contracts or ACL rules.
/// </summary>
public sealed class PlannerPropertyTests
{
    private sealed record World(JsonObject Routes, JsonObject Policy, JsonObject Topology, List<SymbolContract> Contracts);

    private static readonly string[] Types = ["A", "B"];
    private static readonly Dictionary<string, double> LaneP99 = new() { ["shm"] = 5, ["uds"] = 50, ["tcp"] = 500 };

    private static World Generate(int seed)
    {
        var rnd = new Random(seed);
        var hosts = rnd.Next(1, 3);
        var nodes = new List<(string Host, string Id, double Cpu, double Mem)>();
        for (var i = 0; i < rnd.Next(1, 5); i++)
        {
            nodes.Add(($"h{rnd.Next(hosts)}", $"n{i}", rnd.Next(1, 5) * 250, rnd.Next(1, 5) * 256));
        }

        var contracts = new List<SymbolContract>();
        var symbols = Enumerable.Range(0, rnd.Next(2, 8)).Select(i => $"rtt://s/x/s{i}").ToList();
        foreach (var s in symbols)
        {
            var cpu = rnd.Next(0, 5) * 100;
            var mem = rnd.Next(0, 4) * 128;
            var lanes = new[] { "shm", "uds", "tcp" }.Where(_ => rnd.Next(4) > 0).DefaultIfEmpty("tcp").ToArray();
            foreach (var v in Enumerable.Range(0, rnd.Next(1, 3)))
            {
                contracts.Add(PlannerTests.Contract(s, $"1.{v}.0", Types[rnd.Next(2)], Types[rnd.Next(2)], rnd.Next(0, 40), cpu, mem, lanes,
                    rnd.Next(5) == 0 ? ["A", "B"] : null));
            }
        }

        var routes = new List<JsonObject>();
        for (var i = 0; i < rnd.Next(0, 10); i++)
        {
            var from = rnd.Next(6) == 0 ? "rtt://s/x/missing" : symbols[rnd.Next(symbols.Count)];
            var to = symbols[rnd.Next(symbols.Count)];
            routes.Add(PlannerTests.Route(from, to, rnd.Next(3) switch { 0 => "^1.0.0", 1 => "[1.1.0,2.0.0)", _ => null },
                rnd.Next(3) == 0 ? null : rnd.Next(10, 600), rnd.Next(3), rnd.Next(0, 100_000)));
        }

        var policy = new JsonObject { ["strict"] = false };
        if (rnd.Next(3) == 0)
        {
            policy["acl"] = new JsonArray(new JsonObject { ["deny"] = new JsonObject { ["from"] = symbols[0], ["to"] = "rtt://s/**" } });
        }

        if (rnd.Next(3) == 0)
        {
            policy["pins"] = new JsonObject { [symbols[rnd.Next(symbols.Count)]] = nodes[rnd.Next(nodes.Count)].Id };
        }

        return new World(PlannerTests.Routes([.. routes]), policy, PlannerTests.Topology([.. nodes]), contracts);
    }

    [Fact]
    public void Admitted_routes_satisfy_every_constraint_and_the_rest_carry_a_reason()
    {
        Gen.Int.Sample(seed =>
        {
            var w = Generate(seed);
            var plan = Planner.Compute(PlanInputs.Build(w.Routes, w.Policy, w.Topology, w.Contracts, null)).Body;
            Check(w, plan);
        }, iter: 300);
    }

    [Fact]
    public void Plan_is_identical_under_permutation_of_nodes_contracts_and_acl_rules()
    {
        Gen.Int.Sample(seed =>
        {
            var w = Generate(seed);
            var a = Planner.Compute(PlanInputs.Build(w.Routes, w.Policy, w.Topology, w.Contracts, null)).Body;
            var rnd = new Random(seed ^ 0x5eed);
            var topology = (JsonObject)w.Topology.DeepClone();
            var hosts = topology["hosts"]!.AsArray().Select(h => h!.DeepClone()).OrderBy(_ => rnd.Next()).ToList();
            foreach (var h in hosts)
            {
                var shuffled = h["numa_nodes"]!.AsArray().Select(n => n!.DeepClone()).OrderBy(_ => rnd.Next()).ToList();
                h["numa_nodes"] = new JsonArray([.. shuffled]);
            }

            topology["hosts"] = new JsonArray([.. hosts]);
            var contracts = w.Contracts.OrderBy(_ => rnd.Next()).ToList();
            var b = Planner.Compute(PlanInputs.Build(w.Routes, w.Policy, topology, contracts, null)).Body;
            Assert.Equal(CanonicalJson.ToCanonicalString(a), CanonicalJson.ToCanonicalString(b));
        }, iter: 200);
    }

    /// <summary>The independent checker.</summary>
    private static void Check(World w, JsonObject plan)
    {
        var routes = w.Routes["routes"]!.AsArray().Select(r => r!.AsObject()).ToList();
        var placement = plan["placement"]!.AsObject().ToDictionary(p => p.Key, p => (string)p.Value!);
        var nodes = w.Topology["hosts"]!.AsArray().SelectMany(h => h!["numa_nodes"]!.AsArray().Select(n => (Host: (string)h["name"]!, Id: (string)n!["id"]!, Cpu: PlanInputs.Number(n["cpu_millis"]), Mem: PlanInputs.Number(n["memory_mb"])))).ToDictionary(n => n.Id);
        var admitted = plan["lanes"]!.AsArray().Select(l => ($"{l!["route"]!["from"]} -> {l["route"]!["to"]}", (string)l["kind"]!)).ToDictionary(x => x.Item1, x => x.Item2);
        var added = plan["routes_add"]!.AsArray().ToDictionary(r => $"{r!["from"]} -> {r["to"]}", r => (string)r!["version"]!);
        var rejectedIndexes = plan["rejected"]!.AsArray().Select(r => (int)r!["route"]!["index"]!).ToList();

        Assert.Equal(rejectedIndexes.Count, rejectedIndexes.Distinct().Count());
        Assert.All(plan["rejected"]!.AsArray(), r => Assert.False(string.IsNullOrEmpty((string?)r!["constraint"])));
        var seen = new HashSet<string>();
        for (var i = 0; i < routes.Count; i++)
        {
            var key = $"{routes[i]["from"]} -> {routes[i]["to"]}";
            var first = seen.Add(key);
            // Exactly one outcome per route: admitted (the first of duplicates) or rejected with a reason.
            Assert.True(first && admitted.ContainsKey(key) ^ rejectedIndexes.Contains(i) || !first && rejectedIndexes.Contains(i), $"route {i} {key}");
        }

        foreach (var (key, lane) in admitted)
        {
            var route = routes.First(r => $"{r["from"]} -> {r["to"]}" == key);
            var fromAddress = (string)route["from"]!;
            var toAddress = (string)route["to"]!;
            var version = NuGetVersion.Parse(added[key]);
            var range = PlanInputs.ParseRange((string?)route["version"] ?? "*", "test");
            var toVersions = w.Contracts.Where(c => c.Address == toAddress).Select(c => c.Version).ToList();
            Assert.True(range.Satisfies(version));
            Assert.Equal(toVersions.Where(range.Satisfies).Max(), version); // highest satisfying version
            var to = w.Contracts.Single(c => c.Address == toAddress && c.Version == version);
            var from = w.Contracts.Where(c => c.Address == fromAddress).MaxBy(c => c.Version)!;

            var outType = (string)from.Output!;
            var inType = (string)to.Input!;
            Assert.True(outType == inType || to.CompatibleWith.Contains(outType), $"type {outType} -> {inType}");

            if (w.Policy["acl"] is JsonArray)
            {
                Assert.NotEqual((string)w.Policy["acl"]![0]!["deny"]!["from"]!, fromAddress);
            }

            if (route["qos"]?["p99_budget_us"] is JsonValue budget)
            {
                Assert.True(LaneP99[lane] + to.LatencyUs <= PlanInputs.Number(budget), $"qos {lane} {to.LatencyUs} > {budget}");
            }

            Assert.Contains(lane, from.Lanes);
            Assert.Contains(lane, to.Lanes);
            var fn = nodes[placement[fromAddress]];
            var tn = nodes[placement[toAddress]];
            Assert.True(lane != "shm" || fn.Id == tn.Id, "shm needs one node");
            Assert.True(lane != "uds" || fn.Host == tn.Host, "uds needs one host");
        }

        foreach (var node in nodes.Values)
        {
            var here = placement.Where(p => p.Value == node.Id).Select(p => p.Key).ToList();
            var cpu = here.Sum(s => w.Contracts.Where(c => c.Address == s).Max(c => c.CpuMillis));
            var mem = here.Sum(s => w.Contracts.Where(c => c.Address == s).Max(c => c.MemoryMb));
            Assert.True(cpu <= node.Cpu && mem <= node.Mem, $"capacity of {node.Id}");
        }

        foreach (var (symbol, node) in w.Policy["pins"] as JsonObject ?? [])
        {
            if (placement.TryGetValue(symbol, out var placed))
            {
                Assert.Equal((string?)node, placed);
            }
        }
    }
}
