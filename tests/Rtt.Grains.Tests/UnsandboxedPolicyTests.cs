using System.Text.Json.Nodes;
using Rtt.Grains.Nodes;
using Rtt.Planning;
using Rtt.Reconciling;
namespace Rtt.Grains.Tests;

/// <summary>policy.json <c>unsandboxed</c>: which driver processes a strict-mode silo may run without a sandbox (docs/security.md).</summary>
public sealed class UnsandboxedPolicyTests
{
    private static readonly JsonObject Plain = new() { ["kind"] = "process", ["command"] = "/bin/svc" };
    private static readonly JsonObject Boxed = new() { ["kind"] = "process", ["command"] = "/bin/svc", ["sandbox"] = new JsonObject { ["network"] = false } };
    private static readonly JsonObject Mcp = new() { ["kind"] = "mcp-stdio", ["command"] = "node" };

    private static SymbolContract Contract(string address, JsonObject? serve = null) =>
        new(address, NuGet.Versioning.NuGetVersion.Parse("1.0.0"), "service", JsonValue.Create("T"), JsonValue.Create("T"), [], ["shm", "tcp", "uds"], 10, 100, 64, false, serve);

    private static JsonObject Route(string from, string to) => new() { ["from"] = from, ["to"] = to };

    private static IReadOnlyList<LaneTarget> Lanes(JsonObject? unsandboxed, out PlanOutcome outcome, out PlanInputs inputs)
    {
        var policy = new JsonObject { ["strict"] = false };
        if (unsandboxed is not null)
        {
            policy["unsandboxed"] = unsandboxed["list"]!.DeepClone();
        }

        SymbolContract[] contracts =
        [
            Contract("rtt://ui/x/caller"),
            Contract("rtt://core/api/plain", Plain),
            Contract("rtt://core/api/boxed", Boxed),
            Contract("rtt://mcp/s/tool", Mcp),
        ];
        var routes = new JsonObject { ["routes"] = new JsonArray(Route("rtt://ui/x/caller", "rtt://core/api/plain"), Route("rtt://ui/x/caller", "rtt://core/api/boxed"), Route("rtt://ui/x/caller", "rtt://mcp/s/tool")) };
        var topology = JsonNode.Parse("""{"hosts":[{"name":"h1","numa_nodes":[{"id":"n0","cpu_millis":1000,"memory_mb":1000}]}]}""")!.AsObject();
        inputs = PlanInputs.Build(routes, policy, topology, contracts, null);
        outcome = Planner.Compute(inputs);
        var body = outcome.Body;
        body["plan_id"] = "sha256:test";
        return LaneTarget.Of((Rtt.Grains.Reconciling.NodeTarget)PlanTargets.Of(body)["node:n0"]);
    }

    [Fact]
    public void Without_the_policy_every_unsandboxed_driver_is_refused_and_the_plan_keeps_its_old_bytes()
    {
        var lanes = Lanes(null, out var outcome, out var inputs);
        Assert.DoesNotContain("unsandboxed", outcome.Body.ToJsonString(), StringComparison.Ordinal);
        Assert.All(lanes, l => Assert.False(l.Unsandboxed));
        var why = LaneTarget.SandboxRefusal(lanes);
        Assert.NotNull(why);
        Assert.Contains("would run without a sandbox", why, StringComparison.Ordinal);
        Assert.Null(LaneTarget.SandboxRefusal(lanes.Where(l => l.To == "rtt://core/api/boxed"))); // a sandboxed driver is fine
        Assert.Equal("process", (string?)JsonNode.Parse(lanes.Single(l => l.To == "rtt://core/api/plain").Serve!)!["kind"]);

        // An empty list means the same as none: same inputs hash.
        Lanes(new JsonObject { ["list"] = new JsonArray() }, out _, out var empty);
        Assert.Equal(inputs.Hash, empty.Hash);
    }

    [Fact]
    public void Patterns_allow_exactly_the_drivers_they_name_and_change_the_inputs_hash()
    {
        var lanes = Lanes(new JsonObject { ["list"] = new JsonArray("rtt://core/api/plain") }, out _, out var one);
        Assert.True(lanes.Single(l => l.To == "rtt://core/api/plain").Unsandboxed);
        Assert.False(lanes.Single(l => l.To == "rtt://core/api/boxed").Unsandboxed); // sandboxed: nothing to allow
        Assert.Contains("rtt://mcp/s/tool", LaneTarget.SandboxRefusal(lanes)!, StringComparison.Ordinal);

        var all = Lanes(new JsonObject { ["list"] = new JsonArray("rtt://mcp/*", "rtt://core/api/plain") }, out _, out var two);
        Assert.Null(LaneTarget.SandboxRefusal(all));
        Assert.NotEqual(one.Hash, two.Hash);
        Lanes(new JsonObject { ["list"] = new JsonArray("rtt://core/api/plain", "rtt://mcp/*") }, out _, out var reordered);
        Assert.Equal(two.Hash, reordered.Hash); // a set: order means nothing
    }

    [Fact]
    public void A_pattern_that_is_not_a_symbol_is_a_schema_error_naming_the_field()
    {
        var ex = Assert.Throws<Rtt.Core.Errors.RttException>(() => Lanes(new JsonObject { ["list"] = new JsonArray("core/api/plain") }, out _, out _));
        Assert.Contains("unsandboxed", ex.Location ?? ex.Message, StringComparison.Ordinal);
    }
}
