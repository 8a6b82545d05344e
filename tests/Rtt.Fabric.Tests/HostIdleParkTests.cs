using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Lanes.Bench;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Tests;

/// <summary>
/// The lane worker's doorbell use (a tuned profile's <c>park</c>, docs/autotune.md): with park off it never sleeps on
/// the doorbell, however long it idles; <see cref="LaneHost.SetIdle"/> switches it either way while it runs.
/// </summary>
public sealed class HostIdleParkTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromMilliseconds(300);

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_worker_without_park_never_sleeps_on_the_doorbell_and_SetIdle_switches_it()
    {
        using (var busy = new LaneHost(idleSpins: 10, idleYields: 10, idlePark: false))
        {
            Assert.True(busy.WorkerAlive);
            await Task.Delay(Idle);
            Assert.Equal(0, busy.DoorbellWaits);
            Assert.Equal(0, busy.Naps);

            // Park on: it falls asleep on the doorbell (a wait, with nothing to do, every 100 ms at least once).
            Assert.True(busy.SetIdle(10, 10, park: true));
            await WaitUntil(() => busy.DoorbellWaits > 0);

            // Park off again: SetIdle rings the doorbell, the sleeping worker wakes and does not sleep again.
            Assert.True(busy.SetIdle(10, 10, park: false));
            await Task.Delay(50);
            var waits = busy.DoorbellWaits;
            await Task.Delay(Idle);
            Assert.Equal(waits, busy.DoorbellWaits);
        }

        // The default: it sleeps on the doorbell once its spins and yields are done.
        using var sleepy = new LaneHost(idleSpins: 10, idleYields: 10);
        await WaitUntil(() => sleepy.DoorbellWaits > 0);
    }

    [Fact]
    public async Task A_table_swap_or_a_probe_does_not_send_a_sleeping_worker_back_to_spinning_and_a_frame_does()
    {
        // A swap is a command, not traffic: the worker applies it and goes on with its backoff (it would otherwise spin a
        // whole core for its idle spins while the reconciler that asked for the swap needs one). So is a probe frame (verify
        // sends one through every lane a transaction changed): it is answered, and the worker goes back to sleep. A frame
        // of traffic restarts it.
        var lanes = new TestLanes();
        using var host = new LaneHost(idleSpins: 10, idleYields: 10);
        await WaitUntil(() => host.DoorbellWaits > 0);
        var restarts = host.BackoffRestarts;
        for (var i = 0; i < 5; i++)
        {
            await host.SwapAsync(new RouteTable([new RouteEntry(9, "echo", new DriverEndpoint(new EchoDriver()))]));
        }

        var waits = host.DoorbellWaits;
        await WaitUntil(() => host.DoorbellWaits > waits); // asleep again
        Assert.Equal(restarts, host.BackoffRestarts);

        var (client, hostSide) = lanes.OpenPair(LaneKind.Shm, new LaneOptions());
        using (client)
        {
            await host.AttachAsync(hostSide);
            Assert.Equal(restarts, host.BackoffRestarts); // attaching is a command too
            for (var probe = 0u; probe < 3; probe++)
            {
                Assert.True(client.Send(9, 100 + probe, [7, 7], FrameFlags.Probe));
                client.Flush();
                var probes = new List<(uint Id, FrameFlags Flags, byte[] Payload)>();
                await WaitUntil(() => client.Poll((in FrameHeader h, ReadOnlySpan<byte> p) => probes.Add((h.FrameId, h.Flags, p.ToArray()))) > 0);
                Assert.Equal((100 + probe, FrameFlags.Response | FrameFlags.Probe), (probes.Single().Id, probes.Single().Flags));
                Assert.Equal([7, 7], probes.Single().Payload); // answered by the host, the payload back
                var sleeps = host.DoorbellWaits + host.Naps; // a lane made without the host's doorbell is napped on, not waited on
                await WaitUntil(() => host.DoorbellWaits + host.Naps > sleeps); // asleep again
            }

            Assert.Equal(restarts, host.BackoffRestarts);
            Assert.True(client.Send(9, 1, [1, 2, 3]));
            client.Flush();
            var answered = 0;
            await WaitUntil(() => (answered += client.Poll((in FrameHeader _, ReadOnlySpan<byte> _) => { })) > 0);
            Assert.True(host.BackoffRestarts > restarts);
        }

        lanes.Dispose();
    }
}
