using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Telemetry;

/// <summary>A route's numbers at one moment (see docs/observability.md for each field).</summary>
public sealed record RouteSnapshot(
    uint RouteId, string Route, string? From, string Endpoint,
    long Requests, long Answers, long Errors, long InFlight, long BytesIn, long BytesOut,
    long Busy, long BreakerRefused, long ClientFull, long ClientGone,
    IReadOnlyDictionary<string, long> ErrorsByCode,
    long LatencyCount, long P50Ns, long P95Ns, long P99Ns, long MaxNs, long MeanNs,
    double WindowSeconds, long WindowRequests, long WindowErrors, long WindowP50Ns, long WindowP95Ns, long WindowP99Ns,
    BreakerState Breaker, long BreakerTrips, long BreakerChanges);

/// <summary>A lane host's numbers at one moment.</summary>
public sealed record TelemetrySnapshot(DateTime At, double UptimeSeconds, bool Enabled, IReadOnlyList<RouteSnapshot> Routes,
    IReadOnlyList<KeyValuePair<string, long>> Host, int FlightCapacity, long FlightRecorded);

/// <summary>
/// The telemetry of one lane host: the routes' <see cref="RouteStats"/> (made off the worker when a table is swapped
/// in), the <see cref="FlightRecorder"/>, and a background thread that every 100 ms takes the breakers' changes the
/// worker queued (logs them through <see cref="BreakerChanged"/> and, when one opens, dumps the flight window to
/// <see cref="FlightDumpFolder"/>) and every 5 s starts a new latency window (the windowed percentiles cover the last
/// 5 to 10 s). Nothing here runs on the worker except <see cref="OnBreakerChange"/>, which is a store into a ring.
/// </summary>
public sealed partial class LaneTelemetry : IDisposable
{
    private const int EventCapacity = 256;
    private static readonly TimeSpan WindowStep = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<uint, RouteStats> _routes = new();
    private readonly ConcurrentDictionary<uint, RouteWindow> _windows = new();
    private readonly BreakerChange[] _events = new BreakerChange[EventCapacity];
    private long _eventsWritten; // worker
    private long _eventsRead;    // telemetry thread
    private long _eventsLost;
    private readonly Thread? _thread;
    private readonly ManualResetEventSlim _stop = new();
    private readonly long _startTicks = Stopwatch.GetTimestamp();
    private readonly DateTime _startUtc = DateTime.UtcNow;
    private long _dumps;

    public LaneTelemetry(int flightCapacity = FlightRecorder.DefaultCapacity, bool start = true)
    {
        Flight = new FlightRecorder(flightCapacity);
        if (start)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "rtt-lane-telemetry" };
            _thread.Start();
        }
    }

    public FlightRecorder Flight { get; }

    /// <summary>The node this host serves (named in snapshots).</summary>
    public string? Node { get; set; }

    /// <summary>The breaker settings of a route (called off the worker on each swap); default: breakers off.</summary>
    public Func<RouteEntry, BreakerOptions> BreakerPolicy { get; set; } = _ => BreakerOptions.Disabled;

    /// <summary>Told of each breaker change on the telemetry thread (the silo logs it); with the dump's path when one was written.</summary>
    public Action<BreakerChange, RouteStats, string?>? BreakerChanged { get; set; }

    /// <summary>Where a breaker that opens dumps the flight window (<c>.rtt/flight</c> in a silo); null: no dumps.</summary>
    public string? FlightDumpFolder { get; set; }

    /// <summary>How much of the flight record a dump holds before the moment it was taken.</summary>
    public TimeSpan DumpWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The host's own counters for snapshots (set by the lane host).</summary>
    public Func<IReadOnlyList<KeyValuePair<string, long>>>? HostCounters { get; set; }

    /// <summary>Flight dumps written.</summary>
    public long Dumps => Interlocked.Read(ref _dumps);

    /// <summary>Breaker changes lost because the telemetry thread fell 256 behind.</summary>
    public long EventsLost => Interlocked.Read(ref _eventsLost);

    public RouteStats? Route(uint routeId) => _routes.TryGetValue(routeId, out var s) ? s : null;

    /// <summary>The routes served now (set on each swap).</summary>
    public IReadOnlyList<RouteStats> Current { get; private set; } = [];

    /// <summary>
    /// The stats of each route of <paramref name="table"/>, in its order (made now, off the worker; kept by route id so
    /// a route's counts carry over from plan to plan), with each route's endpoint and breaker settings brought up to date.
    /// </summary>
    internal RouteStats[] Bind(RouteTable table)
    {
        var stats = new RouteStats[table.Routes.Count];
        for (var i = 0; i < stats.Length; i++)
        {
            var entry = table.Routes[i];
            var s = _routes.GetOrAdd(entry.RouteId, id => new RouteStats(id, entry.Name, entry.From, this));
            s.Endpoint = entry.Endpoint.Name;
            s.Breaker.Options = BreakerPolicy(entry);
            _windows.GetOrAdd(entry.RouteId, _ => new RouteWindow());
            stats[i] = s;
        }

        Current = stats;
        return stats;
    }

    /// <summary>The worker queues a breaker change (a store into a ring; when the ring is full the change is counted as lost).</summary>
    internal void OnBreakerChange(in BreakerChange change)
    {
        if (_eventsWritten - Volatile.Read(ref _eventsRead) >= EventCapacity)
        {
            _eventsLost++;
            return;
        }

        _events[_eventsWritten % EventCapacity] = change;
        Volatile.Write(ref _eventsWritten, _eventsWritten + 1);
    }

    /// <summary>Handles the queued breaker changes now (the telemetry thread does it every 100 ms; tests may call it).</summary>
    public int DrainEvents()
    {
        var handled = 0;
        lock (_events)
        {
            var written = Volatile.Read(ref _eventsWritten);
            while (_eventsRead < written)
            {
                var change = _events[_eventsRead % EventCapacity];
                Volatile.Write(ref _eventsRead, _eventsRead + 1);
                handled++;
                var route = Route(change.RouteId);
                if (route is null)
                {
                    continue;
                }

                string? dump = null;
                if (change.To == BreakerState.Open && FlightDumpFolder is { } folder)
                {
                    dump = TryDump(folder, $"breaker-{change.RouteId}");
                }

                BreakerChanged?.Invoke(change, route, dump);
            }
        }

        return handled;
    }

    private string? TryDump(string folder, string reason)
    {
        try
        {
            return DumpFlight(folder, reason);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Writes the last <see cref="DumpWindow"/> of the flight record to <c>FOLDER/&lt;utc-time&gt;-&lt;reason&gt;.ndjson</c>; returns the path.</summary>
    public string DumpFlight(string folder, string reason)
    {
        Directory.CreateDirectory(folder);
        var now = DateTime.UtcNow;
        var path = Path.Combine(folder, $"{now.ToString("yyyyMMdd'T'HHmmss.fff'Z'", CultureInfo.InvariantCulture)}-{reason}.ndjson");
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, 1 << 16))
        {
            WriteFlight(file, DumpWindow, reason);
        }

        Interlocked.Increment(ref _dumps);
        return path;
    }

    /// <summary>
    /// Writes the flight record of the last <paramref name="window"/> as NDJSON: a <c>window</c> line, then one
    /// <c>frame</c> line per request in the order they ended (docs/observability.md has the format).
    /// </summary>
    public void WriteFlight(Stream output, TimeSpan window, string? reason = null)
    {
        var now = Stopwatch.GetTimestamp();
        var since = now - (long)(window.TotalSeconds * Stopwatch.Frequency);

        // A window with room behind it in the ring (the writer must write half as many records again as the window
        // holds before it reaches the window's oldest) is formatted straight out of the ring, segment by segment;
        // otherwise (a ring the window fills, e.g. the default 131,072 records at high rates) it is copied first, in
        // one piece, so the dump is consistent. A copy of a 5 M-record window (200 MB) cost a dump more than the
        // formatting (page faults of a fresh 200 MB array), hence the first way when it is safe.
        var (first, end, count) = Flight.Locate(since);
        var direct = Flight.Capacity - (end - first) >= count / 2L;
        FlightRecord[]? records = null;
        if (!direct)
        {
            records = Flight.CopySince(since, out count);
        }

        var samples = SamplesSince(since);
        using var writer = new Utf8JsonWriter(output);
        writer.WriteStartObject();
        writer.WriteString("type", "window");
        writer.WriteString("at", UtcOf(now));
        writer.WriteNumber("seconds", window.TotalSeconds);
        writer.WriteNumber("frames", count);
        writer.WriteNumber("metrics", samples.Count);
        if (reason is not null)
        {
            writer.WriteString("reason", reason);
        }

        writer.WriteNumber("recorded", Flight.Recorded);
        writer.WriteNumber("capacity", Flight.Capacity);
        writer.WriteEndObject();
        writer.Flush();
        output.WriteByte((byte)'\n');
        WriteSamples(output, samples);
        if (records is not null)
        {
            WriteRecords(output, records, count);
            return;
        }

        var segments = (int)((end - first + SegmentRecords - 1) / SegmentRecords);
        var lost = 0L;
        FormatInOrder(output, segments, (formatter, s) =>
        {
            var from = first + ((long)s * SegmentRecords);
            var scratch = formatter.Scratch.AsSpan(0, (int)Math.Min(SegmentRecords, end - from));
            var overwritten = scratch.Length == 0 ? 0 : Flight.CopyRange(from, scratch);
            if (overwritten > 0)
            {
                Interlocked.Add(ref lost, overwritten);
            }

            return formatter.Format(scratch[overwritten..], since);
        });
        if (lost > 0)
        {
            Interlocked.Add(ref _dumpLost, lost);
        }
    }

    private long _dumpLost;

    /// <summary>Frame records a dump left out because the writer overwrote them while it was written (the window line counted them).</summary>
    public long DumpLost => Interlocked.Read(ref _dumpLost);

    /// <summary>
    /// Writes <paramref name="records"/> as NDJSON <c>frame</c> lines, the bytes System.Text.Json's writer gives for the
    /// same object (names in this order, strings escaped by its default encoder, the time as ISO 8601 UTC with the
    /// fraction's trailing zeros trimmed), formatted by hand: constant parts copied, numbers by Utf8Formatter, the
    /// date and time to the second formatted once per second. <paramref name="writer"/> is unused (kept for callers).
    /// </summary>
    public void WriteRecords(Stream output, Utf8JsonWriter? writer, List<FlightRecord> records)
    {
        _ = writer;
        WriteRecords(output, records.ToArray(), records.Count);
    }

    /// <summary>Records per formatted segment (about 1.2 MB of NDJSON), the unit written to the output and handed to a formatting thread.</summary>
    private const int SegmentRecords = 8192;

    /// <summary>
    /// Writes the first <paramref name="count"/> of <paramref name="records"/> as NDJSON <c>frame</c> lines (as above).
    /// A large window is cut into segments of 8,192 records formatted on up to four threads at once, each into its own
    /// buffer, while another thread writes the previous round's buffers to <paramref name="output"/> in order, so the
    /// formatting and the write overlap (a 5 M-record dump is ~740 MB).
    /// </summary>
    public void WriteRecords(Stream output, FlightRecord[] records, int count)
    {
        var segments = (count + SegmentRecords - 1) / SegmentRecords;
        FormatInOrder(output, segments, (formatter, s) =>
            formatter.Format(records.AsSpan(s * SegmentRecords, Math.Min(SegmentRecords, count - (s * SegmentRecords))), long.MinValue));
    }

    /// <summary>
    /// Formats <paramref name="segments"/> segments (<paramref name="format"/> fills a formatter's buffer with one and
    /// returns its length) and writes them to <paramref name="output"/> in order: up to four formatted at once, while
    /// another thread writes the previous round's buffers.
    /// </summary>
    private void FormatInOrder(Stream output, int segments, Func<SegmentFormatter, int, int> format)
    {
        var width = Math.Clamp(Environment.ProcessorCount, 1, 4);
        if (segments <= 1 || width == 1)
        {
            var formatter = new SegmentFormatter(this);
            for (var s = 0; s < segments; s++)
            {
                var length = format(formatter, s);
                output.Write(formatter.Buffer, 0, length);
            }

            return;
        }

        SegmentFormatter[][] sets = [[.. Enumerable.Range(0, width).Select(_ => new SegmentFormatter(this))], [.. Enumerable.Range(0, width).Select(_ => new SegmentFormatter(this))]];
        int[][] lengths = [new int[width], new int[width]];
        Task? writing = null;
        for (var round = 0; round * width < segments; round++)
        {
            var set = sets[round & 1];
            var sized = lengths[round & 1];
            var firstSegment = round * width;
            var k = Math.Min(width, segments - firstSegment);
            Parallel.For(0, k, i => sized[i] = format(set[i], firstSegment + i));
            writing?.GetAwaiter().GetResult(); // the previous round is out, so its buffers can be formatted into next
            writing = Task.Run(() =>
            {
                for (var i = 0; i < k; i++)
                {
                    output.Write(set[i].Buffer, 0, sized[i]);
                }
            });
        }

        writing?.GetAwaiter().GetResult();
    }

    /// <summary>Formats frame lines into its own buffer; one per formatting thread (caches the route and code parts and the current second).</summary>
    private sealed class SegmentFormatter(LaneTelemetry telemetry)
    {
        private readonly Dictionary<uint, byte[]?> _routeParts = [];
        private readonly byte[] _secondText = new byte[19]; // yyyy-MM-ddTHH:mm:ss
        private long _second = long.MinValue;

        public byte[] Buffer { get; private set; } = new byte[(SegmentRecords * 160) + 4096];

        /// <summary>Where a segment read straight out of the ring is copied first.</summary>
        public FlightRecord[] Scratch => _scratch ??= new FlightRecord[SegmentRecords];

        private FlightRecord[]? _scratch;

        /// <summary>Formats the records that ended at or after <paramref name="sinceTicks"/>; returns the bytes written into <see cref="Buffer"/>.</summary>
        public int Format(ReadOnlySpan<FlightRecord> records, long sinceTicks)
        {
            var at = 0;
            uint lastRoute = 0;
            byte[]? routePart = null; // ,"route":"…","endpoint":"…"
            var haveRoute = false;
            foreach (ref readonly var r in records)
            {
                if (sinceTicks != long.MinValue && FlightRecorder.EndTicks(r) < sinceTicks)
                {
                    continue;
                }

                if (!haveRoute || r.RouteId != lastRoute)
                {
                    lastRoute = r.RouteId;
                    haveRoute = true;
                    if (!_routeParts.TryGetValue(r.RouteId, out routePart))
                    {
                        var stats = telemetry.Route(r.RouteId);
                        routePart = stats is null ? null
                            : [.. ",\"route\":\""u8, .. JsonEncodedText.Encode(stats.Name).EncodedUtf8Bytes, .. "\",\"endpoint\":\""u8, .. JsonEncodedText.Encode(stats.Endpoint).EncodedUtf8Bytes, (byte)'"'];
                        _routeParts[r.RouteId] = routePart;
                    }
                }

                var code = r.Code != 0 || r.Outcome == Outcome.Error ? CodeUtf8[r.Code < CodeUtf8.Length ? r.Code : 0] : null;
                if (at + 512 + (routePart?.Length ?? 0) + (code?.Length ?? 0) > Buffer.Length)
                {
                    var grown = new byte[Buffer.Length * 2];
                    Buffer.AsSpan(0, at).CopyTo(grown);
                    Buffer = grown;
                }

                var span = Buffer.AsSpan();
                Put(span, ref at, "{\"type\":\"frame\",\"ts\":\""u8);
                var ticks = telemetry.UtcOf(r.Start).Ticks;
                if (ticks / TimeSpan.TicksPerSecond != _second)
                {
                    _second = ticks / TimeSpan.TicksPerSecond;
                    new DateTime(_second * TimeSpan.TicksPerSecond, DateTimeKind.Utc).TryFormat(_secondText, out _, "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
                }

                Put(span, ref at, _secondText);
                var fraction = (int)(ticks % TimeSpan.TicksPerSecond);
                if (fraction != 0)
                {
                    var digits = 7;
                    while (fraction % 10 == 0)
                    {
                        fraction /= 10;
                        digits--;
                    }

                    span[at++] = (byte)'.';
                    Utf8Formatter.TryFormat(fraction, span[at..], out var n, new StandardFormat('D', (byte)digits));
                    at += n;
                }

                Put(span, ref at, "Z\",\"route_id\":"u8);
                Number(span, ref at, r.RouteId);
                if (routePart is not null)
                {
                    Put(span, ref at, routePart);
                }

                Put(span, ref at, ",\"frame_id\":"u8);
                Number(span, ref at, r.FrameId);
                Put(span, ref at, ",\"request_bytes\":"u8);
                Number(span, ref at, r.RequestBytes);
                Put(span, ref at, ",\"answer_bytes\":"u8);
                Number(span, ref at, r.AnswerBytes);
                Put(span, ref at, ",\"latency_ns\":"u8);
                Number(span, ref at, r.LatencyNs);
                Put(span, ref at, ",\"outcome\":\""u8);
                Put(span, ref at, OutcomeUtf8[(int)r.Outcome < OutcomeUtf8.Length ? (int)r.Outcome : 0]);
                if (code is not null)
                {
                    Put(span, ref at, "\",\"code\":\""u8);
                    Put(span, ref at, code);
                }

                Put(span, ref at, "\"}\n"u8);
            }

            return at;
        }
    }

    /// <summary>Each known error code as JSON string content (escaped as the writer escapes).</summary>
    private static readonly byte[][] CodeUtf8 = [.. ErrorCodeTable.Codes.Select(c => JsonEncodedText.Encode(c).EncodedUtf8Bytes.ToArray())];

    private static readonly byte[][] OutcomeUtf8 = [.. Enumerable.Range(0, 6).Select(i => Encoding.UTF8.GetBytes(OutcomeName((Outcome)i)))];

    private static void Put(Span<byte> buffer, ref int at, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(buffer[at..]);
        at += bytes.Length;
    }

    private static void Number(Span<byte> buffer, ref int at, long value)
    {
        Utf8Formatter.TryFormat(value, buffer[at..], out var n);
        at += n;
    }

    /// <summary>A Stopwatch timestamp as UTC time.</summary>
    public DateTime UtcOf(long ticks) => _startUtc.AddTicks((long)((ticks - _startTicks) * LatencyHistogram.NsPerTick / 100));

    public static string OutcomeName(Outcome outcome) => outcome switch
    {
        Outcome.Ok => "ok",
        Outcome.Error => "error",
        Outcome.Busy => "busy",
        Outcome.BreakerOpen => "breaker_open",
        Outcome.ClientFull => "client_full",
        Outcome.ClientGone => "client_gone",
        _ => "unknown",
    };

    public static string StateName(BreakerState state) => state switch
    {
        BreakerState.Closed => "closed",
        BreakerState.Open => "open",
        _ => "half_open",
    };

    /// <summary>A Stopwatch timestamp as UTC time, ISO 8601 with microseconds.</summary>
    public string TimeOf(long ticks) =>
        _startUtc.AddTicks((long)((ticks - _startTicks) * LatencyHistogram.NsPerTick / 100)).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Every route served now, with cumulative counts and percentiles and those of the current window.</summary>
    public TelemetrySnapshot Snapshot()
    {
        var counts = new long[LatencyHistogram.BucketCount];
        var now = Stopwatch.GetTimestamp();
        var routes = new List<RouteSnapshot>();
        foreach (var s in Current.OrderBy(r => r.Name, StringComparer.Ordinal).ThenBy(r => r.RouteId))
        {
            s.Latency.CopyTo(counts);
            var count = s.Latency.Count;
            var max = s.Latency.Max;
            var byCode = new SortedDictionary<string, long>(StringComparer.Ordinal);
            for (var i = 0; i < ErrorCodeTable.Count; i++)
            {
                var n = s.ErrorsWithCode(i);
                if (n > 0)
                {
                    byCode[ErrorCodeTable.Codes[i]] = n;
                }
            }

            long wp50 = 0, wp95 = 0, wp99 = 0, wRequests = 0, wErrors = 0;
            double wSeconds = 0;
            if (_windows.TryGetValue(s.RouteId, out var w))
            {
                lock (w)
                {
                    var delta = new long[counts.Length];
                    for (var i = 0; i < delta.Length; i++)
                    {
                        delta[i] = counts[i] - w.Base[i];
                    }

                    wp50 = LatencyHistogram.ValueAt(delta, 0.50, max);
                    wp95 = LatencyHistogram.ValueAt(delta, 0.95, max);
                    wp99 = LatencyHistogram.ValueAt(delta, 0.99, max);
                    wRequests = s.Requests - w.BaseRequests;
                    wErrors = s.Errors - w.BaseErrors;
                    wSeconds = (now - w.BaseTicks) / (double)Stopwatch.Frequency;
                }
            }

            routes.Add(new RouteSnapshot(s.RouteId, s.Name, s.From, s.Endpoint,
                s.Requests, s.Answers, s.Errors, s.InFlight, s.BytesIn, s.BytesOut,
                s.Busy, s.BreakerRefused, s.ClientFull, s.ClientGone, byCode,
                count, LatencyHistogram.ValueAt(counts, 0.50, max), LatencyHistogram.ValueAt(counts, 0.95, max), LatencyHistogram.ValueAt(counts, 0.99, max),
                max, count == 0 ? 0 : s.Latency.Sum / count,
                wSeconds, wRequests, wErrors, wp50, wp95, wp99,
                s.Breaker.State, s.Breaker.Trips, s.Breaker.Changes));
        }

        return new TelemetrySnapshot(DateTime.UtcNow, (now - _startTicks) / (double)Stopwatch.Frequency, true, routes,
            HostCounters?.Invoke() ?? [], Flight.Capacity, Flight.Recorded);
    }

    /// <summary>A snapshot as the JSON document <c>rtt metrics --json</c> prints (docs/observability.md).</summary>
    public static byte[] ToJson(TelemetrySnapshot snapshot, string? node = null)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            if (node is not null)
            {
                w.WriteString("node", node);
            }

            w.WriteString("at", snapshot.At.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
            w.WriteNumber("uptime_s", Math.Round(snapshot.UptimeSeconds, 3));
            w.WriteBoolean("telemetry", snapshot.Enabled);
            w.WriteStartArray("routes");
            foreach (var r in snapshot.Routes)
            {
                w.WriteStartObject();
                w.WriteNumber("route_id", r.RouteId);
                w.WriteString("route", r.Route);
                if (r.From is not null)
                {
                    w.WriteString("from", r.From);
                }

                w.WriteString("endpoint", r.Endpoint);
                w.WriteNumber("requests", r.Requests);
                w.WriteNumber("answers", r.Answers);
                w.WriteNumber("errors", r.Errors);
                w.WriteNumber("in_flight", r.InFlight);
                w.WriteNumber("bytes_in", r.BytesIn);
                w.WriteNumber("bytes_out", r.BytesOut);
                w.WriteStartObject("drops");
                w.WriteNumber("busy", r.Busy);
                w.WriteNumber("breaker_open", r.BreakerRefused);
                w.WriteNumber("client_full", r.ClientFull);
                w.WriteNumber("client_gone", r.ClientGone);
                w.WriteEndObject();
                w.WriteStartObject("errors_by_code");
                foreach (var (code, n) in r.ErrorsByCode)
                {
                    w.WriteNumber(code, n);
                }

                w.WriteEndObject();
                w.WriteStartObject("latency_ns");
                w.WriteNumber("count", r.LatencyCount);
                w.WriteNumber("p50", r.P50Ns);
                w.WriteNumber("p95", r.P95Ns);
                w.WriteNumber("p99", r.P99Ns);
                w.WriteNumber("max", r.MaxNs);
                w.WriteNumber("mean", r.MeanNs);
                w.WriteEndObject();
                w.WriteStartObject("window");
                w.WriteNumber("seconds", Math.Round(r.WindowSeconds, 3));
                w.WriteNumber("requests", r.WindowRequests);
                w.WriteNumber("errors", r.WindowErrors);
                w.WriteNumber("rps", r.WindowSeconds > 0 ? Math.Round(r.WindowRequests / r.WindowSeconds, 1) : 0);
                w.WriteNumber("p50_ns", r.WindowP50Ns);
                w.WriteNumber("p95_ns", r.WindowP95Ns);
                w.WriteNumber("p99_ns", r.WindowP99Ns);
                w.WriteEndObject();
                w.WriteStartObject("breaker");
                w.WriteString("state", StateName(r.Breaker));
                w.WriteNumber("trips", r.BreakerTrips);
                w.WriteNumber("changes", r.BreakerChanges);
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartObject("host");
            foreach (var (name, value) in snapshot.Host)
            {
                w.WriteNumber(name, value);
            }

            w.WriteEndObject();
            w.WriteStartObject("flight");
            w.WriteNumber("capacity", snapshot.FlightCapacity);
            w.WriteNumber("recorded", snapshot.FlightRecorded);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    /// <summary>Starts a new latency window for every route (the telemetry thread does it every 5 s).</summary>
    public void Roll()
    {
        var now = Stopwatch.GetTimestamp();
        foreach (var s in Current)
        {
            if (!_windows.TryGetValue(s.RouteId, out var w))
            {
                continue;
            }

            lock (w)
            {
                // The window reported runs from Base (5-10 s ago); Next (taken 5 s ago) becomes the new Base.
                (w.Base, w.Next) = (w.Next, w.Base);
                (w.BaseTicks, w.BaseRequests, w.BaseErrors) = (w.NextTicks, w.NextRequests, w.NextErrors);
                s.Latency.CopyTo(w.Next);
                (w.NextTicks, w.NextRequests, w.NextErrors) = (now, s.Requests, s.Errors);
            }
        }
    }

    /// <summary>One route's counts at one second (the flight record's <c>metrics</c> lines).</summary>
    private readonly record struct Sample(long Ticks, uint RouteId, long Requests, long Answers, long Errors, long InFlight, BreakerState Breaker);

    private const int SampleCapacity = 1 << 14; // 16,384 route-seconds (~1 MiB): an hour of 4 routes, a minute of 270
    private readonly Sample[] _samples = new Sample[SampleCapacity];
    private long _sampled;

    /// <summary>Takes every route's counts now into the sample ring (the telemetry thread does it every second).</summary>
    public void TakeSample()
    {
        var now = Stopwatch.GetTimestamp();
        lock (_samples)
        {
            foreach (var r in Current)
            {
                _samples[_sampled++ % SampleCapacity] = new Sample(now, r.RouteId, r.Requests, r.Answers, r.Errors, r.InFlight, r.Breaker.State);
            }
        }
    }

    private List<Sample> SamplesSince(long ticks)
    {
        lock (_samples)
        {
            var list = new List<Sample>();
            for (var p = Math.Max(0, _sampled - SampleCapacity); p < _sampled; p++)
            {
                var sample = _samples[p % SampleCapacity];
                if (sample.Ticks >= ticks)
                {
                    list.Add(sample);
                }
            }

            return list;
        }
    }

    private void WriteSamples(Stream output, List<Sample> samples)
    {
        using var writer = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true });
        foreach (var m in samples)
        {
            writer.Reset(output);
            writer.WriteStartObject();
            writer.WriteString("type", "metrics");
            writer.WriteString("ts", UtcOf(m.Ticks));
            writer.WriteNumber("route_id", m.RouteId);
            if (Route(m.RouteId) is { } route)
            {
                writer.WriteString("route", route.Name);
            }

            writer.WriteNumber("requests", m.Requests);
            writer.WriteNumber("answers", m.Answers);
            writer.WriteNumber("errors", m.Errors);
            writer.WriteNumber("in_flight", m.InFlight);
            writer.WriteString("breaker", StateName(m.Breaker));
            writer.WriteEndObject();
            writer.Flush();
            output.WriteByte((byte)'\n');
        }
    }

    private void Run()
    {
        var lastRoll = Stopwatch.GetTimestamp();
        var lastSample = lastRoll;
        while (!_stop.Wait(100))
        {
            try
            {
                DrainEvents();
                MakeSpans();
                if (Stopwatch.GetElapsedTime(lastSample) >= TimeSpan.FromSeconds(1))
                {
                    lastSample = Stopwatch.GetTimestamp();
                    TakeSample();
                }

                if (Stopwatch.GetElapsedTime(lastRoll) >= WindowStep)
                {
                    lastRoll = Stopwatch.GetTimestamp();
                    Roll();
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // a failing log sink must not end the telemetry thread
            }
        }
    }

    public void Dispose()
    {
        _stop.Set();
        _thread?.Join(TimeSpan.FromSeconds(2));
        DrainEvents();
        MakeSpans();
    }

    private sealed class RouteWindow
    {
        public long[] Base = new long[LatencyHistogram.BucketCount];
        public long[] Next = new long[LatencyHistogram.BucketCount];
        public long BaseTicks = Stopwatch.GetTimestamp();
        public long NextTicks = Stopwatch.GetTimestamp();
        public long BaseRequests;
        public long BaseErrors;
        public long NextRequests;
        public long NextErrors;
    }
}
