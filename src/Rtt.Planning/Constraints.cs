using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Rtt.Planning;

/// <summary>The planner's constraint names, as they appear in a plan's <c>rejected</c> entries.</summary>
public static class Constraint
{
    public const string UnknownSymbol = "unknown-symbol";
    public const string Duplicate = "duplicate";
    public const string Type = "type";
    public const string Version = "version";
    public const string Qos = "qos";
    public const string Acl = "acl";
    public const string Capacity = "capacity";
    public const string Placement = "placement";
    public const string Cycle = "cycle";
    public const string Admission = "admission";
    public const string NodeDown = "node-down";
}

/// <summary>The static checks (1-4 of the seed): each returns null when it passes, or the values that explain the failure.</summary>
public static class Checks
{
    /// <summary>1. The caller's output must be accepted by the provider's input: same type name, a declared compatibility, or JSON Schema containment.</summary>
    public static JsonObject? Type(SymbolContract from, SymbolContract to)
    {
        if (Accepts(from.Output, to.Input, to.CompatibleWith))
        {
            return null;
        }

        return new JsonObject { ["output"] = from.Output?.DeepClone(), ["input"] = to.Input?.DeepClone() };
    }

    public static bool Accepts(JsonNode? output, JsonNode? input, IReadOnlyList<string> compatibleWith)
    {
        if (input is null)
        {
            return true; // the provider takes anything
        }

        if (output is JsonValue ov && ov.TryGetValue<string>(out var outName))
        {
            return input is JsonValue iv && iv.TryGetValue<string>(out var inName)
                ? string.Equals(outName, inName, StringComparison.Ordinal) || compatibleWith.Contains(outName, StringComparer.Ordinal)
                : compatibleWith.Contains(outName, StringComparer.Ordinal);
        }

        return output is JsonObject outSchema && input is JsonObject inSchema && Contains(outSchema, inSchema);
    }

    /// <summary>Structural containment: every value the output schema allows has what the input schema requires.</summary>
    public static bool Contains(JsonObject output, JsonObject input)
    {
        var inType = (string?)input["type"];
        var outType = (string?)output["type"];
        if (inType is not null && !string.Equals(inType, outType, StringComparison.Ordinal))
        {
            return false;
        }

        var outProperties = output["properties"] as JsonObject;
        var outRequired = (output["required"] as JsonArray ?? []).Select(r => (string)r!).ToHashSet(StringComparer.Ordinal);
        foreach (var required in (input["required"] as JsonArray ?? []).Select(r => (string)r!))
        {
            // The output must guarantee the property (declare it as required), with a compatible schema.
            if (!outRequired.Contains(required) || outProperties?[required] is not JsonObject outProp)
            {
                return false;
            }

            if (input["properties"]?[required] is JsonObject inProp && !Contains(outProp, inProp))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>4. ACL: deny wins over allow; with no matching rule, strict mode denies.</summary>
    public static JsonObject? Acl(RouteSpec route, PlanInputs inputs)
    {
        AclRule? allow = null;
        foreach (var rule in inputs.Acl)
        {
            if (AddressPattern.Matches(rule.From, route.From) && AddressPattern.Matches(rule.To, route.To))
            {
                if (!rule.Allow)
                {
                    return new JsonObject { ["rule"] = "deny", ["from"] = rule.From, ["to"] = rule.To };
                }

                allow ??= rule;
            }
        }

        return allow is null && inputs.Strict ? new JsonObject { ["rule"] = "default-deny", ["strict"] = true } : null;
    }

    /// <summary>The route's p99 budget: its own, else the first policy QoS rule matching the provider, else none.</summary>
    public static double? Budget(RouteSpec route, PlanInputs inputs) =>
        route.BudgetUs ?? inputs.Qos.FirstOrDefault(q => AddressPattern.Matches(q.Match, route.To))?.BudgetUs;

    /// <summary>3. QoS: the lane kinds whose latency plus the provider's stays within the budget (and both ends can serve).</summary>
    public static IReadOnlyList<string> AllowedLanes(SymbolContract from, SymbolContract to, double? budget, PlanInputs inputs)
    {
        var kinds = PlanInputs.LaneKinds;
        var p99 = inputs.LaneP99ByKind;
        var mask = 0;
        for (var k = 0; k < kinds.Length; k++)
        {
            if (to.Lanes.Contains(kinds[k]) && from.Lanes.Contains(kinds[k]) && (budget is null || p99[k] + to.LatencyUs <= budget.Value))
            {
                mask |= 1 << k;
            }
        }

        return LaneSets[mask];
    }

    // Every subset of PlanInputs.LaneKinds, in its order, by bit mask (bit k: LaneKinds[k]): one shared read-only list each.
    private static readonly IReadOnlyList<string>[] LaneSets = [.. Enumerable.Range(0, 1 << PlanInputs.LaneKinds.Length)
        .Select(mask => (IReadOnlyList<string>)Array.AsReadOnly(PlanInputs.LaneKinds.Where((_, k) => (mask & (1 << k)) != 0).ToArray()))];
}

/// <summary>Address patterns: <c>*</c> matches within one segment, <c>**</c> across segments.</summary>
public static class AddressPattern
{
    private static readonly Dictionary<string, Regex> Cache = new(StringComparer.Ordinal);

    public static bool Matches(string pattern, string address)
    {
        Regex? regex;
        lock (Cache)
        {
            if (!Cache.TryGetValue(pattern, out regex))
            {
                var body = Regex.Escape(pattern).Replace(@"\*\*", "\u0001", StringComparison.Ordinal).Replace(@"\*", "[^/]*", StringComparison.Ordinal)
                    .Replace("\u0001", ".*", StringComparison.Ordinal);
                regex = new Regex($"^{body}$", RegexOptions.CultureInvariant | RegexOptions.Compiled);
                Cache[pattern] = regex;
            }
        }

        return regex.IsMatch(address);
    }
}
