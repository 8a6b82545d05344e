using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HdrHistogram;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;

// Telemetry on against off in one run (docs/observability.md, "Cost"): two lane hosts in this process, one with
// LaneTelemetry (per-route counts, histogram, breaker, flight recorder) and one without, each serving route 1 with the
// echo driver, each driven by its own worker thread that busy-spins while its case runs. A client attaches over SHM
// to each (the real control socket and attach protocol) and measures, in 50 ms slices taking turns so a change in the
// machine weighs on both alike:
//   rtt     64 B request -> answer round trips, one at a time (p50/p99/p99.9, HdrHistogram, ns)
//   stream  pipelined requests (up to 256 in flight), answers per second
// and the bytes each worker thread allocated per frame while streaming (GC.GetAllocatedBytesForCurrentThread).
// Usage: dotnet run -c Release --project bench/Rtt.Telemetry.Bench -- [--seconds 3] [--size 64] [--json]
var seconds = 3.0;
var size = 64;
var json = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--seconds": seconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--size": size = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--json": json = true; break;
        case "--micro": break;
        case "--dump": if (i + 1 < args.Length && char.IsDigit(args[i + 1][0])) { i++; } break;
        case "--null": break;
        case "--phases": break;
        case "--traced": break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 1;
    }
}

if (args.Contains("--micro"))
{
    return Micro.Run(size);
}

if (args.Contains("--dump"))
{
    // The flight recorder's dump: a ring of N records (default 5,000,000: 5 s at 1 M requests/s) filled, then the
    // last 5 s written as NDJSON to a file, timed.
    var n = args.SkipWhile(a => a != "--dump").Skip(1).Take(1).Select(a => int.TryParse(a, CultureInfo.InvariantCulture, out var v) ? v : 0).FirstOrDefault(0) is > 0 and var given ? given : 5_000_000;
    var capacity = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n);
    using var telemetry = new LaneTelemetry(capacity, start: false);
    var t0 = Stopwatch.GetTimestamp();
    for (var i = 0; i < n; i++)
    {
        telemetry.Flight.Record(t0 + i * (Stopwatch.Frequency / 1_000_000), 1500 + (i & 1023), 1, (uint)i, 64, 64, Outcome.Ok, 0);
    }

    if (args.Contains("--phases"))
    {
        // Where a dump's time goes: the copy out of the ring alone, then the formatting alone (to a counting sink).
        var copyClock = Stopwatch.StartNew();
        var copied = telemetry.Flight.CopySince(0, out var copiedCount);
        var copySeconds = copyClock.Elapsed.TotalSeconds;
        var formatClock = Stopwatch.StartNew();
        using var sink = new CountingStream();
        telemetry.WriteRecords(sink, copied, copiedCount);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"flight dump phases: copy {copiedCount:N0} records {copySeconds:0.000} s, format {formatClock.Elapsed.TotalSeconds:0.000} s; load {File.ReadAllText("/proc/loadavg").Trim()}"));
    }

    var file = Path.Combine(Path.GetTempPath(), $"rtt-flight-bench-{Environment.ProcessId}.ndjson");
    try
    {
        var clock = Stopwatch.StartNew();
        long bytes;
        if (args.Contains("--null"))
        {
            // Formatting alone: the lines go to a counting sink, not the disk.
            using var output = new CountingStream();
            telemetry.WriteFlight(output, TimeSpan.FromSeconds(3600));
            bytes = output.Length;
        }
        else
        {
            using (var output = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                telemetry.WriteFlight(output, TimeSpan.FromSeconds(3600));
            }

            bytes = new FileInfo(file).Length;
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"flight dump{(args.Contains("--null") ? " (no disk)" : "")}: {n:N0} records ({capacity * 40L / (1 << 20)} MiB ring) -> {bytes / (1 << 20)} MiB NDJSON in {elapsed:0.00} s ({n / elapsed / 1e6:0.00} M records/s); load {File.ReadAllText("/proc/loadavg").Trim()}"));
        if (!args.Contains("--null"))
        {
            // The same-run baseline: the disk alone, writing as many bytes (of zeros, 1 MiB at a time) through the same
            // kind of stream to a file in the same folder, once right after the dump. What the dump takes beyond this
            // is its own (the copy out of the ring and the formatting); what this takes is the page cache's and the disk's.
            File.Delete(file);
            var zeros = new byte[1 << 20];
            var diskClock = Stopwatch.StartNew();
            using (var output = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                for (var left = bytes; left > 0; left -= zeros.Length)
                {
                    output.Write(zeros, 0, (int)Math.Min(left, zeros.Length));
                }
            }

            var disk = diskClock.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"disk baseline: the same {bytes / (1 << 20)} MiB of zeros written in {disk:0.00} s; the dump took {elapsed - disk:+0.00;-0.00} s beyond it; load {File.ReadAllText("/proc/loadavg").Trim()}"));
        }
    }
    finally
    {
        File.Delete(file);
    }

    return 0;
}

var dir = Directory.CreateTempSubdirectory("rtt-telemetry-bench-").FullName;
try
{
    var options = new LaneOptions();
    // --traced: both hosts have telemetry on; "on" gets every request with a trace context (the Traced flag and its
    // 26 bytes) and a listener that records every span, "off" the same requests without one: the cost of tracing.
    var traced = args.Contains("--traced");
    using var spans = traced ? new System.Diagnostics.ActivityListener
    {
        ShouldListenTo = s => s.Name == "Rtt",
        Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
    } : null;
    if (spans is not null)
    {
        System.Diagnostics.ActivitySource.AddActivityListener(spans);
        Console.WriteLine("--traced: \"on\" = telemetry on + every request traced (spans recorded), \"off\" = telemetry on, untraced");
    }

    using var on = new Side("on", new LaneTelemetry { BreakerPolicy = _ => BreakerOptions.Default }, Path.Combine(dir, "on.sock"), options) { Traced = traced };
    using var off = new Side("off", traced ? new LaneTelemetry { BreakerPolicy = _ => BreakerOptions.Default } : null, Path.Combine(dir, "off.sock"), options);
    Side[] sides = [on, off];
    var payload = new byte[size];
    Random.Shared.NextBytes(payload);

    // Warm-up: both paths jitted and the rings touched.
    foreach (var side in sides)
    {
        side.Activate(true);
        side.RoundTrips(payload, TimeSpan.FromMilliseconds(300), record: false);
        side.Stream(payload, TimeSpan.FromMilliseconds(300));
        side.Activate(false);
    }

    // Round trips in alternating slices.
    var slice = TimeSpan.FromMilliseconds(50);
    var slices = (int)Math.Ceiling(seconds / slice.TotalSeconds);
    for (var s = 0; s < slices; s++)
    {
        foreach (var side in s % 2 == 0 ? sides : sides.Reverse())
        {
            side.Activate(true);
            side.RoundTrips(payload, TimeSpan.FromMilliseconds(2), record: false);
            side.RoundTrips(payload, slice - TimeSpan.FromMilliseconds(2), record: true);
            side.Activate(false);
        }
    }

    // Streaming in alternating slices, allocation measured on the worker threads.
    foreach (var side in sides)
    {
        side.StartAllocation();
    }

    for (var s = 0; s < slices; s++)
    {
        foreach (var side in s % 2 == 0 ? sides : sides.Reverse())
        {
            side.Activate(true);
            side.Stream(payload, slice);
            side.Activate(false);
        }
    }

    foreach (var side in sides)
    {
        side.StopAllocation();
    }

    var results = new JsonArray();
    foreach (var side in sides)
    {
        results.Add(new JsonObject
        {
            ["telemetry"] = side.Name,
            ["size"] = size,
            ["rtt_p50_ns"] = side.Rtt.GetValueAtPercentile(50),
            ["rtt_p99_ns"] = side.Rtt.GetValueAtPercentile(99),
            ["rtt_p999_ns"] = side.Rtt.GetValueAtPercentile(99.9),
            ["round_trips"] = side.Rtt.TotalCount,
            ["frames_per_s"] = Math.Round(side.Streamed / side.StreamTime.TotalSeconds),
            ["alloc_bytes_per_frame"] = side.Frames == 0 ? 0 : Math.Round((double)side.Allocated / side.Frames, 3),
        });
    }

    var costP50 = (double)on.Rtt.GetValueAtPercentile(50) / off.Rtt.GetValueAtPercentile(50) - 1;
    var costThroughput = 1 - (on.Streamed / on.StreamTime.TotalSeconds) / (off.Streamed / off.StreamTime.TotalSeconds);
    var summary = new JsonObject
    {
        ["cases"] = results,
        ["p50_cost"] = Math.Round(costP50, 4),
        ["throughput_cost"] = Math.Round(costThroughput, 4),
        ["flight_recorded"] = on.Host.Telemetry!.Flight.Recorded,
        ["load_average"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : null,
    };
    if (json)
    {
        Console.WriteLine(summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
    else
    {
        Console.WriteLine($"{"telemetry",-10} {"size",6} {"rtt p50",10} {"rtt p99",10} {"rtt p99.9",10} {"frames/s",12} {"alloc B/frame",14}");
        foreach (var r in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(string)r!["telemetry"]!,-10} {(int)r["size"]!,6} {(long)r["rtt_p50_ns"]!,8}ns {(long)r["rtt_p99_ns"]!,8}ns {(long)r["rtt_p999_ns"]!,8}ns {(double)r["frames_per_s"]!,12:0} {(double)r["alloc_bytes_per_frame"]!,14:0.###}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cost of telemetry: p50 {costP50:+0.0%;-0.0%}, throughput {costThroughput:+0.0%;-0.0%} (goal: each <= 5 %); load {summary["load_average"]}"));
    }

    return 0;
}
finally
{
    Directory.Delete(dir, recursive: true);
}

/// <summary>One lane host (telemetry on or off), its worker thread, and a client's SHM lane to it.</summary>
internal sealed class Side : IDisposable
{
    private readonly Thread _worker;
    private readonly LaneHostListener _listener;
    private readonly IFrameLane _client;
    private volatile bool _active;
    private volatile bool _stop;
    private volatile int _allocationRequest; // 1: take the start, 2: take the end
    private long _allocationStart;
    private long _allocationEnd;
    private long _framesAtStart;
    private uint _frameId;
    private int _answers;
    private readonly FrameHandler _onAnswer;

    public Side(string name, LaneTelemetry? telemetry, string socket, LaneOptions options)
    {
        Name = name;
        Host = new LaneHost(start: false, telemetry: telemetry);
        _onAnswer = (in FrameHeader h, ReadOnlySpan<byte> p) => _answers++;
        _worker = new Thread(Run) { IsBackground = true, Name = "bench-worker-" + name };
        _worker.Start();
        Host.SwapAsync(new RouteTable([new RouteEntry(1, "rtt://bench/echo", new DriverEndpoint(new EchoDriver()))])).Wait();
        _listener = new LaneHostListener(Host, options, socket);
        _client = LaneAttach.ConnectUnix(socket, "1", LaneKind.Shm, options).Lane;
    }

    public string Name { get; }

    /// <summary>Requests carry a trace context (FrameFlags.Traced and its 26-byte prefix).</summary>
    public bool Traced { get; init; }

    private (byte[] Payload, FrameFlags Flags) Outgoing(byte[] payload)
    {
        if (!Traced)
        {
            return (payload, FrameFlags.None);
        }

        var traced = new byte[TraceParent.Size + payload.Length];
        new TraceParent(0x4bf92f3577b34da6, 0xa3ce929d0e0e4736, 0x00f067aa0ba902b7, 1).Write(traced);
        payload.CopyTo(traced, TraceParent.Size);
        return (traced, FrameFlags.Traced);
    }

    public LaneHost Host { get; }

    public LongHistogram Rtt { get; } = new(10_000_000_000, 3);

    public long Streamed { get; private set; }

    public TimeSpan StreamTime { get; private set; }

    public long Allocated => _allocationEnd - _allocationStart;

    public long Frames { get; private set; }

    public void Activate(bool active) => _active = active;

    private void Run()
    {
        while (!_stop)
        {
            Host.DoWork();
            if (_allocationRequest == 1)
            {
                _allocationStart = GC.GetAllocatedBytesForCurrentThread();
                _allocationRequest = 0;
            }
            else if (_allocationRequest == 2)
            {
                _allocationEnd = GC.GetAllocatedBytesForCurrentThread();
                _allocationRequest = 0;
            }

            if (!_active)
            {
                Thread.Sleep(1); // sitting out: leave the cores to the other side
            }
        }
    }

    public void StartAllocation()
    {
        _framesAtStart = Streamed;
        Request(1);
    }

    public void StopAllocation()
    {
        Request(2);
        Frames = Streamed - _framesAtStart;
    }

    private void Request(int what)
    {
        _allocationRequest = what;
        while (_allocationRequest != 0)
        {
            Thread.Sleep(1);
        }
    }

    public void RoundTrips(byte[] payload, TimeSpan time, bool record)
    {
        var end = Stopwatch.GetTimestamp() + (long)(time.TotalSeconds * Stopwatch.Frequency);
        var (send, flags) = Outgoing(payload);
        while (Stopwatch.GetTimestamp() < end)
        {
            _answers = 0;
            var start = Stopwatch.GetTimestamp();
            if (!_client.TrySend(1, _frameId++, send, flags))
            {
                throw new InvalidOperationException("the ring is full");
            }

            _client.Flush();
            while (_answers == 0)
            {
                _client.Poll(_onAnswer);
            }

            if (record)
            {
                Rtt.RecordValue((long)((Stopwatch.GetTimestamp() - start) * (1e9 / Stopwatch.Frequency)));
            }
        }
    }

    public void Stream(byte[] payload, TimeSpan time)
    {
        const int window = 256;
        var started = Stopwatch.GetTimestamp();
        var end = started + (long)(time.TotalSeconds * Stopwatch.Frequency);
        long sent = 0;
        _answers = 0;
        var (send, flags) = Outgoing(payload);
        while (Stopwatch.GetTimestamp() < end)
        {
            var queued = 0;
            while (sent - _answers < window && _client.TrySend(1, _frameId++, send, flags))
            {
                sent++;
                queued++;
            }

            if (queued > 0)
            {
                _client.Flush();
            }

            _client.Poll(_onAnswer);
        }

        while (_answers < sent)
        {
            _client.Poll(_onAnswer);
        }

        Streamed += _answers;
        StreamTime += Stopwatch.GetElapsedTime(started);
    }

    public void Dispose()
    {
        _client.Dispose();
        _listener.Dispose();
        _stop = true;
        _worker.Join();
        Host.Dispose();
    }
}

/// <summary>
/// --micro: the worker's CPU cost per frame alone, on one thread (no cross-core traffic): batches of 64 requests put
/// in a client's lane, one DoWork reads and answers them, the client drains the answers; time per frame of DoWork,
/// telemetry on and off taking turns.
/// </summary>
internal static class Micro
{
    public static int Run(int size)
    {
        var dir = Directory.CreateTempSubdirectory("rtt-telemetry-micro-").FullName;
        try
        {
            var payload = new byte[size];
            var hosts = new[]
            {
                (Name: "on", Host: new LaneHost(start: false, telemetry: new LaneTelemetry(start: false) { BreakerPolicy = _ => BreakerOptions.Default })),
                (Name: "off", Host: new LaneHost(start: false)),
            };
            var clients = new List<IFrameLane>();
            foreach (var (name, host) in hosts)
            {
                var swap = host.SwapAsync(new RouteTable([new RouteEntry(1, "rtt://bench/echo", new DriverEndpoint(new EchoDriver()))]));
                host.DoWork();
                var socket = Path.Combine(dir, name + ".sock");
                using var listener = new LaneHostListener(host, new LaneOptions(), socket);
                IFrameLane? client = null;
                var attach = Task.Run(() => client = LaneAttach.ConnectUnix(socket, "1", LaneKind.Shm, new LaneOptions()).Lane);
                while (!attach.IsCompleted)
                {
                    host.DoWork();
                }

                attach.Wait();
                for (var i = 0; i < 100; i++)
                {
                    host.DoWork(); // the attach command
                }

                clients.Add(client!);
            }

            FrameHandler drain = static (in FrameHeader h, ReadOnlySpan<byte> p) => { };
            var ns = new double[2];
            var frames = new long[2];
            for (var round = 0; round < 40_000; round++)
            {
                for (var k = 0; k < 2; k++)
                {
                    var c = clients[k];
                    for (var i = 0; i < 64; i++)
                    {
                        c.TrySend(1, (uint)i, payload);
                    }

                    c.Flush();
                    var t0 = Stopwatch.GetTimestamp();
                    hosts[k].Host.DoWork();
                    var t1 = Stopwatch.GetTimestamp();
                    c.Poll(drain);
                    if (round >= 20_000)
                    {
                        ns[k] += (t1 - t0) * 1e9 / Stopwatch.Frequency;
                        frames[k] += 64;
                    }
                }
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"worker time per frame ({size} B, echo driver, one thread): on {ns[0] / frames[0]:0.0} ns, off {ns[1] / frames[1]:0.0} ns, telemetry {ns[0] / frames[0] - ns[1] / frames[1]:+0.0;-0.0} ns"));
            foreach (var c in clients)
            {
                c.Dispose();
            }

            foreach (var (_, host) in hosts)
            {
                host.Dispose();
            }

            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>A write-only stream that only counts bytes.</summary>
internal sealed class CountingStream : Stream
{
    private long _length;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _length;

    public override long Position { get => _length; set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => _length += count;

    public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;
}
