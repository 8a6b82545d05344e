using System.Text;
using System.Text.Json.Nodes;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;

namespace Rtt.Fabric.Tests;

/// <summary>
/// Per-route telemetry on the lane worker: counts and latencies checked against known traffic, a breaker opened by a
/// failing endpoint and closed when it recovers (with the flight dump it writes), the flight record read over the
/// control socket, and no allocation per frame with telemetry on.
/// </summary>
public sealed class TelemetryTests : IDisposable
{
    private const uint Slow = 21;
    private const uint Echo = 22;
    private const uint Flaky = 23;
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly TestLanes _lanes = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "rtt-tel-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>Answers after a fixed delay; while <see cref="Failing"/> it throws instead.</summary>
    private sealed class DelayingDriver(TimeSpan delay) : IAsyncLaneDriver
    {
        public volatile bool Failing;

        public string Name => "delaying";

        public string? NotReady => null;

        public async ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
        {
            await Task.Delay(delay, cancellationToken);
            if (Failing)
            {
                throw new InvalidOperationException("the backend is down");
            }

            return new byte[request.Length * 2];
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private (LaneHost Host, LaneHostListener Listener, string Socket) Start(LaneTelemetry telemetry, params RouteEntry[] routes)
    {
        var host = new LaneHost(telemetry: telemetry);
        host.SwapAsync(new RouteTable(routes)).Wait(Guard);
        var socket = _lanes.SocketPath("tel" + Guid.NewGuid().ToString("N")[..6]);
        return (host, new LaneHostListener(host, new LaneOptions(), socket), socket);
    }

    [Fact]
    public void Histogram_buckets_hold_their_values_within_three_percent()
    {
        foreach (var v in new long[] { 0, 1, 31, 32, 33, 63, 64, 65, 1000, 999_999, 1_000_000, 123_456_789, 1L << 40 })
        {
            var i = LatencyHistogram.IndexOf(v);
            Assert.InRange(v, LatencyHistogram.LowerBound(i), LatencyHistogram.UpperBound(i));
            Assert.True(LatencyHistogram.UpperBound(i) - LatencyHistogram.LowerBound(i) <= Math.Max(0, v / 32), $"{v}: bucket too wide");
        }

        var h = new LatencyHistogram();
        for (var v = 1; v <= 1000; v++)
        {
            h.Record(v * 1000L); // 1 us .. 1 ms
        }

        var counts = new long[LatencyHistogram.BucketCount];
        h.CopyTo(counts);
        Assert.InRange(LatencyHistogram.ValueAt(counts, 0.5), 500_000, 500_000 * 1.04);
        Assert.InRange(LatencyHistogram.ValueAt(counts, 0.99), 990_000, 990_000 * 1.04);
        Assert.Equal(1_000_000, LatencyHistogram.ValueAt(counts, 1.0, h.Max));
        Assert.Equal(1000, h.Count);
    }

    [Fact]
    public async Task Metrics_match_known_traffic_through_a_delaying_driver()
    {
        var telemetry = new LaneTelemetry();
        var driver = new DelayingDriver(TimeSpan.FromMilliseconds(20));
        var (host, listener, socket) = Start(telemetry,
            new RouteEntry(Slow, "rtt://test/slow", new AsyncDriverEndpoint(driver), "rtt://test/caller"),
            new RouteEntry(Echo, "rtt://test/echo", new DriverEndpoint(new EchoDriver())));
        using (host)
        using (listener)
        using (var slow = LaneClient.Attach(socket, "rtt://test/slow"))
        using (var echo = LaneClient.Attach(socket, "rtt://test/echo"))
        {
            const int n = 40;
            for (var i = 0; i < n; i++)
            {
                Assert.Equal(20, (await slow.RequestAsync(new byte[10]).WaitAsync(Guard)).Length);
            }

            for (var i = 0; i < 1000; i++)
            {
                await echo.RequestAsync(new byte[64]).WaitAsync(Guard);
            }

            driver.Failing = true;
            for (var i = 0; i < 3; i++)
            {
                var e = await Assert.ThrowsAsync<RttException>(() => slow.RequestAsync(new byte[10]).WaitAsync(Guard));
                Assert.Equal(ErrorCodes.DriverFault, e.Code);
            }

            var json = JsonNode.Parse(TelemetryProtocol.Metrics(socket))!;
            var routes = json["routes"]!.AsArray();
            Assert.Equal(["rtt://test/echo", "rtt://test/slow"], routes.Select(r => (string)r!["route"]!));
            var s = routes[1]!;
            Assert.Equal(Slow, (uint)s["route_id"]!);
            Assert.Equal("rtt://test/caller", (string)s["from"]!);
            Assert.Equal("delaying", (string)s["endpoint"]!);
            Assert.Equal(n + 3, (long)s["requests"]!);
            Assert.Equal(n, (long)s["answers"]!);
            Assert.Equal(3, (long)s["errors"]!);
            Assert.Equal(0, (long)s["in_flight"]!);
            Assert.Equal((n + 3) * 10, (long)s["bytes_in"]!);
            Assert.True((long)s["bytes_out"]! > n * 20); // answers plus the three error texts
            Assert.Equal(3, (long)s["errors_by_code"]![ErrorCodes.DriverFault]!);
            var latency = s["latency_ns"]!;
            Assert.Equal(n + 3, (long)latency["count"]!);
            Assert.InRange((long)latency["p50"]!, 20_000_000, 200_000_000); // at least the driver's 20 ms
            Assert.InRange((long)s["window"]!["p50_ns"]!, 20_000_000, 200_000_000);
            Assert.Equal("closed", (string)s["breaker"]!["state"]!);

            var e2 = routes[0]!;
            Assert.Equal(1000, (long)e2["requests"]!);
            Assert.Equal(1000, (long)e2["answers"]!);
            Assert.Equal(64_000, (long)e2["bytes_out"]!);
            Assert.True((long)e2["latency_ns"]!["p50"]! < 20_000_000);
            Assert.Equal(n + 3 + 1000, (long)json["flight"]!["recorded"]!);
        }
    }

    [Fact]
    public async Task A_failing_endpoint_opens_its_breaker_which_refuses_at_once_dumps_the_flight_window_and_closes_after_recovery()
    {
        var telemetry = new LaneTelemetry
        {
            FlightDumpFolder = Path.Combine(_dir, "flight"),
            BreakerPolicy = _ => new BreakerOptions { MinCalls = 10, FailureRatio = 0.5, OpenFor = TimeSpan.FromMilliseconds(400), HalfOpenCalls = 2 },
        };
        var changes = new List<(BreakerState From, BreakerState To, string? Dump)>();
        telemetry.BreakerChanged = (c, route, dump) =>
        {
            lock (changes)
            {
                changes.Add((c.From, c.To, dump));
            }
        };
        var driver = new DelayingDriver(TimeSpan.FromMilliseconds(1)) { Failing = true };
        var endpoint = new AsyncDriverEndpoint(driver);
        var (host, listener, socket) = Start(telemetry, new RouteEntry(Flaky, "rtt://test/flaky", endpoint));
        using (host)
        using (listener)
        using (var client = LaneClient.Attach(socket, "rtt://test/flaky"))
        {
            for (var i = 0; i < 10; i++)
            {
                var e = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync(new byte[8]).WaitAsync(Guard));
                Assert.Equal(ErrorCodes.DriverFault, e.Code);
            }

            // The worker records an answer's outcome right after writing it, so the client may read the tenth answer
            // a moment before the breaker has counted it (the worker counts it before it reads another request).
            var stats = telemetry.Route(Flaky)!;
            Assert.True(SpinWait.SpinUntil(() => stats.Breaker.State == BreakerState.Open, Guard), $"breaker {stats.Breaker.State}");
            var calledBefore = endpoint.Requests;
            var refused = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync(new byte[8]).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.LaneBreakerOpen, refused.Code);
            Assert.Equal(calledBefore, endpoint.Requests); // answered by the host; the endpoint never saw it
            Assert.Equal(1, stats.BreakerRefused);

            driver.Failing = false;
            await Task.Delay(500); // OpenFor passes: the next calls are half-open trials
            for (var i = 0; i < 2; i++)
            {
                Assert.Equal(16, (await client.RequestAsync(new byte[8]).WaitAsync(Guard)).Length);
            }

            // As above: the second trial's answer can reach the client a moment before the worker counts it.
            Assert.True(SpinWait.SpinUntil(() => stats.Breaker.State == BreakerState.Closed, Guard), $"breaker {stats.Breaker.State}");
            Assert.Equal(1, stats.Breaker.Trips);
            Assert.Equal(3, stats.Breaker.Changes); // closed -> open -> half-open -> closed
            telemetry.DrainEvents();
            lock (changes)
            {
                Assert.Equal([(BreakerState.Closed, BreakerState.Open), (BreakerState.Open, BreakerState.HalfOpen), (BreakerState.HalfOpen, BreakerState.Closed)],
                    changes.Select(c => (c.From, c.To)));
                var dump = changes[0].Dump;
                Assert.NotNull(dump);
                Assert.Matches(@"^\d{8}T\d{6}\.\d{3}Z-breaker-23\.ndjson$", Path.GetFileName(dump));
                var lines = File.ReadAllLines(dump!).Select(l => JsonNode.Parse(l)!).ToList();
                Assert.Equal("window", (string)lines[0]["type"]!);
                Assert.Equal("breaker-23", (string)lines[0]["reason"]!);
                var frames = lines.Where(l => (string)l["type"]! == "frame").ToList();
                Assert.True(frames.Count >= 10, $"{frames.Count} frames in the dump");
                Assert.All(frames.Take(10), f =>
                {
                    Assert.Equal("frame", (string)f["type"]!);
                    Assert.Equal("rtt://test/flaky", (string)f["route"]!);
                    Assert.Equal("error", (string)f["outcome"]!);
                    Assert.Equal(ErrorCodes.DriverFault, (string)f["code"]!);
                });
            }

            // The same window read over the control socket (rtt tap --flight).
            using var tap = new MemoryStream();
            TelemetryProtocol.Flight(socket, TimeSpan.FromSeconds(30), tap);
            var tapped = Encoding.UTF8.GetString(tap.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
            Assert.Equal(13, (long)tapped[0]["frames"]!);
            var tappedFrames = tapped.Where(l => (string)l["type"]! == "frame").ToList();
            Assert.Equal(["error", "error", "error", "error", "error", "error", "error", "error", "error", "error", "breaker_open", "ok", "ok"],
                tappedFrames.Select(f => (string)f["outcome"]!));
            Assert.Equal(ErrorCodes.LaneBreakerOpen, (string)tappedFrames[10]["code"]!);
            Assert.True(DateTime.Parse((string)tappedFrames[0]["ts"]!, System.Globalization.CultureInfo.InvariantCulture).Year >= 2024);
            telemetry.TakeSample(); // what the telemetry thread does each second
            using var again = new MemoryStream();
            TelemetryProtocol.Flight(socket, TimeSpan.FromSeconds(30), again);
            var metrics = Encoding.UTF8.GetString(again.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!)
                .Where(l => (string)l["type"]! == "metrics").ToList();
            var last = metrics[^1];
            Assert.Equal("rtt://test/flaky", (string)last["route"]!);
            Assert.Equal(13, (long)last["requests"]!);
            Assert.Equal(11, (long)last["errors"]!);
            Assert.Equal("closed", (string)last["breaker"]!);
        }
    }

    [Fact]
    public async Task Follow_streams_frames_as_they_are_recorded()
    {
        var telemetry = new LaneTelemetry();
        var (host, listener, socket) = Start(telemetry, new RouteEntry(Echo, "rtt://test/echo", new DriverEndpoint(new EchoDriver())));
        using (host)
        using (listener)
        using (var client = LaneClient.Attach(socket, "rtt://test/echo"))
        {
            using var output = new MemoryStream();
            using var cancel = new CancellationTokenSource();
            var follow = TelemetryProtocol.FollowAsync(socket, new SyncStream(output), cancel.Token);
            await Task.Delay(200);
            for (var i = 0; i < 5; i++)
            {
                await client.RequestAsync(new byte[3]).WaitAsync(Guard);
            }

            var deadline = DateTime.UtcNow + Guard;
            while (Lines(output).Count < 5 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            await cancel.CancelAsync();
            await follow.WaitAsync(Guard);
            var lines = Lines(output);
            Assert.Equal(5, lines.Count);
            Assert.All(lines, l => Assert.Equal(3, (int)l["request_bytes"]!));
        }

        static List<JsonNode> Lines(MemoryStream s)
        {
            lock (s)
            {
                return [.. Encoding.UTF8.GetString(s.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!)];
            }
        }
    }

    /// <summary>A MemoryStream the test can read while the follow writes (both lock it).</summary>
    private sealed class SyncStream(MemoryStream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            lock (inner)
            {
                inner.Write(buffer, offset, count);
            }
        }
    }

    [Fact]
    public void The_worker_allocates_nothing_per_frame_with_telemetry_on()
    {
        using var host = new LaneHost(start: false, telemetry: new LaneTelemetry(start: false) { BreakerPolicy = _ => BreakerOptions.Default });
        var swap = host.SwapAsync(new RouteTable([new RouteEntry(Echo, "rtt://test/echo", new DriverEndpoint(new EchoDriver()))]));
        var (client, server) = _lanes.OpenPair(LaneKind.Shm, new LaneOptions());
        using (client)
        {
            var attach = host.AttachAsync(server);
            host.DoWork();
            Assert.True(swap.IsCompleted && attach.IsCompleted);
            var payload = new byte[64];
            FrameHandler drain = static (in FrameHeader h, ReadOnlySpan<byte> p) => { };
            void Round(int frames)
            {
                for (var i = 0; i < frames; i++)
                {
                    Assert.True(client.TrySend(Echo, (uint)i, payload, FrameFlags.None));
                }

                client.Flush();
                host.DoWork();
                client.Poll(drain);
            }

            Round(100); // warm up
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var r = 0; r < 100; r++)
            {
                Round(100);
            }

            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, allocated);
            Assert.Equal(10_100, host.Telemetry!.Route(Echo)!.Answers);
            Assert.Equal(10_100, host.Telemetry.Flight.Recorded);
        }
    }

    public void Dispose()
    {
        _lanes.Dispose();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
