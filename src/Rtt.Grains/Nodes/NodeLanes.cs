using System.Text.Json.Nodes;
using Rtt.Grains.Reconciling;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Rtt.Grains.Nodes;

/// <summary>
/// One lane a node serves, as a plan's node target lists it: its endpoint is the plan's serve block for the target
/// symbol (<see cref="Endpoint"/> its hash, <see cref="Serve"/> the block as canonical JSON), or the built-in echo
/// when the symbol declares none.
/// <para>A lane with <see cref="Forward"/> is a route the planner placed across nodes, served here (the caller's node)
/// by forwarding each call to the lane host of node <see cref="Forward"/>, at <see cref="ForwardTo"/> (filled by the node
/// grain from that node's record: its lane control socket when on this host, else <c>tcp:host:port</c>).</para>
/// </summary>
/// <param name="IdleSpins">A tuned plan's idle spins for the lane host (host-wide; null: the host's own setting).</param>
/// <param name="IdleYields">A tuned plan's idle yields for the lane host.</param>
/// <param name="IdlePark">A tuned plan's doorbell use (false: the worker never sleeps); null: sleep on the doorbell.</param>
public sealed record LaneTarget(uint RouteId, string Name, string From, string To, string Kind, string? Endpoint = null, string? Serve = null, int? RingSize = null,
    bool Unsandboxed = false, int? IdleSpins = null, int? IdleYields = null, string? Forward = null, string? ForwardTo = null, bool? IdlePark = null)
{
    /// <summary>
    /// Why a strict-mode silo will not serve these lanes (docs/security.md): the first lane, by route id, whose driver
    /// process would run without a sandbox that policy.json's <c>unsandboxed</c> did not allow; null when none.
    /// </summary>
    public static string? SandboxRefusal(IEnumerable<LaneTarget> lanes) =>
        lanes.OrderBy(l => l.RouteId).Select(l => l.SandboxRefusal()).FirstOrDefault(why => why is not null);

    /// <summary>Why a strict-mode silo will not serve this lane (its driver would run unsandboxed, not allowed), or null.</summary>
    public string? SandboxRefusal() =>
        Unsandboxed || Serve is null || JsonNode.Parse(Serve) is not JsonObject serve || !Rtt.Core.Calls.ServeSpec.RunsUnsandboxed(serve) ? null
            : $"the {(string?)serve["kind"]} endpoint of {From} -> {To} would run without a sandbox, " +
              "and this silo runs in strict mode: give its serve block a sandbox, or allow it in policy.json \"unsandboxed\"";

    /// <summary>The lanes of a node target as its ledger holds it (<see cref="NodeTarget.ToJson"/>); none for null.</summary>
    public static IReadOnlyList<LaneTarget> Of(string? nodeTarget) => nodeTarget is null ? [] : Of(NodeTarget.Parse(nodeTarget));

    /// <summary>The lanes of a node target, each with its serve block.</summary>
    public static IReadOnlyList<LaneTarget> Of(NodeTarget? target) =>
        target is null ? [] : [.. target.Lanes.Select(l => new LaneTarget(l.RouteId, l.To, l.From, l.To, l.Kind, l.Endpoint, target.ServeOf(l.Endpoint), l.RingSize,
            l.Unsandboxed, l.Idle?.Spins, l.Idle?.Yields, l.Forward, IdlePark: l.Idle?.Park))];

    /// <summary>
    /// The lanes of <paramref name="now"/> that the previous target did not have as they are (new routes, and routes
    /// whose lane kind, ring, endpoint or serve block changed): what an apply changed, which the SLO gates judge. All of
    /// them when there is no previous target (a first apply, or a ledger written before previous targets were kept).
    /// </summary>
    public static IReadOnlyList<LaneTarget> Changed(IReadOnlyList<LaneTarget> now, string? previousTarget)
    {
        if (previousTarget is null)
        {
            return now;
        }

        return Changed(now, Of(previousTarget));
    }

    /// <summary>The same, given the previous target's lanes: matched by route id (each lane's own), then compared whole.</summary>
    public static IReadOnlyList<LaneTarget> Changed(IReadOnlyList<LaneTarget> now, IReadOnlyList<LaneTarget> before)
    {
        var byId = new Dictionary<uint, LaneTarget>(before.Count);
        foreach (var lane in before)
        {
            byId[lane.RouteId] = lane;
        }

        var changed = new List<LaneTarget>();
        foreach (var lane in now)
        {
            if (!byId.TryGetValue(lane.RouteId, out var was) || !lane.Equals(was))
            {
                changed.Add(lane);
            }
        }

        return changed;
    }
}

/// <summary>
/// What the silo offers its node grain: the node's lane host (lane workers on their own threads). The node grain
/// only decides; the host moves bytes. Absent on silos without lanes.
/// </summary>
public interface INodeLaneHost
{
    /// <summary>The node this silo serves.</summary>
    string NodeId { get; }

    bool Running { get; }

    /// <summary>Strict security mode (docs/security.md): driver processes without a sandbox are refused unless policy allows them.</summary>
    bool Strict => false;

    /// <summary>Route ids served now.</summary>
    IReadOnlySet<uint> RouteIds { get; }

    /// <summary>Makes the host serve exactly these lanes (one atomic table swap; in-flight frames of removed endpoints drain).</summary>
    Task ServeAsync(IReadOnlyList<LaneTarget> lanes);

    /// <summary>
    /// Attaches as a client would (one lane per lane kind) and sends one probe frame per lane end to end, each with
    /// its route id; returns the lanes that did not answer with why (empty: all answered).
    /// </summary>
    Task<IReadOnlyList<(LaneTarget Lane, string Why)>> ProbeAsync(IReadOnlyList<LaneTarget> lanes, TimeSpan timeout);

    /// <summary>
    /// The SLO gates of verify (policy.json <c>slo</c>): watches the lanes the rules match for their window under the
    /// traffic they get and returns each budget broken, with the measured values (empty: none), and a note of what was judged.
    /// </summary>
    Task<(IReadOnlyList<string> Breaches, string Note)> GateAsync(IReadOnlyList<LaneTarget> lanes) =>
        Task.FromResult(((IReadOnlyList<string>)[], ""));
}

/// <summary>
/// Places a node grain on the silo that serves its node: the silo whose <c>node</c> metadata (published by every RTT
/// silo, with <c>host</c> and <c>numa</c>) is the grain's key, or, for a silo whose metadata this silo has not
/// fetched yet (it just joined) or that publishes none, the silo named after the node.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeSiloPlacement")]
public sealed class NodeSiloPlacement : PlacementStrategy
{
    public static readonly NodeSiloPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class NodeSiloPlacementAttribute() : PlacementAttribute(NodeSiloPlacement.Instance);

/// <summary>Which silo serves a node, from this silo's view of membership and silo metadata.</summary>
public static class NodeSilos
{
    public const string NodeKey = "node";
    public const string HostKey = "host";
    public const string NumaKey = "numa";

    /// <summary>The node a silo serves: its <c>node</c> metadata, else its name.</summary>
    public static string NodeOf(SiloAddress silo, string? name, ISiloMetadataCache? metadata) =>
        metadata?.GetSiloMetadata(silo)?.Metadata is { } m && m.TryGetValue(NodeKey, out var node) && node.Length > 0 ? node : name ?? "";

    /// <summary>A silo's metadata value, or "" when it published none (or this silo has not fetched it yet).</summary>
    public static string Metadata(SiloAddress silo, ISiloMetadataCache? metadata, string key) =>
        metadata?.GetSiloMetadata(silo)?.Metadata is { } m && m.TryGetValue(key, out var value) ? value : "";

    /// <summary>
    /// The active silo among <paramref name="candidates"/> that serves <paramref name="nodeId"/>, or null when none is
    /// up. Several (two silos started with the same node id): the one whose address sorts last, so every silo picks the
    /// same one.
    /// </summary>
    public static SiloAddress? Find(string nodeId, IEnumerable<SiloAddress> candidates, ClusterMembershipSnapshot snapshot, ISiloMetadataCache? metadata) =>
        candidates
            .Where(s => snapshot.Members.TryGetValue(s, out var m) && m.Status == SiloStatus.Active && string.Equals(NodeOf(s, m.Name, metadata), nodeId, StringComparison.Ordinal))
            .OrderByDescending(s => s.ToString(), StringComparer.Ordinal)
            .FirstOrDefault();
}

/// <summary>
/// Puts a node grain on the silo that serves its node (<see cref="NodeSilos.Find"/>); when none is up, on the local
/// silo (the node grain then refuses to prepare lanes it cannot serve, with the reason, and moves to its silo when
/// that one comes back).
/// </summary>
public sealed class NodeSiloPlacementDirector(IClusterMembershipService membership, IServiceProvider services) : IPlacementDirector
{
    private readonly ISiloMetadataCache? _metadata = services.GetService(typeof(ISiloMetadataCache)) as ISiloMetadataCache;

    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var compatible = context.GetCompatibleSilos(target);
        if (NodeSilos.Find(target.GrainIdentity.Key.ToString()!, compatible, membership.CurrentSnapshot, _metadata) is { } silo)
        {
            return Task.FromResult(silo);
        }

        return Task.FromResult(compatible.Contains(context.LocalSilo) ? context.LocalSilo : compatible[0]);
    }
}
