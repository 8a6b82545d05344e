using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using HdrHistogram;
using Rtt.Core.Autotune;
using Trace = Rtt.Core.Autotune.Trace;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Autotune;

/// <summary>
/// Answers a replayed request with as many bytes as the trace's answer had: the replayer writes that size in the request's
/// first 4 bytes (little-endian); a request shorter than 4 bytes is answered with its own size. Counts requests by size.
/// </summary>
internal sealed class TraceAnswerDriver(int maxAnswer) : ILaneDriver
{
    public readonly long[] BySize = new long[Trace.MaxPayload + 1]; // written by the worker only; read after the run

    public string Name => "trace-answer";

    public int MaxResponseLength(int requestLength) => Math.Max(requestLength, maxAnswer);

    public int Handle(in FrameHeader request, ReadOnlySpan<byte> payload, Span<byte> response)
    {
        BySize[payload.Length]++;
        var size = payload.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(payload) : payload.Length;
        return Math.Clamp(size, 0, response.Length);
    }
}

/// <summary>
/// The lane host side of a replay: the real <see cref="LaneHost"/> (worker, idle strategy, CPU pinning) and
/// <see cref="LaneHostListener"/> (the silo's control socket code: SHM segments with the doorbell, UDS, TCP), set up with
/// one <see cref="TuneSettings"/>, serving each route of the trace. <c>rtt autotune</c> runs it in its own process
/// (<c>rtt autotune host</c>), one process per measured setting.
/// </summary>
public sealed class ReplayHost : IDisposable
{
    private readonly TraceAnswerDriver _driver;
    private readonly LaneHostListener _listener;

    public ReplayHost(TuneSettings settings, string socketPath, IReadOnlyList<string> routes, int maxAnswer, bool tcp)
    {
        Host = new LaneHost(cpus: settings.Cpus.Count > 0 ? settings.Cpus : null, idleSpins: settings.Spins, idleYields: settings.Yields, idlePark: settings.Park);
        if (!Host.WorkerAlive)
        {
            throw new RttException(ErrorCodes.TuneReplayFailed, $"the lane worker did not start with {settings} ({Host.Fault?.Message})", "--cpus",
                "name CPUs this process may run on");
        }

        _driver = new TraceAnswerDriver(maxAnswer);
        var endpoint = new DriverEndpoint(_driver);
        Host.SwapAsync(new RouteTable([.. routes.Select((r, i) => new RouteEntry((uint)(i + 1), r, endpoint))])).Wait();
        _listener = new LaneHostListener(Host, new LaneOptions { RingCapacity = settings.RingCapacity }, socketPath, tcp ? new IPEndPoint(IPAddress.Loopback, 0) : null);
    }

    public LaneHost Host { get; }

    public IPEndPoint? TcpEndPoint => _listener.TcpEndPoint;

    /// <summary>Requests the host answered, by request size (read once the replay is done).</summary>
    public SortedDictionary<int, long> ReceivedSizes()
    {
        var sizes = new SortedDictionary<int, long>();
        for (var i = 0; i < _driver.BySize.Length; i++)
        {
            if (Volatile.Read(ref _driver.BySize[i]) is var n and > 0)
            {
                sizes[i] = n;
            }
        }

        return sizes;
    }

    /// <summary>The host's own counts, for a failure message: what it received, sent and dropped.</summary>
    public string Describe()
    {
        var lanes = Host.Inbound;
        return $"host: received {lanes.Sum(l => l.Counters.Received)}, sent {lanes.Sum(l => l.Counters.Sent)}, dropped {lanes.Sum(l => l.Counters.Dropped)} "
            + $"(client_full {Host.ClientFullDrops}, stalls {lanes.Sum(l => l.Counters.Stalls)}, unknown_route {lanes.Sum(l => l.Counters.UnknownRoute)}, bad_crc {lanes.Sum(l => l.Counters.BadCrc)})";
    }

    public void Dispose()
    {
        _listener.Dispose();
        Host.Dispose();
    }
}

/// <summary>One replay of a trace: latency of every request (HdrHistogram, ns, as <c>rtt bench lanes</c>), answers by request size, time taken.</summary>
public sealed class ReplayRun
{
    public required LongHistogram Latency { get; init; }

    public required long Frames { get; init; }

    public required SortedDictionary<int, long> AnsweredSizes { get; init; }

    public required TimeSpan Elapsed { get; init; }

    public double FramesPerSecond => Frames / Math.Max(1e-9, Elapsed.TotalSeconds);
}

/// <summary>
/// The client side of a replay: attaches to a lane host's control socket (or TCP port) as an application does, then
/// sends the trace's requests on a lane of the given kind, either at their recorded offsets (open loop: latency counts
/// from the time a request was due, so a late send is not hidden) or at full speed (up to 256 in flight).
/// </summary>
public static class TraceReplayer
{
    private const int FullSpeedWindow = 256;

    /// <param name="ringCapacity">The SHM ring the host creates (its settings): answers in flight are kept within half of it.</param>
    public static ReplayRun Run(Trace trace, string socketPath, IPEndPoint? tcp, LaneKind kind, bool fullSpeed, TimeSpan? stallLimit = null, int ringCapacity = Rtt.Core.Lanes.LaneDefaults.RingCapacity)
    {
        var routes = trace.Routes;
        var routeIndex = routes.Select((r, i) => (r, i)).ToDictionary(x => x.r, x => (uint)(x.i + 1), StringComparer.Ordinal);
        // Fail, not Block: a sender blocked on a full socket stops reading answers, and a host whose answers do not fit
        // stops reading requests: both would wait for ever. A full lane makes the loop read answers first.
        var options = new LaneOptions { Backpressure = BackpressurePolicy.Fail };
        var (lane, _) = kind == LaneKind.Tcp
            ? LaneAttach.ConnectTcp(tcp ?? throw new ArgumentNullException(nameof(tcp)), routes[0], options)
            : LaneAttach.ConnectUnix(socketPath, routes[0], kind, options);
        var stream = lane as Streams.StreamLane;
        // The host drops an answer that finds no room (client_full, docs/fabric.md): a stream lane's host keeps at most
        // 256 KiB to send, an SHM answer must fit in the client's ring. So answers in flight stay within 192 KiB on a
        // stream and half the ring on SHM, as a client must; requests due meanwhile wait (and that wait counts in their latency).
        var maxInFlightBytes = stream is null ? ringCapacity / 2 : 192 * 1024;
        long inFlightBytes = 0;
        using var _lane = lane;
        var n = trace.Frames.Count;
        var routeOf = new uint[n];
        var due = new long[n];
        var perNs = Stopwatch.Frequency / 1e9;
        for (var i = 0; i < n; i++)
        {
            routeOf[i] = routeIndex[trace.Frames[i].Route];
            due[i] = (long)(trace.Frames[i].AtNs * perNs);
        }

        var histogram = new LongHistogram(60_000_000_000, 3);
        var answeredBySize = new long[Trace.MaxPayload + 1];
        var payload = new byte[Trace.MaxPayload];
        long answered = 0;
        long start = 0;
        var sentAt = fullSpeed ? new long[n] : due;
        FrameHandler onAnswer = (in FrameHeader h, ReadOnlySpan<byte> p) =>
        {
            var i = (int)h.FrameId;
            if ((uint)i >= (uint)n)
            {
                return;
            }

            histogram.RecordValue(Math.Max(0, (long)((Stopwatch.GetTimestamp() - start - sentAt[i]) / perNs)));
            answeredBySize[trace.Frames[i].RequestBytes]++;
            inFlightBytes -= trace.Frames[i].AnswerBytes + 64;
            answered++;
        };

        var limit = (long)((stallLimit ?? TimeSpan.FromSeconds(10)).TotalSeconds * Stopwatch.Frequency);
        start = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 1000; // 1 ms ahead, so the first request is not late already
        var next = 0;
        var lastProgress = Stopwatch.GetTimestamp();
        while (answered < n)
        {
            var now = Stopwatch.GetTimestamp() - start;
            var queued = 0;
            while (next < n && (fullSpeed ? next - answered < FullSpeedWindow : due[next] <= now)
                   && (inFlightBytes == 0 || inFlightBytes + trace.Frames[next].AnswerBytes + 64 <= maxInFlightBytes))
            {
                var f = trace.Frames[next];
                if (f.RequestBytes >= 4)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(payload, f.AnswerBytes);
                }

                if (fullSpeed)
                {
                    sentAt[next] = Stopwatch.GetTimestamp() - start;
                }

                if (!lane.TrySend(routeOf[next], (uint)next, payload.AsSpan(0, f.RequestBytes)))
                {
                    break; // the ring is full: read answers first
                }

                inFlightBytes += f.AnswerBytes + 64;
                next++;
                queued++;
            }

            if (queued > 0 || stream is { Unsent: > 0 })
            {
                lane.Flush(); // a stream lane keeps what the socket did not take, and sends it on the next call
            }

            var read = lane.Poll(onAnswer);
            if (read > 0 || queued > 0)
            {
                lastProgress = Stopwatch.GetTimestamp();
            }
            else if (lane.PeerGone)
            {
                throw new RttException(ErrorCodes.TuneReplayFailed, $"the replay's lane host went away after {answered} of {n} answers", socketPath,
                    "run again; the host process's error is printed above when it had one");
            }
            else if (Stopwatch.GetTimestamp() - lastProgress > limit)
            {
                throw new RttException(ErrorCodes.TuneReplayFailed, $"no answer for {limit / Stopwatch.Frequency} s ({answered} of {n} answered, {(fullSpeed ? "full speed" : "recorded timing")}, {kind} lane)", socketPath,
                    "the lane host stalled; run again on a quieter machine");
            }
            else if (!fullSpeed && answered == next && next < n && (due[next] - now) / perNs > 300_000)
            {
                // Nothing in flight and the next request is over 0.3 ms away: sleep on the lane instead of spinning a core.
                lane.WaitForData(TimeSpan.FromTicks((long)((due[next] - now) / perNs / 100) - 2_000));
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(start);
        var sizes = new SortedDictionary<int, long>();
        for (var i = 0; i < answeredBySize.Length; i++)
        {
            if (answeredBySize[i] > 0)
            {
                sizes[i] = answeredBySize[i];
            }
        }

        return new ReplayRun { Latency = histogram, Frames = answered, AnsweredSizes = sizes, Elapsed = elapsed };
    }
}
