using System.Buffers.Binary;

namespace Rtt.Fabric.Frames;

/// <summary>Header flags (u16).</summary>
[Flags]
public enum FrameFlags : ushort
{
    None = 0,

    /// <summary>The CRC covers the header only: the zero-copy hot path skips hashing the payload.</summary>
    NoPayloadCrc = 0x0001,

    /// <summary>A response to the request with the same frame_id.</summary>
    Response = 0x0002,

    /// <summary>
    /// With <see cref="Response"/>: not the service's answer but an error the lane host (or a lane) gives in its
    /// place, e.g. the service went away before answering. The payload is <see cref="ErrorPayload"/> text.
    /// </summary>
    Error = 0x0004,

    /// <summary>
    /// A health probe (the reconciler's verify): the lane host answers it itself, with the payload echoed when the
    /// route's endpoint is ready, or an error frame saying why not. It never reaches the endpoint.
    /// </summary>
    Probe = 0x0008,

    /// <summary>
    /// A request frame that withdraws an earlier request of the same lane (same route_id and frame_id), empty payload:
    /// the caller gave up (its client cancelled or went away). The lane host cancels the endpoint call when it is still
    /// in progress at an async driver (an MCP endpoint then sends <c>notifications/cancelled</c> upstream) and answers
    /// nothing; a request already answered, or at a process service, is left as it is.
    /// </summary>
    Cancel = 0x0010,

    /// <summary>
    /// A message inside a call still in progress, same route_id and frame_id as its request (fabric.md, "Interim
    /// frames"). With <see cref="Response"/>: from the lane host to the caller, before the final response (an MCP
    /// endpoint's progress, log message, or sampling/elicitation request); without it: from the caller to the lane host,
    /// a reply to such a request. The lane host sends interim frames only for requests flagged
    /// <see cref="AcceptsInterim"/>, so a caller that never sets it never sees one.
    /// </summary>
    Interim = 0x0020,

    /// <summary>On a request: the caller takes <see cref="Interim"/> frames for it before its final response.</summary>
    AcceptsInterim = 0x0040,

    /// <summary>
    /// On a request from a caller to the lane host: the payload starts with the caller's W3C trace context, 26 bytes
    /// (<see cref="TraceParent"/>), which the host takes off (the endpoint never sees it, nor this flag) and makes the
    /// call's span a child of (docs/observability.md, "Traces").
    /// </summary>
    Traced = 0x0080,
}

/// <summary>
/// The payload of an <see cref="FrameFlags.Error"/> frame: UTF-8 text, the error code (<c>RTT-LANE-005</c>), one
/// space, then a message for people. Built only on failure paths (it allocates); never on the per-frame path.
/// </summary>
public static class ErrorPayload
{
    public static byte[] Encode(string code, string message) => System.Text.Encoding.UTF8.GetBytes(code + " " + message);

    /// <summary>
    /// An endpoint's refusal (its <c>NotReady</c> reason): kept as it is when it starts with its own code (a drifted MCP
    /// tool says <c>RTT-MCP-003 …</c>), else under <paramref name="fallbackCode"/>.
    /// </summary>
    public static byte[] Refusal(string fallbackCode, string why) =>
        why.StartsWith("RTT-", StringComparison.Ordinal) && why.IndexOf(' ', StringComparison.Ordinal) > 4 ? System.Text.Encoding.UTF8.GetBytes(why) : Encode(fallbackCode, why);

    /// <summary>Splits an error payload; a payload that does not start with an <c>RTT-</c> code gets <paramref name="fallbackCode"/>.</summary>
    public static (string Code, string Message) Decode(ReadOnlySpan<byte> payload, string fallbackCode)
    {
        var text = System.Text.Encoding.UTF8.GetString(payload);
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        return text.StartsWith("RTT-", StringComparison.Ordinal) && space > 0 ? (text[..space], text[(space + 1)..]) : (fallbackCode, text);
    }
}

/// <summary>
/// The seed's 24-byte little-endian frame header: magic "RTT1", flags u16, reserved u16, route_id u32,
/// frame_id u32, len u32, crc32c u32; the payload follows. The CRC-32C covers header bytes 0..19 and,
/// unless <see cref="FrameFlags.NoPayloadCrc"/>, the payload.
/// </summary>
public readonly record struct FrameHeader(FrameFlags Flags, uint RouteId, uint FrameId, uint Length, uint Crc)
{
    public const int Size = 24;

    /// <summary>"RTT1" read as a little-endian u32.</summary>
    public const uint Magic = 0x31545452;

    /// <summary>The header bytes the CRC covers (everything before the crc field).</summary>
    public const int CoveredSize = 20;

    /// <summary>Reads a header without checking it (see <see cref="FrameCodec.Check"/>).</summary>
    public static FrameHeader Read(ReadOnlySpan<byte> source) => new(
        (FrameFlags)BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[12..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[16..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[20..]));

    public static uint ReadMagic(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt32LittleEndian(source);

    /// <summary>Writes magic, flags, reserved (0), route, frame id and length; the crc field is left to the codec.</summary>
    public static void WriteWithoutCrc(Span<byte> destination, FrameFlags flags, uint routeId, uint frameId, uint length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], (ushort)flags);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], routeId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], frameId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[16..], length);
    }
}
