using System.Text.Json.Nodes;
using Rtt.Grains.Reconciling;

namespace Rtt.Reconciling;

/// <summary>The participants' changes found from a plan delta, without reading the lanes the change leaves alone.</summary>
public static partial class PlanTargets
{
    /// <summary>The most lanes a delta may take out and put in for <see cref="ChangesFromDelta"/> to follow it.</summary>
    public const int MaxSplice = 64;

    private static readonly string[] FollowedMembers = ["lanes", "placement", "endpoints", "tuning"];

    /// <summary>
    /// The participants whose target differs between <paramref name="applied"/> (whose targets are
    /// <paramref name="appliedTargets"/>) and <paramref name="target"/>, found from <paramref name="delta"/>
    /// (<see cref="PlanDelta.Diff"/> of the two, checked to rebuild <paramref name="target"/>): the lanes taken out and put
    /// in, the symbols placed elsewhere and the nodes they touch. The same as <c>Changes(appliedTargets, Of(target))</c>
    /// (IncrementalTargetsTests check it on random changes), at the cost of the change instead of the plan's size.
    /// Null when the change is not one it follows: the idle settings changed, a symbol moved or a serve block changed
    /// under a lane the change keeps, more than <see cref="MaxSplice"/> lanes, or anything the whole computation would
    /// refuse (a lane id collision, an unknown endpoint): then compute the targets whole. <paramref name="appliedTargets"/>
    /// are in ordinal order of their names, as <see cref="Of(JsonObject?)"/> gives them (node targets first).
    /// </summary>
    public static SortedDictionary<string, ParticipantTarget?>? ChangesFromDelta(
        JsonObject applied, IReadOnlyDictionary<string, ParticipantTarget> appliedTargets, JsonObject target, JsonObject delta)
    {
        if ((delta["set"] is JsonObject set && FollowedMembers.Any(set.ContainsKey))
            || (delta["remove"] is JsonArray removed && removed.Any(n => n is JsonValue v && v.TryGetValue<string>(out var name) && FollowedMembers.Contains(name))))
        {
            return null; // a followed member added, dropped or replaced whole
        }

        var objects = delta["objects"] as JsonObject;
        var arrays = delta["arrays"] as JsonObject;
        if (objects?.ContainsKey("tuning") == true || objects?.ContainsKey("lanes") == true || arrays?.Any(a => a.Key is not "lanes" && FollowedMembers.Contains(a.Key)) == true)
        {
            return null;
        }

        // The splice of the lanes: [at, at + delete) of the applied plan's lanes become [at, at + insert) of the new plan's.
        var oldLanes = applied["lanes"] as JsonArray ?? [];
        var newLanes = target["lanes"] as JsonArray ?? [];
        int at = 0, deleteCount = 0, insertCount = 0;
        if (arrays?["lanes"] is JsonObject splice)
        {
            at = (int?)splice["at"] ?? -1;
            deleteCount = (int?)splice["delete"] ?? -1;
            insertCount = (splice["insert"] as JsonArray)?.Count ?? -1;
        }

        if (at < 0 || deleteCount < 0 || insertCount < 0 || deleteCount + insertCount > MaxSplice
            || at + deleteCount > oldLanes.Count || at + insertCount > newLanes.Count || oldLanes.Count - deleteCount != newLanes.Count - insertCount)
        {
            return null;
        }

        // Every lane of the applied plan has its own route target (no lane repeated, none skipped as not an object).
        var nodeCount = appliedTargets.Keys.TakeWhile(k => k.StartsWith(NodePrefix, StringComparison.Ordinal)).Count();
        if (appliedTargets.Count - nodeCount != oldLanes.Count || appliedTargets.Keys.Skip(nodeCount).Any(k => !k.StartsWith(RoutePrefix, StringComparison.Ordinal)))
        {
            return null;
        }

        var oldPlacement = applied["placement"] as JsonObject ?? [];
        var newPlacement = target["placement"] as JsonObject ?? [];
        var moved = MemberNames(objects?["placement"]);
        var changedServe = MemberNames(objects?["endpoints"]);
        var idle = IdleOf(target); // the tuning did not change: the applied plan's lanes have the same

        var gone = new List<(string Key, LaneSpec Spec, LaneSpec? Forward)>(deleteCount);
        var goneRoutes = new HashSet<(string, string)>();
        for (var i = at; i < at + deleteCount; i++)
        {
            if (oldLanes[i] is not JsonObject lane)
            {
                return null;
            }

            var g = LaneOf(lane, oldPlacement, idle);
            gone.Add(g);
            goneRoutes.Add((g.Spec.From, g.Spec.To));
        }

        var come = new List<(string Key, LaneSpec Spec, LaneSpec? Forward)>(insertCount);
        var comeKeys = new HashSet<string>(StringComparer.Ordinal);
        var comeIds = new HashSet<uint>();
        var newEndpoints = target["endpoints"] as JsonObject ?? [];
        for (var i = at; i < at + insertCount; i++)
        {
            if (newLanes[i] is not JsonObject lane)
            {
                return null;
            }

            var c = LaneOf(lane, newPlacement, idle);
            var kept = appliedTargets.ContainsKey(RoutePrefix + c.Key) && !goneRoutes.Contains((c.Spec.From, c.Spec.To));
            if (kept || !comeKeys.Add(c.Key) || !comeIds.Add(c.Spec.RouteId) || (c.Spec.Endpoint is { } e && newEndpoints[e] is null))
            {
                return null; // a route twice, a lane id twice, or an endpoint the plan lacks: the whole computation says which
            }

            come.Add(c);
        }

        // The lanes the change keeps must not stand on what it moved, and the new lane ids must be free among them.
        var nodes = appliedTargets.Take(nodeCount).Select(t => t.Value as NodeTarget).ToList();
        if (nodes.Any(n => n is null))
        {
            return null;
        }

        foreach (var node in nodes)
        {
            if (moved.Count > 0 || changedServe.Count > 0)
            {
                foreach (var lane in node!.Lanes)
                {
                    if (!goneRoutes.Contains((lane.From, lane.To))
                        && (moved.Contains(lane.From) || moved.Contains(lane.To) || (lane.Endpoint is { } e && changedServe.Contains(e))))
                    {
                        return null;
                    }
                }
            }

            foreach (var c in come)
            {
                var i = IndexOfRoute(node!.Lanes, c.Spec.RouteId);
                if (i >= 0 && !goneRoutes.Contains((node.Lanes[i].From, node.Lanes[i].To)))
                {
                    return null; // the id of a lane the change keeps
                }
            }
        }

        var changes = new SortedDictionary<string, ParticipantTarget?>(StringComparer.Ordinal);
        foreach (var g in gone)
        {
            changes[RoutePrefix + g.Key] = null;
        }

        foreach (var c in come)
        {
            var name = RoutePrefix + c.Key;
            var route = RouteTarget.Of(c.Spec);
            if (appliedTargets.TryGetValue(name, out var before) && Equals(before, route))
            {
                changes.Remove(name); // taken out and put back as it was
            }
            else
            {
                changes[name] = route;
            }
        }

        // The nodes the change touches: those of the lanes taken out and put in, and where moved symbols were and go.
        var touched = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (_, spec, forward) in gone.Concat(come))
        {
            touched.Add(spec.Node);
            if (forward is not null)
            {
                touched.Add(forward.Node);
            }
        }

        foreach (var symbol in moved)
        {
            if (oldPlacement.TryGetPropertyValue(symbol, out var was))
            {
                touched.Add((string?)was ?? "");
            }

            if (newPlacement.TryGetPropertyValue(symbol, out var goes))
            {
                touched.Add((string?)goes ?? "");
            }
        }

        foreach (var id in touched)
        {
            var before = appliedTargets.TryGetValue(NodePrefix + id, out var t) ? (NodeTarget)t : null;
            var after = NodeAfter(id, before, gone, come, moved, oldPlacement, newPlacement, newEndpoints, changedServe);
            if (after is null && before is null)
            {
                continue;
            }

            if (after is null || before is null || !after.Equals(before))
            {
                changes[NodePrefix + id] = after;
            }
        }

        return changes;
    }

    /// <summary>Brings <paramref name="targets"/> (a plan's, by participant) to the plan <paramref name="changes"/> lead to.</summary>
    public static void Apply(SortedDictionary<string, ParticipantTarget> targets, IReadOnlyDictionary<string, ParticipantTarget?> changes)
    {
        foreach (var (name, target) in changes)
        {
            if (target is null)
            {
                targets.Remove(name);
            }
            else
            {
                targets[name] = target;
            }
        }
    }

    /// <summary>A node's target after the change, from the one before: null when nothing is placed on it and it serves no lane.</summary>
    private static NodeTarget? NodeAfter(
        string id, NodeTarget? before,
        List<(string Key, LaneSpec Spec, LaneSpec? Forward)> gone, List<(string Key, LaneSpec Spec, LaneSpec? Forward)> come,
        HashSet<string> moved, JsonObject oldPlacement, JsonObject newPlacement, JsonObject newEndpoints, HashSet<string> changedServe)
    {
        var symbols = before is null ? [] : new List<string>(before.Symbols);
        foreach (var symbol in moved)
        {
            if (oldPlacement.TryGetPropertyValue(symbol, out var was) && ((string?)was ?? "") == id)
            {
                var i = symbols.BinarySearch(symbol, StringComparer.Ordinal);
                if (i >= 0)
                {
                    symbols.RemoveAt(i);
                }
            }

            if (newPlacement.TryGetPropertyValue(symbol, out var goes) && ((string?)goes ?? "") == id)
            {
                var i = symbols.BinarySearch(symbol, StringComparer.Ordinal);
                if (i < 0)
                {
                    symbols.Insert(~i, symbol);
                }
            }
        }

        var lanes = before is null ? [] : new List<LaneSpec>(before.Lanes);
        foreach (var (_, spec, forward) in gone)
        {
            foreach (var s in (ReadOnlySpan<LaneSpec?>)[spec, forward])
            {
                if (s is not null && s.Node == id)
                {
                    var i = IndexOfRoute(lanes, s.RouteId);
                    if (i >= 0)
                    {
                        lanes.RemoveAt(i);
                    }
                }
            }
        }

        foreach (var (_, spec, forward) in come)
        {
            foreach (var s in (ReadOnlySpan<LaneSpec?>)[spec, forward])
            {
                if (s is not null && s.Node == id)
                {
                    var i = IndexOfRoute(lanes, s.RouteId);
                    lanes.Insert(i >= 0 ? i + 1 : ~i, s);
                }
            }
        }

        if (symbols.Count == 0 && lanes.Count == 0)
        {
            return null;
        }

        // The serve blocks of the lanes it serves (not those it forwards), in ordinal order of their hash; a block of a
        // lane it kept is unchanged (a change to one is not followed here), a new lane's is read from the plan.
        var kept = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in before?.Endpoints ?? [])
        {
            kept[e.Hash] = e.Serve;
        }

        var serves = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var lane in lanes)
        {
            if (lane.Forward is null && lane.Endpoint is { } e && !serves.ContainsKey(e))
            {
                serves[e] = !changedServe.Contains(e) && kept.TryGetValue(e, out var serve) ? serve : newEndpoints[e]!.ToJsonString();
            }
        }

        return new NodeTarget(id, [.. symbols], [.. lanes], [.. serves.Select(e => new LaneEndpoint(e.Key, e.Value))]);
    }

    /// <summary>Where the lane with <paramref name="routeId"/> is in lanes ordered by route id, or the complement of where it would go.</summary>
    private static int IndexOfRoute(IReadOnlyList<LaneSpec> lanes, uint routeId)
    {
        int lo = 0, hi = lanes.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var id = lanes[mid].RouteId;
            if (id == routeId)
            {
                return mid;
            }

            if (id < routeId)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return ~lo;
    }

    private static HashSet<string> MemberNames(JsonNode? objectChange)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in objectChange?["set"] as JsonObject ?? [])
        {
            names.Add(name);
        }

        foreach (var name in objectChange?["remove"] as JsonArray ?? [])
        {
            names.Add((string)name!);
        }

        return names;
    }
}
