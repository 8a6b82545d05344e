using System.Diagnostics;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Lanes.Bench;
using Xunit.Abstractions;

namespace Rtt.Fabric.Tests;

/// <summary>kill -9 of the peer mid-stream: detected, resources released, a new peer attaches.</summary>
public sealed class PeerDeathTests(ITestOutputHelper output) : IDisposable
{
    private readonly TestLanes _lanes = new();

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    [InlineData(LaneKind.Tcp)]
    public void A_killed_peer_is_detected_its_lane_released_and_a_new_peer_attaches(LaneKind kind)
    {
        using var listener = kind == LaneKind.Tcp
            ? Streams.LaneSockets.ListenTcp(System.Net.IPAddress.Loopback, 0)
            : Streams.LaneSockets.ListenUnix(_lanes.SocketPath("death"));
        var options = new LaneOptions { RingCapacity = 256 * 1024 };

        var (lane, peer) = _lanes.OpenWithPeer(kind, options, listener, "death");
        string? mapping = null;
        using (peer)
        {
            try
            {
                Assert.True(RoundTrip(lane, 0, 1000));
                if (lane is ShmLane shm)
                {
                    mapping = MappingOf(shm);
                    Assert.Contains(mapping, File.ReadAllText("/proc/self/maps"));
                }

                // Mid-stream: a writer keeps sending while the peer is killed.
                var stop = false;
                var writer = new Thread(() =>
                {
                    var payload = new byte[512];
                    uint id = 0;
                    while (!Volatile.Read(ref stop) && lane.Send(PeerRoutes.Sink, id++, payload))
                    {
                        lane.Flush();
                    }
                })
                { IsBackground = true };
                writer.Start();
                Thread.Sleep(100);
                var clock = Stopwatch.StartNew();
                peer.Kill();
                while (!lane.PeerGone && clock.Elapsed < TimeSpan.FromSeconds(10))
                {
                    lane.Poll(static (in FrameHeader _, ReadOnlySpan<byte> _) => { });
                    lane.WaitForData(TimeSpan.FromMilliseconds(5));
                }

                output.WriteLine($"{kind}: peer death seen after {clock.Elapsed.TotalMilliseconds:0.0} ms");
                Assert.True(lane.PeerGone, "the lane did not notice its peer died within 10 s");
                Volatile.Write(ref stop, true);
                Assert.True(writer.Join(TimeSpan.FromSeconds(10)), "a writer blocked on a dead peer was not released");
            }
            finally
            {
                lane.Dispose();
            }
        }

        if (mapping is not null)
        {
            // The segment is unmapped here and its fd closed; the dead peer's mapping went with its process,
            // so the kernel frees the memfd: nothing is left in memory or on disk.
            Assert.DoesNotContain(mapping, File.ReadAllText("/proc/self/maps"));
        }

        var (again, peer2) = _lanes.OpenWithPeer(kind, options, listener, "death");
        using (peer2)
        using (again)
        {
            Assert.True(RoundTrip(again, 5000, 1000));
        }
    }

    /// <summary>The /proc/self/maps address range of the lane's segment.</summary>
    private static unsafe string MappingOf(ShmLane lane)
    {
        var start = (ulong)ShmLaneAccess.Base(lane);
        return $"{start:x}-{start + (ulong)lane.SegmentSize:x}";
    }

    private static bool RoundTrip(IFrameLane lane, uint firstId, int count)
    {
        var payload = new byte[256];
        uint next = firstId;
        var ok = true;
        FrameHandler check = (in FrameHeader h, ReadOnlySpan<byte> p) =>
        {
            ok &= h.FrameId == next && Pattern.Check(p, next);
            next++;
        };
        for (var id = firstId; id < firstId + count; id++)
        {
            Pattern.Fill(payload, id);
            if (!lane.Send(PeerRoutes.Echo, id, payload) || !lane.Flush())
            {
                return false;
            }

            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (next <= id && DateTime.UtcNow < deadline && !lane.PeerGone)
            {
                if (lane.Poll(check) == 0)
                {
                    lane.WaitForData(TimeSpan.FromMilliseconds(5));
                }
            }
        }

        return ok && next == firstId + count;
    }

    public void Dispose() => _lanes.Dispose();
}

internal static unsafe class ShmLaneAccess
{
    public static byte* Base(ShmLane lane) => lane.SegmentBase;
}
