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

    /// <summary>The node's record, or null when it never registered. Interleaves (a read), so node grains committing forwards to each other never wait on each other.</summary>
    [Alias("Get"), Orleans.Concurrency.AlwaysInterleave]
    Task<NodeRecord?> Get();

    /// <summary>Where the node's grain runs (its silo and that silo's node), the applied plan's lanes and how many its lane host serves.</summary>
    [Alias("Placement")]
    Task<NodePlacement> Placement();

    /// <summary>
    /// The record and the placement in one call (the directory's re-read asks each node once, not twice). Interleaves (a
    /// synchronous read): a node awaiting the directory (registering, pushing) while the directory re-reads it would
    /// otherwise wait on each other until the call timed out.
    /// </summary>
    [Alias("Snapshot"), Orleans.Concurrency.AlwaysInterleave]
    Task<NodeSnapshot> Snapshot();
}

/// <summary>What <see cref="INodeGrain.Snapshot"/> returns: the record (null when the node never registered) and the placement.</summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeSnapshot")]
public sealed record NodeSnapshot(
    [property: Id(0)] NodeRecord? Record,
    [property: Id(1)] NodePlacement Placement);

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

    /// <summary>
    /// The cluster as `rtt status` shows it, in one call: every active silo with its metadata (host, NUMA node, node),
    /// every registered node's record, and where each node's grain runs with its lanes.
    /// </summary>
    [Alias("View")]
    Task<ClusterView> View();

    /// <summary>
    /// <see cref="View"/> and the active silos' membership entries (name, host, start time, gateway port), in one client
    /// call: what <c>RttClient.GetStatusAsync</c> shows. The entries come from the management grain's table read, kept
    /// while this silo's membership version is unchanged and at most <c>HostsTtl</c> (1 s), so a status call does not
    /// read the membership table each time; a change this silo has seen (a silo joining, dying, leaving) is shown at once.
    /// The nodes' records and placements are the snapshots the node grains push (<see cref="Changed"/>), read from
    /// every node again with the entries; a call between changes is answered from memory, without a grain call.
    /// </summary>
    [Alias("Status")]
    Task<ClusterStatusView> Status();

    /// <summary>
    /// A node grain's snapshot after it changed (registration, activation, commit, lanes served): <see cref="Status"/>
    /// answers from the snapshots it holds instead of asking every node per call. Interleaves, so a node pushing while
    /// the directory waits on that node's answer never deadlocks.
    /// </summary>
    [Alias("Changed"), Orleans.Concurrency.AlwaysInterleave]
    Task Changed(NodeSnapshot snapshot);

    /// <summary>A node grain deactivates: the directory drops its snapshot and asks the node again on the next status call.</summary>
    [Alias("Gone"), Orleans.Concurrency.AlwaysInterleave]
    Task Gone(string nodeId);
}

/// <summary>
/// An active silo as <c>rtt status</c> shows it: its membership entry (name, address, status, host, start time, gateway
/// port) with the host, NUMA node and node its metadata names (the metadata's host wins over the entry's when it has one;
/// empty strings when it published none).
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.MemberView")]
public sealed record MemberView(
    [property: Id(0)] string Name,
    [property: Id(1)] string Address,
    [property: Id(2)] string Status,
    [property: Id(3)] string HostName,
    [property: Id(4)] DateTime Started,
    [property: Id(5)] int ProxyPort,
    [property: Id(6)] string Numa,
    [property: Id(7)] string Node);

/// <summary>
/// What <see cref="INodeDirectoryGrain.Status"/> returns, ready to show: the members sorted by name then address, the
/// registered nodes' records and their placements in node id order.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.ClusterStatusView")]
public sealed record ClusterStatusView(
    [property: Id(0)] ImmutableArray<MemberView> Members,
    [property: Id(1)] ImmutableArray<NodeRecord> Records,
    [property: Id(2)] ImmutableArray<NodePlacement> Placements);

/// <summary>
/// Where a node's grain runs: <see cref="Silo"/> is the silo's address and <see cref="SiloNode"/> the node that silo
/// serves (its <c>node</c> metadata, or its name), so <see cref="OnOwnSilo"/> is false while the grain lingers on
/// another silo (its own silo is down, or it has not moved back yet). <see cref="Lanes"/> are the applied plan's
/// lanes of the node (<c>symbol kind</c>, <c>symbol kind -> node</c> for a route forwarded to another node), <see cref="Serving"/> how many its lane host serves now (-1: the grain is
/// not next to the node's lane host).
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.NodePlacement")]
public sealed record NodePlacement(
    [property: Id(0)] string NodeId,
    [property: Id(1)] string Silo,
    [property: Id(2)] string SiloNode,
    [property: Id(3)] bool OnOwnSilo,
    [property: Id(4)] string? AppliedPlan,
    [property: Id(5)] ImmutableArray<string> Lanes,
    [property: Id(6)] int Serving);

/// <summary>An active silo and its metadata (<c>host</c>, <c>numa</c>: a NUMA node id or <c>all</c>, <c>node</c>); empty strings when it published none.</summary>
[GenerateSerializer, Immutable, Alias("rtt.SiloView")]
public sealed record SiloView(
    [property: Id(0)] string Address,
    [property: Id(1)] string Name,
    [property: Id(2)] string Host,
    [property: Id(3)] string Numa,
    [property: Id(4)] string Node);

/// <summary>What <see cref="INodeDirectoryGrain.View"/> returns, each list sorted (silos by address, nodes by id).</summary>
[GenerateSerializer, Immutable, Alias("rtt.ClusterView")]
public sealed record ClusterView(
    [property: Id(0)] ImmutableArray<SiloView> Silos,
    [property: Id(1)] ImmutableArray<NodeRecord> Records,
    [property: Id(2)] ImmutableArray<NodePlacement> Placements);

/// <summary>
/// What a silo reports about its node when it registers; <see cref="LaneSocket"/> is its lane host's control socket
/// (absolute path), where the lane hosts of other nodes on the same host forward the routes placed across nodes;
/// <see cref="LaneTcp"/> (<c>host:port</c>, when the lane host listens on TCP) is where lane hosts on other hosts do.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeFacts")]
public sealed record NodeFacts(
    [property: Id(0)] string NodeId,
    [property: Id(1)] string HostName,
    [property: Id(2)] string CpuModel,
    [property: Id(3)] int LogicalCores,
    [property: Id(4)] long MemoryBytes,
    [property: Id(5)] ImmutableArray<NumaNodeFacts> NumaNodes,
    [property: Id(6)] string SiloAddress,
    [property: Id(7)] string? LaneSocket = null,
    [property: Id(8)] string? LaneTcp = null);

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
