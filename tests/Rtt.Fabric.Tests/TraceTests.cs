using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;
using Rtt.Lanes.Bench;

namespace Rtt.Fabric.Tests;

/// <summary>
/// W3C trace context through calls (observability.md, "Traces"): a caller's traceparent travels in front of the payload
/// (FrameFlags.Traced), the lane host takes it off, and each traced call gets one span at the host whose parent is the
/// caller's: for a driver on the worker, a real process service behind a lane, and an async driver (which sees the span
/// as Activity.Current, to pass it on).
/// </summary>
[Collection("Rtt ActivitySource")]
public sealed class TraceTests : IDisposable
{
    private const uint Echo = 31;
    private const uint Service = 32;
    private const uint Async = 33;
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly TestLanes _lanes = new();
    private readonly ConcurrentQueue<Activity> _spans = new();
    private readonly ActivityListener _listener;

    public TraceTests()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Rtt",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _spans.Enqueue,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>Answers with the traceparent it sees as Activity.Current (what an MCP endpoint sends as _meta.traceparent).</summary>
    private sealed class SeeingDriver : IAsyncLaneDriver
    {
        public string Name => "seeing";

        public string? NotReady => null;

        public ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken) =>
            ValueTask.FromResult<ReadOnlyMemory<byte>>(Encoding.ASCII.GetBytes($"{TraceParent.From(Activity.Current)}|{Encoding.ASCII.GetString(request.Span)}"));

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Each_traced_call_gets_one_span_whose_parent_is_the_callers_and_the_endpoint_never_sees_the_context()
    {
        var options = new LaneOptions { RingCapacity = 256 * 1024 };
        var (up, peer) = _lanes.OpenWithPeer(LaneKind.Shm, options, name: "svc-trace");
        using (peer)
        using (up)
        {
            using var telemetry = new LaneTelemetry { Node = "node0" };
            using var host = new LaneHost(telemetry: telemetry);
            await host.SwapAsync(new RouteTable([
                new RouteEntry(Echo, "rtt://t/echo", new DriverEndpoint(new EchoDriver())),
                new RouteEntry(Service, "rtt://t/service", new LaneEndpoint("svc", up, PeerRoutes.Echo)),
                new RouteEntry(Async, "rtt://t/async", new AsyncDriverEndpoint(new SeeingDriver())),
            ])).WaitAsync(Guard);
            var socket = _lanes.SocketPath("trace");
            using var listener = new LaneHostListener(host, new LaneOptions(), socket);
            using var echo = LaneClient.Attach(socket, "rtt://t/echo");
            using var service = LaneClient.Attach(socket, "rtt://t/service");
            using var async = LaneClient.Attach(socket, "rtt://t/async");

            // Untraced calls first: no span.
            Assert.Equal("plain", Encoding.ASCII.GetString(await echo.RequestAsync("plain"u8.ToArray()).WaitAsync(Guard)));
            Assert.True(TraceParent.TryParse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", out var caller));
            TraceParent.Outgoing = caller;
            try
            {
                // The answers are the payloads as sent: the 26-byte prefix never reached the endpoints.
                Assert.Equal("hello", Encoding.ASCII.GetString(await echo.RequestAsync("hello"u8.ToArray()).WaitAsync(Guard)));
                Assert.Equal("to the service", Encoding.ASCII.GetString(await service.RequestAsync("to the service"u8.ToArray()).WaitAsync(Guard)));
                var seen = Encoding.ASCII.GetString(await async.RequestAsync("x"u8.ToArray()).WaitAsync(Guard)).Split('|');
                Assert.Equal("x", seen[1]);

                var deadline = DateTime.UtcNow + Guard;
                while (_spans.Count(s => s.Source.Name == "Rtt") < 3 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                }

                var spans = _spans.Where(s => s.TraceId.ToHexString() == "4bf92f3577b34da6a3ce929d0e0e4736").ToList();
                Assert.Equal(3, spans.Count);
                Assert.Equal(3, _spans.Count); // the untraced call made none
                foreach (var span in spans)
                {
                    Assert.Equal("00f067aa0ba902b7", span.ParentSpanId.ToHexString());
                    Assert.Equal(ActivityKind.Server, span.Kind);
                    Assert.Equal("ok", span.GetTagItem("rtt.outcome"));
                    Assert.Equal("node0", span.GetTagItem("rtt.node"));
                    Assert.True(span.Duration > TimeSpan.Zero);
                }

                Assert.Equal(["rtt://t/async", "rtt://t/echo", "rtt://t/service"], spans.Select(s => (string)s.GetTagItem("rtt.route")!).Order(StringComparer.Ordinal));
                Assert.Equal("svc", spans.Single(s => s.DisplayName == "rtt://t/service").GetTagItem("rtt.endpoint"));

                // The async driver ran inside its span: what it would pass on is that span's own context.
                var asyncSpan = spans.Single(s => s.DisplayName == "rtt://t/async");
                Assert.Equal($"00-4bf92f3577b34da6a3ce929d0e0e4736-{asyncSpan.SpanId.ToHexString()}-01", seen[0]);
            }
            finally
            {
                TraceParent.Outgoing = default;
            }
        }
    }

    [Fact]
    public async Task A_traced_frame_without_its_context_is_refused_with_RTT_LANE_008()
    {
        using var telemetry = new LaneTelemetry();
        using var host = new LaneHost(telemetry: telemetry);
        await host.SwapAsync(new RouteTable([new RouteEntry(Echo, "rtt://t/echo", new DriverEndpoint(new EchoDriver()))])).WaitAsync(Guard);
        var (client, hostSide) = _lanes.OpenPair(LaneKind.Shm, new LaneOptions());
        await host.AttachAsync(hostSide).WaitAsync(Guard);
        using (client)
        {
            Assert.True(client.Send(Echo, 1, "short"u8, FrameFlags.Traced) && client.Flush());
            string? answer = null;
            FrameFlags flags = 0;
            var deadline = DateTime.UtcNow + Guard;
            while (answer is null && DateTime.UtcNow < deadline)
            {
                client.Poll((in FrameHeader h, ReadOnlySpan<byte> p) => { answer = Encoding.UTF8.GetString(p); flags = h.Flags; });
                await Task.Delay(5);
            }

            Assert.Equal(FrameFlags.Response | FrameFlags.Error, flags & (FrameFlags.Response | FrameFlags.Error));
            Assert.StartsWith(ErrorCodes.LaneTraceInvalid + " ", answer);
        }
    }

    [Fact]
    public void A_traceparent_round_trips_through_text_and_bytes_and_bad_ones_are_refused()
    {
        const string text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        Assert.True(TraceParent.TryParse(text, out var t));
        Assert.Equal(text, t.ToString());
        var bytes = new byte[TraceParent.Size];
        t.Write(bytes);
        Assert.True(TraceParent.TryRead(bytes, out var back));
        Assert.Equal(t, back);
        Assert.Equal(text, TraceParent.From(t.ToContext()).ToString());
        foreach (var bad in new[] { "", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7" })
        {
            Assert.False(TraceParent.TryParse(bad, out _), bad);
        }
    }

    public void Dispose()
    {
        _listener.Dispose();
        _lanes.Dispose();
    }
}
