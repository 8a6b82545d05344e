using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Lanes.Bench;
using Xunit.Abstractions;

namespace Rtt.Fabric.Tests;

/// <summary>
/// The service behind a route dies (kill -9) with requests inside it: the lane host answers them with error
/// frames, clients get RTT-LANE-005 instead of waiting forever, and the other routes keep serving. Real processes:
/// the services are test peer processes, the clients attach over the host's control socket.
/// </summary>
public sealed class UpstreamDeathTests(ITestOutputHelper output) : IDisposable
{
    private const uint HeldRoute = 7;   // forwarded to service A's sink: counted there, never answered
    private const uint ServiceBRoute = 8;
    private const uint DriverRoute = 9;

    /// <summary>Only a guard against a hang (the test fails, rather than waits forever); no timing is asserted.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);

    private readonly TestLanes _lanes = new();

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    public async Task A_killed_service_fails_its_in_flight_requests_with_an_error_and_other_routes_keep_serving(LaneKind upstreamKind)
    {
        var options = new LaneOptions { RingCapacity = 256 * 1024 };
        var (upA, peerA) = _lanes.OpenWithPeer(upstreamKind, options, name: "svc-a");
        var (upB, peerB) = _lanes.OpenWithPeer(LaneKind.Shm, options, name: "svc-b");
        using (peerA)
        using (peerB)
        using (upA)
        using (upB)
        {
            var held = new LaneEndpoint("service-a", upA, PeerRoutes.Sink);
            var b = new LaneEndpoint("service-b", upB, PeerRoutes.Echo);
            using var host = new LaneHost();
            await host.SwapAsync(new RouteTable([
                new RouteEntry(HeldRoute, "held", held),
                new RouteEntry(ServiceBRoute, "b", b),
                new RouteEntry(DriverRoute, "echo", new DriverEndpoint(new EchoDriver())),
            ]));
            var control = _lanes.SocketPath("host");
            using var listener = new LaneHostListener(host, new LaneOptions(), control);
            using var heldClient = LaneClient.Attach(control, "held");
            using var bClient = LaneClient.Attach(control, "b", LaneKind.Uds);
            using var echoClient = LaneClient.Attach(control, "echo");
            heldClient.RequestTimeout = Timeout.InfiniteTimeSpan; // an error can only come from the host, not from a client timeout

            Assert.Equal(7, BitConverter.ToInt32(await bClient.RequestAsync(BitConverter.GetBytes(7)).WaitAsync(Guard)));

            // Requests that service A takes and never answers: all of them are inside A when it dies.
            const int inFlight = 200;
            var requests = Enumerable.Range(0, inFlight).Select(i => heldClient.RequestAsync(BitConverter.GetBytes(i))).ToArray();
            var deadline = DateTime.UtcNow + Guard;
            while (held.InFlight < inFlight && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5);
            }

            Assert.Equal(inFlight, held.InFlight);
            Assert.All(requests, r => Assert.False(r.IsCompleted));

            // Traffic on the other routes while A is killed.
            using var stop = new CancellationTokenSource();
            var others = Task.Run(async () =>
            {
                var n = 0;
                while (!stop.IsCancellationRequested)
                {
                    Assert.Equal(n, BitConverter.ToInt32(await bClient.RequestAsync(BitConverter.GetBytes(n))));
                    Assert.Equal(-n, BitConverter.ToInt32(await echoClient.RequestAsync(BitConverter.GetBytes(-n))));
                    n++;
                }

                return n;
            });

            peerA.Kill(); // kill -9

            foreach (var request in requests)
            {
                var ex = await Assert.ThrowsAsync<RttException>(() => request.WaitAsync(Guard));
                Assert.Equal(ErrorCodes.LaneUpstreamGone, ex.Code);
                Assert.Contains("service-a", ex.Message, StringComparison.Ordinal);
            }

            // A request sent after the death is answered with the error at once, too.
            var late = await Assert.ThrowsAsync<RttException>(() => heldClient.RequestAsync("late"u8.ToArray()).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.LaneUpstreamGone, late.Code);

            await stop.CancelAsync();
            var served = await others.WaitAsync(Guard);
            Assert.True(served > 0);
            Assert.Equal(42, BitConverter.ToInt32(await bClient.RequestAsync(BitConverter.GetBytes(42)).WaitAsync(Guard)));
            Assert.Equal(43, BitConverter.ToInt32(await echoClient.RequestAsync(BitConverter.GetBytes(43)).WaitAsync(Guard)));

            output.WriteLine($"{upstreamKind}: {held} failed {held.Failed}; B {b}; {served} round trips on the other routes meanwhile");
            Assert.Null(host.Fault);
            Assert.Equal(0, held.InFlight); // a swap that drains A can complete
            Assert.Equal(inFlight + 1, held.Failed);
            Assert.True(heldClient.Connected); // the client's own lane to the host is fine
            await host.SwapAsync(host.Routes.Without(HeldRoute)).WaitAsync(Guard);
        }
    }

    [Fact]
    public async Task A_request_nobody_answers_fails_after_its_timeout_and_a_cancelled_one_is_cancelled()
    {
        var options = new LaneOptions { RingCapacity = 256 * 1024 };
        var (upA, peerA) = _lanes.OpenWithPeer(LaneKind.Shm, options, name: "svc-quiet");
        using (peerA)
        using (upA)
        {
            var quiet = new LaneEndpoint("quiet", upA, PeerRoutes.Sink); // alive, never answers
            using var host = new LaneHost();
            await host.SwapAsync(new RouteTable([new RouteEntry(HeldRoute, "quiet", quiet), new RouteEntry(DriverRoute, "echo", new DriverEndpoint(new EchoDriver()))]));
            var control = _lanes.SocketPath("host");
            using var listener = new LaneHostListener(host, new LaneOptions(), control);
            using var client = LaneClient.Attach(control, "quiet");

            var timedOut = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync("x"u8.ToArray(), TimeSpan.FromMilliseconds(200)).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.LaneRequestTimeout, timedOut.Code);

            client.RequestTimeout = TimeSpan.FromMilliseconds(300);
            var byDefault = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync("y"u8.ToArray()).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.LaneRequestTimeout, byDefault.Code);

            using var cts = new CancellationTokenSource();
            var cancelled = client.RequestAsync("z"u8.ToArray(), Timeout.InfiniteTimeSpan, cts.Token);
            Assert.False(cancelled.IsCompleted);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Guard));
            Assert.True(cancelled.IsCanceled);

            Assert.True(client.RequestAsync("w"u8.ToArray(), cts.Token).IsCanceled); // an already cancelled token sends nothing
            Assert.Throws<ArgumentOutOfRangeException>(() => client.RequestTimeout = TimeSpan.Zero);
            Assert.True(client.Connected);
        }
    }

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    public async Task A_service_that_sends_a_malformed_frame_has_its_lane_closed_and_its_calls_fail_at_once(LaneKind kind)
    {
        var (upstream, service) = _lanes.OpenPair(kind, new LaneOptions());
        using (service)
        {
            var endpoint = new LaneEndpoint("garbler", upstream);
            var reports = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var host = new LaneHost { Report = reports.Enqueue };
            await host.SwapAsync(new RouteTable([new RouteEntry(HeldRoute, "garbler", endpoint)]));
            var control = _lanes.SocketPath("garble-" + kind);
            using var listener = new LaneHostListener(host, new LaneOptions(), control);
            using var client = LaneClient.Attach(control, "garbler");
            client.RequestTimeout = Timeout.InfiniteTimeSpan; // only the host can end these calls
            var calls = Enumerable.Range(0, 5).Select(i => client.RequestAsync(BitConverter.GetBytes(i))).ToArray();
            var deadline = DateTime.UtcNow + Guard;
            while (endpoint.InFlight < 5 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5);
            }

            // The service answers with a frame whose CRC does not match.
            var frame = new byte[Frames.FrameHeader.Size + 4];
            new Frames.FrameCodec(64 * 1024).Seal(frame.AsSpan(0, Frames.FrameHeader.Size), frame.AsSpan(Frames.FrameHeader.Size), Frames.FrameFlags.Response, HeldRoute, 0);
            frame[^1] ^= 0xFF;
            if (service is Rtt.Fabric.Shm.ShmLane shm)
            {
                Assert.True(shm.TryWriteRaw(frame));
            }
            else
            {
                ((Rtt.Fabric.Streams.StreamLane)service).WriteRaw(frame);
                service.Flush();
            }

            foreach (var call in calls)
            {
                var ex = await Assert.ThrowsAsync<Rtt.Core.Errors.RttException>(() => call.WaitAsync(Guard));
                Assert.Equal(Rtt.Core.Errors.ErrorCodes.LaneUpstreamGone, ex.Code);
                Assert.Contains("malformed frame", ex.Message, StringComparison.Ordinal);
            }

            Assert.Contains(reports, r => r.Contains("sent a malformed frame", StringComparison.Ordinal));
            Assert.Null(host.Fault);
        }
    }

    public void Dispose() => _lanes.Dispose();
}
