using System.Globalization;
using System.Text;
using System.Text.Json;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;

namespace Rtt.Core.Autotune;

/// <summary>One request of a trace: when it was sent (ns after the trace's first request), on which route, and its sizes.</summary>
public readonly record struct TraceFrame(long AtNs, uint RouteId, string Route, int RequestBytes, int AnswerBytes);

/// <summary>
/// A replayable trace (docs/autotune.md): requests in send order with their offsets, routes and payload sizes. A flight
/// recorder dump (<c>rtt tap --flight</c>, <c>rtt autotune record</c>) is a trace as it is; <see cref="SyntheticTrace"/>
/// makes one from a seed. Latencies and outcomes in the file are not used: the replay measures its own.
/// </summary>
public sealed class Trace
{
    /// <summary>Largest payload a replayed frame may carry (a lane's default maximum payload).</summary>
    public const int MaxPayload = Lanes.LaneDefaults.MaxPayload;

    public Trace(IReadOnlyList<TraceFrame> frames, string source)
    {
        Frames = frames;
        Source = source;
        Hash = ComputeHash(frames);
    }

    public IReadOnlyList<TraceFrame> Frames { get; }

    /// <summary>Where it came from (a file path, or the synthetic spec).</summary>
    public string Source { get; }

    /// <summary><c>sha256:</c> of the frames (offset, route, sizes), independent of the file's other lines and formatting.</summary>
    public string Hash { get; }

    /// <summary>Offset of the last request.</summary>
    public long DurationNs => Frames.Count == 0 ? 0 : Frames[^1].AtNs;

    /// <summary>Distinct routes in first-seen order (the replay serves one route per entry).</summary>
    public IReadOnlyList<string> Routes => [.. Frames.Select(f => f.Route).Distinct(StringComparer.Ordinal)];

    /// <summary>Requests by request size, sizes ascending.</summary>
    public SortedDictionary<int, long> SizeHistogram()
    {
        var sizes = new SortedDictionary<int, long>();
        foreach (var f in Frames)
        {
            sizes[f.RequestBytes] = sizes.GetValueOrDefault(f.RequestBytes) + 1;
        }

        return sizes;
    }

    /// <summary>Mean requests per second over the trace (0 for a trace of one frame).</summary>
    public double RateHz => DurationNs <= 0 ? 0 : (Frames.Count - 1) / (DurationNs / 1e9);

    private static string ComputeHash(IReadOnlyList<TraceFrame> frames)
    {
        var text = new StringBuilder(frames.Count * 40);
        foreach (var f in frames)
        {
            text.Append(f.AtNs.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(f.Route).Append(' ')
                .Append(f.RequestBytes.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(f.AnswerBytes.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        return ContentHash.Of(Encoding.UTF8.GetBytes(text.ToString()));
    }
}

/// <summary>Reads and writes traces in the flight recorder's NDJSON format (docs/observability.md).</summary>
public static class TraceFile
{
    /// <summary>Where synthetic traces start: a fixed instant, so the same spec writes the same bytes.</summary>
    public static readonly DateTime SyntheticEpoch = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    /// <summary>Reads a flight NDJSON file: its <c>frame</c> lines, ordered by their <c>ts</c> (the flight dump lists them as they ended).</summary>
    public static Trace Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new RttException(ErrorCodes.TuneTraceMissing, "trace file not found", path,
                "give a flight NDJSON file (rtt autotune record --seconds 5, rtt tap --flight 5s > FILE, or rtt autotune gen)");
        }

        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    public static Trace Read(Stream stream, string source)
    {
        var raw = new List<(long Ticks, int Line, uint RouteId, string Route, int Request, int Answer)>();
        using var reader = new StreamReader(stream, new UTF8Encoding(false, true));
        var lineNo = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (line.Length == 0)
            {
                continue;
            }

            string type;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String)
                {
                    throw Bad(source, lineNo, "is not a JSON object with a \"type\"");
                }

                type = t.GetString()!;
                if (type is "window" or "metrics")
                {
                    continue;
                }

                if (type != "frame")
                {
                    throw Bad(source, lineNo, $"has type \"{type}\" (expected window, metrics or frame)");
                }

                var ts = Text(root, "ts", source, lineNo);
                if (!DateTime.TryParseExact(ts, "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture,
                        DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var at))
                {
                    throw Bad(source, lineNo, $"has \"ts\" {ts}, not a UTC time like 2026-12-02T09:49:08.8841200Z");
                }

                var routeId = (uint)Integer(root, "route_id", source, lineNo, uint.MaxValue);
                var route = root.TryGetProperty("route", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "route-" + routeId.ToString(CultureInfo.InvariantCulture);
                var request = (int)Integer(root, "request_bytes", source, lineNo, Trace.MaxPayload);
                var answer = (int)Integer(root, "answer_bytes", source, lineNo, Trace.MaxPayload);
                raw.Add((at.Ticks, lineNo, routeId, route, request, answer));
            }
            catch (JsonException ex)
            {
                throw Bad(source, lineNo, "is not valid JSON (" + ex.Message.Split('.')[0] + ")");
            }
        }

        if (raw.Count == 0)
        {
            throw new RttException(ErrorCodes.TuneTraceEmpty, "the trace has no frame lines", source,
                "record while the routes carry traffic (rtt autotune record --seconds N), or generate one with rtt autotune gen");
        }

        raw.Sort((a, b) => a.Ticks != b.Ticks ? a.Ticks.CompareTo(b.Ticks) : a.Line.CompareTo(b.Line)); // stable: file order breaks ties
        var first = raw[0].Ticks;
        var frames = raw.Select(f => new TraceFrame((f.Ticks - first) * 100, f.RouteId, f.Route, f.Request, f.Answer)).ToArray();
        return new Trace(frames, source);
    }

    /// <summary>Writes the trace as flight NDJSON (a window line, then one frame line per request), starting at <paramref name="start"/>.</summary>
    public static void Write(Trace trace, Stream output, DateTime? start = null)
    {
        var epoch = (start ?? SyntheticEpoch).Ticks;
        var seconds = Math.Max(1, (long)Math.Ceiling(trace.DurationNs / 1e9));
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{{\"type\":\"window\",\"at\":\"{Ts(epoch + trace.DurationNs / 100)}\",\"seconds\":{seconds},\"frames\":{trace.Frames.Count},\"metrics\":0,\"reason\":\"trace\",\"recorded\":{trace.Frames.Count},\"capacity\":0}}\n");
        var id = 0u;
        foreach (var f in trace.Frames)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{{\"type\":\"frame\",\"ts\":\"{Ts(epoch + f.AtNs / 100)}\",\"route_id\":{f.RouteId},\"route\":{JsonSerializer.Serialize(f.Route)},\"endpoint\":\"trace\",\"frame_id\":{id++},\"request_bytes\":{f.RequestBytes},\"answer_bytes\":{f.AnswerBytes},\"latency_ns\":0,\"outcome\":\"ok\"}}\n");
        }

        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        output.Write(bytes);
    }

    private static string Ts(long ticks) => new DateTime(ticks, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    private static string Text(JsonElement root, string name, string source, int line) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Bad(source, line, $"has no string \"{name}\"");

    private static long Integer(JsonElement root, string name, string source, int line, long max)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n))
        {
            throw Bad(source, line, $"has no integer \"{name}\"");
        }

        if (n < 0 || n > max)
        {
            throw Bad(source, line, $"has \"{name}\" {n}, outside 0..{max}");
        }

        return n;
    }

    private static RttException Bad(string source, int line, string what) =>
        new(ErrorCodes.TuneTraceMalformed, $"line {line} {what}", $"{source}: line {line}",
            "fix or remove that line; a trace is the NDJSON of rtt tap --flight (docs/observability.md)");
}

/// <summary>What <see cref="SyntheticTrace"/> makes: the same spec gives the same trace, byte for byte.</summary>
public sealed record SyntheticTraceSpec(double Seconds, double RateHz, int Burst, IReadOnlyList<int> Sizes, int Routes, ulong Seed)
{
    /// <summary>A steady load: Poisson arrivals of single requests.</summary>
    public static SyntheticTraceSpec Steady(double seconds = 1, double rateHz = 5_000, ulong seed = 1) => new(seconds, rateHz, 1, [64, 512, 4096], 1, seed);

    /// <summary>A bursty load at the same mean rate: bursts of 64 requests back to back.</summary>
    public static SyntheticTraceSpec Bursty(double seconds = 1, double rateHz = 5_000, ulong seed = 1) => new(seconds, rateHz, 64, [64, 512, 4096], 1, seed);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"synthetic seconds={Seconds} rate={RateHz} burst={Burst} sizes={string.Join(',', Sizes)} routes={Routes} seed={Seed}");

    public void Validate()
    {
        static RttException Bad(string option, string what, string example) => new(ErrorCodes.TuneInputInvalid, what, option, example);
        if (!(Seconds > 0 && Seconds <= 600))
        {
            throw Bad("--seconds", $"seconds {Seconds.ToString(CultureInfo.InvariantCulture)} is not above 0 and at most 600", "for example --seconds 1");
        }

        if (!(RateHz >= 1 && RateHz <= 2_000_000))
        {
            throw Bad("--rate", $"rate {RateHz.ToString(CultureInfo.InvariantCulture)} Hz is not from 1 to 2,000,000", "for example --rate 5000");
        }

        if (Seconds * RateHz > 5_000_000)
        {
            throw Bad("--rate", "seconds x rate exceeds 5,000,000 requests", "shorten the trace or lower the rate");
        }

        if (Burst is < 1 or > 4096)
        {
            throw Bad("--burst", $"burst {Burst} is not from 1 to 4096", "for example --burst 64");
        }

        if (Sizes.Count == 0 || Sizes.Any(s => s < 4 || s > Trace.MaxPayload))
        {
            throw Bad("--sizes", $"sizes {string.Join(',', Sizes)} must be from 4 to {Trace.MaxPayload} bytes", "for example --sizes 64,4096");
        }

        if (Routes is < 1 or > 64)
        {
            throw Bad("--routes", $"routes {Routes} is not from 1 to 64", "for example --routes 1");
        }
    }
}

/// <summary>
/// Deterministic synthetic traces: bursts of <c>Burst</c> requests (1 µs apart) whose starts form a Poisson process of
/// rate <c>RateHz / Burst</c>, sizes drawn uniformly from <c>Sizes</c> (answers the same size), routes uniformly. Its own
/// SplitMix64 generator, so the output does not depend on the runtime's Random.
/// </summary>
public static class SyntheticTrace
{
    public static Trace Generate(SyntheticTraceSpec spec)
    {
        spec.Validate();
        var state = spec.Seed;
        double Next() => (SplitMix(ref state) >> 11) * (1.0 / (1UL << 53)); // [0, 1)
        var frames = new List<TraceFrame>();
        var endNs = (long)(spec.Seconds * 1e9);
        var burstRate = spec.RateHz / spec.Burst;
        double t = 0;
        while (true)
        {
            var start = (long)t / 100 * 100; // the flight format has 100 ns resolution: a written trace reads back the same
            for (var i = 0; i < spec.Burst; i++)
            {
                var at = start + i * 1_000L;
                if (at >= endNs)
                {
                    break;
                }

                var size = spec.Sizes[(int)(Next() * spec.Sizes.Count)];
                var route = (int)(Next() * spec.Routes);
                frames.Add(new TraceFrame(at, (uint)(route + 1), $"rtt://autotune/synthetic/r{route + 1}", size, size));
            }

            t += -Math.Log(1 - Next()) / burstRate * 1e9; // exponential gap to the next burst
            if ((long)t >= endNs)
            {
                break;
            }
        }

        frames.Sort((a, b) => a.AtNs.CompareTo(b.AtNs)); // bursts closer than their length overlap: keep send order by time
        var first = frames[0].AtNs;
        return new Trace([.. frames.Select(f => f with { AtNs = f.AtNs - first })], spec.ToString());
    }

    private static ulong SplitMix(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
