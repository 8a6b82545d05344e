using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using Rtt.Client.Lanes;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Shm;

namespace Rtt.Fabric.Tests;

/// <summary>
/// What a hostile probe of the lane socket found: silent connections, a flood of idle ones, and an SHM client that
/// writes an impossible ring state. Each is refused or dropped with a named reason while honest clients keep working.
/// </summary>
public sealed class HostileClientTests : IDisposable
{
    private const uint Route = 31;
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly TestLanes _lanes = new();
    private readonly ConcurrentQueue<string> _reports = new();

    private async Task<(LaneHost Host, LaneHostListener Listener, string Socket)> Start(int maxClients = 1024, int maxPending = 64)
    {
        var host = new LaneHost { Report = _reports.Enqueue };
        await host.SwapAsync(new RouteTable([new RouteEntry(Route, "echo", new DriverEndpoint(new EchoDriver()))]));
        var socket = _lanes.SocketPath("hostile" + Guid.NewGuid().ToString("N")[..6]);
        return (host, new LaneHostListener(host, new LaneOptions(), socket, maxClients: maxClients, maxPendingHandshakes: maxPending, handshakeTimeout: TimeSpan.FromSeconds(1)), socket);
    }

    private static List<Socket> Silent(string socket, int count)
    {
        var sockets = new List<Socket>();
        for (var i = 0; i < count; i++)
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                s.Connect(new UnixDomainSocketEndPoint(socket));
                sockets.Add(s);
            }
            catch (SocketException)
            {
                s.Dispose(); // the backlog is full: that is what the flood does
            }
        }

        return sockets;
    }

    [Fact]
    public async Task Silent_connections_do_not_hold_up_other_clients_and_are_dropped_after_the_handshake_timeout()
    {
        var (host, listener, socket) = await Start();
        using (host)
        using (listener)
        {
            var silent = Silent(socket, 40);
            try
            {
                var clock = Stopwatch.StartNew();
                using var client = LaneClient.Attach(socket, "echo");
                Assert.Equal(3, (await client.RequestAsync(new byte[3]).WaitAsync(Guard)).Length);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"an honest client waited {clock.Elapsed.TotalSeconds:0.0} s behind 40 silent ones");
                Assert.True(SpinWait.SpinUntil(() => listener.Failures >= 40, Guard), $"{listener.Failures} silent handshakes dropped");
                Assert.Equal(1, host.InboundCount);
            }
            finally
            {
                silent.ForEach(s => s.Dispose());
            }
        }
    }

    [Fact]
    public async Task A_flood_of_idle_connections_is_capped_and_refused_and_the_host_keeps_serving()
    {
        var (host, listener, socket) = await Start(maxClients: 20, maxPending: 16);
        using (host)
        using (listener)
        {
            using var first = LaneClient.Attach(socket, "echo");
            var flood = Silent(socket, 300);
            try
            {
                Assert.True(SpinWait.SpinUntil(() => listener.Refused > 0, Guard));
                Assert.Contains(_reports, r => r.Contains("lane connections refused", StringComparison.Ordinal));
                Assert.Equal(4, (await first.RequestAsync(new byte[4]).WaitAsync(Guard)).Length); // attached clients are unaffected
            }
            finally
            {
                flood.ForEach(s => s.Dispose());
            }

            // Once the flood is gone (and its handshakes have timed out), new clients attach again.
            LaneClient? next = null;
            var deadline = DateTime.UtcNow + Guard;
            while (next is null && DateTime.UtcNow < deadline)
            {
                try
                {
                    next = LaneClient.Attach(socket, "echo");
                }
                catch (Rtt.Core.Errors.RttException)
                {
                    await Task.Delay(100);
                }
            }

            using (next)
            {
                Assert.NotNull(next);
                Assert.Equal(5, (await next.RequestAsync(new byte[5]).WaitAsync(Guard)).Length);
            }

            Assert.Null(host.Fault);
        }
    }

    [Fact]
    public async Task An_shm_client_that_sets_an_impossible_ring_state_is_dropped_with_the_reason()
    {
        var (host, listener, socket) = await Start();
        using (host)
        using (listener)
        using (var honest = LaneClient.Attach(socket, "echo", LaneKind.Uds))
        {
            var rogue = (ShmLane)LaneAttach.ConnectUnix(socket, "echo", LaneKind.Shm).Lane;
            using (rogue)
            {
                for (uint i = 0; i < 10; i++)
                {
                    Assert.True(rogue.Send(Route, i, new byte[100]));
                }

                rogue.Flush();
                Assert.True(SpinWait.SpinUntil(() => host.Inbound.Any(l => l.Kind == LaneKind.Shm && l.Counters.Received == 10), Guard));
                rogue.ForgeTail(8); // behind the host's head
                rogue.Flush();
                Assert.True(SpinWait.SpinUntil(() => host.DroppedClients == 1, Guard), "the host kept the rogue lane");
            }

            Assert.Contains(_reports, r => r.Contains("impossible ring state", StringComparison.Ordinal));
            Assert.Equal(6, (await honest.RequestAsync(new byte[6]).WaitAsync(Guard)).Length);
            Assert.Equal(1, host.InboundCount);
        }
    }

    public void Dispose() => _lanes.Dispose();
}
