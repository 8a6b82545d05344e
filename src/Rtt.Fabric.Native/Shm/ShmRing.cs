using System.Runtime.CompilerServices;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Interop;
using Rtt.Fabric.Lanes;

namespace Rtt.Fabric.Shm;

/// <summary>
/// Layout of one single-producer single-consumer ring inside a segment. The control block is
/// <see cref="ControlSize"/> bytes; each counter sits on its own 128-byte block (two cache lines, so the
/// adjacent-line prefetcher does not make producer and consumer share one):
/// <code>
///   +0    tail   i64  bytes ever published by the producer (written by the producer only)
///   +128  head   i64  bytes ever consumed (written by the consumer only)
///   +256  dataSeq i32, dataWaiters i32   futex word the consumer sleeps on when the ring is empty
///   +384  spaceSeq i32, spaceWaiters i32 futex word the producer sleeps on when the ring is full
/// </code>
/// The data area is a power of two in bytes. A record is [i32 length][i32 kind][frame], 8-byte aligned;
/// a record never wraps: when it does not fit before the end, a padding record fills the rest.
/// </summary>
internal static class ShmRing
{
    public const int ControlSize = 512;
    public const int TailOffset = 0;
    public const int HeadOffset = 128;
    public const int DataSeqOffset = 256;
    public const int DataWaitersOffset = 260;
    public const int SpaceSeqOffset = 384;
    public const int SpaceWaitersOffset = 388;
    public const int RecordHeader = 8;
    public const int KindFrame = 1;
    public const int KindPadding = 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Align8(int n) => (n + 7) & ~7;

    public static unsafe ShmSignal DataSignal(byte* control, int doorbellFd = -1) => new((int*)(control + DataSeqOffset), (int*)(control + DataWaitersOffset), doorbellFd);

    public static unsafe ShmSignal SpaceSignal(byte* control) => new((int*)(control + SpaceSeqOffset), (int*)(control + SpaceWaitersOffset));

    public static int RecordLength(int payloadLength) => Align8(RecordHeader + FrameHeader.Size + payloadLength);

    /// <summary>The smallest valid ring for a maximum payload: twice the largest record, so a record plus the padding before it always fits.</summary>
    public static bool CapacityFits(int capacity, int maxPayload) =>
        capacity > 0 && (capacity & (capacity - 1)) == 0 && capacity >= 2 * RecordLength(maxPayload);
}

/// <summary>
/// How a ring position is published without a full fence on the hot path. The sleeping side of a ring (see
/// <see cref="ShmSignal"/>) raises its waiting flag and must then be sure that either it sees the other side's
/// newest position or the other side sees its flag (a store-load order on both sides: Dekker). A full fence per
/// publication costs the writer a drain of its store buffer (the frame's cache lines) before the position's
/// store can even start. Instead, every process with SHM lanes registers for membarrier(2)'s global expedited
/// command, publishes positions with plain release stores, and the side going to sleep (the slow path, after
/// its spins and yields) calls membarrier, which runs a full barrier on every CPU running a registered process.
/// Where the kernel lacks membarrier (or forbids it), publications stay fenced; a sleeper whose membarrier call
/// fails bounds its sleep by <see cref="UnfencedSleepNs"/> instead.
/// </summary>
internal static class ShmFence
{
    /// <summary>True when this process publishes ring positions with plain release stores (it registered for global expedited membarrier).</summary>
    public static readonly bool PlainPublish = Register();

    /// <summary>The longest a sleeper waits when it could not run the barrier (a wake-up might be missed; it re-checks after).</summary>
    public const long UnfencedSleepNs = 1_000_000;

    /// <summary>Set by tests to run the fenced publication path in this process.</summary>
    internal static bool ForceFencedPublish { get; set; }

    public static bool Plain => PlainPublish && !ForceFencedPublish;

    private static bool Register()
    {
        var supported = Libc.Membarrier(Libc.MembarrierQuery);
        const long needed = Libc.MembarrierGlobalExpedited | Libc.MembarrierRegisterGlobalExpedited;
        return supported >= 0 && (supported & needed) == needed && Libc.Membarrier(Libc.MembarrierRegisterGlobalExpedited) == 0;
    }

    /// <summary>
    /// Called by a side that raised its waiting flag, before it re-reads the position it waits on: a full barrier
    /// on every CPU running a registered process, so any position they stored is visible now. False when it could
    /// not run (then the caller bounds its sleep).
    /// </summary>
    public static bool BeforeSleep() => Libc.Membarrier(Libc.MembarrierGlobalExpedited) == 0;
}

/// <summary>
/// One side's wake-up word in a ring's control block: a futex sequence and a waiting flag. The same protocol
/// serves both directions (the consumer waiting for data, the producer waiting for space): the side that moves
/// its position stores it and then looks at the other side's flag (<see cref="Publish"/>); the side that sleeps
/// raises its flag with a full fence, runs <see cref="ShmFence.BeforeSleep"/> (which orders the publisher's
/// store before its flag load, see <see cref="ShmFence"/>), and then re-reads the position it waits on
/// (<see cref="Sleep"/>). Either the sleeper sees the new position, or the publisher sees the flag and wakes it.
/// </summary>
internal readonly unsafe struct ShmSignal(int* seq, int* waiters, int doorbellFd = -1)
{
    /// <summary>Stores <paramref name="value"/> in <paramref name="position"/> and wakes the other side if it sleeps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish(long* position, long value)
    {
        if (ShmFence.Plain)
        {
            // A release store: the frame's bytes are visible before the position. The store-load order with the
            // flag below is the sleeper's to enforce (membarrier before it re-reads the position).
            Volatile.Write(ref *position, value);
        }
        else
        {
            Interlocked.Exchange(ref *position, value); // a full fence: the store is ordered before the flag's load
        }

        var waiting = Volatile.Read(ref *waiters);
        if (waiting != 0)
        {
            Wake(waiting);
        }
    }

    /// <summary>Wakes whoever sleeps on this word (slow path: a syscall).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void Wake()
    {
        Interlocked.Increment(ref *seq);
        Libc.FutexWakeShared(seq);
    }

    /// <summary>
    /// The other side sleeps on the futex (1) or on its doorbell (<see cref="LaneDoorbell.WaitingValue"/>: the one
    /// that takes the mark back rings the doorbell, so a burst of frames costs one write, not one per frame).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Wake(int waiting)
    {
        if (waiting == LaneDoorbell.WaitingValue && doorbellFd >= 0)
        {
            if (Interlocked.CompareExchange(ref *waiters, 0, LaneDoorbell.WaitingValue) == LaneDoorbell.WaitingValue)
            {
                LaneDoorbell.Ring(doorbellFd);
            }

            return;
        }

        Wake();
    }

    /// <summary>
    /// Marks this side as sleeping on a doorbell (the other side rings it after its next publish); the caller then
    /// runs <see cref="ShmFence.BeforeSleep"/> once for all its lanes and checks each with <see cref="Moved"/>.
    /// </summary>
    public void MarkDoorbell() => Interlocked.Exchange(ref *waiters, LaneDoorbell.WaitingValue);

    /// <summary>True when <paramref name="position"/> moved from <paramref name="seen"/> or the peer went.</summary>
    public static bool Moved(long* position, long seen, ShmLane lane) => Volatile.Read(ref *position) != seen || lane.PeerGone;

    public void Disarm() => Volatile.Write(ref *waiters, 0);

    /// <summary>Sleeps until <paramref name="position"/> moves from <paramref name="seen"/>, the peer goes, a wake, or the timeout.</summary>
    public void Sleep(long* position, long seen, ShmLane lane, long timeoutNs)
    {
        var current = Volatile.Read(ref *seq);
        Interlocked.Exchange(ref *waiters, 1);
        var fenced = ShmFence.BeforeSleep();
        if (!Moved(position, seen, lane))
        {
            Libc.FutexWaitShared(seq, current, fenced ? timeoutNs : Math.Min(timeoutNs, ShmFence.UnfencedSleepNs));
        }

        Volatile.Write(ref *waiters, 0);
    }
}

/// <summary>The producer side of a ring. One thread.</summary>
internal sealed unsafe class ShmRingWriter
{
    private readonly byte* _data;
    private readonly long* _tail;
    private readonly long* _head;
    private readonly ShmSignal _dataSignal;   // the consumer sleeps on it when the ring is empty; we wake it
    private readonly ShmSignal _spaceSignal;  // we sleep on it when the ring is full; the consumer wakes us
    private readonly int _capacity;
    private readonly int _mask;
    private readonly FrameCodec _codec;
    private readonly LaneCounters _counters;
    private readonly ShmLane _lane;
    private long _tailLocal;   // our own tail: only we write it, so no need to read it back
    private long _headCache;   // last head seen: re-read only when the cache says the ring is full
    private int _loanOffset = -1;
    private int _loanMax;
    private readonly long _showEvery;
    private long _tailShown;     // last tail stored (Signal, or a plain store every _showEvery bytes)
    private long _tailSignalled; // last tail published by Signal (full fence, waiters checked)

    /// <param name="readerDoorbellFd">The reader's doorbell eventfd, when it sleeps on one (-1: it sleeps on the ring's futex).</param>
    public ShmRingWriter(byte* control, byte* data, int capacity, ShmLane lane, int readerDoorbellFd = -1)
    {
        _data = data;
        _tail = (long*)(control + ShmRing.TailOffset);
        _head = (long*)(control + ShmRing.HeadOffset);
        _dataSignal = ShmRing.DataSignal(control, readerDoorbellFd);
        _spaceSignal = ShmRing.SpaceSignal(control);
        _capacity = capacity;
        _mask = capacity - 1;
        _lane = lane;
        _codec = new FrameCodec(lane.Options.MaxPayload);
        _counters = lane.Counters;
        _tailLocal = Volatile.Read(ref *_tail);
        _tailShown = _tailSignalled = _tailLocal;
        _showEvery = capacity / 16;
        _headCache = Volatile.Read(ref *_head);
        WrapPaddings = lane.Options.TrackWraps ? new long[capacity / 8] : null;
    }

    /// <summary>With TrackWraps: how many times a wrap skipped N*8 bytes (index 0: a record ended exactly at the end).</summary>
    public long[]? WrapPaddings { get; }

    /// <summary>Claims room for a payload of <paramref name="maxLength"/>; false when the ring is full right now.</summary>
    public bool TryLoan(int maxLength, out Span<byte> payload)
    {
        payload = default;
        if ((uint)maxLength > (uint)_codec.MaxPayload)
        {
            throw new ArgumentOutOfRangeException(nameof(maxLength), $"at most {_codec.MaxPayload} bytes"); // a caller bug, not a frame fault
        }

        var record = ShmRing.RecordLength(maxLength);
        var index = (int)(_tailLocal & _mask);
        var toEnd = _capacity - index;
        var padding = record > toEnd ? toEnd : 0;
        if (_tailLocal + padding + record - _headCache > _capacity)
        {
            _headCache = Volatile.Read(ref *_head);
            if (_tailLocal + padding + record - _headCache > _capacity)
            {
                return false; // the lane counts a full ring once per episode, not per retry
            }
        }

        if (padding > 0)
        {
            // The padding record is written now but published with the frame after it (one tail store).
            *(int*)(_data + index) = padding;
            *(int*)(_data + index + 4) = ShmRing.KindPadding;
            _tailLocal += padding;
            index = 0;
            if (WrapPaddings is not null)
            {
                WrapPaddings[padding / 8]++;
            }
        }
        else if (record == toEnd && WrapPaddings is not null)
        {
            WrapPaddings[0]++;
        }

        _loanOffset = index;
        _loanMax = maxLength;
        payload = new Span<byte>(_data + index + ShmRing.RecordHeader + FrameHeader.Size, maxLength);
        return true;
    }

    /// <summary>True when a frame of up to <paramref name="maxLength"/> bytes fits now, wherever the ring wraps (never waits).</summary>
    public bool HasRoom(int maxLength)
    {
        var worst = 2L * ShmRing.RecordLength(maxLength); // the record, and at most as much again skipped at the end
        if (_tailLocal + worst - _headCache <= _capacity)
        {
            return true;
        }

        _headCache = Volatile.Read(ref *_head);
        return _tailLocal + worst - _headCache <= _capacity;
    }

    /// <summary>Seals the loaned frame (header, CRC); <see cref="Signal"/> publishes it.</summary>
    public void Commit(int length, uint routeId, uint frameId, FrameFlags flags)
    {
        var index = _loanOffset;
        if (index < 0 || (uint)length > (uint)_loanMax)
        {
            throw new InvalidOperationException("commit without a loan, or longer than the loan");
        }

        _loanOffset = -1;
        var frame = _data + index + ShmRing.RecordHeader;
        _codec.Seal(new Span<byte>(frame, FrameHeader.Size), new ReadOnlySpan<byte>(frame + FrameHeader.Size, length), flags, routeId, frameId);
        var record = ShmRing.RecordLength(length);
        *(int*)(_data + index) = record;
        *(int*)(_data + index + 4) = ShmRing.KindFrame;
        _tailLocal += record;
        _counters.OnSent();

        // No store to the shared tail per frame (no fence, no cache line bounce with a reader that polls it):
        // Signal (the lane's Flush) publishes a batch at once. A writer that commits a lot without flushing still
        // shows its frames to a polling reader every 1/16 of the ring, with a plain release store.
        if (_tailLocal - _tailShown >= _showEvery)
        {
            _tailShown = _tailLocal;
            Volatile.Write(ref *_tail, _tailLocal);
        }
    }

    /// <summary>
    /// Publishes the frames committed since the last call: stores the tail with a full fence and looks at the
    /// reader's waiting flag (either the reader sees the new tail before it sleeps, or we see it waiting and wake
    /// it). The lane's Flush; also called before this writer waits for space.
    /// </summary>
    public void Signal()
    {
        if (_tailSignalled != _tailLocal)
        {
            _tailSignalled = _tailShown = _tailLocal;
            _dataSignal.Publish(_tail, _tailLocal);
        }
    }

    /// <summary>Stores a tail the protocol would never store (tests forge an impossible ring state with it).</summary>
    internal void ForgeTail(long tail) => Volatile.Write(ref *_tail, tail);

    /// <summary>Writes raw bytes as a record with no codec (tests forge bad frames with it).</summary>
    internal bool TryWriteRaw(ReadOnlySpan<byte> frameBytes)
    {
        if (!TryLoan(Math.Max(0, frameBytes.Length - FrameHeader.Size), out _))
        {
            return false;
        }

        var index = _loanOffset;
        _loanOffset = -1;
        var record = ShmRing.Align8(ShmRing.RecordHeader + frameBytes.Length);
        frameBytes.CopyTo(new Span<byte>(_data + index + ShmRing.RecordHeader, frameBytes.Length));
        *(int*)(_data + index) = record;
        *(int*)(_data + index + 4) = ShmRing.KindFrame;
        _tailLocal += record;
        Signal();
        return true;
    }

    /// <summary>Sleeps until the reader frees room, the peer goes, or the timeout passes.</summary>
    public void WaitForSpace(long timeoutNs) => _spaceSignal.Sleep(_head, _headCache, _lane, timeoutNs);

    /// <summary>Wakes this side's writer if it sleeps in <see cref="WaitForSpace"/> (the lane is closing).</summary>
    public void WakeWaitingWriter() => _spaceSignal.Wake();
}

/// <summary>The consumer side of a ring. One thread.</summary>
internal sealed unsafe class ShmRingReader
{
    private readonly byte* _data;
    private readonly long* _tail;
    private readonly long* _head;
    private readonly ShmSignal _dataSignal;   // we sleep on it when the ring is empty; the producer wakes us
    private readonly ShmSignal _spaceSignal;  // the producer sleeps on it when the ring is full; we wake it
    private readonly int _capacity;
    private readonly int _mask;
    private readonly int _releaseEvery;
    private readonly FrameCodec _codec;
    private readonly LaneCounters _counters;
    private readonly ShmLane _lane;
    private long _headLocal;
    private long _tailCache;

    public ShmRingReader(byte* control, byte* data, int capacity, ShmLane lane)
    {
        _data = data;
        _tail = (long*)(control + ShmRing.TailOffset);
        _head = (long*)(control + ShmRing.HeadOffset);
        _dataSignal = ShmRing.DataSignal(control);
        _spaceSignal = ShmRing.SpaceSignal(control);
        _capacity = capacity;
        _mask = capacity - 1;
        _releaseEvery = capacity / 4;
        _lane = lane;
        _codec = new FrameCodec(lane.Options.MaxPayload);
        _counters = lane.Counters;
        _headLocal = Volatile.Read(ref *_head);
        _tailCache = Volatile.Read(ref *_tail);
    }

    public int Poll(FrameHandler handler, int limit)
    {
        if (_headLocal == _tailCache)
        {
            _tailCache = Volatile.Read(ref *_tail); // acquire: the records up to this tail are fully written
            if (_headLocal == _tailCache)
            {
                return 0;
            }
        }

        if (_tailCache < _headLocal || _tailCache - _headLocal > _capacity)
        {
            // A tail behind our head, or more than a ring ahead, cannot happen with a writer that follows the
            // protocol: the peer scribbled on the ring. Nothing it publishes can be trusted; the lane is closed.
            _counters.OnDrop(DropReason.RingCorrupt);
            _lane.Break($"impossible ring state (head {_headLocal}, tail {_tailCache}, capacity {_capacity}): the peer wrote outside the protocol");
            _tailCache = _headLocal;
            return 0;
        }

        var handled = 0;
        var released = _headLocal;
        while (_headLocal < _tailCache && handled < limit)
        {
            var index = (int)(_headLocal & _mask);
            var record = *(int*)(_data + index);
            var kind = *(int*)(_data + index + 4);
            if (record < ShmRing.RecordHeader || (record & 7) != 0 || record > _capacity - index || record > _tailCache - _headLocal)
            {
                // The record framing itself is broken (the producer wrote garbage): nothing after it can be
                // trusted, so drop everything published so far and carry on from the tail.
                _counters.OnDrop(DropReason.Truncated);
                _headLocal = _tailCache;
                break;
            }

            if (kind == ShmRing.KindFrame)
            {
                var frame = new ReadOnlySpan<byte>(_data + index + ShmRing.RecordHeader, record - ShmRing.RecordHeader);
                var reason = _codec.Check(frame, out var header);
                if (reason == DropReason.None)
                {
                    _counters.OnReceived();
                    handler(in header, frame.Slice(FrameHeader.Size, (int)header.Length)); // a span over the ring: no copy
                }
                else
                {
                    _counters.OnDrop(reason);
                }

                handled++;
            }

            _headLocal += record;
            if (_headLocal - released >= _releaseEvery)
            {
                Release();
                released = _headLocal;
            }
        }

        Release();
        return handled;
    }

    /// <summary>Publishes the consumed position (after the handler is done with the bytes) and wakes a waiting writer.</summary>
    private void Release() => _spaceSignal.Publish(_head, _headLocal);

    public bool HasData => _headLocal != Volatile.Read(ref *_tail);

    /// <summary>Sleeps on the futex until the writer publishes, the peer goes, or the timeout passes.</summary>
    public void WaitForData(long timeoutNs) => _dataSignal.Sleep(_tail, _headLocal, _lane, timeoutNs);

    /// <summary>Wakes this side's reader if it sleeps in <see cref="WaitForData"/> (the lane is closing).</summary>
    public void WakeWaitingReader() => _dataSignal.Wake();

    /// <summary>Asks the writer to ring the reader's doorbell after its next publish.</summary>
    public void MarkDoorbell() => _dataSignal.MarkDoorbell();

    public bool MovedSinceMark() => ShmSignal.Moved(_tail, _headLocal, _lane);

    public void DisarmDoorbell() => _dataSignal.Disarm();
}
