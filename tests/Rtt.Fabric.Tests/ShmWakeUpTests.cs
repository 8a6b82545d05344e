using System.Diagnostics;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;

namespace Rtt.Fabric.Tests;

/// <summary>
/// The sleep/wake protocol of an SHM ring: a reader that sleeps as soon as the ring is empty must be woken by
/// every publish that lands while it goes to sleep. A lost wake-up shows as a wait that runs to its timeout.
/// Run with plain release-store publication (membarrier on the sleeping side) and with fenced publication.
/// </summary>
public sealed class ShmWakeUpTests : IDisposable
{
    private readonly TestLanes _lanes = new();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_reader_that_sleeps_at_once_is_woken_by_every_frame(bool fencedPublish)
    {
        ShmFence.ForceFencedPublish = fencedPublish;
        try
        {
            var (a, b) = _lanes.OpenPair(LaneKind.Shm, new LaneOptions());
            using (a)
            using (b)
            {
                const int frames = 4000;
                var timeout = TimeSpan.FromSeconds(5);
                long longestWaitTicks = 0;
                var received = 0;
                var outOfOrder = 0;
                var reader = new Thread(() =>
                {
                    FrameHandler handler = (in FrameHeader header, ReadOnlySpan<byte> payload) =>
                    {
                        outOfOrder += header.FrameId == (uint)received ? 0 : 1;
                        received++;
                    };
                    while (received < frames && !b.PeerGone)
                    {
                        if (b.Poll(handler) == 0)
                        {
                            var t0 = Stopwatch.GetTimestamp();
                            b.WaitForData(timeout); // no spinning: every frame meets a reader on its way to sleep, or asleep
                            longestWaitTicks = Math.Max(longestWaitTicks, Stopwatch.GetTimestamp() - t0);
                        }
                    }
                });
                reader.Start();

                var random = new Random(6);
                var payload = new byte[32];
                for (uint id = 0; id < frames; id++)
                {
                    Assert.True(a.Send(1, id, payload));
                    a.Flush();
                    var pause = random.Next(0, 4000); // spins from none to a few microseconds: lands in every phase of the reader's sleep
                    for (var i = 0; i < pause; i++)
                    {
                        Thread.SpinWait(1);
                    }
                }

                Assert.True(reader.Join(TimeSpan.FromSeconds(60)), $"the reader got {received} of {frames} frames");
                Assert.Equal(frames, received);
                Assert.Equal(0, outOfOrder);
                var longest = Stopwatch.GetElapsedTime(0, longestWaitTicks);
                Assert.True(longest < TimeSpan.FromSeconds(1), $"a wait lasted {longest.TotalMilliseconds:0} ms: a publish did not wake the sleeping reader");
            }
        }
        finally
        {
            ShmFence.ForceFencedPublish = false;
        }
    }

    public void Dispose() => _lanes.Dispose();
}
