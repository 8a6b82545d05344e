using System.Text.Json;
using System.Text.Json.Nodes;

namespace Rtt.Planning;

/// <summary>
/// A fast check that routes.json and topology.json surely match their schemas, walking the nodes once (no canonical
/// text, no schema evaluation: 10,000 routes through JsonSchema.Net cost hundreds of milliseconds). It only ever
/// answers "surely valid" or "not sure": anything it does not recognise exactly (a missing or unknown member, a
/// number of another kind, a non-ASCII address) goes to the schema, which stays the judge and names the fault.
/// </summary>
internal static class InputShape
{
    public static bool SurelyValidRoutes(JsonObject doc) => WalkRoutes(doc, collect: false, out _);

    /// <summary>
    /// The same, giving each route's members as this walk read them (null when the routes are not surely valid): the
    /// planner's keys (<see cref="PlanCanonical.RouteKey"/>), so its routes are walked once, not once for the shape and
    /// once for the members (10,000 route objects scattered over the heap: the walk is mostly waiting for memory).
    /// </summary>
    public static bool SurelyValidRoutes(JsonObject doc, out PlanCanonical.RouteKey[]? keys) => WalkRoutes(doc, collect: true, out keys);

    private static bool WalkRoutes(JsonObject doc, bool collect, out PlanCanonical.RouteKey[]? keys)
    {
        keys = null;
        if (doc.Count != 1 || doc["routes"] is not JsonArray routes)
        {
            return false;
        }

        // Many routes are walked in two halves on two cores (System.Text.Json allows concurrent reads of a node; each half
        // writes only its own keys): the walk is mostly waiting for memory, 10,000 route objects scattered over the heap.
        var read = collect ? new PlanCanonical.RouteKey[routes.Count] : null;
        if (!Parts.All(routes.Count, (start, end) => WalkRange(routes, start, end, read)))
        {
            return false;
        }

        keys = read;
        return true;
    }

    private static bool WalkRange(JsonArray routes, int start, int end, PlanCanonical.RouteKey[]? read)
    {
        for (var i = start; i < end; i++)
        {
            if (routes[i] is not JsonObject route)
            {
                return false;
            }

            string? from = null, to = null, version = null;
            var hasQos = false;
            double? budget = null, rate = null, priority = null;
            foreach (var (name, value) in route)
            {
                switch (name)
                {
                    case "from":
                        if ((from = AddressText(value)) is null)
                        {
                            return false;
                        }

                        break;
                    case "to":
                        if ((to = AddressText(value)) is null)
                        {
                            return false;
                        }

                        break;
                    case "version":
                        if ((version = Text(value)) is not { Length: > 0 } || HasSurrogate(version))
                        {
                            return false;
                        }

                        break;
                    case "qos":
                        if (!Qos(value, out budget, out rate, out priority))
                        {
                            return false;
                        }

                        hasQos = true;
                        break;
                    default:
                        return false;
                }
            }

            if (from is null || to is null)
            {
                return false;
            }

            if (read is not null)
            {
                read[i] = new PlanCanonical.RouteKey(from, to, version, hasQos, budget, rate, priority);
            }
        }

        return true;
    }

    public static bool SurelyValidTopology(JsonObject doc)
    {
        var hosts = false;
        foreach (var (name, value) in doc)
        {
            if (name == "hosts" && value is JsonArray list)
            {
                hosts = true;
                foreach (var item in list)
                {
                    if (!Host(item))
                    {
                        return false;
                    }
                }
            }
            else
            {
                return false; // lanes (rarely set) and anything else: the schema
            }
        }

        return hosts;
    }

    /// <summary>
    /// policy.json with only its usual members: strict, auto_replan, acl, qos and pins. Anything else (slo, breakers,
    /// mcp_aliases, unsandboxed, an unknown member) goes to the schema, as does anything odd in these.
    /// </summary>
    public static bool SurelyValidPolicy(JsonObject doc)
    {
        foreach (var (name, value) in doc)
        {
            var ok = name switch
            {
                "strict" or "auto_replan" => value is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
                "acl" => value is JsonArray acl && acl.All(AclEntry),
                "qos" => value is JsonArray qos && qos.All(QosRule),
                "pins" => value is JsonObject pins && pins.All(p => NonEmpty(p.Value)),
                _ => false,
            };
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    // {"allow"|"deny": {"from": …, "to": …}} with both patterns non-empty and nothing else.
    private static bool AclEntry(JsonNode? node) =>
        node is JsonObject { Count: 1 } entry && entry.First() is var (kind, rule) && kind is "allow" or "deny"
        && rule is JsonObject { Count: 2 } r && NonEmpty(r["from"]) && NonEmpty(r["to"]);

    // {"match": …, "p99_budget_us": > 0} and nothing else.
    private static bool QosRule(JsonNode? node) =>
        node is JsonObject { Count: 2 } rule && NonEmpty(rule["match"]) && Number(rule["p99_budget_us"]) > 0;

    private static bool NonEmpty(JsonNode? node) => Text(node) is { Length: > 0 } s && !HasSurrogate(s);

    private static bool Host(JsonNode? node)
    {
        if (node is not JsonObject host || host.Count != 2 || Text(host["name"]) is not { Length: > 0 } name || HasSurrogate(name)
            || host["numa_nodes"] is not JsonArray { Count: > 0 } nodes)
        {
            return false;
        }

        foreach (var item in nodes)
        {
            if (item is not JsonObject n || n.Count != 3 || !NodeId(Text(n["id"])) || !(Number(n["cpu_millis"]) > 0) || !(Number(n["memory_mb"]) > 0))
            {
                return false;
            }
        }

        return true;
    }

    // A route's qos, with its members' values as the planner reads them (PlanInputs.Number's doubles: an integer's value).
    private static bool Qos(JsonNode? node, out double? budget, out double? rate, out double? priority)
    {
        (budget, rate, priority) = (null, null, null);
        if (node is not JsonObject qos)
        {
            return false;
        }

        foreach (var (name, value) in qos)
        {
            switch (name)
            {
                case "p99_budget_us" when Number(value) is > 0 and var b:
                    budget = b;
                    break;
                case "rate_hz" when Number(value) is >= 0 and var r:
                    rate = r;
                    break;
                case "priority" when Integer(value) is >= 0 and <= 9 and var p:
                    priority = p;
                    break;
                default:
                    return false;
            }
        }

        return true;
    }

    private static string? Text(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.TryGetValue<string>(out var s) ? s : null;

    // A finite number as a double, or NaN (which fails every comparison) when it is not a plain int, long or double.
    private static double Number(JsonNode? node)
    {
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
        {
            return double.NaN;
        }

        if (v.TryGetValue<JsonElement>(out var e))
        {
            return e.TryGetDouble(out var parsed) && double.IsFinite(parsed) ? parsed : double.NaN;
        }

        return v.TryGetValue<int>(out var i) ? i
            : v.TryGetValue<long>(out var l) ? l
            : v.TryGetValue<double>(out var d) && double.IsFinite(d) ? d
            : double.NaN;
    }

    // An integer given as an integer (1, not 1.0, which the schema judges), or null.
    private static long? Integer(JsonNode? node)
    {
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
        {
            return null;
        }

        if (v.TryGetValue<JsonElement>(out var e))
        {
            return e.TryGetInt64(out var parsed) ? parsed : null;
        }

        return v.TryGetValue<int>(out var i) ? i : v.TryGetValue<long>(out var l) ? l : null;
    }

    private static bool HasSurrogate(string s)
    {
        foreach (var c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    // ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$
    private static bool NodeId(string? id)
    {
        if (id is not { Length: >= 1 and <= 64 } || !char.IsAsciiLetterOrDigit(id[0]))
        {
            return false;
        }

        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    // ^rtt://[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9._-]*$
    private static string? AddressText(JsonNode? node) => Text(node) is { } s && Rtt.Registry.ManifestShape.Address(s) ? s : null;
}
