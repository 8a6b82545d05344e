using System.Runtime.InteropServices;

namespace Rtt.Fabric.Telemetry;

/// <summary>One request as the flight recorder saw it (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FlightRecord
{
    /// <summary>When the worker read the request (Stopwatch ticks).</summary>
    public long Start;

    /// <summary>Request read to answer written (or dropped), ns.</summary>
    public long LatencyNs;

    public uint RouteId;

    /// <summary>The client's frame id.</summary>
    public uint FrameId;

    public int RequestBytes;

    public int AnswerBytes;

    /// <summary>The error code's index in <see cref="ErrorCodeTable"/> (0: none or not a known code).</summary>
    public ushort Code;

    public Outcome Outcome;

    private readonly byte _reserved;

    private readonly int _reserved2;
}

/// <summary>
/// The always-on flight recorder of a lane host: a ring of the last <see cref="Capacity"/> requests (route, frame,
/// sizes, latency, outcome, time), written by the lane worker with plain stores and one ordered store of the
/// position per record (no allocation, no lock), read by anyone at any time. Its memory is fixed at creation:
/// <see cref="Capacity"/> x 40 bytes (5 MiB for the default 131,072 records), whatever the traffic.
/// </summary>
public sealed class FlightRecorder
{
    private readonly FlightRecord[] _ring;
    private readonly long _mask;
    private long _next;      // writer only
    private long _published; // records ever written; ordered store after each

    public FlightRecorder(int capacity = DefaultCapacity)
    {
        if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), "a power of two of at least 2");
        }

        _ring = new FlightRecord[capacity];
        _mask = capacity - 1;
    }

    public const int DefaultCapacity = 1 << 17;

    public int Capacity => _ring.Length;

    /// <summary>Records ever written (the oldest <c>Recorded - Capacity</c> are overwritten).</summary>
    public long Recorded => Volatile.Read(ref _published);

    /// <summary>The writer (the lane worker) only.</summary>
    internal void Record(long start, long latencyNs, uint routeId, uint frameId, int requestBytes, int answerBytes, Outcome outcome, int code)
    {
        ref var r = ref _ring[_next & _mask];
        r.Start = start;
        r.LatencyNs = latencyNs;
        r.RouteId = routeId;
        r.FrameId = frameId;
        r.RequestBytes = requestBytes;
        r.AnswerBytes = answerBytes;
        r.Outcome = outcome;
        r.Code = (ushort)code;
        Volatile.Write(ref _published, ++_next);
    }

    /// <summary>
    /// Copies the records numbered [<paramref name="from"/>, now) still in the ring, oldest first, into
    /// <paramref name="into"/>; returns the number of the next record to ask for (to follow the stream). Records the
    /// writer overwrote while they were copied are left out, never returned torn. At most up to record <paramref name="limit"/>.
    /// </summary>
    public long Read(long from, List<FlightRecord> into, long limit = long.MaxValue)
    {
        var end = Math.Min(limit, Volatile.Read(ref _published));
        var start = Math.Max(from, end - _ring.Length);
        var first = into.Count;
        into.EnsureCapacity(first + (int)(end - start)); // one allocation, not a doubling per 2x (a 5 M-record dump copied 400 MB more)
        for (var p = start; p < end; p++)
        {
            into.Add(_ring[p & _mask]);
        }

        Interlocked.MemoryBarrier(); // the copies above complete before the position is read again
        var after = Volatile.Read(ref _published);
        var valid = after - _ring.Length + 1; // the writer may be filling record `after` now, which overwrites `after - capacity`
        if (valid > start)
        {
            var stale = (int)Math.Min(valid - start, end - start);
            into.RemoveRange(first, stale);
        }

        return end;
    }

    /// <summary>The records still in the ring whose request ended at or after <paramref name="sinceTicks"/> (Stopwatch ticks), in the order they ended.</summary>
    public List<FlightRecord> Since(long sinceTicks)
    {
        var array = CopySince(sinceTicks, out var count);
        var all = new List<FlightRecord>(count);
        all.AddRange(array.AsSpan(0, count));
        return all;
    }

    /// <summary>
    /// The records still in the ring whose request ended at or after <paramref name="sinceTicks"/>, in the order they
    /// ended, in the first <paramref name="count"/> entries of the array returned: one uninitialised array and two block
    /// copies out of the ring (a 5 M-record window is 200 MB: zeroing it first, or a list that grows, cost a dump
    /// hundreds of milliseconds), then the records the writer overwrote meanwhile and those that ended earlier are
    /// squeezed out in place.
    /// </summary>
    public FlightRecord[] CopySince(long sinceTicks, out int count)
    {
        var end = Volatile.Read(ref _published);
        var start = Math.Max(0, end - _ring.Length);
        var n = (int)(end - start);
        var copy = GC.AllocateUninitializedArray<FlightRecord>(n);
        var first = (int)(start & _mask);
        var head = Math.Min(n, _ring.Length - first);
        _ring.AsSpan(first, head).CopyTo(copy);
        _ring.AsSpan(0, n - head).CopyTo(copy.AsSpan(head));
        Interlocked.MemoryBarrier(); // the copies above complete before the position is read again
        var after = Volatile.Read(ref _published);
        var valid = after - _ring.Length + 1; // the writer may be filling record `after` now, which overwrites `after - capacity`
        var skip = valid > start ? (int)Math.Min(valid - start, n) : 0;
        count = 0;
        for (var i = skip; i < n; i++)
        {
            if (EndTicks(copy[i]) >= sinceTicks)
            {
                copy[count++] = copy[i];
            }
        }

        return copy;
    }

    /// <summary>
    /// The window of records still in the ring that ended at or after <paramref name="sinceTicks"/>: the numbers of the
    /// first such record and of the next record to be written, and how many of those in between ended in the window.
    /// Reads the ring in place (no copy); the oldest slot is left out (the writer's next record overwrites it).
    /// </summary>
    public (long First, long End, int Count) Locate(long sinceTicks)
    {
        var end = Volatile.Read(ref _published);
        var start = Math.Max(0, end - _ring.Length + 1);
        var first = end;
        var count = 0;
        for (var p = start; p < end; p++)
        {
            if (EndTicks(_ring[p & _mask]) >= sinceTicks)
            {
                first = count == 0 ? p : first;
                count++;
            }
        }

        return (first, end, count);
    }

    /// <summary>
    /// Copies the records numbered [<paramref name="from"/>, from + into.Length) into <paramref name="into"/>; returns
    /// how many at its start the writer had overwritten by the end of the copy (left out: never returned torn).
    /// </summary>
    public int CopyRange(long from, Span<FlightRecord> into)
    {
        var first = (int)(from & _mask);
        var head = Math.Min(into.Length, _ring.Length - first);
        _ring.AsSpan(first, head).CopyTo(into);
        _ring.AsSpan(0, into.Length - head).CopyTo(into[head..]);
        Interlocked.MemoryBarrier(); // the copies above complete before the position is read again
        var valid = Volatile.Read(ref _published) - _ring.Length + 1;
        return valid > from ? (int)Math.Min(valid - from, into.Length) : 0;
    }

    /// <summary>When the request ended (Stopwatch ticks).</summary>
    public static long EndTicks(in FlightRecord r) => r.Start + (long)(r.LatencyNs / LatencyHistogram.NsPerTick);
}
