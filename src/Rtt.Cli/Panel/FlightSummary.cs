using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Rtt.Cli.Panel;

/// <summary>
/// The Live page's data: the flight recorder's frame records (the NDJSON of `rtt tap --flight`) summarised per route for the
/// requests that ended after <c>since</c>. The host writes records in the order requests end, so a request missing from one
/// dump ends after every request in it: taking the newest end as the next <c>since</c> partitions the traffic between
/// successive calls, each request counted once (unless the ring overwrote it before the next call: <c>recorded</c>, the
/// records ever written, against the frames counted says so).
/// </summary>
public static class FlightSummary
{
    private const string TsFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    /// <summary>
    /// Parses an ISO 8601 UTC time as the flight record writes it (up to 7 fractional digits: the JSON writer drops trailing
    /// zeros, and the dot with them); null when it is not one.
    /// </summary>
    public static DateTime? ParseTime(string? text) =>
        DateTime.TryParseExact(text, ReadFormats, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var t) ? t : null;

    private static readonly string[] ReadFormats = ["yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", "yyyy-MM-dd'T'HH:mm:ss'Z'"];

    public static string FormatTime(DateTime t) => t.ToString(TsFormat, CultureInfo.InvariantCulture);

    /// <summary>
    /// One summary: per route id (ordered by route id) the count of requests that ended after <paramref name="since"/>, how many
    /// were not <c>ok</c> (by outcome), their latency p50/p99/max in ns (nearest rank); <c>until</c> is the newest end seen
    /// (<paramref name="since"/> when none), the next call's <c>since</c>.
    /// </summary>
    public static JsonObject Of(ReadOnlySpan<byte> ndjson, DateTime? since)
    {
        var routes = new SortedDictionary<uint, (string Route, string Endpoint, List<long> Latencies, SortedDictionary<string, long> Outcomes)>();
        var until = since;
        DateTime? at = null;
        long recorded = 0, capacity = 0;
        foreach (var line in Lines(ndjson))
        {
            using var doc = JsonDocument.Parse(line);
            var o = doc.RootElement;
            switch (o.GetProperty("type").GetString())
            {
                case "window":
                    at = ParseTime(o.GetProperty("at").GetString());
                    recorded = o.GetProperty("recorded").GetInt64();
                    capacity = o.GetProperty("capacity").GetInt64();
                    break;
                case "frame":
                    var latency = o.GetProperty("latency_ns").GetInt64();
                    var end = ParseTime(o.GetProperty("ts").GetString())!.Value.AddTicks(latency / 100);
                    if (since is { } s && end <= s)
                    {
                        continue;
                    }

                    until = until is { } u && u >= end ? u : end;
                    var id = o.GetProperty("route_id").GetUInt32();
                    if (!routes.TryGetValue(id, out var r))
                    {
                        r = (o.GetProperty("route").GetString() ?? "", o.GetProperty("endpoint").GetString() ?? "", [], new(StringComparer.Ordinal));
                        routes[id] = r;
                    }

                    r.Latencies.Add(latency);
                    var outcome = o.GetProperty("outcome").GetString() ?? "ok";
                    r.Outcomes[outcome] = r.Outcomes.GetValueOrDefault(outcome) + 1;
                    break;
            }
        }

        var list = new JsonArray();
        foreach (var (id, r) in routes)
        {
            r.Latencies.Sort();
            var outcomes = new JsonObject();
            foreach (var (name, n) in r.Outcomes)
            {
                outcomes[name] = n;
            }

            list.Add(new JsonObject
            {
                ["route_id"] = id,
                ["route"] = r.Route,
                ["endpoint"] = r.Endpoint,
                ["frames"] = r.Latencies.Count,
                ["errors"] = r.Latencies.Count - r.Outcomes.GetValueOrDefault("ok"),
                ["outcomes"] = outcomes,
                ["p50_ns"] = Rank(r.Latencies, 0.50),
                ["p99_ns"] = Rank(r.Latencies, 0.99),
                ["max_ns"] = r.Latencies[^1],
            });
        }

        return new JsonObject
        {
            ["at"] = at is { } a ? FormatTime(a) : null,
            ["since"] = since is { } b ? FormatTime(b) : null,
            ["until"] = until is { } c ? FormatTime(c) : null,
            ["recorded"] = recorded,
            ["capacity"] = capacity,
            ["routes"] = list,
        };
    }

    /// <summary>Nearest rank: the smallest value with at least <paramref name="q"/> of the values at or below it.</summary>
    private static long Rank(List<long> sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static List<ReadOnlyMemory<byte>> Lines(ReadOnlySpan<byte> ndjson)
    {
        var lines = new List<ReadOnlyMemory<byte>>();
        var copy = ndjson.ToArray();
        var start = 0;
        for (var i = 0; i <= copy.Length; i++)
        {
            if (i == copy.Length || copy[i] == (byte)'\n')
            {
                if (i > start)
                {
                    lines.Add(copy.AsMemory(start, i - start));
                }

                start = i + 1;
            }
        }

        return lines;
    }
}
