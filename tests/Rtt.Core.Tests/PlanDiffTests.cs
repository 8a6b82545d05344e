using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>The panel's plan diff: whole-state comparison of a proposed plan with the applied one.</summary>
public sealed class PlanDiffTests
{
    private static JsonObject Plan(string id, string? baseId, (string From, string To, string Kind)[] lanes, (string Symbol, string Node)[] placement,
        JsonArray? moves = null, JsonArray? rejected = null) => new()
    {
        ["plan_id"] = id,
        ["base"] = baseId,
        ["lanes"] = new JsonArray([.. lanes.Select(l => (JsonNode)new JsonObject { ["route"] = new JsonObject { ["from"] = l.From, ["to"] = l.To }, ["kind"] = l.Kind, ["ring_size"] = 256 })]),
        ["placement"] = new JsonObject(placement.Select(p => KeyValuePair.Create(p.Symbol, (JsonNode?)p.Node))),
        ["moves"] = moves ?? [],
        ["rejected"] = rejected ?? [],
        ["sign"] = new JsonObject { ["alg"] = "ed25519", ["key_id"] = "sha256:k", ["sig"] = "s" },
    };

    [Fact]
    public void Names_added_removed_relaned_moved_and_rejected_routes_in_ordinal_order()
    {
        var applied = Plan("sha256:a", null,
            [("rtt://u/b", "rtt://s/y", "shm"), ("rtt://u/a", "rtt://s/x", "shm"), ("rtt://u/c", "rtt://s/z", "uds")],
            [("rtt://s/x", "n0"), ("rtt://s/y", "n0"), ("rtt://s/z", "n1")]);
        var proposed = Plan("sha256:b", "sha256:a",
            [("rtt://u/c", "rtt://s/z", "tcp"), ("rtt://u/a", "rtt://s/x", "shm"), ("rtt://u/d", "rtt://s/w", "shm"), ("rtt://u/0", "rtt://s/w", "uds")],
            [("rtt://s/x", "n0"), ("rtt://s/z", "n2"), ("rtt://s/w", "n0")],
            moves: [new JsonObject { ["symbol"] = "rtt://s/z", ["from"] = "n1", ["to"] = "n2", ["reason"] = "node-removed" }],
            rejected: [new JsonObject { ["route"] = new JsonObject { ["from"] = "rtt://u/e", ["to"] = "rtt://s/v", ["index"] = 4 }, ["constraint"] = "qos", ["values"] = new JsonObject { ["budget_us"] = 5 } }]);

        var diff = PlanDiff.Of(proposed, applied);

        Assert.Equal("""[{"from":"rtt://u/0","to":"rtt://s/w","lane":"uds"},{"from":"rtt://u/d","to":"rtt://s/w","lane":"shm"}]""", diff["added"]!.ToJsonString());
        Assert.Equal("""[{"from":"rtt://u/b","to":"rtt://s/y","lane":"shm"}]""", diff["removed"]!.ToJsonString());
        Assert.Equal("""[{"from":"rtt://u/c","to":"rtt://s/z","lane":"tcp","was":"uds"}]""", diff["relaned"]!.ToJsonString());
        Assert.Equal("""[{"symbol":"rtt://s/z","from":"n1","to":"n2","reason":"node-removed"}]""", diff["moved"]!.ToJsonString());
        Assert.Equal("""[{"from":"rtt://u/e","to":"rtt://s/v","constraint":"qos","values":{"budget_us":5}}]""", diff["rejected"]!.ToJsonString());
        Assert.Equal(1, (int)diff["unchanged"]!);
        Assert.True((bool)diff["base_is_applied"]!);
        Assert.False((bool)diff["same_as_applied"]!);
        Assert.Equal("sha256:k", (string?)diff["signed_by"]);
    }

    [Fact]
    public void A_first_plan_adds_everything_and_a_stale_base_is_said()
    {
        var proposed = Plan("sha256:b", "sha256:old", [("rtt://u/a", "rtt://s/x", "shm")], [("rtt://s/x", "n0")]);
        var first = PlanDiff.Of(proposed, null);
        Assert.Single(first["added"]!.AsArray());
        Assert.Empty(first["moved"]!.AsArray());
        Assert.False((bool)first["base_is_applied"]!);

        var applied = Plan("sha256:a", null, [("rtt://u/a", "rtt://s/x", "shm")], [("rtt://s/x", "n0")]);
        var stale = PlanDiff.Of(proposed, applied);
        Assert.False((bool)stale["base_is_applied"]!);
        Assert.Equal(1, (int)stale["unchanged"]!);
        Assert.Equal(PrettyJson.ToText(stale), PrettyJson.ToText(PlanDiff.Of((JsonObject)proposed.DeepClone(), (JsonObject)applied.DeepClone()))); // same inputs, same bytes

        var none = PlanDiff.Of(null, applied);
        Assert.Single(none["removed"]!.AsArray());
        Assert.False((bool)none["same_as_applied"]!);
    }
}
