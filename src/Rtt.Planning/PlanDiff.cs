using System.Text.Json.Nodes;

namespace Rtt.Planning;

/// <summary>
/// A proposed plan against the applied one, by whole state (the panel's Plans page, docs/panel.md): routes added and
/// removed (by from → to), routes whose lane kind changed, symbols whose node changed (with the planner's reason when the
/// plan lists the move), the routes the planner rejected (constraint and values), and whether the proposal was computed
/// against the plan in force (<c>base</c>). Deterministic: rows sorted by ordinal symbol names.
/// </summary>
public static class PlanDiff
{
    public static JsonObject Of(JsonObject? proposed, JsonObject? applied)
    {
        var before = Lanes(applied);
        var after = Lanes(proposed);
        var added = new JsonArray();
        var removed = new JsonArray();
        var relaned = new JsonArray();
        var unchanged = 0;
        foreach (var (key, lane) in after)
        {
            if (!before.TryGetValue(key, out var old))
            {
                added.Add(Row(key, lane));
            }
            else if (old != lane)
            {
                relaned.Add(new JsonObject { ["from"] = key.From, ["to"] = key.To, ["lane"] = lane, ["was"] = old });
            }
            else
            {
                unchanged++;
            }
        }

        foreach (var (key, lane) in before)
        {
            if (!after.ContainsKey(key))
            {
                removed.Add(Row(key, lane));
            }
        }

        var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var m in proposed?["moves"] as JsonArray ?? [])
        {
            if ((string?)m?["symbol"] is { } symbol)
            {
                reasons[symbol] = (string?)m["reason"] ?? "";
            }
        }

        var placedBefore = Placement(applied);
        var placedAfter = Placement(proposed);
        var moved = new JsonArray();
        foreach (var (symbol, node) in placedAfter)
        {
            if (placedBefore.TryGetValue(symbol, out var was) && was != node)
            {
                moved.Add(new JsonObject { ["symbol"] = symbol, ["from"] = was, ["to"] = node, ["reason"] = reasons.GetValueOrDefault(symbol) });
            }
        }

        var rejected = new JsonArray();
        foreach (var r in proposed?["rejected"] as JsonArray ?? [])
        {
            rejected.Add(new JsonObject
            {
                ["from"] = (string?)r?["route"]?["from"],
                ["to"] = (string?)r?["route"]?["to"],
                ["constraint"] = (string?)r?["constraint"],
                ["values"] = r?["values"]?.DeepClone(),
            });
        }

        var appliedId = (string?)applied?["plan_id"];
        var baseId = (string?)proposed?["base"];
        return new JsonObject
        {
            ["proposed"] = (string?)proposed?["plan_id"],
            ["applied"] = appliedId,
            ["base"] = baseId,
            ["base_is_applied"] = baseId == appliedId,
            ["same_as_applied"] = proposed is not null && (string?)proposed["plan_id"] == appliedId,
            ["signed_by"] = (string?)proposed?["sign"]?["key_id"],
            ["added"] = added,
            ["removed"] = removed,
            ["relaned"] = relaned,
            ["moved"] = moved,
            ["rejected"] = rejected,
            ["unchanged"] = unchanged,
        };
    }

    private static JsonObject Row((string From, string To) key, string lane) => new() { ["from"] = key.From, ["to"] = key.To, ["lane"] = lane };

    private static SortedDictionary<(string From, string To), string> Lanes(JsonObject? plan)
    {
        var lanes = new SortedDictionary<(string From, string To), string>(Comparer<(string From, string To)>.Create((a, b) =>
        {
            var c = string.CompareOrdinal(a.From, b.From);
            return c != 0 ? c : string.CompareOrdinal(a.To, b.To);
        }));
        foreach (var l in plan?["lanes"] as JsonArray ?? [])
        {
            if ((string?)l?["route"]?["from"] is { } from && (string?)l["route"]?["to"] is { } to)
            {
                lanes[(from, to)] = (string?)l["kind"] ?? "";
            }
        }

        return lanes;
    }

    private static SortedDictionary<string, string> Placement(JsonObject? plan)
    {
        var placed = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (symbol, node) in plan?["placement"] as JsonObject ?? [])
        {
            placed[symbol] = (string?)node ?? "";
        }

        return placed;
    }
}
