using System.Text.Json.Nodes;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>
/// Lanes across silos (docs/fabric.md): a route the planner placed across nodes is also given to its caller's node as a
/// forwarded lane, with the same route id, so the caller's lane host serves it by forwarding to the target node's.
/// </summary>
public sealed class ForwardLaneTargetTests
{
    private static SymbolContract Contract(string address) =>
        new(address, NuGet.Versioning.NuGetVersion.Parse("1.0.0"), "service", JsonValue.Create("T"), JsonValue.Create("T"), [], ["shm", "tcp", "uds"], 10, 100, 64, false, null);

    [Fact]
    public void A_route_across_nodes_is_forwarded_by_the_callers_node_and_a_route_on_one_node_is_not()
    {
        const string caller = "rtt://ui/x/caller", near = "rtt://core/api/near", other = "rtt://core/api/other", far = "rtt://core/api/far";
        var routes = new JsonObject { ["routes"] = new JsonArray([.. new[] { near, other, far }.Select(to => (JsonNode)new JsonObject { ["from"] = caller, ["to"] = to })]) };
        var policy = new JsonObject { ["strict"] = false, ["pins"] = new JsonObject { [caller] = "n0", [near] = "n0", [other] = "n1", [far] = "n2" } };
        var topology = JsonNode.Parse("""
            {"hosts":[{"name":"h1","numa_nodes":[{"id":"n0","cpu_millis":1000,"memory_mb":1000},{"id":"n1","cpu_millis":1000,"memory_mb":1000}]},
                      {"name":"h2","numa_nodes":[{"id":"n2","cpu_millis":1000,"memory_mb":1000}]}]}
            """)!.AsObject();
        var outcome = Planner.Compute(PlanInputs.Build(routes, policy, topology, [Contract(caller), Contract(near), Contract(other), Contract(far)], null));
        var body = outcome.Body;
        body["plan_id"] = "sha256:test";
        var targets = PlanTargets.Of(body);

        var n0 = LaneTarget.Of((NodeTarget)targets["node:n0"]);
        Assert.Equal(3, n0.Count);
        Assert.Null(n0.Single(l => l.To == near).Forward); // same node: shm, served here
        var toOther = n0.Single(l => l.To == other);
        Assert.Equal(("uds", "n1"), (toOther.Kind, toOther.Forward)); // another NUMA node of the host: forwarded over UDS
        var toFar = n0.Single(l => l.To == far);
        Assert.Equal(("tcp", "n2"), (toFar.Kind, toFar.Forward)); // another host: a tcp lane (the lane host answers that it is not forwarded yet)

        var served = LaneTarget.Of((NodeTarget)targets["node:n1"]).Single();
        Assert.Equal((other, (string?)null, toOther.RouteId), (served.To, served.Forward, served.RouteId)); // the target's node serves it, same id
        Assert.Null(LaneTarget.Of((NodeTarget)targets["node:n2"]).Single().Forward);
        Assert.Equal(targets, PlanTargets.Of(body)); // deterministic
    }
}
