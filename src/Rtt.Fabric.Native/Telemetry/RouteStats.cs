using System.Reflection;
using System.Text;
using Rtt.Core.Errors;

namespace Rtt.Fabric.Telemetry;

/// <summary>How a request ended (the flight recorder's <c>outcome</c>).</summary>
public enum Outcome : byte
{
    /// <summary>Answered by the endpoint.</summary>
    Ok = 0,

    /// <summary>Answered with an error frame (the endpoint failed, timed out, went away, or answered with an error).</summary>
    Error = 1,

    /// <summary>Refused at once because the endpoint's in-flight window or lane was full (RTT-CALL-005).</summary>
    Busy = 2,

    /// <summary>Refused at once because the route's circuit breaker is open (RTT-LANE-007).</summary>
    BreakerOpen = 3,

    /// <summary>The answer was dropped: the client's lane stayed full.</summary>
    ClientFull = 4,

    /// <summary>The answer was dropped: the client went away before it came.</summary>
    ClientGone = 5,
}

/// <summary>
/// RTT's error codes by index, for counting errors by code without strings on the lane worker: index 0 is "other"
/// (an error payload that names no known code), then every <see cref="ErrorCodes"/> constant in ordinal order.
/// </summary>
public static class ErrorCodeTable
{
    private static readonly byte[][] Utf8;

    static ErrorCodeTable()
    {
        var codes = typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!)
            .Where(c => c.StartsWith("RTT-", StringComparison.Ordinal))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal);
        Codes = ["other", .. codes];
        Utf8 = [.. Codes.Select(Encoding.UTF8.GetBytes)];
        // The caller's own mistakes and a tool's own error result say nothing about the endpoint's health; refusals
        // (busy, breaker open) are the host's, not the endpoint's.
        string[] notAgainst = [ErrorCodes.CallArgsInvalid, ErrorCodes.CallToolError, ErrorCodes.CallInputInvalid, ErrorCodes.DriverBusy, ErrorCodes.LaneBreakerOpen];
        Against = [.. Codes.Select(c => !notAgainst.Contains(c))];
    }

    private static readonly bool[] Against;

    /// <summary>Whether an error with this code counts as a failure of the endpoint for its breaker.</summary>
    public static bool CountsAgainstEndpoint(int index) => Against[index];

    /// <summary>Index 0 "other", then the codes.</summary>
    public static IReadOnlyList<string> Codes { get; }

    public static int Count => Codes.Count;

    public static int IndexOf(string code)
    {
        for (var i = 1; i < Codes.Count; i++)
        {
            if (Codes[i] == code)
            {
                return i;
            }
        }

        return 0;
    }

    /// <summary>The code an error payload starts with (<c>RTT-LANE-005 message</c>); 0 when none is known. No allocation.</summary>
    public static int Of(ReadOnlySpan<byte> payload)
    {
        var space = payload[..Math.Min(payload.Length, 24)].IndexOf((byte)' ');
        var code = space > 0 ? payload[..space] : payload;
        for (var i = 1; i < Utf8.Length; i++)
        {
            if (code.SequenceEqual(Utf8[i]))
            {
                return i;
            }
        }

        return 0;
    }
}

/// <summary>
/// A route's circuit breaker settings (<c>policy.json</c> <c>breakers</c>). Closed, it counts calls and failures in
/// fixed windows of <see cref="Window"/>; when a window has at least <see cref="MinCalls"/> calls and the failures
/// reach <see cref="FailureRatio"/> of them, it opens. Open, it answers every call at once with RTT-LANE-007 for
/// <see cref="OpenFor"/>, then goes half-open: it lets <see cref="HalfOpenCalls"/> calls through; if they all succeed
/// it closes, the first failure opens it again. A failure is an error answer other than the caller's own mistakes
/// (bad arguments, a tool's own error result) and a refusal, or a call slower than <see cref="SlowCall"/> when set.
/// </summary>
public sealed record BreakerOptions
{
    public bool Enabled { get; init; } = true;

    public TimeSpan Window { get; init; } = TimeSpan.FromSeconds(10);

    public int MinCalls { get; init; } = 20;

    public double FailureRatio { get; init; } = 0.5;

    /// <summary>A call that takes longer counts as a failure (a timeout); zero: latency never counts.</summary>
    public TimeSpan SlowCall { get; init; } = TimeSpan.Zero;

    public TimeSpan OpenFor { get; init; } = TimeSpan.FromSeconds(5);

    public int HalfOpenCalls { get; init; } = 3;

    public static BreakerOptions Default { get; } = new();

    public static BreakerOptions Disabled { get; } = new() { Enabled = false };
}

public enum BreakerState : byte
{
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// <summary>A breaker's change of state, queued by the worker for the telemetry thread (which logs it and dumps the flight window).</summary>
public readonly record struct BreakerChange(uint RouteId, BreakerState From, BreakerState To, long Timestamp, long Calls, long Failures);

/// <summary>
/// The per-route state machine (closed, open, half-open), run on the lane worker only: plain fields, no allocation,
/// no lock. Readers see <see cref="State"/> and the counts through volatile reads.
/// </summary>
public sealed class CircuitBreaker
{
    private readonly RouteStats _route;
    private readonly LaneTelemetry _sink;
    private volatile BreakerState _state; // written by the worker, read by reports
    private long _windowStart;
    private long _calls;
    private long _failures;
    private long _openedAt;
    private int _trialsIssued;
    private int _trialsPassed;
    private long _trips;
    private long _changes;

    internal CircuitBreaker(RouteStats route, LaneTelemetry sink)
    {
        _route = route;
        _sink = sink;
    }

    private volatile BreakerOptions _options = BreakerOptions.Default;
    private long _windowTicks = Ticks(BreakerOptions.Default.Window);
    private long _openTicks = Ticks(BreakerOptions.Default.OpenFor);

    /// <summary>The settings; replaced whole (an immutable record) when the policy changes (off the worker).</summary>
    internal BreakerOptions Options
    {
        get => _options;
        set
        {
            _windowTicks = Ticks(value.Window); // read by the worker beside the options: a change takes effect within a call or two
            _openTicks = Ticks(value.OpenFor);
            _options = value;
        }
    }

    private static long Ticks(TimeSpan t) => (long)(t.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);

    public BreakerState State => _state;

    /// <summary>Times it opened from closed.</summary>
    public long Trips => Volatile.Read(ref _trips);

    /// <summary>State changes so far.</summary>
    public long Changes => Volatile.Read(ref _changes);

    /// <summary>Whether a call may go through now (<paramref name="now"/> in Stopwatch ticks).</summary>
    internal bool Allow(long now)
    {
        if (_state == BreakerState.Closed)
        {
            return true;
        }

        if (_state == BreakerState.Open)
        {
            if (now - _openedAt < _openTicks)
            {
                return false;
            }

            _trialsIssued = 0;
            _trialsPassed = 0;
            Move(BreakerState.HalfOpen, now);
        }

        if (_trialsIssued >= Options.HalfOpenCalls)
        {
            return false; // half-open: its trial calls are out; the rest wait for their answers
        }

        _trialsIssued++;
        return true;
    }

    /// <summary>A call of this route ended (<paramref name="failure"/>: it counts against the endpoint).</summary>
    internal void OnOutcome(long now, bool failure)
    {
        var options = Options;
        if (!options.Enabled)
        {
            return;
        }

        switch (_state)
        {
            case BreakerState.Closed:
                if (now - _windowStart >= _windowTicks)
                {
                    _windowStart = now;
                    _calls = 0;
                    _failures = 0;
                }

                _calls++;
                _failures += failure ? 1 : 0;
                if (failure && _calls >= options.MinCalls && _failures >= options.FailureRatio * _calls)
                {
                    _trips++;
                    _openedAt = now;
                    Move(BreakerState.Open, now);
                }

                break;
            case BreakerState.HalfOpen:
                if (failure)
                {
                    _openedAt = now;
                    Move(BreakerState.Open, now);
                }
                else if (++_trialsPassed >= options.HalfOpenCalls)
                {
                    _windowStart = now;
                    _calls = 0;
                    _failures = 0;
                    Move(BreakerState.Closed, now);
                }

                break;
            default:
                break; // answers to calls let through before it opened
        }
    }

    private void Move(BreakerState to, long now)
    {
        var from = _state;
        _state = to;
        _changes++;
        _sink.OnBreakerChange(new BreakerChange(_route.RouteId, from, to, now, _calls, _failures));
    }
}

/// <summary>
/// One route's telemetry on one lane host: requests, answers, errors by code, refusals and drops by reason, bytes,
/// the latency histogram (request read by the worker to answer written by it), and its breaker. Written by the lane
/// worker only (plain increments); read by anyone with volatile reads. Made off the worker when a table is swapped in,
/// and kept for the life of the host, so a route's counts survive plans that keep it.
/// </summary>
public sealed class RouteStats
{
    internal RouteStats(uint routeId, string name, string? from, LaneTelemetry sink)
    {
        RouteId = routeId;
        Name = name;
        From = from;
        Breaker = new CircuitBreaker(this, sink);
        BreakerPayload = Frames.ErrorPayload.Encode(ErrorCodes.LaneBreakerOpen,
            $"the circuit breaker of route \"{name}\" is open: its endpoint failed too often; calls are refused for a while, then tried again");
    }

    public uint RouteId { get; }

    public string Name { get; }

    public string? From { get; }

    /// <summary>The endpoint serving the route now (set on each swap).</summary>
    public string Endpoint { get; internal set; } = "";

    public LatencyHistogram Latency { get; } = new();

    public CircuitBreaker Breaker { get; }

    internal readonly byte[] BreakerPayload;

    internal long RequestsCount;
    internal long OkCount;
    internal long ErrorCount;
    internal long BytesInCount;
    internal long BytesOutCount;
    internal long BusyCount;
    internal long BreakerRefusedCount;
    internal long ClientFullCount;
    internal long ClientGoneCount;
    internal readonly long[] ErrorsByCodeCounts = new long[ErrorCodeTable.Count];

    public long Requests => Volatile.Read(ref RequestsCount);

    /// <summary>Answered by the endpoint.</summary>
    public long Answers => Volatile.Read(ref OkCount);

    /// <summary>Answered with an error frame (refusals included).</summary>
    public long Errors => Volatile.Read(ref ErrorCount);

    public long BytesIn => Volatile.Read(ref BytesInCount);

    public long BytesOut => Volatile.Read(ref BytesOutCount);

    /// <summary>Refused because the endpoint was full (also counted in <see cref="Errors"/>).</summary>
    public long Busy => Volatile.Read(ref BusyCount);

    /// <summary>Refused because the breaker was open (also counted in <see cref="Errors"/>).</summary>
    public long BreakerRefused => Volatile.Read(ref BreakerRefusedCount);

    public long ClientFull => Volatile.Read(ref ClientFullCount);

    public long ClientGone => Volatile.Read(ref ClientGoneCount);

    /// <summary>Requests not yet answered nor dropped.</summary>
    public long InFlight => Math.Max(0, Requests - Answers - Errors - ClientFull - ClientGone);

    public long ErrorsWithCode(int index) => Volatile.Read(ref ErrorsByCodeCounts[index]);
}
