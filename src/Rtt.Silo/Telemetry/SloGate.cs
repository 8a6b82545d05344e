using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Workspace;
using Rtt.Fabric.Telemetry;
using Rtt.Planning;

namespace Rtt.Silo.Telemetry;

/// <summary>One <c>policy.json</c> <c>slo</c> entry: routes whose target symbol matches must keep p99 and error rate within budget.</summary>
public sealed record SloRule(string Match, double? P99Ms, double? ErrorRate, int MinSamples, TimeSpan Window)
{
    public const int DefaultMinSamples = 20;
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromSeconds(2);

    public static IReadOnlyList<SloRule> Read(string policyPath)
    {
        if (!File.Exists(policyPath))
        {
            return [];
        }

        return [.. (RttWorkspace.ReadObject(policyPath)["slo"] as JsonArray ?? []).OfType<JsonObject>().Select(o => new SloRule(
            (string)o["match"]!,
            o["p99_ms"] is JsonValue p ? Number(p) : null,
            o["error_rate"] is JsonValue e ? Number(e) : null,
            o["min_samples"] is JsonValue m ? (int)Number(m) : DefaultMinSamples,
            o["window_s"] is JsonValue w ? TimeSpan.FromSeconds(Number(w)) : DefaultWindow))];
    }

    private static double Number(JsonValue v) => double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture);
}

/// <summary>
/// The SLO gates of the apply's verify step: for each served route whose target symbol matches a rule (the first
/// matching rule applies), the route's numbers are read, the gate waits the longest window of the rules in play, and
/// reads them again; the difference is the traffic the route got meanwhile. A route with fewer than the rule's
/// <c>min_samples</c> requests in its window is not judged (said in the note); otherwise a p99 above <c>p99_ms</c> or
/// an error rate above <c>error_rate</c> is a breach, reported with the measured values.
/// </summary>
public static class SloGate
{
    public static async Task<(IReadOnlyList<string> Breaches, string Note)> RunAsync(LaneTelemetry telemetry, IReadOnlyList<SloRule> rules, IEnumerable<(uint RouteId, string Name)> routes)
    {
        var watched = new List<(uint RouteId, string Name, SloRule Rule, long Requests, long Errors, long[] Counts)>();
        foreach (var (routeId, name) in routes.DistinctBy(r => r.RouteId))
        {
            var rule = rules.FirstOrDefault(r => AddressPattern.Matches(r.Match, name));
            if (rule is null || telemetry.Route(routeId) is not { } stats)
            {
                continue;
            }

            var counts = new long[LatencyHistogram.BucketCount];
            stats.Latency.CopyTo(counts);
            watched.Add((routeId, name, rule, stats.Answers + stats.Errors, stats.Errors, counts));
        }

        if (watched.Count == 0)
        {
            return ([], "");
        }

        var window = watched.Max(w => w.Rule.Window);
        var clock = Stopwatch.StartNew();
        await Task.Delay(window);
        var seconds = clock.Elapsed.TotalSeconds;
        var breaches = new List<string>();
        var notes = new List<string>();
        var now = new long[LatencyHistogram.BucketCount];
        foreach (var (routeId, name, rule, requests0, errors0, counts0) in watched)
        {
            var stats = telemetry.Route(routeId)!;
            var requests = stats.Answers + stats.Errors - requests0; // completed in the window (answered or failed), so the rate is of outcomes
            var errors = stats.Errors - errors0;
            stats.Latency.CopyTo(now);
            for (var i = 0; i < now.Length; i++)
            {
                now[i] -= counts0[i];
            }

            var p99Ms = LatencyHistogram.ValueAt(now, 0.99, stats.Latency.Max) / 1e6;
            var measured = string.Create(CultureInfo.InvariantCulture, $"{requests} requests, {errors} errors, p99 {p99Ms:0.###} ms over {seconds:0.0} s");
            if (requests < rule.MinSamples)
            {
                notes.Add($"slo {name}: {measured}, fewer than min_samples {rule.MinSamples}: not judged");
                continue;
            }

            var rate = (double)errors / requests;
            var broken = new List<string>();
            if (rule.P99Ms is { } budget && p99Ms > budget)
            {
                broken.Add(string.Create(CultureInfo.InvariantCulture, $"p99 {p99Ms:0.###} ms > budget {budget} ms"));
            }

            if (rule.ErrorRate is { } allowed && rate > allowed)
            {
                broken.Add(string.Create(CultureInfo.InvariantCulture, $"error rate {rate:0.####} > budget {allowed}"));
            }

            if (broken.Count > 0)
            {
                // The window around the breach, written by the host itself (as for a breaker trip).
                var dump = telemetry.FlightDumpFolder is { } folder ? TryDump(telemetry, folder, $"slo-{routeId}") : null;
                breaches.Add($"route {name} (id {routeId}, rule \"{rule.Match}\"): {string.Join(", ", broken)} ({measured})"
                    + (dump is null ? "" : $"; flight window in {dump}"));
            }
            else
            {
                notes.Add($"slo {name}: within budget ({measured})");
            }
        }

        return (breaches, string.Join("; ", notes));
    }

    private static string? TryDump(LaneTelemetry telemetry, string folder, string reason)
    {
        try
        {
            return telemetry.DumpFlight(folder, reason);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
