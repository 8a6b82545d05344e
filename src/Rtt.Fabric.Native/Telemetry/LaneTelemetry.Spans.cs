using System.Diagnostics;
using Rtt.Fabric.Frames;

namespace Rtt.Fabric.Telemetry;

/// <summary>
/// One span per traced call (docs/observability.md, "Traces"): the worker notes a traced request's context with plain
/// stores in a fixed ring (<see cref="TraceStarted"/>), and the telemetry thread makes the span from it and the call's
/// flight record once the call has ended, with the times the worker took: nothing is allocated or made on the worker.
/// Calls at an async driver (an MCP endpoint, a plugin) get their span on the thread pool, around the driver's call
/// (<see cref="StartSpan"/>), so the driver can pass it on (an MCP server gets it as <c>_meta.traceparent</c>).
/// </summary>
public sealed partial class LaneTelemetry
{
    /// <summary>The source of the silo's call spans (exported by the silo's OpenTelemetry tracing).</summary>
    public static readonly ActivitySource Source = new("Rtt");

    private const int TraceCapacity = 4096;

    private readonly TracedStart[] _traceStarts = new TracedStart[TraceCapacity];
    private long _traceWritten; // worker
    private long _traceRead;    // telemetry thread
    private long _traceStartsLost;
    private long _spanCursor = -1; // the next flight record the span maker reads
    private readonly Dictionary<(uint RouteId, uint FrameId, long Start), TraceParent> _openSpans = [];
    private readonly List<FlightRecord> _spanRecords = [];
    private long _spans;
    private long _spansLost;

    private struct TracedStart
    {
        public TraceParent Trace;
        public uint RouteId;
        public uint FrameId;
        public long Start;
    }

    /// <summary>Spans made (both ways).</summary>
    public long Spans => Interlocked.Read(ref _spans);

    /// <summary>Traced calls that got no span: the ring of noted starts was full, or their flight record was overwritten before it was read.</summary>
    public long SpansLost => Interlocked.Read(ref _spansLost) + Interlocked.Read(ref _traceStartsLost);

    /// <summary>The worker only: a traced request was read (its flight record, when it ends, gives the rest).</summary>
    internal void TraceStarted(in TraceParent trace, uint routeId, uint frameId, long start)
    {
        if (_traceWritten - Volatile.Read(ref _traceRead) >= TraceCapacity)
        {
            _traceStartsLost++; // the telemetry thread is 4,096 behind: this call gets no span
            return;
        }

        ref var t = ref _traceStarts[_traceWritten & (TraceCapacity - 1)];
        t.Trace = trace;
        t.RouteId = routeId;
        t.FrameId = frameId;
        t.Start = start;
        Volatile.Write(ref _traceWritten, _traceWritten + 1);
    }

    /// <summary>Makes the spans of the traced calls that ended since the last time (telemetry thread; also called by tests).</summary>
    public int MakeSpans()
    {
        lock (_openSpans)
        {
            // The flight position first: every call that ended before it was noted as started before it too (the worker
            // notes the start, then, later, the record), so its start is in the ring read next.
            var until = Flight.Recorded;
            if (_spanCursor < 0)
            {
                _spanCursor = 0;
            }

            var written = Volatile.Read(ref _traceWritten);
            for (var p = _traceRead; p < written; p++)
            {
                ref var t = ref _traceStarts[p & (TraceCapacity - 1)];
                _openSpans[(t.RouteId, t.FrameId, t.Start)] = t.Trace;
            }

            Volatile.Write(ref _traceRead, written);
            if (_openSpans.Count == 0)
            {
                _spanCursor = until; // nothing traced in flight: skip the records
                return 0;
            }

            _spanRecords.Clear();
            var from = _spanCursor;
            _spanCursor = Flight.Read(from, _spanRecords, until);
            var made = 0;
            foreach (var r in _spanRecords)
            {
                if (_openSpans.Remove((r.RouteId, r.FrameId, r.Start), out var trace))
                {
                    Emit(trace, r);
                    made++;
                }
            }

            if (_openSpans.Count > 0)
            {
                // A call whose record the ring lost (overwritten before this thread read it), or still in progress after
                // ten minutes: given up, counted.
                var old = Stopwatch.GetTimestamp() - (600 * Stopwatch.Frequency);
                foreach (var key in _openSpans.Keys.Where(k => k.Start < old).ToList())
                {
                    _openSpans.Remove(key);
                    Interlocked.Increment(ref _spansLost);
                }
            }

            Interlocked.Add(ref _spans, made);
            return made;
        }
    }

    private void Emit(TraceParent trace, in FlightRecord r)
    {
        if (!Source.HasListeners())
        {
            return;
        }

        var stats = Route(r.RouteId);
        var name = stats?.Name ?? r.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var start = UtcOf(r.Start);
        using var span = Source.StartActivity(ActivityKind.Server, trace.ToContext(), startTime: start, name: name);
        if (span is null)
        {
            return;
        }

        Tag(span, stats, r.RouteId, r.FrameId);
        span.SetTag("rtt.outcome", OutcomeName(r.Outcome));
        if (r.Outcome != Outcome.Ok)
        {
            var code = r.Code != 0 || r.Outcome == Outcome.Error ? ErrorCodeTable.Codes[r.Code] : OutcomeName(r.Outcome);
            span.SetTag("rtt.error_code", code);
            span.SetStatus(ActivityStatusCode.Error, code);
        }

        span.SetEndTime(start.AddTicks(r.LatencyNs / 100));
    }

    private void Tag(Activity span, RouteStats? stats, uint routeId, uint frameId)
    {
        span.SetTag("rtt.node", Node);
        span.SetTag("rtt.route", stats?.Name);
        span.SetTag("rtt.route_id", (long)routeId);
        span.SetTag("rtt.endpoint", stats?.Endpoint);
        span.SetTag("rtt.frame_id", (long)frameId);
    }

    /// <summary>
    /// The span of a call at an async driver, started on the thread pool as the driver is called (null when the call
    /// is not traced or nobody listens); it becomes <see cref="Activity.Current"/> for the driver's call.
    /// </summary>
    internal Activity? StartSpan(in TraceParent trace, uint routeId, uint frameId, long startTicks)
    {
        if (!trace.Present || !Source.HasListeners())
        {
            return null;
        }

        var stats = Route(routeId);
        var span = Source.StartActivity(ActivityKind.Server, trace.ToContext(), startTime: startTicks != 0 ? UtcOf(startTicks) : default, name: stats?.Name ?? "rtt.call");
        if (span is not null)
        {
            Tag(span, stats, routeId, frameId);
            Interlocked.Increment(ref _spans);
        }

        return span;
    }
}
