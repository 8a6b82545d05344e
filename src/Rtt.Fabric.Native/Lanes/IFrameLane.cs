using Rtt.Fabric.Frames;

namespace Rtt.Fabric.Lanes;

/// <summary>Called once per good frame with a span over the lane's own memory (the ring, or the socket buffer): valid only during the call.</summary>
public delegate void FrameHandler(in FrameHeader header, ReadOnlySpan<byte> payload);

public enum LaneKind
{
    Shm,
    Uds,
    Tcp,
}

/// <summary>What a writer does when the ring (or socket) is full.</summary>
public enum BackpressurePolicy
{
    /// <summary><see cref="IFrameLane.Send"/> waits (spin, yield, then a blocking wait woken by the reader) until there is room.</summary>
    Block,

    /// <summary>
    /// <see cref="IFrameLane.Send"/> and <see cref="IFrameLane.TryLoan"/> return false at once, and a stream lane's
    /// <see cref="IFrameLane.Flush"/> sends what the socket takes now and keeps the rest for later: nothing waits.
    /// The lane host's side of every lane.
    /// </summary>
    Fail,
}

/// <summary>Per-lane settings.</summary>
public sealed record LaneOptions
{
    /// <summary>Largest payload a frame may carry; longer frames are dropped as too long.</summary>
    public int MaxPayload { get; init; } = Rtt.Core.Lanes.LaneDefaults.MaxPayload;

    /// <summary>Bytes per SHM ring (power of two, at least twice the largest record).</summary>
    public int RingCapacity { get; init; } = Rtt.Core.Lanes.LaneDefaults.RingCapacity;

    public BackpressurePolicy Backpressure { get; init; } = BackpressurePolicy.Block;

    /// <summary>Idle backoff before a blocking wait: busy spins, then yields.</summary>
    public int SpinCount { get; init; } = 2000;

    public int YieldCount { get; init; } = 50;

    /// <summary>Record, per wrap-around, how many bytes were skipped (tests use it to prove every offset was crossed).</summary>
    public bool TrackWraps { get; init; }
}

/// <summary>
/// One duplex lane (SHM ring pair, UDS or TCP connection). The writer side and the reader side may run on
/// two threads; each side is single-threaded.
/// </summary>
public interface IFrameLane : IDisposable
{
    LaneKind Kind { get; }

    LaneOptions Options { get; }

    LaneCounters Counters { get; }

    /// <summary>True once the peer closed or died; the lane no longer moves frames.</summary>
    bool PeerGone { get; }

    /// <summary>Writes a copy of the payload as one frame if there is room now; never waits.</summary>
    bool TrySend(uint routeId, uint frameId, ReadOnlySpan<byte> payload, FrameFlags flags = FrameFlags.None);

    /// <summary>Writes a frame, waiting for room per the lane's <see cref="BackpressurePolicy"/>; false when full (Fail) or the peer is gone.</summary>
    bool Send(uint routeId, uint frameId, ReadOnlySpan<byte> payload, FrameFlags flags = FrameFlags.None);

    /// <summary>
    /// True when a frame of up to <paramref name="maxLength"/> bytes can be written now without waiting (a stream lane
    /// counts bytes still queued for its socket). The lane host skips a client whose answers would not fit.
    /// </summary>
    bool CanWrite(int maxLength);

    /// <summary>Bytes written but not yet taken by the peer's socket (stream lanes; 0 for SHM).</summary>
    int Unsent => 0;

    /// <summary>Loans room for a payload of up to <paramref name="maxLength"/> bytes in the lane's own buffer (zero copy); waits per policy.</summary>
    bool TryLoan(int maxLength, out Span<byte> payload);

    /// <summary>Publishes the loaned payload's first <paramref name="length"/> bytes as a frame.</summary>
    void Commit(int length, uint routeId, uint frameId, FrameFlags flags = FrameFlags.None);

    /// <summary>
    /// Pushes the frames written since the last call out: one send for a stream lane; for SHM, where a polling
    /// reader sees each commit at once, it wakes a reader that sleeps (one fence per batch, not per frame).
    /// Call it after a frame or a batch, before waiting for an answer.
    /// </summary>
    bool Flush();

    /// <summary>Hands up to <paramref name="limit"/> good frames to the handler; bad ones are dropped and counted. Returns frames handled.</summary>
    int Poll(FrameHandler handler, int limit = 256);

    /// <summary>Blocks until data may have arrived, the peer goes, or the timeout passes (the idle strategy's last stage).</summary>
    void WaitForData(TimeSpan timeout);
}
