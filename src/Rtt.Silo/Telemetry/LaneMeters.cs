using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Rtt.Core.Telemetry;
using Rtt.Fabric.Telemetry;

namespace Rtt.Silo.Telemetry;

/// <summary>
/// The lane hosts' per-route numbers as observable instruments of the <c>Rtt</c> meter, so OpenTelemetry exports them
/// (Prometheus: <c>rtt_route_requests_total{route="…"}</c>). Each collection reads a snapshot of every registered host
/// (made at most once a second); nothing is recorded on the lane worker through the meter (OpenTelemetry's own
/// histograms take a lock per value), the worker's single-writer histograms are the source.
/// Attributes: <c>node</c>, <c>route</c>, <c>route_id</c>, <c>endpoint</c>, and per instrument <c>code</c>,
/// <c>reason</c>, <c>direction</c> or <c>quantile</c>.
/// </summary>
public static class LaneMeters
{
    private static readonly ConcurrentDictionary<LaneTelemetry, Cached> Hosts = new();
    private static int _created;

    private sealed class Cached
    {
        public TelemetrySnapshot? Snapshot;
        public long Taken;
    }

    public static void Register(LaneTelemetry telemetry)
    {
        Hosts[telemetry] = new Cached();
        if (Interlocked.Exchange(ref _created, 1) == 0)
        {
            Create(RttMetrics.Meter);
        }
    }

    public static void Unregister(LaneTelemetry telemetry) => Hosts.TryRemove(telemetry, out _);

    private static void Create(Meter meter)
    {
        meter.CreateObservableCounter("rtt.route.requests", () => Each(r => [(r.Requests, [])]), "{request}", "Requests read by the lane worker, per route");
        meter.CreateObservableCounter("rtt.route.answers", () => Each(r => [(r.Answers, [])]), "{answer}", "Requests the endpoint answered");
        meter.CreateObservableCounter("rtt.route.errors", () => Each(r => [.. r.ErrorsByCode.Select(e => (e.Value, new[] { new KeyValuePair<string, object?>("code", e.Key) }))]),
            "{error}", "Requests answered with an error frame, by error code");
        meter.CreateObservableCounter("rtt.route.drops", () => Each(r =>
            [
                (r.Busy, [new("reason", "busy")]),
                (r.BreakerRefused, [new("reason", "breaker_open")]),
                (r.ClientFull, [new("reason", "client_full")]),
                (r.ClientGone, [new("reason", "client_gone")]),
            ]), "{request}", "Requests refused or answers dropped, by reason");
        meter.CreateObservableCounter("rtt.route.bytes", () => Each(r => [(r.BytesIn, [new("direction", "in")]), (r.BytesOut, [new("direction", "out")])]),
            "By", "Payload bytes of requests (in) and answers (out)");
        meter.CreateObservableUpDownCounter("rtt.route.in_flight", () => Each(r => [(r.InFlight, [])]), "{request}", "Requests read and not yet answered");
        meter.CreateObservableGauge("rtt.route.latency", () => EachDouble(r =>
            [
                (r.WindowP50Ns / 1e9, [new("quantile", "0.5")]),
                (r.WindowP95Ns / 1e9, [new("quantile", "0.95")]),
                (r.WindowP99Ns / 1e9, [new("quantile", "0.99")]),
            ]), "s", "Request read to answer written, over the last 5-10 s");
        meter.CreateObservableGauge("rtt.route.breaker.state", () => Each(r => [((long)r.Breaker, [])]), "{state}", "Circuit breaker: 0 closed, 1 open, 2 half-open");
        meter.CreateObservableCounter("rtt.route.breaker.trips", () => Each(r => [(r.BreakerTrips, [])]), "{trip}", "Times the breaker opened from closed");
    }

    private static IEnumerable<(TelemetrySnapshot Snapshot, string? Node)> Snapshots()
    {
        var now = Environment.TickCount64;
        foreach (var (telemetry, cached) in Hosts)
        {
            TelemetrySnapshot snapshot;
            lock (cached)
            {
                if (cached.Snapshot is null || now - cached.Taken >= 1000)
                {
                    cached.Snapshot = telemetry.Snapshot();
                    cached.Taken = now;
                }

                snapshot = cached.Snapshot;
            }

            yield return (snapshot, telemetry.Node);
        }
    }

    private static List<Measurement<long>> Each(Func<RouteSnapshot, IEnumerable<(long Value, KeyValuePair<string, object?>[] Tags)>> select)
    {
        var list = new List<Measurement<long>>();
        foreach (var (snapshot, node) in Snapshots())
        {
            foreach (var r in snapshot.Routes)
            {
                foreach (var (value, tags) in select(r))
                {
                    list.Add(new Measurement<long>(value, [.. Tags(r, node), .. tags]));
                }
            }
        }

        return list;
    }

    private static List<Measurement<double>> EachDouble(Func<RouteSnapshot, IEnumerable<(double Value, KeyValuePair<string, object?>[] Tags)>> select)
    {
        var list = new List<Measurement<double>>();
        foreach (var (snapshot, node) in Snapshots())
        {
            foreach (var r in snapshot.Routes)
            {
                foreach (var (value, tags) in select(r))
                {
                    list.Add(new Measurement<double>(value, [.. Tags(r, node), .. tags]));
                }
            }
        }

        return list;
    }

    private static KeyValuePair<string, object?>[] Tags(RouteSnapshot r, string? node) =>
    [
        new("node", node ?? ""),
        new("route", r.Route),
        new("route_id", r.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("endpoint", r.Endpoint),
    ];
}
