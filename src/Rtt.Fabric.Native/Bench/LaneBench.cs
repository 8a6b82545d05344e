using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using HdrHistogram;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Peers;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Fabric.Bench;

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

public sealed record LaneBenchResult(IReadOnlyList<LaneCaseResult> Cases, IReadOnlyDictionary<int, double> MemcpyNs, IReadOnlyDictionary<int, double> Crc32cNs);

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

            var mailbox = sizes.ToDictionary(s => s, s => default(LatencyStats)!);
            if (options.Lanes.Contains(LaneKind.Shm))
            {
                WithMailbox(options, dir, (ping) =>
                {
                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"baseline mailbox {size} B");
                        mailbox[size] = ping(size);
                    }
                });
                WithLane(options, dir, LaneKind.Shm, lane =>
                {
                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"shm {size} B");
                        cases.Add(Measure(lane, "shm", size, crc: true, loan: false, options.Seconds, "mailbox", mailbox[size]));
                    }

                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"shm-loan {size} B");
                        cases.Add(Measure(lane, "shm-loan", size, crc: false, loan: true, options.Seconds, "mailbox", mailbox[size]));
                    }
                });
            }

            foreach (var kind in new[] { LaneKind.Uds, LaneKind.Tcp }.Where(options.Lanes.Contains))
            {
                var name = kind.ToString().ToLowerInvariant();
                var raw = sizes.ToDictionary(s => s, s => default(LatencyStats)!);
                WithRaw(options, dir, kind, ping =>
                {
                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"baseline raw-{name} {size} B");
                        raw[size] = ping(size);
                    }
                });
                WithLane(options, dir, kind, lane =>
                {
                    foreach (var size in sizes)
                    {
                        options.Progress?.Invoke($"{name} {size} B");
                        cases.Add(Measure(lane, name, size, crc: true, loan: false, options.Seconds, "raw-" + name, raw[size]));
                    }

                    // The largest size once more without the payload CRC: the raw baseline does no CRC at all.
                    var largest = sizes.Max();
                    options.Progress?.Invoke($"{name} {largest} B, no payload CRC");
                    cases.Add(Measure(lane, name, largest, crc: false, loan: false, options.Seconds, "raw-" + name, raw[largest]));
                });
            }

            options.Progress?.Invoke("memcpy and crc32c");
            var memcpy = sizes.ToDictionary(s => s, s => PerOperationNs(s, crc: false));
            var crc32c = sizes.ToDictionary(s => s, s => PerOperationNs(s, crc: true));
            return new LaneBenchResult(cases, memcpy, crc32c);
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

    private static LaneCaseResult Measure(IFrameLane lane, string name, int size, bool crc, bool loan, double seconds, string baseline, LatencyStats baselineStats)
    {
        var (rtt, oneWay) = PingPong(lane, size, crc, loan, seconds);
        var (fps, parentBytes, peerBytes) = Stream(lane, size, crc, loan, seconds / 2);
        return new LaneCaseResult(name, size, crc, rtt, oneWay, fps, parentBytes, peerBytes, baseline, baselineStats);
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

    private static (LatencyStats RoundTrip, LatencyStats OneWay) PingPong(IFrameLane lane, int size, bool crc, bool loan, double seconds)
    {
        var payload = new byte[size];
        Random.Shared.NextBytes(payload);
        var flags = crc ? FrameFlags.None : FrameFlags.NoPayloadCrc;
        var route = loan ? PeerRoutes.Ack : PeerRoutes.EchoStamped;
        var replies = new Replies();
        var rtt = NewHistogram();
        var oneWay = NewHistogram();
        var warmUp = Stopwatch.GetTimestamp() + (long)(Stopwatch.Frequency * Math.Min(0.5, seconds / 5));
        var end = warmUp + (long)(Stopwatch.Frequency * seconds);
        uint id = 0;
        while (true)
        {
            var t0 = Stopwatch.GetTimestamp();
            if (t0 >= end)
            {
                break;
            }

            if (loan)
            {
                // Zero copy: the payload is produced in the ring (here: only its stamp is written).
                lane.TryLoan(size, out var room);
                BinaryPrimitives.WriteInt64LittleEndian(room, t0);
                lane.Commit(size, route, id++, flags);
            }
            else
            {
                BinaryPrimitives.WriteInt64LittleEndian(payload, t0);
                lane.Send(route, id++, payload, flags);
            }

            lane.Flush();
            replies.Await(lane);
            var t1 = Stopwatch.GetTimestamp();
            if (t0 >= warmUp)
            {
                rtt.RecordValue(Ns(t1 - t0));
                oneWay.RecordValue(Math.Max(0, Ns(replies.PeerStamp - t0)));
            }
        }

        return (LatencyStats.From(rtt), LatencyStats.From(oneWay));
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
        using var listener = kind == LaneKind.Tcp ? LaneSockets.ListenTcp(IPAddress.Loopback, 0) : LaneSockets.ListenUnix(Path.Combine(dir, kind + ".sock"));
        var address = kind == LaneKind.Tcp ? $"127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}" : Path.Combine(dir, kind + ".sock");
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

    private static unsafe void WithMailbox(LaneBenchOptions options, string dir, Action<Func<int, LatencyStats>> body)
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
            var crc = new Crc32(Crc32ParameterSet.Crc32C);
            body(size =>
            {
                var payload = new byte[size];
                Random.Shared.NextBytes(payload);
                var h = NewHistogram();
                var warmUp = Stopwatch.GetTimestamp() + (long)(Stopwatch.Frequency * Math.Min(0.5, options.Seconds / 5));
                var end = warmUp + (long)(Stopwatch.Frequency * options.Seconds);
                while (true)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    if (t0 >= end)
                    {
                        break;
                    }

                    BinaryPrimitives.WriteInt64LittleEndian(payload, t0);
                    Mailbox.Put(request, payload, crc);
                    Mailbox.Take(response, crc);
                    Mailbox.Clear(response);
                    var t1 = Stopwatch.GetTimestamp();
                    if (t0 >= warmUp)
                    {
                        h.RecordValue(Ns(t1 - t0));
                    }
                }

                return LatencyStats.From(h);
            });
        }
        finally
        {
            Mailbox.SignalStop(request);
            Stop(peer);
        }
    }

    private static void WithRaw(LaneBenchOptions options, string dir, LaneKind kind, Action<Func<int, LatencyStats>> body)
    {
        var path = Path.Combine(dir, "raw-" + kind + ".sock");
        using var listener = kind == LaneKind.Tcp ? LaneSockets.ListenTcp(IPAddress.Loopback, 0) : LaneSockets.ListenUnix(path);
        var address = kind == LaneKind.Tcp ? $"127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}" : path;
        using var peer = options.StartPeer(kind == LaneKind.Tcp ? "raw-tcp" : "raw-uds", address);
        try
        {
            using var socket = Accept(listener, peer);
            if (kind == LaneKind.Tcp)
            {
                socket.NoDelay = true;
            }

            body(size =>
            {
                var message = new byte[4 + size];
                var reply = new byte[4 + size];
                Random.Shared.NextBytes(message);
                BinaryPrimitives.WriteInt32LittleEndian(message, size);
                var h = NewHistogram();
                var warmUp = Stopwatch.GetTimestamp() + (long)(Stopwatch.Frequency * Math.Min(0.5, options.Seconds / 5));
                var end = warmUp + (long)(Stopwatch.Frequency * options.Seconds);
                while (true)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    if (t0 >= end)
                    {
                        break;
                    }

                    var sent = 0;
                    while (sent < message.Length)
                    {
                        sent += socket.Send(message.AsSpan(sent));
                    }

                    if (!LanePeer.ReadExactly(socket, reply))
                    {
                        throw new InvalidOperationException("the raw peer closed");
                    }

                    var t1 = Stopwatch.GetTimestamp();
                    if (t0 >= warmUp)
                    {
                        h.RecordValue(Ns(t1 - t0));
                    }
                }

                return LatencyStats.From(h);
            });
        }
        finally
        {
            Stop(peer);
        }
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
        var hasher = new Crc32(Crc32ParameterSet.Crc32C);
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
                    hasher.Reset();
                    hasher.Append(source);
                    sink += hasher.GetCurrentHashAsUInt32();
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
