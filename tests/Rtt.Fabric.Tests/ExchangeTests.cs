using System.Diagnostics;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Lanes.Bench;
using Xunit.Abstractions;

namespace Rtt.Fabric.Tests;

/// <summary>
/// A parent and a child process exchange millions of frames (sizes 0..64 KiB) over each lane kind: the
/// parent sends, the child echoes, the parent checks every echo's id, length and content.
/// </summary>
public sealed class ExchangeTests(ITestOutputHelper output) : IDisposable
{
    private const int MaxPayload = 64 * 1024;
    private readonly TestLanes _lanes = new();

    [Fact]
    public void Shm_ten_million_frames_cross_every_wrap_offset_without_loss_reorder_duplication_or_corruption()
    {
        // The smallest ring that holds a 64 KiB frame, so it wraps tens of thousands of times.
        var options = new LaneOptions { MaxPayload = MaxPayload, RingCapacity = 256 * 1024, TrackWraps = true };
        var (lane, peer) = _lanes.OpenWithPeer(LaneKind.Shm, options);
        using (peer)
        using (lane)
        {
            Exchange(lane, 10_000_000);
            var paddings = ((ShmLane)lane).Writer.WrapPaddings!;
            var wraps = paddings.Sum();
            output.WriteLine($"{wraps} wraps");

            // Every way a common record (header + 0..255 bytes) can meet the end of the ring: it ends
            // exactly there, or 8, 16, ... bytes are left and a padding record fills them.
            var smallRecord = ShmRing.RecordLength(255);
            for (var pad = 0; pad < smallRecord; pad += 8)
            {
                Assert.True(paddings[pad / 8] > 0, $"no wrap left {pad} bytes");
            }

            Assert.True(paddings.Skip(smallRecord / 8).Count(n => n > 0) > 100, "large frames wrapped at many offsets too");
        }
    }

    [Theory]
    [InlineData(LaneKind.Uds)]
    [InlineData(LaneKind.Tcp)]
    public void Stream_lanes_carry_ten_million_frames_intact_and_in_order(LaneKind kind)
    {
        var (lane, peer) = _lanes.OpenWithPeer(kind, new LaneOptions { MaxPayload = MaxPayload });
        using (peer)
        using (lane)
        {
            Exchange(lane, 10_000_000);
        }
    }

    /// <summary>Sends <paramref name="count"/> frames from a thread while this thread checks the echoes.</summary>
    private void Exchange(IFrameLane lane, uint count)
    {
        var clock = Stopwatch.StartNew();
        Exception? sendFault = null;
        var sender = new Thread(() =>
        {
            try
            {
                for (uint id = 0; id < count; id++)
                {
                    var length = Pattern.Length(id, MaxPayload);
                    if (!lane.TryLoan(length, out var room))
                    {
                        throw new InvalidOperationException($"peer gone at frame {id}");
                    }

                    Pattern.Fill(room, id);
                    lane.Commit(length, PeerRoutes.Echo, id);
                    if ((id & 63) == 63)
                    {
                        lane.Flush(); // stream lanes: batches of up to 64 frames per send
                    }
                }

                lane.Flush();
            }
            catch (Exception ex)
            {
                sendFault = ex;
            }
        })
        { IsBackground = true, Name = "exchange-sender" };
        sender.Start();

        uint expected = 0;
        string? fault = null;
        FrameHandler check = (in FrameHeader header, ReadOnlySpan<byte> payload) =>
        {
            if (fault is not null)
            {
                return;
            }

            if (header.FrameId != expected)
            {
                fault = $"expected frame {expected}, got {header.FrameId} (lost, reordered or duplicated)";
            }
            else if (payload.Length != Pattern.Length(expected, MaxPayload) || !Pattern.Check(payload, expected))
            {
                fault = $"frame {expected}: length {payload.Length} or content wrong";
            }

            expected++;
        };

        var idle = BackoffIdleStrategy.ForLane(lane);
        var deadline = TimeSpan.FromMinutes(3);
        while (expected < count && fault is null && sendFault is null && !lane.PeerGone && clock.Elapsed < deadline)
        {
            idle.Idle(lane.Poll(check, 1024));
        }

        sender.Join(TimeSpan.FromSeconds(30));
        output.WriteLine($"{lane.Kind}: {expected} frames echoed in {clock.Elapsed.TotalSeconds:0.0} s; parent {lane.Counters}");
        Assert.Null(sendFault);
        Assert.Null(fault);
        Assert.Equal(count, expected);
        Assert.Equal(0, lane.Counters.Dropped);

        // Nothing more than was sent comes back (no duplicates after the last one).
        Thread.Sleep(50);
        Assert.Equal(0, lane.Poll(check));
    }

    public void Dispose() => _lanes.Dispose();
}
