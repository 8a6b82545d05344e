using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>Planning with nodes down (policy auto_replan, docs/operations.md): what moves, what is rejected, how it hashes.</summary>
public sealed class DownNodePlanTests
{
    private static readonly JsonObject Topology3 = PlannerTests.Topology(("h1", "n0", 1000, 1000), ("h1", "n1", 1000, 1000), ("h1", "n2", 1000, 1000));

    private static (JsonObject Routes, SymbolContract[] Contracts, JsonObject Policy) Inputs()
    {
        var routes = PlannerTests.Routes(PlannerTests.Route("rtt://ui/x/a", "rtt://core/x/b"), PlannerTests.Route("rtt://ui/x/c", "rtt://core/x/d"));
        SymbolContract[] contracts = [PlannerTests.Contract("rtt://ui/x/a"), PlannerTests.Contract("rtt://core/x/b"), PlannerTests.Contract("rtt://ui/x/c"), PlannerTests.Contract("rtt://core/x/d")];
        var policy = new JsonObject { ["strict"] = false, ["pins"] = new JsonObject { ["rtt://ui/x/a"] = "n2", ["rtt://core/x/b"] = "n2" } };
        return (routes, contracts, policy);
    }

    [Fact]
    public void Routes_pinned_to_a_down_node_are_rejected_as_node_down_and_the_rest_is_placed_on_the_nodes_left()
    {
        var (routes, contracts, policy) = Inputs();
        var full = Planner.Compute(PlanInputs.Build(routes, policy, Topology3, contracts, null));
        Assert.Empty(full.Rejected);
        Assert.Equal("n2", (string?)full.Body["placement"]!["rtt://ui/x/a"]);

        // The unpinned pair sat on n2 too? Put it there through the base plan, then take n2 down: it moves, the pinned one is rejected.
        var down = PlanInputs.Build(routes, policy, Topology3, contracts, full.Body, down: ["n2"]);
        Assert.Equal(["n2"], down.Down);
        var plan = Planner.Compute(down);
        var rejection = Assert.Single(plan.Rejected);
        Assert.Equal(Constraint.NodeDown, rejection.Constraint);
        Assert.Equal(0, rejection.Route.Index);
        Assert.Equal("""{"symbol":"rtt://ui/x/a","node":"n2"}""", rejection.Values.ToJsonString());
        var placement = plan.Body["placement"]!.AsObject();
        Assert.DoesNotContain(placement, p => (string?)p.Value == "n2");
        Assert.NotNull(placement["rtt://core/x/d"]);

        // Nodes down are part of the inputs (a different hash), and a plan with none hashes as before.
        Assert.NotEqual(PlanInputs.Build(routes, policy, Topology3, contracts, null).Hash, PlanInputs.Build(routes, policy, Topology3, contracts, null, down: ["n2"]).Hash);
        Assert.Equal(PlanInputs.Build(routes, policy, Topology3, contracts, null).Hash, PlanInputs.Build(routes, policy, Topology3, contracts, null, down: []).Hash);
        Assert.Equal(PlanInputs.Build(routes, policy, Topology3, contracts, null).Hash, PlanInputs.Build(routes, policy, Topology3, contracts, null, down: ["n9"]).Hash); // not in the topology: ignored
        // Deterministic: the order the nodes are named in does not matter.
        Assert.Equal(PlanInputs.Build(routes, policy, Topology3, contracts, null, down: ["n2", "n1"]).Hash, PlanInputs.Build(routes, policy, Topology3, contracts, null, down: ["n1", "n2"]).Hash);
    }

    [Fact]
    public void Every_node_down_is_a_clear_error()
    {
        var (routes, contracts, policy) = Inputs();
        var ex = Assert.Throws<RttException>(() => PlanInputs.Build(routes, policy, Topology3, contracts, null, down: ["n0", "n1", "n2"]));
        Assert.Equal(ErrorCodes.PlanTopologyInvalid, ex.Code);
        Assert.Contains("every NUMA node", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Auto_replan_is_read_from_the_policy_and_does_not_change_the_inputs_hash()
    {
        var (routes, contracts, policy) = Inputs();
        var off = PlanInputs.Build(routes, policy, Topology3, contracts, null);
        policy["auto_replan"] = true;
        var on = PlanInputs.Build(routes, policy, Topology3, contracts, null);
        Assert.False(off.AutoReplan);
        Assert.True(on.AutoReplan);
        Assert.Equal(off.Hash, on.Hash);
        policy["auto_replan"] = "yes";
        Assert.Equal(ErrorCodes.PlanInputInvalid, Assert.Throws<RttException>(() => PlanInputs.Build(routes, policy, Topology3, contracts, null)).Code);
    }
}
