using System.Buffers.Binary;
using System.IO.Hashing;

namespace Rtt.Fabric.Frames;

/// <summary>Why a frame was dropped. Counted per lane, never thrown.</summary>
public enum DropReason
{
    None = 0,
    BadMagic,
    TooLong,
    BadCrc,
    Truncated,
    UnknownRoute,
}

/// <summary>
/// Encodes and checks frames for one side of one lane. Holds a CRC-32C state, so an instance belongs to
/// one thread (a lane's writer or reader); it allocates nothing after construction.
/// </summary>
public sealed class FrameCodec(int maxPayload)
{
    private readonly Crc32 _crc = new(Crc32ParameterSet.Crc32C); // one reusable state: no per-frame allocation

    public int MaxPayload { get; } = maxPayload;

    /// <summary>Fills the header in front of a payload that is already in place (loaned) and computes the CRC.</summary>
    public void Seal(Span<byte> header, ReadOnlySpan<byte> payload, FrameFlags flags, uint routeId, uint frameId)
    {
        FrameHeader.WriteWithoutCrc(header, flags, routeId, frameId, (uint)payload.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[FrameHeader.CoveredSize..], Compute(header, payload, flags));
    }

    /// <summary>
    /// Checks a frame: <paramref name="available"/> is every byte known to belong to it (header + payload,
    /// perhaps more). Returns <see cref="DropReason.None"/> and the header when it is good.
    /// </summary>
    public DropReason Check(ReadOnlySpan<byte> available, out FrameHeader header)
    {
        header = default;
        if (available.Length < FrameHeader.Size)
        {
            return DropReason.Truncated;
        }

        if (FrameHeader.ReadMagic(available) != FrameHeader.Magic)
        {
            return DropReason.BadMagic;
        }

        header = FrameHeader.Read(available);
        if (header.Length > (uint)MaxPayload)
        {
            return DropReason.TooLong;
        }

        if (available.Length - FrameHeader.Size < header.Length)
        {
            return DropReason.Truncated;
        }

        var payload = available.Slice(FrameHeader.Size, (int)header.Length);
        return Compute(available, payload, header.Flags) == header.Crc ? DropReason.None : DropReason.BadCrc;
    }

    private uint Compute(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload, FrameFlags flags)
    {
        _crc.Reset();
        _crc.Append(header[..FrameHeader.CoveredSize]);
        if ((flags & FrameFlags.NoPayloadCrc) == 0)
        {
            _crc.Append(payload);
        }

        return _crc.GetCurrentHashAsUInt32();
    }
}
