using System.Buffers.Binary;

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

    /// <summary>A call refused because its endpoint already had as many calls in progress as it takes.</summary>
    EndpointBusy,

    /// <summary>A request whose driver threw (answered with an error frame).</summary>
    DriverFault,

    /// <summary>An SHM ring whose positions the peer set to an impossible state (the lane is closed).</summary>
    RingCorrupt,

    /// <summary>An answer the lane host could not write because the client's lane stayed full (the client does not read).</summary>
    ClientFull,
}

/// <summary>
/// Encodes and checks frames for one side of one lane. Keeps no state beyond the payload limit, so any thread may
/// use it; it allocates nothing.
/// </summary>
public sealed class FrameCodec(int maxPayload)
{
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

    /// <summary>CRC-32C over the covered header bytes, then the payload unless the flags leave it out.</summary>
    private static uint Compute(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload, FrameFlags flags)
    {
        var crc = Crc32C.Compute(header[..FrameHeader.CoveredSize]);
        return (flags & FrameFlags.NoPayloadCrc) == 0 ? Crc32C.Update(crc, payload) : crc;
    }
}
