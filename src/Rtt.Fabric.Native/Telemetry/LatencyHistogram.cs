using System.Diagnostics;
using System.Numerics;

namespace Rtt.Fabric.Telemetry;

/// <summary>
/// A log-linear latency histogram in nanoseconds with one writer (the lane worker) and any number of readers.
/// Values below 32 ns get a bucket each; above, every power of two is split into 32 buckets, so a bucket is at most
/// 1/32 (about 3 %) of its value wide, up to 2^42 ns (about 73 minutes; longer values land in the last bucket).
/// Counts only grow (never reset): a reader takes a copy (<see cref="CopyTo"/>) and an interval is the difference of
/// two copies. Recording is a bit scan, a shift and three plain increments: no allocation, no lock, no interlocked
/// instruction (HdrHistogram's Recorder pays two interlocked operations per value for its writer/reader phaser; with a
/// single writer and readers content with a copy that may be a few values behind, none is needed).
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBits = 5;
    private const int Sub = 1 << SubBits;
    private const int MaxExponent = 42;

    /// <summary>Buckets in every histogram (1,248: 9.75 KiB of counts).</summary>
    public const int BucketCount = (MaxExponent - SubBits + 2) * Sub;

    private readonly long[] _counts = new long[BucketCount];
    private long _count;
    private long _sum;
    private long _max;

    /// <summary>Stopwatch ticks to nanoseconds (1 on Linux, where Stopwatch counts nanoseconds).</summary>
    public static readonly double NsPerTick = 1e9 / Stopwatch.Frequency;

    private static readonly bool TicksAreNs = Stopwatch.Frequency == 1_000_000_000;

    public static long TicksToNs(long ticks) => TicksAreNs ? ticks : (long)(ticks * NsPerTick);

    /// <summary>Values recorded.</summary>
    public long Count => Volatile.Read(ref _count);

    /// <summary>Sum of the values recorded (ns).</summary>
    public long Sum => Volatile.Read(ref _sum);

    /// <summary>Largest value recorded (ns).</summary>
    public long Max => Volatile.Read(ref _max);

    /// <summary>Records one value (the writer thread only).</summary>
    public void Record(long ns)
    {
        if (ns < 0)
        {
            ns = 0;
        }

        _counts[IndexOf(ns)]++;
        _count++;
        _sum += ns;
        if (ns > _max)
        {
            _max = ns;
        }
    }

    public static int IndexOf(long value)
    {
        if (value < Sub)
        {
            return (int)value;
        }

        var exponent = 63 - BitOperations.LeadingZeroCount((ulong)value);
        if (exponent > MaxExponent)
        {
            return BucketCount - 1;
        }

        return ((exponent - SubBits + 1) << SubBits) + (int)((value >> (exponent - SubBits)) & (Sub - 1));
    }

    /// <summary>The smallest value bucket <paramref name="index"/> holds.</summary>
    public static long LowerBound(int index)
    {
        if (index < Sub)
        {
            return index;
        }

        var exponent = (index >> SubBits) + SubBits - 1;
        return (long)(Sub + (index & (Sub - 1))) << (exponent - SubBits);
    }

    /// <summary>The largest value bucket <paramref name="index"/> holds.</summary>
    public static long UpperBound(int index) => index >= BucketCount - 1 ? long.MaxValue : LowerBound(index + 1) - 1;

    /// <summary>Copies the counts (a reader; plain 64-bit loads, each count whole, the set a moment's view).</summary>
    public void CopyTo(long[] counts) => _counts.CopyTo(counts, 0);

    /// <summary>
    /// The value at <paramref name="quantile"/> (0..1) of <paramref name="counts"/>: the upper bound of the bucket
    /// holding it (never beyond <paramref name="max"/> when given), 0 when empty.
    /// </summary>
    public static long ValueAt(ReadOnlySpan<long> counts, double quantile, long max = long.MaxValue)
    {
        long total = 0;
        foreach (var c in counts)
        {
            total += c;
        }

        if (total == 0)
        {
            return 0;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(quantile * total));
        long seen = 0;
        for (var i = 0; i < counts.Length; i++)
        {
            seen += counts[i];
            if (seen >= rank)
            {
                return Math.Min(UpperBound(i), max);
            }
        }

        return Math.Min(UpperBound(counts.Length - 1), max);
    }
}
