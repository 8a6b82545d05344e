using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;

namespace Rtt.Reconciling;

/// <summary>
/// What a plan asks of each participant of a transaction, as canonical JSON payloads keyed by participant name:
/// <c>route:&lt;from&gt; -&gt; &lt;to&gt;</c> (the route's lane) and <c>node:&lt;id&gt;</c> (the symbols placed on the node and the
/// lanes it serves: a lane is served by the node its target symbol is placed on, and forwarded there by the node of
/// its caller when that is another one). No plan (null) asks for nothing.
/// </summary>
public static class PlanTargets
{
    public const string RoutePrefix = "route:";
    public const string NodePrefix = "node:";

    public static string RouteKey(string from, string to) => $"{from} -> {to}";

    /// <summary>Participant name → canonical JSON payload (ordinal order).</summary>
    public static SortedDictionary<string, string> Of(JsonObject? plan)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (plan is null)
        {
            return result;
        }

        var placement = plan["placement"] as JsonObject ?? [];
        var endpoints = plan["endpoints"] as JsonObject ?? [];
        var nodes = new SortedDictionary<string, (SortedSet<string> Symbols, List<JsonObject> Lanes, SortedDictionary<string, JsonNode> Endpoints)>(StringComparer.Ordinal);
        (SortedSet<string> Symbols, List<JsonObject> Lanes, SortedDictionary<string, JsonNode> Endpoints) NodeOf(string id)
        {
            if (!nodes.TryGetValue(id, out var n))
            {
                n = (new SortedSet<string>(StringComparer.Ordinal), [], new SortedDictionary<string, JsonNode>(StringComparer.Ordinal));
                nodes[id] = n;
            }

            return n;
        }

        foreach (var (symbol, node) in placement)
        {
            NodeOf((string?)node ?? "").Symbols.Add(symbol);
        }

        var ids = new Dictionary<uint, string>();
        foreach (var lane in (plan["lanes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var from = (string?)lane["route"]?["from"] ?? "";
            var to = (string?)lane["route"]?["to"] ?? "";
            var key = RouteKey(from, to);
            var id = RouteIds.Of(from, to);
            if (ids.TryGetValue(id, out var other) && other != key)
            {
                throw new RttException(ErrorCodes.PlanLaneIdCollision, $"routes {other} and {key} hash to the same lane id {id}", (string?)plan["plan_id"],
                    "rename one of the symbols; lane ids are derived from the route's endpoints");
            }

            ids[id] = key;
            var node = (string?)placement[to] ?? (string?)placement[from] ?? "";
            var endpoint = (string?)lane["endpoint"];
            var target = new JsonObject();
            if (endpoint is not null)
            {
                // Members stay in sorted order (payloads are compared as strings).
                target["endpoint"] = endpoint;
            }

            target["from"] = from;
            if (plan["tuning"] is JsonObject tuning)
            {
                // The host-wide idle settings of a tuned plan, on every lane: a re-tune changes every lane's target (verify judges them all).
                target["idle"] = new JsonObject { ["spins"] = tuning["spins"]?.DeepClone(), ["yields"] = tuning["yields"]?.DeepClone() };
                if (tuning["park"] is JsonValue park)
                {
                    target["idle"]!["park"] = park.DeepClone(); // only a tuning that never parks has it
                }
            }

            target["kind"] = (string?)lane["kind"] ?? "shm";
            target["node"] = node;
            target["ring_size"] = lane["ring_size"]?.DeepClone();
            target["route_id"] = id;
            target["to"] = to;
            if (lane["unsandboxed"] is JsonValue u && u.TryGetValue<bool>(out var unsandboxed) && unsandboxed)
            {
                target["unsandboxed"] = true; // only when set, so other targets keep their bytes
            }

            result[RoutePrefix + key] = Payload(target);
            var n = NodeOf(node);
            n.Lanes.Add(target);
            if ((string?)placement[from] is { Length: > 0 } callerNode && callerNode != node && target["kind"]!.GetValue<string>() is "uds" or "tcp")
            {
                // A route the planner placed across nodes: the caller's node serves it too, forwarding each call to the
                // lane host of the target's node (fabric.md, "Lanes across silos"), so a client of the caller's silo reaches it.
                var forward = new JsonObject { ["forward"] = node, ["from"] = from };
                if (target["idle"] is { } idle)
                {
                    forward["idle"] = idle.DeepClone(); // a tuned plan's host-wide idle settings, as on every lane
                }

                forward["kind"] = target["kind"]!.DeepClone();
                forward["node"] = callerNode;
                forward["route_id"] = id;
                forward["to"] = to;
                NodeOf(callerNode).Lanes.Add(forward);
            }
            if (endpoint is not null)
            {
                n.Endpoints[endpoint] = endpoints[endpoint]?.DeepClone()
                    ?? throw new RttException(ErrorCodes.PlanMismatch, $"route {key} names endpoint {endpoint}, which the plan's \"endpoints\" does not hold", (string?)plan["plan_id"],
                        "recompute the plan with `rtt plan`");
            }
        }

        foreach (var (id, (symbols, lanes, nodeEndpoints)) in nodes)
        {
            var target = new JsonObject();
            if (nodeEndpoints.Count > 0)
            {
                target["endpoints"] = new JsonObject([.. nodeEndpoints.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value))]);
            }

            target["lanes"] = new JsonArray([.. lanes.OrderBy(l => (uint)l["route_id"]!).Select(l => l.DeepClone())]);
            target["node"] = id;
            target["symbols"] = new JsonArray([.. symbols.Select(s => (JsonNode)s)]);
            result[NodePrefix + id] = Payload(target);
        }

        return result;
    }

    /// <summary>The participants whose payload differs between two plans, with the payload the new plan asks (null: release).</summary>
    public static SortedDictionary<string, string?> Changes(JsonObject? from, JsonObject? to) => Changes(Of(from), Of(to));

    /// <summary>The same, from targets already computed.</summary>
    public static SortedDictionary<string, string?> Changes(IReadOnlyDictionary<string, string> before, IReadOnlyDictionary<string, string> after)
    {
        var changes = new SortedDictionary<string, string?>(StringComparer.Ordinal);
        foreach (var name in before.Keys.Union(after.Keys))
        {
            before.TryGetValue(name, out var b);
            after.TryGetValue(name, out var a);
            if (!string.Equals(a, b, StringComparison.Ordinal))
            {
                changes[name] = a;
            }
        }

        return changes;
    }

    // Payloads are messages between the coordinator and its participants, compared as strings: they need to be
    // deterministic, not RFC 8785 (members are added in sorted order above and values are strings and integers).
    private static string Payload(JsonObject o) => o.ToJsonString();
}
