using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>The SLO gates judge the lanes a transaction changed: the ledger keeps the target applied before.</summary>
public sealed class ChangedLanesTests
{
    private static string Target(params (uint Id, string To, string Kind, string? Endpoint)[] lanes) =>
        "{\"endpoints\":{" + string.Join(",", lanes.Where(l => l.Endpoint is not null).Select(l => $"\"{l.Endpoint}\":{{\"kind\":\"process\",\"command\":\"svc-{l.Endpoint}\"}}").Distinct())
        + "},\"lanes\":[" + string.Join(",", lanes.Select(l => $"{{\"route_id\":{l.Id},\"from\":\"rtt://c/a/x\",\"to\":\"{l.To}\",\"kind\":\"{l.Kind}\"{(l.Endpoint is null ? "" : $",\"endpoint\":\"{l.Endpoint}\"")}}}")) + "]}";

    [Fact]
    public void A_commit_keeps_the_target_it_replaces_and_only_new_or_changed_lanes_are_judged()
    {
        var first = Target((1, "rtt://s/a/one", "shm", "e1"), (2, "rtt://s/a/two", "shm", null));
        var second = Target((1, "rtt://s/a/one", "shm", "e1"), (2, "rtt://s/a/two", "uds", null), (3, "rtt://s/a/three", "shm", "e3"));
        var ledger = new LedgerState();
        Assert.True(TxLedger.Prepare(ledger, 1, "p1", first, _ => null).Vote.Yes);
        Assert.True(TxLedger.Commit(ledger, 1, "p1", first));
        Assert.Null(ledger.PreviousTarget);
        Assert.Equal(2, LaneTarget.Changed(LaneTarget.Of(ledger.AppliedTarget), ledger.PreviousTarget).Count); // a first apply: every lane

        Assert.True(TxLedger.Prepare(ledger, 2, "p2", second, _ => null).Vote.Yes);
        Assert.True(TxLedger.Commit(ledger, 2, "p2", second));
        Assert.False(TxLedger.Commit(ledger, 2, "p2", second)); // repeated: nothing changes, the previous target stays
        Assert.Equal(first, ledger.PreviousTarget);
        var changed = LaneTarget.Changed(LaneTarget.Of(ledger.AppliedTarget), ledger.PreviousTarget);
        Assert.Equal([2u, 3u], changed.Select(l => l.RouteId)); // 2 moved from shm to uds, 3 is new; 1 is as it was

        // A changed endpoint (its serve block) counts as a change too.
        var third = first.Replace("svc-e1", "svc-e1-v2", StringComparison.Ordinal);
        Assert.Equal([1u], LaneTarget.Changed(LaneTarget.Of(third), first).Select(l => l.RouteId));
    }

    [Fact]
    public void A_lane_targets_idle_settings_are_read_with_park_only_when_the_plan_says_so()
    {
        const string lanes = "{\"lanes\":[{\"route_id\":1,\"from\":\"rtt://c/a/x\",\"to\":\"rtt://s/a/one\",\"kind\":\"shm\",\"idle\":{IDLE}}]}";
        var parks = Assert.Single(LaneTarget.Of(lanes.Replace("{IDLE}", "{\"spins\":2000,\"yields\":0}", StringComparison.Ordinal)));
        Assert.Equal((2000, 0, (bool?)null), (parks.IdleSpins, parks.IdleYields, parks.IdlePark));
        var busy = Assert.Single(LaneTarget.Of(lanes.Replace("{IDLE}", "{\"spins\":2000,\"yields\":0,\"park\":false}", StringComparison.Ordinal)));
        Assert.Equal((2000, 0, (bool?)false), (busy.IdleSpins, busy.IdleYields, busy.IdlePark));
    }
}
