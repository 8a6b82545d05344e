using System.Collections.Immutable;
using Orleans.Serialization;
using Microsoft.Extensions.DependencyInjection;
using Rtt.Grains.Nodes;

namespace Rtt.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class NodeGrainTests(ClusterFixture fixture)
{
    private static NodeFacts Facts(string id, string silo = "S127.0.0.1:11111:1") => new(
        id, "host-a", "Test CPU", 4, 8L << 30,
        [new NumaNodeFacts(0, "0-1", 2, 4L << 30), new NumaNodeFacts(1, "2-3", 2, 4L << 30)], silo);

    [Fact]
    public async Task Register_records_facts_and_counts_registrations()
    {
        var id = $"node-{Guid.NewGuid():N}";
        var grain = fixture.Cluster.Client.GetGrain<INodeGrain>(id);
        Assert.Null(await grain.Get());

        var first = await grain.Register(Facts(id));
        Assert.Equal(1, first.Registrations);
        Assert.Equal(first.FirstRegistered, first.LastRegistered);

        var second = await grain.Register(Facts(id, "S127.0.0.1:11112:2"));
        Assert.Equal(2, second.Registrations);
        Assert.Equal(first.FirstRegistered, second.FirstRegistered);
        Assert.Equal("S127.0.0.1:11112:2", second.Facts.SiloAddress);
        Assert.Equal(2, second.Facts.NumaNodes.Length);

        var read = await grain.Get();
        Assert.NotNull(read);
        Assert.Equal(second, read with { Facts = read.Facts with { NumaNodes = second.Facts.NumaNodes } });
    }

    [Fact]
    public async Task A_participant_votes_no_on_a_target_that_is_not_its_own_and_keeps_the_one_it_commits()
    {
        var id = $"node-{Guid.NewGuid():N}";
        var (from, to) = ($"rtt://t/{id}/caller", $"rtt://t/{id}/service");
        var route = new Reconciling.RouteTarget(from, to, 42u, id, "shm", "sha256:lane");
        var node = fixture.Cluster.Client.GetGrain<INodeGrain>(id);
        var vote = await node.Prepare(1, "p1", route);
        Assert.Equal((false, "a node takes a node target, not a RouteTarget"), (vote.Yes, vote.Reason));
        vote = await node.Prepare(2, "p2", new Reconciling.NodeTarget("elsewhere", [], [], []));
        Assert.Equal((false, "the target is for node elsewhere"), (vote.Yes, vote.Reason));

        var grain = fixture.Cluster.Client.GetGrain<Reconciling.IRouteGrain>($"{from} -> {to}");
        Assert.False((await grain.Prepare(1, "p1", new Reconciling.NodeTarget(id, [], [], []))).Yes);
        vote = await grain.Prepare(2, "p2", route with { To = "rtt://t/x/other" });
        Assert.Equal((false, $"the target is for route {from} -> rtt://t/x/other"), (vote.Yes, vote.Reason));
        Assert.True((await grain.Prepare(3, "p3", route)).Yes);
        await grain.Commit(3, "p3", route);
        var ledger = await grain.Ledger();
        Assert.Equal((3L, route.ToJson()), (ledger.AppliedTx, ledger.AppliedTarget)); // the ledger keeps the target's JSON
        Assert.Equal(route, Reconciling.RouteTarget.Parse(ledger.AppliedTarget!));
    }

    [Fact]
    public async Task Registered_nodes_appear_in_the_directory_in_ordinal_order()
    {
        var prefix = Guid.NewGuid().ToString("N");
        foreach (var id in new[] { $"{prefix}-b", $"{prefix}-a", $"{prefix}-B" })
        {
            await fixture.Cluster.Client.GetGrain<INodeGrain>(id).Register(Facts(id));
        }

        await fixture.Cluster.Client.GetGrain<INodeGrain>($"{prefix}-a").Register(Facts($"{prefix}-a")); // twice: listed once
        var ids = (await fixture.Cluster.Client.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey).List())
            .Where(i => i.StartsWith(prefix, StringComparison.Ordinal)).ToArray();
        Assert.Equal([$"{prefix}-B", $"{prefix}-a", $"{prefix}-b"], ids);
    }

    [Fact]
    public async Task Status_shows_a_registration_and_a_commit_on_the_next_call()
    {
        var id = $"node-{Guid.NewGuid():N}";
        var directory = fixture.Cluster.Client.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey);
        var grain = fixture.Cluster.Client.GetGrain<INodeGrain>(id);
        Assert.DoesNotContain((await directory.Status()).Records, r => r.Facts.NodeId == id);

        await grain.Register(Facts(id));
        var status = await directory.Status();
        Assert.Equal(1, status.Records.Single(r => r.Facts.NodeId == id).Registrations);
        Assert.Null(status.Placements.Single(p => p.NodeId == id).AppliedPlan);
        Assert.Equal(status.Records.Select(r => r.Facts.NodeId).Order(StringComparer.Ordinal), status.Records.Select(r => r.Facts.NodeId)); // node id order
        Assert.NotEmpty(status.Members); // the silo, from the membership table

        await grain.Register(Facts(id, "S127.0.0.1:11112:2")); // pushed to the directory, which answers from memory
        status = await directory.Status();
        Assert.Equal((2L, "S127.0.0.1:11112:2"), status.Records.Single(r => r.Facts.NodeId == id) is var r ? (r.Registrations, r.Facts.SiloAddress) : default);

        var target = new Reconciling.NodeTarget(id, [], [], []); // no lanes: any silo may take it
        Assert.True((await grain.Prepare(7, "p7", target)).Yes);
        Assert.Null((await directory.Status()).Placements.Single(p => p.NodeId == id).AppliedPlan); // a reservation is not shown
        await grain.Commit(7, "p7", target);
        Assert.Equal("p7", (await directory.Status()).Placements.Single(p => p.NodeId == id).AppliedPlan);
        Assert.Equal(await grain.Placement(), (await directory.Status()).Placements.Single(p => p.NodeId == id) with { Lanes = (await grain.Placement()).Lanes });
    }

    [Fact]
    public async Task Facts_for_another_node_are_refused()
    {
        var grain = fixture.Cluster.Client.GetGrain<INodeGrain>("node-x");
        await Assert.ThrowsAsync<ArgumentException>(() => grain.Register(Facts("node-y")));
    }

    [Fact]
    public async Task State_survives_deactivation()
    {
        var id = $"node-{Guid.NewGuid():N}";
        var grain = fixture.Cluster.Client.GetGrain<INodeGrain>(id);
        await grain.Register(Facts(id));
        await grain.Register(Facts(id));
        var management = fixture.Cluster.Client.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.Zero);
        Assert.Equal(2, (await grain.Get())!.Registrations);
    }

    [Fact]
    public void Wire_records_round_trip_through_the_orleans_serializer()
    {
        var serializer = fixture.Cluster.Silos[0]!.ServiceProvider!.GetRequiredService<Serializer>();
        var record = new NodeRecord(Facts("node0"), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddDays(1), 3);
        var copy = serializer.Deserialize<NodeRecord>(serializer.SerializeToArray(record))!;
        Assert.Equal(record.Facts.NumaNodes.ToArray(), copy.Facts.NumaNodes.ToArray());
        Assert.Equal(record with { Facts = record.Facts with { NumaNodes = ImmutableArray<NumaNodeFacts>.Empty } },
            copy with { Facts = copy.Facts with { NumaNodes = ImmutableArray<NumaNodeFacts>.Empty } });
        var state = serializer.Deserialize<NodeDirectoryState>(serializer.SerializeToArray(new NodeDirectoryState { NodeIds = ["a", "b"] }))!;
        Assert.Equal(["a", "b"], state.NodeIds);
    }

    [Fact]
    public void Registration_rule_is_plain_code()
    {
        var t0 = DateTimeOffset.UnixEpoch;
        var first = NodeRegistration.Apply(null, Facts("n"), t0);
        var next = NodeRegistration.Apply(first, Facts("n", "S2"), t0.AddMinutes(5));
        Assert.Equal((1L, t0, t0), (first.Registrations, first.FirstRegistered, first.LastRegistered));
        Assert.Equal((2L, t0, t0.AddMinutes(5), "S2"), (next.Registrations, next.FirstRegistered, next.LastRegistered, next.Facts.SiloAddress));
    }
}
