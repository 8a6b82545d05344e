using System.Buffers.Binary;
using System.Net.Sockets;
using Rtt.Core.Errors;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;

namespace Rtt.Fabric.Shm;

/// <summary>
/// A duplex shared-memory lane: one memfd segment holding two SPSC rings, one per direction. The side that
/// accepts creates the segment and passes its fd over the Unix control socket; the side that attaches maps
/// it. The control socket stays open for the life of the lane: when the peer dies (even kill -9) the kernel
/// closes its end, a monitor thread sees end-of-file at once, and the lane reports <see cref="PeerGone"/>.
/// Segment layout: page 0 header, then the two ring control blocks, then the two data areas (page aligned).
/// </summary>
public sealed unsafe class ShmLane : IFrameLane
{
    public const uint HelloMagic = 0x43545452; // "RTTC"
    public const uint AckMagic = 0x41545452;   // "RTTA"
    /// <summary>Hello version: 1 carries the segment's fd; 2 also the accepting side's doorbell eventfd (see <see cref="LaneDoorbell"/>).</summary>
    public const int Version = 2;
    private const int DataOffset = 8192;
    private const int ControlOffset = 4096;

    private readonly ShmSegment _segment;
    private readonly Socket _control;
    private readonly ShmRingWriter _tx;
    private readonly ShmRingReader _rx;
    private readonly Thread _monitor;
    private readonly LaneDoorbell? _doorbell; // ours: the reader here sleeps on it (not owned)
    private readonly int _peerDoorbellFd;     // the peer's: our writer rings it (owned copy of the fd, -1: none)
    private volatile bool _peerGone;
    private int _disposed;

    private ShmLane(ShmSegment segment, Socket control, LaneOptions options, bool creator, int peerPid, LaneDoorbell? doorbell = null, int peerDoorbellFd = -1)
    {
        _segment = segment;
        _control = control;
        _doorbell = doorbell;
        _peerDoorbellFd = peerDoorbellFd;
        Options = options;
        PeerPid = peerPid;
        var capacity = options.RingCapacity;
        var b = segment.Base;
        var controlA = b + ControlOffset;
        var controlB = b + ControlOffset + ShmRing.ControlSize;
        var dataA = b + DataOffset;
        var dataB = b + DataOffset + capacity;
        // Ring A carries creator -> attacher, ring B the other way.
        _tx = creator ? new ShmRingWriter(controlA, dataA, capacity, this, peerDoorbellFd) : new ShmRingWriter(controlB, dataB, capacity, this, peerDoorbellFd);
        _rx = creator ? new ShmRingReader(controlB, dataB, capacity, this) : new ShmRingReader(controlA, dataA, capacity, this);
        _monitor = new Thread(WatchPeer) { IsBackground = true, Name = "rtt-shm-peer-watch" };
        _monitor.Start();
    }

    public LaneKind Kind => LaneKind.Shm;

    public LaneOptions Options { get; }

    public LaneCounters Counters { get; } = new();

    public bool PeerGone => _peerGone;

    /// <summary>Why the lane was closed on this side for a protocol violation by the peer (null: it was not).</summary>
    public string? BrokenReason { get; private set; }

    /// <summary>
    /// Closes the lane for a protocol violation by the peer (an impossible ring state, a malformed frame): the peer
    /// sees its lane close; this side reads what is already there and its owner disposes it later.
    /// </summary>
    public void Break(string reason)
    {
        BrokenReason ??= reason;
        _peerGone = true;
        try
        {
            _control.Shutdown(SocketShutdown.Both); // the peer sees its lane close; the mapping stays until Dispose
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Tests: stores an impossible tail in this side's outgoing ring.</summary>
    internal void ForgeTail(long tail) => _tx.ForgeTail(tail);

    /// <summary>The peer's process id, as it reported in the handshake.</summary>
    public int PeerPid { get; }

    /// <summary>Segment bytes (header, control blocks, two rings).</summary>
    public long SegmentSize => _segment.Size;

    /// <summary>Raised once, on the monitor thread, when the peer closes or dies.</summary>
    public event Action<ShmLane>? PeerLost;

    internal ShmRingWriter Writer => _tx;

    internal byte* SegmentBase => _segment.Base;

    public static long SegmentSizeFor(int capacity) => DataOffset + 2L * capacity;

    /// <summary>The doorbell this side's reader can sleep on instead of the ring's futex (null: none).</summary>
    public LaneDoorbell? Doorbell => _doorbell;

    /// <summary>Server side: creates the segment, sends its fd over <paramref name="control"/>, waits for the peer to map it.</summary>
    public static ShmLane Accept(Socket control, LaneOptions options) => Accept(control, options, null);

    /// <summary>
    /// Server side with a doorbell: the peer also gets <paramref name="doorbell"/>'s eventfd and rings it when this
    /// side sleeps on it (<see cref="ArmDoorbells"/>), so one thread can sleep on many lanes at once.
    /// </summary>
    public static ShmLane Accept(Socket control, LaneOptions options, LaneDoorbell? doorbell) => Accept(control, options, doorbell, TimeSpan.FromSeconds(10));

    /// <summary>As above; the peer must acknowledge the segment within <paramref name="handshakeTimeout"/>.</summary>
    public static ShmLane Accept(Socket control, LaneOptions options, LaneDoorbell? doorbell, TimeSpan handshakeTimeout)
    {
        if (!ShmRing.CapacityFits(options.RingCapacity, options.MaxPayload))
        {
            throw new RttException(ErrorCodes.LaneConfigInvalid, $"ring capacity {options.RingCapacity} must be a power of two of at least {2 * ShmRing.RecordLength(options.MaxPayload)} bytes for payloads up to {options.MaxPayload}",
                "Lanes:RingCapacity", "use a power of two at least twice the largest frame");
        }

        var segment = ShmSegment.Create("rtt-lane", SegmentSizeFor(options.RingCapacity));
        try
        {
            Span<byte> hello = stackalloc byte[20];
            BinaryPrimitives.WriteUInt32LittleEndian(hello, HelloMagic);
            BinaryPrimitives.WriteInt32LittleEndian(hello[4..], doorbell is null ? 1 : Version);
            BinaryPrimitives.WriteInt32LittleEndian(hello[8..], options.RingCapacity);
            BinaryPrimitives.WriteInt32LittleEndian(hello[12..], options.MaxPayload);
            BinaryPrimitives.WriteInt32LittleEndian(hello[16..], Environment.ProcessId);
            FdPassing.Send(control, hello, segment.Fd, doorbell?.Fd ?? -1);
            segment.CloseFd(); // the peer holds its own copy now; the memory lives while either side maps it

            Span<byte> ack = stackalloc byte[8];
            control.ReceiveTimeout = (int)Math.Max(1, handshakeTimeout.TotalMilliseconds);
            FdPassing.ReadExactly(control, ack);
            control.ReceiveTimeout = 0;
            if (BinaryPrimitives.ReadUInt32LittleEndian(ack) != AckMagic)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, "the peer did not acknowledge the segment", "control socket", "check both sides run the same rtt version");
            }

            return new ShmLane(segment, control, options, creator: true, BinaryPrimitives.ReadInt32LittleEndian(ack[4..]), doorbell);
        }
        catch (SocketException ex)
        {
            segment.Dispose();
            throw new RttException(ErrorCodes.LaneAttachFailed, $"handshake failed: {ex.Message}", "control socket", "start the peer again", ex);
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    /// <summary>Client side: receives the segment's fd over <paramref name="control"/>, maps it, acknowledges.</summary>
    public static ShmLane Attach(Socket control, LaneOptions? options = null)
    {
        Span<byte> hello = stackalloc byte[20];
        var fd = FdPassing.Receive(control, hello, out var doorbellFd);
        var version = BinaryPrimitives.ReadInt32LittleEndian(hello[4..]);
        if (fd < 0 || BinaryPrimitives.ReadUInt32LittleEndian(hello) != HelloMagic || version is not (1 or Version) || (version == Version) != (doorbellFd >= 0))
        {
            if (fd >= 0)
            {
                Interop.Libc.Close(fd);
            }

            if (doorbellFd >= 0)
            {
                Interop.Libc.Close(doorbellFd);
            }

            throw new RttException(ErrorCodes.LaneAttachFailed, "the lane's hello carried no segment or another protocol version", "control socket", "check both sides run the same rtt version");
        }

        var capacity = BinaryPrimitives.ReadInt32LittleEndian(hello[8..]);
        var maxPayload = BinaryPrimitives.ReadInt32LittleEndian(hello[12..]);
        var peerPid = BinaryPrimitives.ReadInt32LittleEndian(hello[16..]);
        ShmSegment segment;
        try
        {
            segment = ShmSegment.Map(fd, SegmentSizeFor(capacity));
        }
        catch
        {
            if (doorbellFd >= 0)
            {
                Interop.Libc.Close(doorbellFd);
            }

            throw;
        }

        segment.CloseFd();
        try
        {
            Span<byte> ack = stackalloc byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(ack, AckMagic);
            BinaryPrimitives.WriteInt32LittleEndian(ack[4..], Environment.ProcessId);
            control.Send(ack);
            var o = (options ?? new LaneOptions()) with { RingCapacity = capacity, MaxPayload = maxPayload };
            return new ShmLane(segment, control, o, creator: false, peerPid, peerDoorbellFd: doorbellFd);
        }
        catch
        {
            segment.Dispose();
            if (doorbellFd >= 0)
            {
                Interop.Libc.Close(doorbellFd);
            }

            throw;
        }
    }

    public bool TrySend(uint routeId, uint frameId, ReadOnlySpan<byte> payload, FrameFlags flags = FrameFlags.None)
    {
        if (_peerGone)
        {
            return false;
        }

        if (!_tx.TryLoan(payload.Length, out var room))
        {
            Counters.OnFull();
            _tx.Signal(); // a reader asleep on an unsignalled batch must wake to make room
            return false;
        }

        payload.CopyTo(room);
        _tx.Commit(payload.Length, routeId, frameId, flags);
        return true;
    }

    public bool Send(uint routeId, uint frameId, ReadOnlySpan<byte> payload, FrameFlags flags = FrameFlags.None)
    {
        if (!TryLoan(payload.Length, out var room))
        {
            return false;
        }

        payload.CopyTo(room);
        _tx.Commit(payload.Length, routeId, frameId, flags);
        return true;
    }

    public bool CanWrite(int maxLength) => !_peerGone && _tx.HasRoom(maxLength);

    public bool TryLoan(int maxLength, out Span<byte> payload)
    {
        if (_tx.TryLoan(maxLength, out payload))
        {
            return !_peerGone;
        }

        Counters.OnFull();
        _tx.Signal(); // a reader asleep on an unsignalled batch must wake to make room
        if (Options.Backpressure == BackpressurePolicy.Fail)
        {
            return false;
        }

        // Block: spin, then yield, then sleep on the futex until the reader frees room.
        var spins = 0;
        while (!_peerGone)
        {
            if (_tx.TryLoan(maxLength, out payload))
            {
                return true;
            }

            if (spins < Options.SpinCount)
            {
                spins++;
                Thread.SpinWait(1);
            }
            else if (spins < Options.SpinCount + Options.YieldCount)
            {
                spins++;
                Thread.Yield();
            }
            else
            {
                _tx.WaitForSpace(50_000_000); // bounded so a vanished peer is noticed
            }
        }

        payload = default;
        return false;
    }

    public void Commit(int length, uint routeId, uint frameId, FrameFlags flags = FrameFlags.None) => _tx.Commit(length, routeId, frameId, flags);

    /// <summary>Wakes the reader for the frames committed since the last Flush if it sleeps (a polling reader already sees them).</summary>
    public bool Flush()
    {
        _tx.Signal();
        return !_peerGone;
    }

    public int Poll(FrameHandler handler, int limit = 256) => _rx.Poll(handler, limit);

    public void WaitForData(TimeSpan timeout) => _rx.WaitForData((long)timeout.TotalNanoseconds);

    /// <summary>
    /// Before sleeping on the lanes' shared <see cref="Doorbell"/>: asks each lane's peer to ring it after its next
    /// frame, then runs one barrier for all (see <see cref="ShmFence"/>). True when a frame is already there on any
    /// lane or a peer went (do not sleep). <paramref name="bounded"/> is true when the barrier could not run: then
    /// sleep at most <see cref="ShmFence.UnfencedSleepNs"/>. Every lane is armed either way; disarm each after.
    /// </summary>
    public static bool ArmDoorbells(ReadOnlySpan<ShmLane> lanes, out bool bounded)
    {
        foreach (var lane in lanes)
        {
            lane._rx.MarkDoorbell();
        }

        bounded = !ShmFence.BeforeSleep();
        var ready = false;
        foreach (var lane in lanes)
        {
            ready |= lane._rx.MovedSinceMark();
        }

        return ready;
    }

    public void DisarmDoorbell() => _rx.DisarmDoorbell();

    /// <summary>Forges a raw record (tests of the drop path).</summary>
    internal bool TryWriteRaw(ReadOnlySpan<byte> frameBytes) => _tx.TryWriteRaw(frameBytes);

    private void WatchPeer()
    {
        var buffer = new byte[64];
        try
        {
            while (_control.Receive(buffer) > 0)
            {
                // Nothing else travels on the control socket after the handshake; it is kept open only as a liveness signal.
            }
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            MonitorFault = ex; // never let the watch thread take the process down; the lane closes as if the peer went
        }

        _peerGone = true;
        if (Volatile.Read(ref _disposed) == 0)
        {
            _tx.WakeWaitingWriter();
            _rx.WakeWaitingReader();
            _doorbell?.Ring();
            try
            {
                PeerLost?.Invoke(this);
            }
            catch (Exception ex)
            {
                MonitorFault = ex;
            }
        }
    }

    /// <summary>A fault the peer-watch thread caught (the lane was closed because of it), or null.</summary>
    public Exception? MonitorFault { get; private set; }

    /// <summary>Unmaps the segment. Stop the threads that poll or send on this lane first.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _peerGone = true;
        try
        {
            _control.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }

        _control.Dispose();
        _monitor.Join();
        _segment.Dispose();
        if (_peerDoorbellFd >= 0)
        {
            _ = Interop.Libc.Close(_peerDoorbellFd); // the writer is stopped (callers stop their threads first)
        }
    }
}
