using System.Buffers.Binary;
using Rtt.Fabric.Frames;

namespace Rtt.Fabric.Tests;

public sealed class FrameCodecTests
{
    private readonly FrameCodec _codec = new(1024);

    private byte[] Frame(int length, FrameFlags flags = FrameFlags.None, uint route = 7, uint id = 42)
    {
        var frame = new byte[FrameHeader.Size + length];
        Pattern.Fill(frame.AsSpan(FrameHeader.Size), id);
        _codec.Seal(frame.AsSpan(0, FrameHeader.Size), frame.AsSpan(FrameHeader.Size), flags, route, id);
        return frame;
    }

    [Fact]
    public void A_sealed_frame_has_the_seed_layout_and_checks_good()
    {
        var frame = Frame(100);
        Assert.Equal("RTT1"u8.ToArray(), frame[..4]);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(8)));
        Assert.Equal(42u, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(12)));
        Assert.Equal(100u, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(16)));
        var expectedCrc = System.IO.Hashing.Crc32.HashToUInt32(System.IO.Hashing.Crc32ParameterSet.Crc32C, [.. frame[..20], .. frame[24..]]);
        Assert.Equal(expectedCrc, BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(20)));

        Assert.Equal(DropReason.None, _codec.Check(frame, out var header));
        Assert.Equal(new FrameHeader(FrameFlags.None, 7, 42, 100, expectedCrc), header);
    }

    [Fact]
    public void Every_single_bit_flip_is_caught()
    {
        var good = Frame(64);
        for (var bit = 0; bit < good.Length * 8; bit++)
        {
            var bad = (byte[])good.Clone();
            bad[bit / 8] ^= (byte)(1 << (bit % 8));
            var reason = _codec.Check(bad, out _);
            Assert.NotEqual(DropReason.None, reason);
            var expected = bit < 32 ? DropReason.BadMagic : bit is >= 128 and < 160 ? (reason == DropReason.TooLong ? DropReason.TooLong : DropReason.Truncated) : DropReason.BadCrc;
            if (bit is >= 128 and < 160 && reason == DropReason.BadCrc)
            {
                continue; // a shorter length still inside the buffer: the CRC catches it
            }

            Assert.Equal(expected, reason);
        }
    }

    [Fact]
    public void Oversized_and_truncated_frames_are_named_as_such()
    {
        var frame = Frame(200);
        Assert.Equal(DropReason.Truncated, _codec.Check(frame.AsSpan(0, 150), out _));
        Assert.Equal(DropReason.Truncated, _codec.Check(frame.AsSpan(0, 10), out _));
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(16), 5000);
        Assert.Equal(DropReason.TooLong, _codec.Check(frame, out _));
    }

    [Fact]
    public void Without_payload_crc_the_header_is_still_checked()
    {
        var frame = Frame(64, FrameFlags.NoPayloadCrc);
        frame[40] ^= 0xFF; // payload change: not covered by design
        Assert.Equal(DropReason.None, _codec.Check(frame, out _));
        frame[9] ^= 0x01; // route id change: covered
        Assert.Equal(DropReason.BadCrc, _codec.Check(frame, out _));
    }
}
