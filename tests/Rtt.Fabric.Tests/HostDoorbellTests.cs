using Rtt.Client.Lanes;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Lanes.Bench;
using Xunit.Abstractions;

namespace Rtt.Fabric.Tests;

/// <summary>
/// An idle lane host with several clients sleeps on one doorbell (an eventfd every SHM client may ring, polled
/// together with the stream lanes' sockets) and any of them wakes it. No time is measured: the test lets the host
/// fall asleep before every round of requests and checks the answers, that it slept on the doorbell and was woken
/// by it, and that it never fell back to napping.
/// </summary>
public sealed class HostDoorbellTests(ITestOutputHelper output) : IDisposable
{
    private const uint EchoRoute = 9;
    private const uint ServiceRoute = 8;
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);
    private readonly TestLanes _lanes = new();

    [Fact]
    public async Task An_idle_host_with_four_clients_sleeps_on_one_doorbell_and_any_client_wakes_it()
    {
        var (upstream, service) = _lanes.OpenWithPeer(LaneKind.Uds, new LaneOptions(), name: "svc");
        using (service)
        using (upstream)
        {
            using var host = new LaneHost();
            await host.SwapAsync(new RouteTable([
                new RouteEntry(EchoRoute, "echo", new DriverEndpoint(new EchoDriver())),
                new RouteEntry(ServiceRoute, "svc", new LaneEndpoint("svc", upstream, PeerRoutes.Echo)), // a service over UDS: the host waits on it too
            ]));
            var control = _lanes.SocketPath("host");
            using var listener = new LaneHostListener(host, new LaneOptions(), control);
            LaneClient[] clients =
            [
                LaneClient.Attach(control, "echo"),
                LaneClient.Attach(control, "echo"),
                LaneClient.Attach(control, "svc"),
                LaneClient.Attach(control, "echo", LaneKind.Uds),
            ];
            try
            {
                await WaitUntil(() => host.Inbound.Count == clients.Length);
                const int rounds = 60;
                var random = new Random(6);
                for (var round = 0; round < rounds; round++)
                {
                    // Let the host fall asleep on the doorbell, then wake it with requests from some of the clients.
                    var waits = host.DoorbellWaits;
                    await WaitUntil(() => host.DoorbellWaits > waits);
                    // Even rounds: SHM clients only (they must ring the doorbell); odd rounds: the UDS client (its socket wakes the poll) and others.
                    var senders = round % 2 == 0
                        ? clients[..3].Where((_, i) => i == round % 3 || random.Next(3) == 0).ToArray()
                        : clients.Where((_, i) => i == 3 || random.Next(3) == 0).ToArray();
                    var answers = senders.Select((c, i) => (Expected: round * 16 + i, Task: c.RequestAsync(BitConverter.GetBytes(round * 16 + i)))).ToArray();
                    foreach (var (expected, task) in answers)
                    {
                        Assert.Equal(expected, BitConverter.ToInt32(await task.WaitAsync(Guard)));
                    }
                }

                output.WriteLine($"host slept on the doorbell {host.DoorbellWaits} times, woken by it {host.DoorbellWakes} times, naps {host.Naps}");
                Assert.Null(host.Fault);
                Assert.Equal(0, host.Naps); // never the 1 ms nap of a host that cannot wait on all its lanes at once
                // Every round should wake it; a round on a badly stalled machine may hit the 100 ms backstop instead, so allow a few.
                Assert.True(host.DoorbellWakes >= rounds * 9 / 10, $"only {host.DoorbellWakes} of {rounds} rounds woke the host through its doorbell");

                // A client that goes is noticed while the host sleeps (its lane's monitor rings the doorbell), and the rest are served.
                clients[1].Dispose();
                await WaitUntil(() => host.Inbound.Count == clients.Length - 1);
                foreach (var client in clients.Where((_, i) => i != 1))
                {
                    Assert.Equal(77, BitConverter.ToInt32(await client.RequestAsync(BitConverter.GetBytes(77)).WaitAsync(Guard)));
                }

                Assert.Equal(0, host.Naps);
            }
            finally
            {
                foreach (var client in clients)
                {
                    client.Dispose();
                }
            }
        }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Guard;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold within the guard time");
            await Task.Delay(1);
        }
    }

    public void Dispose() => _lanes.Dispose();
}
