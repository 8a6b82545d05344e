using System.Text.Json.Nodes;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Rtt.Grains.Nodes;

/// <summary>
/// One lane a node serves, as a plan's node target lists it: its endpoint is the plan's serve block for the target
/// symbol (<see cref="Endpoint"/> its hash, <see cref="Serve"/> the block as canonical JSON), or the built-in echo
/// when the symbol declares none.
/// </summary>
/// <param name="IdleSpins">A tuned plan's idle spins for the lane host (host-wide; null: the host's own setting).</param>
/// <param name="IdleYields">A tuned plan's idle yields for the lane host.</param>
public sealed record LaneTarget(uint RouteId, string Name, string From, string To, string Kind, string? Endpoint = null, string? Serve = null, int? RingSize = null,
    bool Unsandboxed = false, int? IdleSpins = null, int? IdleYields = null)
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

    /// <summary>The lanes of a node target (canonical JSON from <c>PlanTargets</c>); none for null.</summary>
    public static IReadOnlyList<LaneTarget> Of(string? nodeTarget)
    {
        if (nodeTarget is null)
        {
            return [];
        }

        var target = JsonNode.Parse(nodeTarget);
        var endpoints = target?["endpoints"] as JsonObject;
        return [.. (target?["lanes"] as JsonArray ?? []).OfType<JsonObject>().Select(l =>
        {
            var endpoint = (string?)l["endpoint"];
            var serve = endpoint is null ? null : endpoints?[endpoint]?.ToJsonString();
            return new LaneTarget((uint)l["route_id"]!, (string)l["to"]!, (string)l["from"]!, (string)l["to"]!, (string?)l["kind"] ?? "shm", endpoint, serve,
                l["ring_size"] is JsonValue r && r.TryGetValue<int>(out var ring) ? ring : null,
                l["unsandboxed"] is JsonValue u && u.TryGetValue<bool>(out var unsandboxed) && unsandboxed,
                l["idle"]?["spins"] is JsonValue s && s.TryGetValue<int>(out var spins) ? spins : null,
                l["idle"]?["yields"] is JsonValue y && y.TryGetValue<int>(out var yields) ? yields : null);
        })];
    }

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

        var before = Of(previousTarget).ToHashSet();
        return [.. now.Where(l => !before.Contains(l))];
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
    IReadOnlyCollection<uint> RouteIds { get; }

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

/// <summary>Places a node grain on the silo named after its node (silo name = node id), so it drives that silo's lanes.</summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeSiloPlacement")]
public sealed class NodeSiloPlacement : PlacementStrategy
{
    public static readonly NodeSiloPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class NodeSiloPlacementAttribute() : PlacementAttribute(NodeSiloPlacement.Instance);

/// <summary>
/// Picks the active silo whose name is the grain's key; when no silo of that node is up, the local silo (the node
/// grain then refuses to prepare lanes it cannot serve, with the reason).
/// </summary>
public sealed class NodeSiloPlacementDirector(IClusterMembershipService membership) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString();
        var compatible = context.GetCompatibleSilos(target);
        var members = membership.CurrentSnapshot.Members;
        foreach (var silo in compatible)
        {
            if (members.TryGetValue(silo, out var member) && member.Status == SiloStatus.Active && string.Equals(member.Name, key, StringComparison.Ordinal))
            {
                return Task.FromResult(silo);
            }
        }

        return Task.FromResult(compatible.Contains(context.LocalSilo) ? context.LocalSilo : compatible[0]);
    }
}
