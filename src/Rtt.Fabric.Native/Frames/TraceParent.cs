using System.Buffers.Binary;
using System.Diagnostics;

namespace Rtt.Fabric.Frames;

/// <summary>
/// A W3C trace context (https://www.w3.org/TR/trace-context/) as a request frame carries it: with
/// <see cref="FrameFlags.Traced"/> the payload starts with these 26 bytes, version (0), trace-id (16), parent-id (8),
/// trace-flags (1), the fields of a <c>traceparent</c> header in binary; the lane host takes them off before the
/// endpoint sees the payload (fabric.md, "Trace context"). A plain value: reading one allocates nothing.
/// </summary>
public readonly record struct TraceParent(ulong TraceHigh, ulong TraceLow, ulong ParentId, byte TraceFlags)
{
    /// <summary>Bytes a <see cref="FrameFlags.Traced"/> payload starts with.</summary>
    public const int Size = 26;

    /// <summary>Set: a trace id that is not all zeros (an all-zero trace id is invalid in W3C trace context).</summary>
    public bool Present => (TraceHigh | TraceLow) != 0;

    public bool Sampled => (TraceFlags & 1) != 0;

    /// <summary>Reads the prefix of a traced payload; false when it is too short, of another version, or has a zero trace or parent id.</summary>
    public static bool TryRead(ReadOnlySpan<byte> payload, out TraceParent trace)
    {
        trace = default;
        if (payload.Length < Size || payload[0] != 0)
        {
            return false;
        }

        trace = new TraceParent(
            BinaryPrimitives.ReadUInt64BigEndian(payload[1..]),
            BinaryPrimitives.ReadUInt64BigEndian(payload[9..]),
            BinaryPrimitives.ReadUInt64BigEndian(payload[17..]),
            payload[25]);
        return trace.Present && trace.ParentId != 0;
    }

    /// <summary>Writes the 26-byte prefix.</summary>
    public void Write(Span<byte> destination)
    {
        destination[0] = 0;
        BinaryPrimitives.WriteUInt64BigEndian(destination[1..], TraceHigh);
        BinaryPrimitives.WriteUInt64BigEndian(destination[9..], TraceLow);
        BinaryPrimitives.WriteUInt64BigEndian(destination[17..], ParentId);
        destination[25] = TraceFlags;
    }

    /// <summary>Parses a <c>traceparent</c> header (<c>00-&lt;32 hex&gt;-&lt;16 hex&gt;-&lt;2 hex&gt;</c>, lowercase); false when it is not one.</summary>
    public static bool TryParse(string? text, out TraceParent trace)
    {
        trace = default;
        if (text is null || text.Length != 55 || text[2] != '-' || text[35] != '-' || text[52] != '-' || !text.StartsWith("00", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in text.AsSpan(3, 32).ToString() + text.AsSpan(36, 16).ToString() + text.AsSpan(53, 2).ToString())
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        trace = new TraceParent(
            ulong.Parse(text.AsSpan(3, 16), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture),
            ulong.Parse(text.AsSpan(19, 16), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture),
            ulong.Parse(text.AsSpan(36, 16), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture),
            byte.Parse(text.AsSpan(53, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture));
        return trace.Present && trace.ParentId != 0;
    }

    /// <summary>The <c>traceparent</c> header text.</summary>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"00-{TraceHigh:x16}{TraceLow:x16}-{ParentId:x16}-{TraceFlags:x2}");

    /// <summary>The context of <paramref name="activity"/> (its trace id, itself as the parent); default when none or not a W3C id.</summary>
    public static TraceParent From(Activity? activity) =>
        activity is null || activity.IdFormat != ActivityIdFormat.W3C ? default : From(activity.Context);

    public static TraceParent From(ActivityContext context)
    {
        if (context.TraceId == default || context.SpanId == default)
        {
            return default;
        }

        Span<byte> bytes = stackalloc byte[16];
        context.TraceId.CopyTo(bytes);
        var high = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        var low = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        context.SpanId.CopyTo(bytes[..8]);
        return new TraceParent(high, low, BinaryPrimitives.ReadUInt64BigEndian(bytes), (byte)context.TraceFlags);
    }

    /// <summary>As the parent of a span made here (a remote context).</summary>
    public ActivityContext ToContext()
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, TraceHigh);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], TraceLow);
        var traceId = ActivityTraceId.CreateFromBytes(bytes);
        BinaryPrimitives.WriteUInt64BigEndian(bytes, ParentId);
        return new ActivityContext(traceId, ActivitySpanId.CreateFromBytes(bytes[..8]), (ActivityTraceFlags)TraceFlags, isRemote: true);
    }

    /// <summary>
    /// The trace context the calls of this async flow carry (<c>rtt call --traceparent</c>, the MCP gateway's
    /// <c>_meta.traceparent</c>); when unset, <see cref="Activity.Current"/>'s (as HttpClient does). Read by
    /// <c>LaneClient</c> on each request.
    /// </summary>
    public static TraceParent Outgoing
    {
        get => Ambient.Value is { Present: true } set ? set : From(Activity.Current);
        set => Ambient.Value = value;
    }

    private static readonly AsyncLocal<TraceParent> Ambient = new();
}
