using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Lanes.Bench;
using Xunit.Abstractions;

namespace Rtt.Fabric.Tests;

/// <summary>The lane host: routing by route_id, drivers, attach protocol, and a hot swap under traffic.</summary>
public sealed class LaneHostTests(ITestOutputHelper output) : IDisposable
{
    private const uint ServiceRoute = 7;
    private const uint EchoRoute = 9;
    private readonly TestLanes _lanes = new();

    [Fact]
    public async Task Hot_swap_of_an_endpoint_under_continuous_traffic_loses_and_duplicates_nothing()
    {
        var options = new LaneOptions { RingCapacity = 256 * 1024 };
        var (upA, peerA) = _lanes.OpenWithPeer(LaneKind.Shm, options, name: "svc-a");
        var (upB, peerB) = _lanes.OpenWithPeer(LaneKind.Shm, options, name: "svc-b");
        using (peerA)
        using (peerB)
        using (upA)
        using (upB)
        {
            var a = new LaneEndpoint("service-a", upA, PeerRoutes.Echo);
            var b = new LaneEndpoint("service-b", upB, PeerRoutes.Echo);
            using var host = new LaneHost();
            await host.SwapAsync(new RouteTable([new RouteEntry(ServiceRoute, "svc", a), new RouteEntry(EchoRoute, "echo", new DriverEndpoint(new EchoDriver()))]));
            var (client, hostSide) = _lanes.OpenPair(LaneKind.Shm, options);
            await host.AttachAsync(hostSide);
            using (client)
            {
                const int total = 200_000;
                var answered = new byte[total];
                var corrupt = 0;
                FrameHandler onResponse = (in FrameHeader h, ReadOnlySpan<byte> p) =>
                {
                    if (h.FrameId >= total || !Pattern.Check(p, h.FrameId) || p.Length != Pattern.Length(h.FrameId, 4096))
                    {
                        corrupt++;
                        return;
                    }

                    answered[h.FrameId]++;
                };

                var payload = new byte[4096];
                uint sent = 0;
                long received = 0;
                Task? swap = null;
                var swapSeenAt = -1L;
                var deadline = DateTime.UtcNow.AddMinutes(2);
                while (received < total && DateTime.UtcNow < deadline)
                {
                    // Up to 64 requests in flight at all times, so the swap happens with requests inside service A.
                    while (sent < total && sent - received < 64)
                    {
                        var length = Pattern.Length(sent, 4096);
                        Pattern.Fill(payload.AsSpan(0, length), sent);
                        Assert.True(client.Send(ServiceRoute, sent, payload.AsSpan(0, length)));
                        sent++;
                    }

                    client.Flush(); // publishes the batch (SHM publishes on Flush, like a stream lane sends on it)

                    var n = client.Poll((in FrameHeader h, ReadOnlySpan<byte> p) => { received++; onResponse(h, p); });
                    if (n == 0)
                    {
                        client.WaitForData(TimeSpan.FromMilliseconds(1));
                    }

                    if (swap is null && received >= total / 2)
                    {
                        output.WriteLine($"swapping with {a.InFlight} request(s) inside service A");
                        swap = host.SwapAsync(host.Routes.With(new RouteEntry(ServiceRoute, "svc", b)));
                    }

                    if (swap is { IsCompleted: true } && swapSeenAt < 0)
                    {
                        swapSeenAt = received;
                        Assert.Equal(0, a.InFlight); // drained: every request A took was answered
                    }
                }

                output.WriteLine($"A {a}, B {b}, swap completed after {swapSeenAt} responses; client {client.Counters}");
                Assert.Null(host.Fault);
                Assert.Equal(0, corrupt);
                Assert.Equal(total, received);
                Assert.All(answered, n => Assert.Equal(1, n)); // each request answered exactly once
                Assert.True(swapSeenAt > 0);
                Assert.True(a.Responses > 0 && b.Responses > 0);
                Assert.Equal(total, a.Responses + b.Responses);
                Assert.Equal(0, host.UnmatchedResponses);
            }
        }
    }

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    [InlineData(LaneKind.Tcp)]
    public async Task A_client_attaches_by_route_name_and_drivers_answer_unknown_routes_are_counted(LaneKind kind)
    {
        using var host = new LaneHost();
        var upper = new DelegateDriver("upper", (request, response) =>
        {
            for (var i = 0; i < request.Length; i++)
            {
                response[i] = (byte)char.ToUpperInvariant((char)request[i]);
            }

            return request.Length;
        });
        await host.SwapAsync(new RouteTable([new RouteEntry(EchoRoute, "rtt://core/api/echo", new DriverEndpoint(new EchoDriver())), new RouteEntry(3, "upper", new DriverEndpoint(upper))]));
        using var listener = new LaneHostListener(host, new LaneOptions(), _lanes.SocketPath("host"), kind == LaneKind.Tcp ? new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0) : null);

        var ex = Assert.Throws<Core.Errors.RttException>(() => LaneAttach.ConnectUnix(_lanes.SocketPath("host"), "rtt://nope", LaneKind.Uds));
        Assert.Equal(Core.Errors.ErrorCodes.LaneRouteUnknown, ex.Code);

        var (lane, routeId) = kind == LaneKind.Tcp
            ? LaneAttach.ConnectTcp(listener.TcpEndPoint!, "rtt://core/api/echo")
            : LaneAttach.ConnectUnix(_lanes.SocketPath("host"), "rtt://core/api/echo", kind);
        using (lane)
        {
            Assert.Equal(EchoRoute, routeId);
            var replies = new List<(uint Route, uint Id, string Text, FrameFlags Flags)>();
            FrameHandler collect = (in FrameHeader h, ReadOnlySpan<byte> p) => replies.Add((h.RouteId, h.FrameId, System.Text.Encoding.ASCII.GetString(p), h.Flags));
            lane.Send(EchoRoute, 1, "hello"u8);
            lane.Send(99, 2, "nobody"u8);
            lane.Send(3, 3, "shout"u8);
            lane.Flush();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (replies.Count < 3 && DateTime.UtcNow < deadline)
            {
                if (lane.Poll(collect) == 0)
                {
                    lane.WaitForData(TimeSpan.FromMilliseconds(5));
                }
            }

            Assert.Equal(3, replies.Count);
            Assert.Equal((EchoRoute, 1u, "hello", FrameFlags.Response), replies[0]);
            Assert.Equal((99u, 2u, FrameFlags.Response | FrameFlags.Error), (replies[1].Route, replies[1].Id, replies[1].Flags)); // answered with an error, not left to time out
            Assert.StartsWith("RTT-LANE-003 ", replies[1].Text, StringComparison.Ordinal);
            Assert.Equal((3u, 3u, "SHOUT", FrameFlags.Response), replies[2]);
            Assert.Equal(1, Assert.Single(host.Inbound).Counters.UnknownRoute);
        }
    }

    [Fact]
    public async Task Routes_from_two_callers_to_one_symbol_are_attached_by_id_or_key_and_the_shared_name_is_refused()
    {
        using var host = new LaneHost();
        await host.SwapAsync(new RouteTable([
            new RouteEntry(101, "rtt://core/api/x", new DriverEndpoint(new EchoDriver()), "rtt://ui/a"),
            new RouteEntry(102, "rtt://core/api/x", new DriverEndpoint(new EchoDriver()), "rtt://ui/b"),
        ]));
        var control = _lanes.SocketPath("ambiguous");
        using var listener = new LaneHostListener(host, new LaneOptions(), control);
        var ex = Assert.Throws<Rtt.Core.Errors.RttException>(() => Rtt.Client.Lanes.LaneClient.Attach(control, "rtt://core/api/x"));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.LaneRouteUnknown, ex.Code);
        Assert.Contains("several routes", ex.Message, StringComparison.Ordinal);
        using var byId = Rtt.Client.Lanes.LaneClient.Attach(control, "102");
        Assert.Equal(102u, byId.RouteId);
        using var byKey = Rtt.Client.Lanes.LaneClient.Attach(control, "rtt://ui/a -> rtt://core/api/x");
        Assert.Equal(101u, byKey.RouteId);
        Assert.Equal(3, (await byKey.RequestAsync(new byte[3])).Length);
    }

    public void Dispose() => _lanes.Dispose();
}
