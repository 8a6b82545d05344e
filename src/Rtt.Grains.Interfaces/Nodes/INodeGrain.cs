using System.Collections.Immutable;

namespace Rtt.Grains.Nodes;

/// <summary>
/// A node of the fabric (one silo per NUMA node in a cluster), keyed by node id (<c>node0</c>).
/// The silo registers its node when it starts; the record is persisted and survives restarts.
/// </summary>
[Alias("rtt.INodeGrain")]
public interface INodeGrain : IGrainWithStringKey, Rtt.Grains.Reconciling.ITxParticipant
{
    /// <summary>Records what the node is made of and which silo serves it; counts registrations.</summary>
    [Alias("Register")]
    Task<NodeRecord> Register(NodeFacts facts);

    /// <summary>
    /// Makes this silo's lane host serve the node's applied lanes. False when the activation runs on another silo
    /// than the node's (it then deactivates, so the next call lands on the node's silo).
    /// </summary>
    [Alias("ServeLanes")]
    Task<bool> ServeLanes();

    /// <summary>The node's record, or null when it never registered.</summary>
    [Alias("Get")]
    Task<NodeRecord?> Get();
}

/// <summary>The cluster's list of registered nodes (a single grain, key <see cref="ClusterKey"/>).</summary>
[Alias("rtt.INodeDirectoryGrain")]
public interface INodeDirectoryGrain : IGrainWithStringKey
{
    public const string ClusterKey = "cluster";

    [Alias("Add")]
    Task Add(string nodeId);

    /// <summary>Node ids in ordinal order.</summary>
    [Alias("List")]
    Task<ImmutableArray<string>> List();

    /// <summary>The record of every listed node that has registered, in node id order: one client call for all of them.</summary>
    [Alias("Records")]
    Task<ImmutableArray<NodeRecord>> Records();
}

/// <summary>What a silo reports about its node when it registers.</summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeFacts")]
public sealed record NodeFacts(
    [property: Id(0)] string NodeId,
    [property: Id(1)] string HostName,
    [property: Id(2)] string CpuModel,
    [property: Id(3)] int LogicalCores,
    [property: Id(4)] long MemoryBytes,
    [property: Id(5)] ImmutableArray<NumaNodeFacts> NumaNodes,
    [property: Id(6)] string SiloAddress);

/// <summary>One NUMA node: its CPU list (Linux syntax, e.g. <c>0-3</c>) and memory.</summary>
[GenerateSerializer, Immutable, Alias("rtt.NumaNodeFacts")]
public sealed record NumaNodeFacts(
    [property: Id(0)] int Id,
    [property: Id(1)] string Cpus,
    [property: Id(2)] int CpuCount,
    [property: Id(3)] long MemoryBytes);

/// <summary>A registered node: the latest facts and the registration history.</summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeRecord")]
public sealed record NodeRecord(
    [property: Id(0)] NodeFacts Facts,
    [property: Id(1)] DateTimeOffset FirstRegistered,
    [property: Id(2)] DateTimeOffset LastRegistered,
    [property: Id(3)] long Registrations);
