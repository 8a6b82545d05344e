using System.Collections.Immutable;
using Orleans.Runtime;
using Rtt.Core.Telemetry;

namespace Rtt.Grains.Nodes;

/// <summary>Grain storage provider name used by every RTT grain.</summary>
public static class RttStorage
{
    public const string Name = "rtt";
}

/// <summary>Persisted state of a node grain.</summary>
[GenerateSerializer, Alias("rtt.NodeState")]
public sealed class NodeState
{
    [Id(0)]
    public NodeRecord? Record { get; set; }
}

/// <summary>Thin shell: validates, folds the registration into the record, persists.</summary>
public sealed class NodeGrain(
    [PersistentState("node", RttStorage.Name)] IPersistentState<NodeState> state,
    TimeProvider time) : Grain, INodeGrain
{
    public async Task<NodeRecord> Register(NodeFacts facts)
    {
        var key = this.GetPrimaryKeyString();
        if (!string.Equals(facts.NodeId, key, StringComparison.Ordinal))
        {
            throw new ArgumentException($"facts for node \"{facts.NodeId}\" sent to node grain \"{key}\"", nameof(facts));
        }

        state.State.Record = NodeRegistration.Apply(state.State.Record, facts, time.GetUtcNow());
        await state.WriteStateAsync();
        await GrainFactory.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey).Add(key);
        RttMetrics.NodeRegistrations.Add(1);
        return state.State.Record;
    }

    public Task<NodeRecord?> Get() => Task.FromResult(state.State.Record);
}

/// <summary>The registration rule, outside the grain so tests call it directly.</summary>
public static class NodeRegistration
{
    public static NodeRecord Apply(NodeRecord? previous, NodeFacts facts, DateTimeOffset now) =>
        previous is null
            ? new NodeRecord(facts, now, now, 1)
            : previous with { Facts = facts, LastRegistered = now, Registrations = previous.Registrations + 1 };
}

/// <summary>Persisted state of the node directory.</summary>
[GenerateSerializer, Alias("rtt.NodeDirectoryState")]
public sealed class NodeDirectoryState
{
    [Id(0)]
    public List<string> NodeIds { get; set; } = [];
}

public sealed class NodeDirectoryGrain(
    [PersistentState("node-directory", RttStorage.Name)] IPersistentState<NodeDirectoryState> state) : Grain, INodeDirectoryGrain
{
    public async Task Add(string nodeId)
    {
        var index = state.State.NodeIds.BinarySearch(nodeId, StringComparer.Ordinal);
        if (index >= 0)
        {
            return; // already listed: no write
        }

        state.State.NodeIds.Insert(~index, nodeId); // kept sorted so listings are deterministic
        await state.WriteStateAsync();
    }

    public Task<ImmutableArray<string>> List() => Task.FromResult(state.State.NodeIds.ToImmutableArray());
}
