using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Fabric.Tests;

/// <summary>Bad frames and backpressure, with both ends of a lane in this process.</summary>
public sealed class LaneBehaviourTests : IDisposable
{
    private readonly TestLanes _lanes = new();

    private static byte[] Sealed(uint id, int length)
    {
        var frame = new byte[FrameHeader.Size + length];
        Pattern.Fill(frame.AsSpan(FrameHeader.Size), id);
        new FrameCodec(64 * 1024).Seal(frame.AsSpan(0, FrameHeader.Size), frame.AsSpan(FrameHeader.Size), FrameFlags.None, 1, id);
        return frame;
    }

    /// <summary>Good frames 1..5 with a bad one between each pair: a payload bit flip, a wrong magic, an oversized length, a truncated frame.</summary>
    private static List<byte[]> Forged()
    {
        var flipped = Sealed(100, 300);
        flipped[FrameHeader.Size + 17] ^= 0x10;
        var wrongMagic = Sealed(101, 40);
        wrongMagic[0] = (byte)'X';
        var oversized = Sealed(102, 40);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(oversized.AsSpan(16), 1_000_000);
        var truncated = Sealed(103, 200)[..(FrameHeader.Size + 50)];
        return [Sealed(1, 10), flipped, Sealed(2, 0), wrongMagic, Sealed(3, 1000), oversized, Sealed(4, 7), truncated, Sealed(5, 64)];
    }

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    [InlineData(LaneKind.Tcp)]
    public void Bad_frames_are_dropped_and_counted_and_the_lane_keeps_working(LaneKind kind)
    {
        var (a, b) = _lanes.OpenPair(kind, new LaneOptions());
        using (a)
        using (b)
        {
            foreach (var frame in Forged())
            {
                if (a is ShmLane shm)
                {
                    Assert.True(shm.TryWriteRaw(frame));
                }
                else
                {
                    ((StreamLane)a).WriteRaw(frame);
                }
            }

            // More traffic after the forgeries: on a stream, a truncated frame is only known to be one when
            // the bytes it claims have arrived (they belong to the frames after it).
            var tail = new byte[100];
            for (uint id = 6; id <= 10; id++)
            {
                Pattern.Fill(tail, id);
                Assert.True(a.Send(1, id, tail));
            }

            Assert.True(a.Flush());

            var got = new List<uint>();
            var intact = true;
            FrameHandler collect = (in FrameHeader h, ReadOnlySpan<byte> p) =>
            {
                got.Add(h.FrameId);
                intact &= Pattern.Check(p, h.FrameId);
            };
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (got.Count < 10 && DateTime.UtcNow < deadline)
            {
                if (b.Poll(collect) == 0)
                {
                    b.WaitForData(TimeSpan.FromMilliseconds(10));
                }
            }

            Assert.Equal([1u, 2, 3, 4, 5, 6, 7, 8, 9, 10], got);
            Assert.True(intact);
            var c = b.Counters;
            Assert.Equal(1, c.BadMagic);
            Assert.Equal(1, c.TooLong);
            if (kind == LaneKind.Shm)
            {
                // The ring's own record length bounds each frame, so a truncated frame is named as such.
                Assert.Equal(1, c.BadCrc);
                Assert.Equal(1, c.Truncated);
            }
            else
            {
                // On a stream the truncated frame swallows the start of the next one; its CRC fails and the
                // reader re-synchronises on the next magic, so the good frame after it still arrives.
                Assert.Equal(2, c.BadCrc);
            }

            Assert.Equal(4, c.Dropped);
            Assert.False(b.PeerGone);
        }
    }

    [Fact]
    public void A_full_ring_fails_fast_under_the_fail_policy_and_every_frame_queued_arrives_whole()
    {
        var options = new LaneOptions { RingCapacity = 256 * 1024, Backpressure = BackpressurePolicy.Fail };
        var (a, b) = _lanes.OpenPair(LaneKind.Shm, options);
        using (a)
        using (b)
        {
            var payload = new byte[4096];
            uint sent = 0;
            while (true)
            {
                Pattern.Fill(payload, sent);
                if (!a.Send(1, sent, payload))
                {
                    break;
                }

                sent++;
            }

            Assert.InRange(sent, 1u, 256u * 1024 / 4096);
            Assert.Equal(1, a.Counters.Full);
            Assert.False(a.TrySend(1, sent, payload));

            uint next = 0;
            var whole = true;
            FrameHandler check = (in FrameHeader h, ReadOnlySpan<byte> p) =>
            {
                whole &= h.FrameId == next && p.Length == 4096 && Pattern.Check(p, next);
                next++;
            };
            while (b.Poll(check) > 0)
            {
            }

            Assert.Equal(sent, next);
            Assert.True(whole);
            Assert.Equal(0, b.Counters.Dropped);
            Assert.True(a.TrySend(1, sent, payload)); // room again once the reader released it
        }
    }

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    public void Under_the_block_policy_a_writer_waits_for_the_reader_and_nothing_is_lost(LaneKind kind)
    {
        var options = new LaneOptions { RingCapacity = 256 * 1024, Backpressure = BackpressurePolicy.Block };
        var (a, b) = _lanes.OpenPair(kind, options);
        using (a)
        using (b)
        {
            const uint count = 3000; // 12 MB through a 256 KiB ring (or the socket buffers)
            var writer = new Thread(() =>
            {
                var payload = new byte[4096];
                for (uint id = 0; id < count; id++)
                {
                    Pattern.Fill(payload, id);
                    if (!a.Send(1, id, payload))
                    {
                        return;
                    }
                }

                a.Flush();
            })
            { IsBackground = true };
            writer.Start();

            // Nobody reads: the writer must be waiting, not failing or overwriting.
            Assert.False(writer.Join(300));
            Assert.True(a.Counters.Full > 0);

            uint next = 0;
            var whole = true;
            FrameHandler check = (in FrameHeader h, ReadOnlySpan<byte> p) =>
            {
                whole &= h.FrameId == next && p.Length == 4096 && Pattern.Check(p, next);
                next++;
            };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (next < count && DateTime.UtcNow < deadline)
            {
                if (b.Poll(check, 16) == 0)
                {
                    b.WaitForData(TimeSpan.FromMilliseconds(10));
                }
            }

            Assert.True(writer.Join(TimeSpan.FromSeconds(30)));
            Assert.Equal(count, next);
            Assert.True(whole);
            Assert.Equal(0, b.Counters.Dropped);
        }
    }

    public void Dispose() => _lanes.Dispose();
}
