using System.Text.Json.Nodes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Grains.Reconciling;

namespace Rtt.Reconciling;

/// <summary>
/// What a plan asks of each participant of a transaction, as typed targets keyed by participant name:
/// <c>node:&lt;id&gt;</c> (<see cref="NodeTarget"/>: the symbols placed on the node, the lanes it serves and their serve
/// blocks: a lane is served by the node its target symbol is placed on, and forwarded there by the node of its caller
/// when that is another one) and <c>route:&lt;from&gt; -&gt; &lt;to&gt;</c> (<see cref="RouteTarget"/>: a reference to the
/// lane, whose spec is stored once, in the serving node's target). No plan (null) asks for nothing.
/// </summary>
public static partial class PlanTargets
{
    public const string RoutePrefix = "route:";
    public const string NodePrefix = "node:";

    public static string RouteKey(string from, string to) => $"{from} -> {to}";

    /// <summary>
    /// Route targets already made, by lane spec: a route target is a pure function of its lane's spec (a hash of it), so
    /// the targets of a plan that differs from the last one in a few lanes are made for those lanes only. Between plans it
    /// holds the lanes of the last plan it was used for.
    /// </summary>
    public sealed class RouteTargetMemo
    {
        private Dictionary<LaneSpec, RouteTarget> _current = [];
        private Dictionary<LaneSpec, RouteTarget> _previous = [];

        internal RouteTarget Of(LaneSpec spec)
        {
            if (_current.TryGetValue(spec, out var target))
            {
                return target;
            }

            if (!_previous.Remove(spec, out target))
            {
                target = RouteTarget.Of(spec);
            }

            _current[spec] = target;
            return target;
        }

        /// <summary>Ends a plan: what it used is kept, what the plan before it used and it did not is let go.</summary>
        internal void EndPlan()
        {
            _previous = _current;
            _current = new Dictionary<LaneSpec, RouteTarget>(_previous.Count);
        }
    }

    /// <summary>Participant name → target (ordinal order).</summary>
    public static SortedDictionary<string, ParticipantTarget> Of(JsonObject? plan) => Of(plan, null);

    /// <summary>As above, taking route targets from (and leaving them in) <paramref name="memo"/>: the same result.</summary>
    public static SortedDictionary<string, ParticipantTarget> Of(JsonObject? plan, RouteTargetMemo? memo)
    {
        try
        {
            return Compute(plan, memo);
        }
        finally
        {
            memo?.EndPlan();
        }
    }

    private static SortedDictionary<string, ParticipantTarget> Compute(JsonObject? plan, RouteTargetMemo? memo)
    {
        var result = new SortedDictionary<string, ParticipantTarget>(StringComparer.Ordinal);
        if (plan is null)
        {
            return result;
        }

        var placement = plan["placement"] as JsonObject ?? [];
        var endpoints = plan["endpoints"] as JsonObject ?? [];
        var nodes = new SortedDictionary<string, (SortedSet<string> Symbols, List<LaneSpec> Lanes, SortedDictionary<string, string> Endpoints)>(StringComparer.Ordinal);
        (SortedSet<string> Symbols, List<LaneSpec> Lanes, SortedDictionary<string, string> Endpoints) NodeOf(string id)
        {
            if (!nodes.TryGetValue(id, out var n))
            {
                n = (new SortedSet<string>(StringComparer.Ordinal), [], new SortedDictionary<string, string>(StringComparer.Ordinal));
                nodes[id] = n;
            }

            return n;
        }

        foreach (var (symbol, node) in placement)
        {
            NodeOf((string?)node ?? "").Symbols.Add(symbol);
        }

        var idle = IdleOf(plan);
        var ids = new Dictionary<uint, string>();
        foreach (var lane in (plan["lanes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var (key, spec, forward) = LaneOf(lane, placement, idle);
            var id = spec.RouteId;
            if (ids.TryGetValue(id, out var other) && other != key)
            {
                throw new RttException(ErrorCodes.PlanLaneIdCollision, $"routes {other} and {key} hash to the same lane id {id}", (string?)plan["plan_id"],
                    "rename one of the symbols; lane ids are derived from the route's endpoints");
            }

            ids[id] = key;

            // The lane spec is stored once, in the serving node's target; the route's target refers to it by hash.
            result[RoutePrefix + key] = memo is null ? RouteTarget.Of(spec) : memo.Of(spec);
            var n = NodeOf(spec.Node);
            n.Lanes.Add(spec);
            if (forward is not null)
            {
                NodeOf(forward.Node).Lanes.Add(forward);
            }

            var endpoint = spec.Endpoint;
            if (endpoint is not null)
            {
                n.Endpoints[endpoint] = endpoints[endpoint]?.ToJsonString()
                    ?? throw new RttException(ErrorCodes.PlanMismatch, $"route {key} names endpoint {endpoint}, which the plan's \"endpoints\" does not hold", (string?)plan["plan_id"],
                        "recompute the plan with `rtt plan`");
            }
        }

        foreach (var (id, (symbols, lanes, nodeEndpoints)) in nodes)
        {
            result[NodePrefix + id] = new NodeTarget(id, [.. symbols], [.. lanes.OrderBy(l => l.RouteId)],
                [.. nodeEndpoints.Select(e => new LaneEndpoint(e.Key, e.Value))]);
        }

        return result;
    }

    /// <summary>The host-wide idle settings of a tuned plan, on every lane: a re-tune changes every lane's target (verify judges them all).</summary>
    private static LaneIdle? IdleOf(JsonObject plan) =>
        plan["tuning"] is JsonObject tuning
            ? new LaneIdle(
                tuning["spins"] is JsonValue s && s.TryGetValue<int>(out var spins) ? spins : null,
                tuning["yields"] is JsonValue y && y.TryGetValue<int>(out var yields) ? yields : null,
                tuning["park"] is JsonValue p && p.TryGetValue<bool>(out var park) ? park : null) // only a tuning that never parks has it
            : null;

    /// <summary>
    /// One lane of a plan as its serving node holds it, and as the caller's node forwards it when the planner placed the
    /// route across nodes (uds or tcp: the caller's node serves it too, passing each call on to the lane host of the
    /// target's node, fabric.md "Lanes across silos", so a client of the caller's silo reaches it); null when not.
    /// </summary>
    private static (string Key, LaneSpec Spec, LaneSpec? Forward) LaneOf(JsonObject lane, JsonObject placement, LaneIdle? idle)
    {
        var from = (string?)lane["route"]?["from"] ?? "";
        var to = (string?)lane["route"]?["to"] ?? "";
        var id = RouteIds.Of(from, to);
        var node = (string?)placement[to] ?? (string?)placement[from] ?? "";
        var spec = new LaneSpec(id, from, to, (string?)lane["kind"] ?? "shm", node,
            lane["ring_size"] is JsonValue r && r.TryGetValue<int>(out var ring) ? ring : null,
            (string?)lane["endpoint"], idle,
            lane["unsandboxed"] is JsonValue u && u.TryGetValue<bool>(out var unsandboxed) && unsandboxed);
        var forward = (string?)placement[from] is { Length: > 0 } callerNode && callerNode != node && spec.Kind is "uds" or "tcp"
            ? new LaneSpec(id, from, to, spec.Kind, callerNode, Idle: idle, Forward: node)
            : null;
        return (RouteKey(from, to), spec, forward);
    }

    /// <summary>The participants whose target differs between two plans, with the target the new plan asks (null: release).</summary>
    public static SortedDictionary<string, ParticipantTarget?> Changes(JsonObject? from, JsonObject? to) => Changes(Of(from), Of(to));

    /// <summary>The same, from targets already computed (compared by value).</summary>
    public static SortedDictionary<string, ParticipantTarget?> Changes(IReadOnlyDictionary<string, ParticipantTarget> before, IReadOnlyDictionary<string, ParticipantTarget> after)
    {
        var changes = new SortedDictionary<string, ParticipantTarget?>(StringComparer.Ordinal);
        foreach (var name in before.Keys.Union(after.Keys))
        {
            before.TryGetValue(name, out var b);
            after.TryGetValue(name, out var a);
            if (!Equals(a, b))
            {
                changes[name] = a;
            }
        }

        return changes;
    }
}
