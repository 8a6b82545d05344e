using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using HdrHistogram;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Lanes.Bench;

/// <summary>Percentiles of one histogram, in nanoseconds.</summary>
public sealed record LatencyStats(long P50, long P99, long P999, long Max, long Count)
{
    public static LatencyStats From(HistogramBase h) =>
        new(h.GetValueAtPercentile(50), h.GetValueAtPercentile(99), h.GetValueAtPercentile(99.9), h.GetMaxValue(), h.TotalCount);
}

/// <summary>One lane at one size, with its baseline measured in the same run.</summary>
public sealed record LaneCaseResult(
    string Lane, int Size, bool Crc, LatencyStats RoundTrip, LatencyStats OneWay, double FramesPerSecond,
    double ParentBytesPerFrame, double PeerBytesPerFrame, string Baseline, LatencyStats BaselineRoundTrip);

/// <summary>
/// Zero copy's size independence, measured as one interleaved pair on the SHM lane: the largest size loaned
/// without payload CRC against the 64-byte copied round trip with CRC.
/// </summary>
public sealed record ZeroCopyPair(int LoanedSize, LatencyStats Loaned, LatencyStats Small);

public sealed record LaneBenchResult(IReadOnlyList<LaneCaseResult> Cases, IReadOnlyDictionary<int, double> MemcpyNs, IReadOnlyDictionary<int, double> Crc32cNs, ZeroCopyPair? ZeroCopy = null);

public sealed record LaneBenchOptions
{
    /// <summary>Ping-pong time per case and per baseline; streaming gets half of it.</summary>
    public double Seconds { get; init; } = 2;

    public IReadOnlyList<int> Sizes { get; init; } = [64, 4096, 65536];

    /// <summary>Lane kinds to measure (with their baselines): shm (also shm-loan), uds, tcp.</summary>
    public IReadOnlyList<LaneKind> Lanes { get; init; } = [LaneKind.Shm, LaneKind.Uds, LaneKind.Tcp];

    /// <summary>Starts the peer process: (mode, address) -> process (e.g. <c>rtt bench peer MODE ADDRESS</c>).</summary>
    public required Func<string, string, Process> StartPeer { get; init; }

    public Action<string>? Progress { get; init; }
}

/// <summary>
/// The lane benchmark: a real peer process per lane kind and per baseline, ping-pong round trips recorded
/// in HdrHistogram (nanoseconds), one-way latency from the peer's receive stamp (one host, one monotonic
/// clock), streaming throughput with allocation counts on both sides. Baselines written here: a naive
/// shared-memory single-slot mailbox doing the same copies and CRC, raw UDS and raw TCP NoDelay ping-pong.
/// </summary>
public static class LaneBench
{
    public static LaneBenchResult Run(LaneBenchOptions options)
    {
        var dir = Path.Combine(Path.GetTempPath(), "rtt-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var cases = new List<LaneCaseResult>();
            var sizes = options.Sizes;
            ZeroCopyPair? zeroCopy = null;
            if (options.Lanes.Contains(LaneKind.Shm))
            {
                WithMailbox(options, dir, mailbox => WithLane(options, dir, LaneKind.Shm, lane =>
                {
                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"shm {size} B against the mailbox");
                        cases.Add(Measure(lane, "shm", size, crc: true, loan: false, options.Seconds, "mailbox", mailbox.For(size)));
                    }

                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"shm-loan {size} B against the mailbox");
                        cases.Add(Measure(lane, "shm-loan", size, crc: false, loan: true, options.Seconds, "mailbox", mailbox.For(size)));
                    }

                    // The zero-copy goal compares two lane cases; measured apart, a change in the machine
                    // between them (the host moving a vCPU) shows as a size effect. So once more, interleaved.
                    var largest = sizes.Max();
                    if (largest > 64)
                    {
                        options.Progress?.Invoke($"shm-loan {largest} B against shm 64 B");
                        var (loaned, _, small) = Interleave(new LanePinger(lane, largest, crc: false, loan: true), new LanePinger(lane, 64, crc: true, loan: false), options.Seconds);
                        zeroCopy = new ZeroCopyPair(largest, loaned, small);
                    }
                }));
            }

            foreach (var kind in new[] { LaneKind.Uds, LaneKind.Tcp }.Where(options.Lanes.Contains))
            {
                var name = kind.ToString().ToLowerInvariant();
                WithRaw(options, dir, kind, raw => WithLane(options, dir, kind, lane =>
                {
                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"{name} {size} B against raw-{name}");
                        cases.Add(Measure(lane, name, size, crc: true, loan: false, options.Seconds, "raw-" + name, raw.For(size)));
                    }

                    // The largest size once more without the payload CRC: the raw baseline does no CRC at all.
                    var largest = sizes.Max();
                    options.Progress?.Invoke($"{name} {largest} B, no payload CRC, against raw-{name}");
                    cases.Add(Measure(lane, name, largest, crc: false, loan: false, options.Seconds, "raw-" + name, raw.For(largest)));
                }));
            }

            options.Progress?.Invoke("memcpy and crc32c");
            var memcpy = sizes.ToDictionary(s => s, s => PerOperationNs(s, crc: false));
            var crc32c = sizes.ToDictionary(s => s, s => PerOperationNs(s, crc: true));
            return new LaneBenchResult(cases, memcpy, crc32c, zeroCopy);
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static LongHistogram NewHistogram() => new(10_000_000_000, 3); // 1 ns .. 10 s, 3 significant digits

    private static long Ns(long ticks) => ticks * 1_000_000_000 / Stopwatch.Frequency;

    private static LaneCaseResult Measure(IFrameLane lane, string name, int size, bool crc, bool loan, double seconds, string baseline, IPinger baselinePinger)
    {
        var (rtt, oneWay, baselineRtt) = Interleave(new LanePinger(lane, size, crc, loan), baselinePinger, seconds);
        var (fps, parentBytes, peerBytes) = Stream(lane, size, crc, loan, seconds / 2);
        return new LaneCaseResult(name, size, crc, rtt, oneWay, fps, parentBytes, peerBytes, baseline, baselineRtt);
    }

    /// <summary>One ping-pong round trip of a lane or a baseline; <see cref="Pause"/> lets its peer back off between slices.</summary>
    private interface IPinger
    {
        /// <summary>Sends one request and waits for its answer: the round trip in ticks, and the peer's receive stamp.</summary>
        long Once(out long peerStamp, out long start);

        void Pause();
    }

    /// <summary>A factory of pingers per payload size over one baseline peer.</summary>
    private interface IBaseline
    {
        IPinger For(int size);
    }

    /// <summary>Length of one slice: the lane and its baseline take turns, so a change in the machine (a busy neighbour, the host moving a vCPU) weighs on both alike.</summary>
    private const double SliceSeconds = 0.05;

    /// <summary>Round trips at the start of a slice are not recorded: the peer that sat out the last slice may have parked.</summary>
    private const double SliceWarmUpSeconds = 0.002;

    /// <summary>
    /// Measures a lane and its baseline in alternating slices of <see cref="SliceSeconds"/> until each has
    /// <paramref name="seconds"/> of recorded round trips; the order within each pair of slices alternates too.
    /// </summary>
    private static (LatencyStats Lane, LatencyStats LaneOneWay, LatencyStats Baseline) Interleave(IPinger lane, IPinger baseline, double seconds)
    {
        var laneRtt = NewHistogram();
        var laneOneWay = NewHistogram();
        var baseRtt = NewHistogram();
        var sink = NewHistogram();

        // Warm-up, not recorded: the peers' first wake-ups, caches, and above all the JIT. Tiered compilation
        // recompiles the hot methods of both processes on a background thread some 100 ms after they are first
        // called, and on two cores that thread competes with the two spinning ones: recorded too early, the first
        // case measured shows its tail (p99 2x its own later runs). Half a second for each side, per case.
        var warmUp = Math.Min(0.5, seconds);
        RunSlice(baseline, warmUp, 0, sink, null);
        RunSlice(lane, warmUp, 0, sink, null);

        var slices = Math.Max(1, (int)Math.Round(seconds / SliceSeconds));
        for (var i = 0; i < slices; i++)
        {
            if ((i & 1) == 0)
            {
                RunSlice(baseline, SliceSeconds, SliceWarmUpSeconds, baseRtt, null);
                RunSlice(lane, SliceSeconds, SliceWarmUpSeconds, laneRtt, laneOneWay);
            }
            else
            {
                RunSlice(lane, SliceSeconds, SliceWarmUpSeconds, laneRtt, laneOneWay);
                RunSlice(baseline, SliceSeconds, SliceWarmUpSeconds, baseRtt, null);
            }
        }

        return (LatencyStats.From(laneRtt), LatencyStats.From(laneOneWay), LatencyStats.From(baseRtt));
    }

    private static void RunSlice(IPinger pinger, double seconds, double warmUpSeconds, LongHistogram rtt, LongHistogram? oneWay)
    {
        var begin = Stopwatch.GetTimestamp();
        var recordFrom = begin + (long)(Stopwatch.Frequency * warmUpSeconds);
        var end = recordFrom + (long)(Stopwatch.Frequency * seconds);
        while (true)
        {
            var ticks = pinger.Once(out var peerStamp, out var t0);
            if (t0 >= end)
            {
                break;
            }

            if (t0 >= recordFrom)
            {
                rtt.RecordValue(Ns(ticks));
                oneWay?.RecordValue(Math.Max(0, Ns(peerStamp - t0)));
            }
        }

        pinger.Pause();
    }

    /// <summary>What came back from the peer, read by a cached handler (no per-frame closure).</summary>
    private sealed class Replies
    {
        public bool Got;
        public long PeerStamp;
        public long Count;
        public long PeerAllocated;
        public readonly FrameHandler Handler;

        public Replies() => Handler = On;

        private void On(in FrameHeader header, ReadOnlySpan<byte> payload)
        {
            if (header.RouteId == PeerRoutes.Report)
            {
                Count = BinaryPrimitives.ReadInt64LittleEndian(payload);
                PeerAllocated = BinaryPrimitives.ReadInt64LittleEndian(payload[8..]);
            }
            else if (payload.Length >= 16)
            {
                PeerStamp = BinaryPrimitives.ReadInt64LittleEndian(payload[8..]);
            }

            Got = true;
        }

        /// <summary>
        /// Waits for the reply the way a lane worker idles: poll (spin), then yield, then the lane's blocking wait.
        /// Pure spinning would hold a core the peer needs when the machine is oversubscribed.
        /// </summary>
        public void Await(IFrameLane lane)
        {
            var spinPolls = lane.Kind == LaneKind.Shm ? 20_000 : 30; // an SHM poll is a few loads, a socket poll a syscall
            var idle = 0;
            var start = Stopwatch.GetTimestamp();
            while (!Got)
            {
                if (lane.Poll(Handler) > 0)
                {
                    continue;
                }

                idle++;
                if (idle < spinPolls)
                {
                    continue;
                }

                if (idle < spinPolls + 20)
                {
                    Thread.Yield();
                }
                else
                {
                    lane.WaitForData(TimeSpan.FromMilliseconds(1));
                }

                if (lane.PeerGone || Stopwatch.GetElapsedTime(start) > TimeSpan.FromSeconds(30))
                {
                    throw new InvalidOperationException($"the {lane.Kind} peer stopped answering");
                }
            }

            Got = false;
        }
    }

    /// <summary>A lane's round trip: echo with the peer's receive stamp, or (loaned, zero copy) a 16-byte acknowledgement.</summary>
    private sealed class LanePinger : IPinger
    {
        private readonly IFrameLane _lane;
        private readonly byte[] _payload;
        private readonly FrameFlags _flags;
        private readonly uint _route;
        private readonly bool _loan;
        private readonly Replies _replies = new();
        private uint _id;

        public LanePinger(IFrameLane lane, int size, bool crc, bool loan)
        {
            _lane = lane;
            _payload = RandomBytes(size);
            _flags = crc ? FrameFlags.None : FrameFlags.NoPayloadCrc;
            _route = loan ? PeerRoutes.Ack : PeerRoutes.EchoStamped;
            _loan = loan;
        }

        public long Once(out long peerStamp, out long start)
        {
            var t0 = Stopwatch.GetTimestamp();
            if (_loan)
            {
                // Zero copy: the payload is produced in the ring (here: only its stamp is written).
                _lane.TryLoan(_payload.Length, out var room);
                BinaryPrimitives.WriteInt64LittleEndian(room, t0);
                _lane.Commit(_payload.Length, _route, _id++, _flags);
            }
            else
            {
                BinaryPrimitives.WriteInt64LittleEndian(_payload, t0);
                _lane.Send(_route, _id++, _payload, _flags);
            }

            _lane.Flush();
            _replies.Await(_lane);
            var t1 = Stopwatch.GetTimestamp();
            peerStamp = _replies.PeerStamp;
            start = t0;
            return t1 - t0;
        }

        public void Pause()
        {
        }
    }

    private static (double FramesPerSecond, double ParentBytesPerFrame, double PeerBytesPerFrame) Stream(IFrameLane lane, int size, bool crc, bool loan, double seconds)
    {
        var payload = new byte[size];
        var flags = crc ? FrameFlags.None : FrameFlags.NoPayloadCrc;
        var replies = new Replies();
        lane.Send(PeerRoutes.Report, 0, default);
        lane.Flush();
        replies.Await(lane);
        var peerBefore = replies.PeerAllocated;

        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(Stopwatch.Frequency * seconds);
        long sent = 0;
        while (true)
        {
            if ((sent & 255) == 0 && Stopwatch.GetTimestamp() >= end)
            {
                break;
            }

            if (loan)
            {
                lane.TryLoan(size, out _);
                lane.Commit(size, PeerRoutes.Sink, (uint)sent, flags);
            }
            else
            {
                lane.Send(PeerRoutes.Sink, (uint)sent, payload, flags);
            }

            if ((++sent & 63) == 0)
            {
                lane.Flush(); // stream lanes: up to 64 frames per send
            }
        }

        lane.Flush();
        var parentBytes = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        lane.Send(PeerRoutes.Report, 0, default);
        lane.Flush();
        replies.Await(lane); // after every streamed frame: the peer handles them in order
        var elapsed = Stopwatch.GetTimestamp() - start;
        if (replies.Count != sent)
        {
            throw new InvalidOperationException($"{lane.Kind}: sent {sent} frames, the peer counted {replies.Count}");
        }

        return (sent / (elapsed / (double)Stopwatch.Frequency), parentBytes / (double)sent, (replies.PeerAllocated - peerBefore) / (double)sent);
    }

    private static void WithLane(LaneBenchOptions options, string dir, LaneKind kind, Action<IFrameLane> body)
    {
        var laneOptions = new LaneOptions(); // a blocked writer spins briefly, then yields the core to the reader it waits for
        var (listener, address) = Listen(kind, Path.Combine(dir, kind + ".sock"));
        using var _ = listener;
        using var peer = options.StartPeer(kind.ToString().ToLowerInvariant(), address);
        try
        {
            var socket = Accept(listener, peer);
            using IFrameLane lane = kind == LaneKind.Shm ? ShmLane.Accept(socket, laneOptions) : new StreamLane(socket, kind, laneOptions);
            body(lane);
        }
        finally
        {
            Stop(peer);
        }
    }

    /// <summary>The naive shared-memory mailbox's round trip (see <see cref="Mailbox"/>).</summary>
    private sealed unsafe class MailboxPinger(byte* request, byte* response, int size) : IPinger
    {
        private readonly byte[] _payload = RandomBytes(size);

        public long Once(out long peerStamp, out long start)
        {
            var t0 = Stopwatch.GetTimestamp();
            BinaryPrimitives.WriteInt64LittleEndian(_payload, t0);
            Mailbox.Put(request, _payload);
            var answer = Mailbox.Take(response);
            peerStamp = answer.Length >= 16 ? BinaryPrimitives.ReadInt64LittleEndian(answer[8..]) : 0;
            Mailbox.Clear(response);
            var t1 = Stopwatch.GetTimestamp();
            start = t0;
            return t1 - t0;
        }

        public void Pause() => Mailbox.Pause(request);
    }

    private sealed unsafe class MailboxBaseline(byte* request, byte* response) : IBaseline
    {
        public IPinger For(int size) => new MailboxPinger(request, response, size);
    }

    private static unsafe void WithMailbox(LaneBenchOptions options, string dir, Action<IBaseline> body)
    {
        var path = Path.Combine(dir, "mailbox.sock");
        using var listener = LaneSockets.ListenUnix(path);
        using var segment = ShmSegment.Create("rtt-bench-mailbox", Mailbox.SegmentSize);
        using var peer = options.StartPeer("mailbox", path);
        var request = segment.Base;
        var response = segment.Base + Mailbox.SlotSize;
        try
        {
            using var control = Accept(listener, peer);
            Span<byte> hello = stackalloc byte[8];
            BinaryPrimitives.WriteInt32LittleEndian(hello, Environment.ProcessId);
            FdPassing.Send(control, hello, segment.Fd);
            FdPassing.ReadExactly(control, hello);
            body(new MailboxBaseline(request, response));
        }
        finally
        {
            Mailbox.SignalStop(request);
            Stop(peer);
        }
    }

    /// <summary>The raw socket ping-pong: [u32 length][payload] out, the same back, blocking calls.</summary>
    private sealed class RawPinger : IPinger
    {
        private readonly Socket _socket;
        private readonly byte[] _message;
        private readonly byte[] _reply;

        public RawPinger(Socket socket, int size)
        {
            _socket = socket;
            _message = RandomBytes(4 + size);
            _reply = new byte[4 + size];
            BinaryPrimitives.WriteInt32LittleEndian(_message, size);
        }

        public long Once(out long peerStamp, out long start)
        {
            var t0 = Stopwatch.GetTimestamp();
            var sent = 0;
            while (sent < _message.Length)
            {
                sent += _socket.Send(_message.AsSpan(sent));
            }

            if (!LanePeer.ReadExactly(_socket, _reply))
            {
                throw new InvalidOperationException("the raw peer closed");
            }

            peerStamp = 0;
            start = t0;
            return Stopwatch.GetTimestamp() - t0;
        }

        public void Pause()
        {
        }
    }

    private sealed class RawBaseline(Socket socket) : IBaseline
    {
        public IPinger For(int size) => new RawPinger(socket, size);
    }

    private static void WithRaw(LaneBenchOptions options, string dir, LaneKind kind, Action<IBaseline> body)
    {
        var (listener, address) = Listen(kind, Path.Combine(dir, "raw-" + kind + ".sock"));
        using var _ = listener;
        using var peer = options.StartPeer(kind == LaneKind.Tcp ? "raw-tcp" : "raw-uds", address);
        try
        {
            using var socket = Accept(listener, peer);
            if (kind == LaneKind.Tcp)
            {
                socket.NoDelay = true;
            }

            body(new RawBaseline(socket));
        }
        finally
        {
            Stop(peer);
        }
    }

    /// <summary>A listening socket for a peer of <paramref name="kind"/>: TCP on a free loopback port, else the Unix socket at <paramref name="path"/>; and the address to give the peer.</summary>
    private static (Socket Listener, string Address) Listen(LaneKind kind, string path)
    {
        if (kind != LaneKind.Tcp)
        {
            return (LaneSockets.ListenUnix(path), path);
        }

        var listener = LaneSockets.ListenTcp(IPAddress.Loopback, 0);
        return (listener, $"127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}");
    }

    private static byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        Random.Shared.NextBytes(b);
        return b;
    }

    private static Socket Accept(Socket listener, Process peer)
    {
        if (!listener.Poll(30_000_000, SelectMode.SelectRead))
        {
            throw new InvalidOperationException($"the bench peer (pid {peer.Id}) did not connect within 30 s");
        }

        return listener.Accept();
    }

    /// <summary>The peer leaves by itself when its lane closes; one that does not is killed by pid.</summary>
    private static void Stop(Process peer)
    {
        if (!peer.WaitForExit(5000))
        {
            peer.Kill();
            peer.WaitForExit();
        }
    }

    /// <summary>Median over 7 batches of the cost of one memcpy (or one CRC-32C) of <paramref name="size"/> bytes.</summary>
    private static double PerOperationNs(int size, bool crc)
    {
        var source = new byte[size];
        var destination = new byte[size];
        Random.Shared.NextBytes(source);
        var iterations = Math.Max(1000, 20_000_000 / Math.Max(64, size));
        var samples = new double[7];
        uint sink = 0;
        for (var s = 0; s < samples.Length; s++)
        {
            var t0 = Stopwatch.GetTimestamp();
            for (var i = 0; i < iterations; i++)
            {
                if (crc)
                {
                    sink += Crc32C.Compute(source);
                }
                else
                {
                    source.AsSpan().CopyTo(destination);
                    sink += destination[i % size];
                }
            }

            samples[s] = Ns(Stopwatch.GetTimestamp() - t0) / (double)iterations;
        }

        GC.KeepAlive(sink);
        Array.Sort(samples);
        return samples[samples.Length / 2];
    }
}
