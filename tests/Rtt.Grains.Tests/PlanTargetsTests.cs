using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Calls;
using Rtt.Core.Hashing;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>
/// The participants' typed targets (<see cref="PlanTargets"/>): a node target holds its lanes' specs, a route target
/// refers to its lane by hash (each spec stored once), targets compare by value, and the JSON ledgers store is the
/// same as before targets were typed, so ledgers written then still read.
/// </summary>
public sealed class PlanTargetsTests
{
    private const string Caller = "rtt://ui/x/caller", Near = "rtt://core/api/near", Far = "rtt://core/api/far", Tool = "rtt://mcp/s/tool";

    /// <summary>Two nodes of one host; a tuned plan that never parks; a lane across nodes (forwarded by the caller's node) of each kind uds and tcp; an unsandboxed driver; a lane without ring_size.</summary>
    private const string PlanJson = """
        {"plan_id":"sha256:fixture",
         "placement":{"rtt://ui/x/caller":"n0","rtt://core/api/near":"n0","rtt://core/api/far":"n1","rtt://mcp/s/tool":"n1"},
         "endpoints":{"sha256:e1":{"kind":"process","command":"/bin/svc","args":["a<b>&'+\u00e9"]},"sha256:e2":{"kind":"process","command":"/bin/far"}},
         "tuning":{"profile":"p","spins":10000,"yields":200,"park":false},
         "lanes":[
           {"route":{"from":"rtt://ui/x/caller","to":"rtt://core/api/near"},"kind":"shm","ring_size":1024,"endpoint":"sha256:e1"},
           {"route":{"from":"rtt://ui/x/caller","to":"rtt://core/api/far"},"kind":"uds","ring_size":4096,"endpoint":"sha256:e2"},
           {"route":{"from":"rtt://ui/x/caller","to":"rtt://mcp/s/tool"},"kind":"tcp","unsandboxed":true}
         ]}
        """;

    // What PlanTargets wrote (JsonNode.ToJsonString of the payload) before targets were typed, for PlanJson: the
    // node targets' JSON, which ledgers hold, and the route targets' (whole lane specs).
    private const string OldNodeN0 = """{"endpoints":{"sha256:e1":{"kind":"process","command":"/bin/svc","args":["a\u003Cb\u003E\u0026\u0027\u002B\u00E9"]}},"lanes":[{"endpoint":"sha256:e1","from":"rtt://ui/x/caller","idle":{"spins":10000,"yields":200,"park":false},"kind":"shm","node":"n0","ring_size":1024,"route_id":737300747,"to":"rtt://core/api/near"},{"forward":"n1","from":"rtt://ui/x/caller","idle":{"spins":10000,"yields":200,"park":false},"kind":"tcp","node":"n0","route_id":4142429648,"to":"rtt://mcp/s/tool"},{"forward":"n1","from":"rtt://ui/x/caller","idle":{"spins":10000,"yields":200,"park":false},"kind":"uds","node":"n0","route_id":4243123831,"to":"rtt://core/api/far"}],"node":"n0","symbols":["rtt://core/api/near","rtt://ui/x/caller"]}""";
    private const string OldNodeN1 = """{"endpoints":{"sha256:e2":{"kind":"process","command":"/bin/far"}},"lanes":[{"from":"rtt://ui/x/caller","idle":{"spins":10000,"yields":200,"park":false},"kind":"tcp","node":"n1","ring_size":null,"route_id":4142429648,"to":"rtt://mcp/s/tool","unsandboxed":true},{"endpoint":"sha256:e2","from":"rtt://ui/x/caller","idle":{"spins":10000,"yields":200,"park":false},"kind":"uds","node":"n1","ring_size":4096,"route_id":4243123831,"to":"rtt://core/api/far"}],"node":"n1","symbols":["rtt://core/api/far","rtt://mcp/s/tool"]}""";
    private const string OldRouteFar = """{"endpoint":"sha256:e2","from":"rtt://ui/x/caller","idle":{"spins":10000,"yields":200,"park":false},"kind":"uds","node":"n1","ring_size":4096,"route_id":4243123831,"to":"rtt://core/api/far"}""";

    // Ledgers as the ledger stores wrote them (System.Text.Json of LedgerState) before targets were typed: node n1's,
    // with n0's target as its previous one (to exercise both), and route caller -> far's, with a reservation.
    private const string OldNodeLedger = """{"AppliedTx":3,"AppliedPlan":"sha256:fixture","AppliedTarget":"{\u0022endpoints\u0022:{\u0022sha256:e2\u0022:{\u0022kind\u0022:\u0022process\u0022,\u0022command\u0022:\u0022/bin/far\u0022}},\u0022lanes\u0022:[{\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022tcp\u0022,\u0022node\u0022:\u0022n1\u0022,\u0022ring_size\u0022:null,\u0022route_id\u0022:4142429648,\u0022to\u0022:\u0022rtt://mcp/s/tool\u0022,\u0022unsandboxed\u0022:true},{\u0022endpoint\u0022:\u0022sha256:e2\u0022,\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022uds\u0022,\u0022node\u0022:\u0022n1\u0022,\u0022ring_size\u0022:4096,\u0022route_id\u0022:4243123831,\u0022to\u0022:\u0022rtt://core/api/far\u0022}],\u0022node\u0022:\u0022n1\u0022,\u0022symbols\u0022:[\u0022rtt://core/api/far\u0022,\u0022rtt://mcp/s/tool\u0022]}","ReservedTx":null,"ReservedPlan":null,"ReservedTarget":null,"LastAbortedTx":null,"VoteTx":3,"VoteYes":true,"VoteReason":"reserved","PreviousTarget":"{\u0022endpoints\u0022:{\u0022sha256:e1\u0022:{\u0022kind\u0022:\u0022process\u0022,\u0022command\u0022:\u0022/bin/svc\u0022,\u0022args\u0022:[\u0022a\\u003Cb\\u003E\\u0026\\u0027\\u002B\\u00E9\u0022]}},\u0022lanes\u0022:[{\u0022endpoint\u0022:\u0022sha256:e1\u0022,\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022shm\u0022,\u0022node\u0022:\u0022n0\u0022,\u0022ring_size\u0022:1024,\u0022route_id\u0022:737300747,\u0022to\u0022:\u0022rtt://core/api/near\u0022},{\u0022forward\u0022:\u0022n1\u0022,\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022tcp\u0022,\u0022node\u0022:\u0022n0\u0022,\u0022route_id\u0022:4142429648,\u0022to\u0022:\u0022rtt://mcp/s/tool\u0022},{\u0022forward\u0022:\u0022n1\u0022,\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022uds\u0022,\u0022node\u0022:\u0022n0\u0022,\u0022route_id\u0022:4243123831,\u0022to\u0022:\u0022rtt://core/api/far\u0022}],\u0022node\u0022:\u0022n0\u0022,\u0022symbols\u0022:[\u0022rtt://core/api/near\u0022,\u0022rtt://ui/x/caller\u0022]}"}""";
    private const string OldRouteLedger = """{"AppliedTx":3,"AppliedPlan":"sha256:fixture","AppliedTarget":"{\u0022endpoint\u0022:\u0022sha256:e2\u0022,\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022uds\u0022,\u0022node\u0022:\u0022n1\u0022,\u0022ring_size\u0022:4096,\u0022route_id\u0022:4243123831,\u0022to\u0022:\u0022rtt://core/api/far\u0022}","ReservedTx":5,"ReservedPlan":"sha256:next","ReservedTarget":"{\u0022from\u0022:\u0022rtt://ui/x/caller\u0022,\u0022idle\u0022:{\u0022spins\u0022:10000,\u0022yields\u0022:200,\u0022park\u0022:false},\u0022kind\u0022:\u0022tcp\u0022,\u0022node\u0022:\u0022n1\u0022,\u0022ring_size\u0022:null,\u0022route_id\u0022:4142429648,\u0022to\u0022:\u0022rtt://mcp/s/tool\u0022,\u0022unsandboxed\u0022:true}","LastAbortedTx":null,"VoteTx":5,"VoteYes":true,"VoteReason":"reserved","PreviousTarget":null}""";

    private static JsonObject Plan(Action<JsonObject>? change = null)
    {
        var plan = JsonNode.Parse(PlanJson)!.AsObject();
        change?.Invoke(plan);
        return plan;
    }

    private static string RouteName(string to) => PlanTargets.RoutePrefix + PlanTargets.RouteKey(Caller, to);

    [Fact]
    public void Node_targets_are_typed_and_write_the_json_ledgers_held_before()
    {
        var targets = PlanTargets.Of(Plan());
        Assert.Equal(["node:n0", "node:n1", RouteName(Far), RouteName(Near), RouteName(Tool)], targets.Keys);
        var n0 = Assert.IsType<NodeTarget>(targets["node:n0"]);
        var n1 = Assert.IsType<NodeTarget>(targets["node:n1"]);
        Assert.Equal(OldNodeN0, n0.ToJson());
        Assert.Equal(OldNodeN1, n1.ToJson());
        Assert.Equal(n0, NodeTarget.Parse(OldNodeN0)); // and read back to the same value
        Assert.Equal(n1, NodeTarget.Parse(OldNodeN1));

        Assert.Equal(new[] { Near, Caller }, n0.Symbols.ToArray());
        var near = Assert.Single(n0.Lanes, l => l.To == Near);
        Assert.Equal(new LaneSpec(RouteIds.Of(Caller, Near), Caller, Near, "shm", "n0", 1024, "sha256:e1", new LaneIdle(10_000, 200, false)), near);
        Assert.Equal("sha256:e1", Assert.Single(n0.Endpoints).Hash);
        Assert.Contains("/bin/svc", n0.ServeOf("sha256:e1"), StringComparison.Ordinal);
        var tool = Assert.Single(n1.Lanes, l => l.To == Tool);
        Assert.Equal((true, (int?)null, "tcp"), (tool.Unsandboxed, tool.RingSize, tool.Kind));
    }

    [Fact]
    public void Each_lane_spec_is_stored_once_in_its_node_and_the_route_refers_to_it()
    {
        var targets = PlanTargets.Of(Plan());
        var n1 = (NodeTarget)targets["node:n1"];
        var lane = Assert.Single(n1.Lanes, l => l.To == Far);
        var route = Assert.IsType<RouteTarget>(targets[RouteName(Far)]);
        Assert.Equal(new RouteTarget(Caller, Far, RouteIds.Of(Caller, Far), "n1", "uds", lane.Hash()), route);
        Assert.Equal(ContentHash.Of(System.Text.Encoding.UTF8.GetBytes(lane.ToJson())), route.Lane);

        // The route's JSON is the reference alone: none of the lane's settings, and far smaller than the spec.
        var json = JsonNode.Parse(route.ToJson())!.AsObject();
        Assert.Equal(["from", "kind", "lane", "node", "route_id", "to"], json.Select(m => m.Key));
        Assert.True(route.ToJson().Length < OldRouteFar.Length, route.ToJson());

        // No lane spec (its ring, endpoint, idle settings) is in more than one target: the served lane's JSON is in n1's target only.
        var served = lane.ToJson();
        Assert.Equal(["node:n1"], targets.Where(t => t.Value.ToJson().Contains(served, StringComparison.Ordinal)).Select(t => t.Key));
    }

    [Fact]
    public void A_changed_ring_size_changes_the_serving_nodes_target_and_the_routes_and_nothing_else()
    {
        var before = PlanTargets.Of(Plan());
        var after = PlanTargets.Of(Plan(p => p["lanes"]![1]!["ring_size"] = 8192)); // caller -> far
        var changes = PlanTargets.Changes(before, after);
        Assert.Equal(["node:n1", RouteName(Far)], changes.Keys); // n0 forwards it: its forward lane has no ring
        Assert.Equal(8192, ((NodeTarget)changes["node:n1"]!).Lanes.Single(l => l.To == Far).RingSize);
        Assert.NotEqual(((RouteTarget)before[RouteName(Far)]).Lane, ((RouteTarget)changes[RouteName(Far)]!).Lane);

        // A re-tune changes every lane: every node and every route.
        var retuned = PlanTargets.Of(Plan(p => p["tuning"]!["spins"] = 20_000));
        Assert.Equal(before.Keys.ToList(), PlanTargets.Changes(before, retuned).Keys.ToList());
    }

    [Fact]
    public void Targets_compare_by_value_so_the_same_plan_changes_nothing()
    {
        var a = PlanTargets.Of(Plan());
        var b = PlanTargets.Of(Plan());
        Assert.NotSame(a["node:n0"], b["node:n0"]);
        Assert.Equal(a["node:n0"], b["node:n0"]);
        Assert.Equal(a["node:n0"].GetHashCode(), b["node:n0"].GetHashCode());
        Assert.Empty(PlanTargets.Changes(a, b));

        // Element by element: one symbol, one endpoint's serve block, or the order of lanes makes them differ.
        var n0 = (NodeTarget)a["node:n0"];
        Assert.NotEqual(n0, n0 with { Symbols = [.. n0.Symbols, "rtt://x/y/z"] });
        Assert.NotEqual(n0, n0 with { Endpoints = [new LaneEndpoint("sha256:e1", "{}")] });
        Assert.NotEqual(n0, n0 with { Lanes = [.. n0.Lanes.Reverse()] });
        Assert.Equal(4, PlanTargets.Changes(a, new SortedDictionary<string, ParticipantTarget>(StringComparer.Ordinal) { ["node:n0"] = n0 }).Count); // the rest released
    }

    [Fact]
    public void A_route_across_nodes_is_a_forward_lane_of_the_callers_node_with_the_serving_node_in_the_route()
    {
        var targets = PlanTargets.Of(Plan());
        var n0 = (NodeTarget)targets["node:n0"];
        var forwards = n0.Lanes.Where(l => l.Forward is not null).OrderBy(l => l.To, StringComparer.Ordinal).ToList();
        Assert.Equal([(Far, "uds", "n1"), (Tool, "tcp", "n1")], forwards.Select(l => (l.To, l.Kind, l.Forward!)));
        Assert.All(forwards, l => Assert.Equal(("n0", (int?)null, (string?)null, false, new LaneIdle(10_000, 200, false)), (l.Node, l.RingSize, l.Endpoint, l.Unsandboxed, l.Idle)));
        Assert.Equal("n1", ((RouteTarget)targets[RouteName(Tool)]).Node); // the route refers to the lane its target's node serves
        Assert.Equal(((RouteTarget)targets[RouteName(Tool)]).Lane, ((NodeTarget)targets["node:n1"]).Lanes.Single(l => l.To == Tool).Hash());

        var lanes = LaneTarget.Of(n0);
        Assert.Equal("n1", lanes.Single(l => l.To == Far).Forward);
        Assert.Null(lanes.Single(l => l.To == Near).Forward);
        Assert.Equal(lanes, LaneTarget.Of(n0.ToJson())); // the typed target and its ledger text give the same lanes
    }

    [Fact]
    public void A_ledger_stores_its_targets_in_place_and_reads_them_back_byte_for_byte()
    {
        var targets = PlanTargets.Of(Plan());
        var node = targets["node:n0"];
        var route = targets[RouteName(Tool)];
        var state = new LedgerState { AppliedTx = 7, AppliedPlan = "sha256:a", AppliedTarget = node.ToJson(), PreviousTarget = targets["node:n1"].ToJson(), VoteTx = 7, VoteYes = true, VoteReason = "reserved é" };
        Assert.True(TxLedger.Prepare(state, 8, "sha256:b", route, _ => null).Vote.Yes);
        var text = LedgerJson.Write(state);

        // The targets are JSON values in the row, not strings holding escaped JSON.
        Assert.Contains("\"AppliedTarget\":{", text, StringComparison.Ordinal);
        Assert.Contains("\"ReservedTarget\":{", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u0022", text, StringComparison.Ordinal);
        var back = LedgerJson.Read(text);
        Assert.Equal(JsonSerializer.Serialize(state), JsonSerializer.Serialize(back)); // every member, targets byte for byte
        Assert.Equal(node, ParticipantTarget.Parse("node:n0", back.AppliedTarget));

        // Targets that are not one JSON object (a test's or an old tool's text) stay strings; null stays null.
        foreach (var odd in new[] { "plain", "{\"a\":1} ", "{\"a\":", "[1]", "{}{}", "" })
        {
            var s = new LedgerState { AppliedTx = 1, AppliedTarget = odd, ReservedTarget = "{\"x\":\"ü\\u0041\"}" };
            var read = LedgerJson.Read(LedgerJson.Write(s));
            Assert.Equal((odd, s.ReservedTarget, (string?)null), (read.AppliedTarget, read.ReservedTarget, read.PreviousTarget));
        }
    }

    [Fact]
    public void Route_targets_taken_from_the_memo_are_those_made_anew()
    {
        var memo = new PlanTargets.RouteTargetMemo();
        var plans = new[]
        {
            Plan(),
            Plan(p => p["lanes"]!.AsArray()[0]!["ring_size"] = 8192),
            Plan(p => p["lanes"]!.AsArray().RemoveAt(1)),
            Plan(),
            Plan(p => p["tuning"] = new JsonObject { ["spins"] = 1, ["yields"] = 2 }),
            Plan(),
        };
        foreach (var plan in plans)
        {
            var fresh = PlanTargets.Of(plan);
            var memoised = PlanTargets.Of(plan, memo);
            Assert.Equal(fresh.Keys, memoised.Keys);
            Assert.All(fresh, t => Assert.Equal(t.Value, memoised[t.Key]));
        }
    }

    [Fact]
    public void Ledgers_written_before_targets_were_typed_still_read()
    {
        var node = LedgerJson.Read(OldNodeLedger); // as the ledger stores read them (targets stored as strings)
        var route = LedgerJson.Read(OldRouteLedger);
        var options = new JsonSerializerOptions { IncludeFields = false }; // how they were read when these rows were written
        Assert.Equal(JsonSerializer.Serialize(JsonSerializer.Deserialize<LedgerState>(OldNodeLedger, options)), JsonSerializer.Serialize(node));
        var targets = PlanTargets.Of(Plan());

        // A node's applied and previous targets give the lanes the typed targets give.
        Assert.Equal(OldNodeN1, node.AppliedTarget);
        Assert.Equal(LaneTarget.Of((NodeTarget)targets["node:n1"]), LaneTarget.Of(node.AppliedTarget));
        Assert.Equal(LaneTarget.Of((NodeTarget)targets["node:n0"]), LaneTarget.Of(node.PreviousTarget));
        Assert.Equal(targets["node:n1"], ParticipantTarget.Parse("node:n1", node.AppliedTarget));

        // A route's whole lane spec reads as the reference to that lane, equal to what the plan asks now.
        Assert.Equal(OldRouteFar, route.AppliedTarget);
        Assert.Equal(targets[RouteName(Far)], ParticipantTarget.Parse(RouteName(Far), route.AppliedTarget));
        Assert.Equal(RouteIds.Of(Caller, Tool), RouteTarget.Parse(route.ReservedTarget!).RouteId);

        // The protocol goes on over an old ledger: the reservation is aborted by a newer prepare, a typed commit applies.
        var next = targets[RouteName(Tool)];
        Assert.True(TxLedger.Prepare(route, 6, "sha256:new", next, _ => null).Vote.Yes);
        Assert.Equal(5, route.LastAbortedTx);
        Assert.True(TxLedger.Commit(route, 6, "sha256:new", next));
        Assert.Equal((next.ToJson(), OldRouteFar), (route.AppliedTarget, route.PreviousTarget));

        // A node committing the same plan's target again in a new transaction: nothing changed for the SLO gates.
        Assert.True(TxLedger.Prepare(node, 7, "sha256:fixture", targets["node:n1"], _ => null).Vote.Yes);
        Assert.True(TxLedger.Commit(node, 7, "sha256:fixture", targets["node:n1"]));
        Assert.Empty(LaneTarget.Changed(LaneTarget.Of(node.AppliedTarget), node.PreviousTarget));
    }
}
