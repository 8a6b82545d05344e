using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Rtt.Fabric.Frames;

/// <summary>
/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF), the same value
/// as System.IO.Hashing's <see cref="Crc32"/> with <see cref="Crc32ParameterSet.Crc32C"/>. On x64 it runs three
/// independent <c>crc32</c> instruction streams (the instruction has a latency of 3 cycles but a throughput of 1 per
/// cycle, so one stream leaves two thirds of it idle) and joins them with carry-less multiplies. Allocates nothing.
/// </summary>
/// <remarks>
/// How the streams are joined. Let r be the 32-bit CRC register (the value before the final inversion). Bit i of r
/// stands for the coefficient of x^(31−i), so "r over n more zero bytes" is r·x^(8n) mod P: a linear map of r. And
/// feeding data from r is linear in r and in the data together: crc(r, D) = crc(r, zeros) ⊕ crc(0, D). A block is
/// cut into three lanes A, B, C of w bytes; each lane runs from 0, so no lane waits for another or for the block
/// before it, and afterwards the register r before the block becomes
///   r·x^(8·3w) ⊕ a·x^(8·2w) ⊕ b·x^(8·w) ⊕ c   (mod P).
/// A carry-less multiply of two 32-bit register values u·v read as a 64-bit data word and fed to <c>crc32</c> from 0
/// gives u·v·x^33 mod P, so with k(n) = x^(8n−33) mod P each term t·x^(8n) is crc32(0, clmul(t, k(n))). The three
/// products are xored into lane C's last data word before C consumes it, which folds them in with one <c>crc32</c>.
/// Only that short chain (three multiplies, one <c>crc32</c>) links one block to the next, so the core keeps the
/// <c>crc32</c> unit busy across blocks. The k constants are computed at start-up from the polynomial.
/// </remarks>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78; // x^32 + … with the bit order reversed; x^32 itself is implicit

    // One lane of a full block, in 8-byte words: 3 × 512 bytes per block. The join is off the critical path, so
    // 32, 64 and 128 measured alike on the EPYC (AMD Zen 3); a larger block only needs a longer constant table.
    private const int LaneWords = 64;

    // What is left after the full blocks gets one shorter block when each lane has at least this many words
    // (144 bytes in all): about where the join's fixed cost meets the two thirds of the single stream it saves.
    private const int MinLaneWords = 6;

    // Shift[m] = k(8m) = x^(64m − 33) mod P: moves a register over m 8-byte words. Index 1 .. 3 × LaneWords.
    private static readonly ulong[] Shift = ShiftConstants(3 * LaneWords);

    // Powers x^(8·2^j) mod P for the portable path, which shifts a register over any number of bytes.
    private static readonly uint[] BytePowers = BytePowerTable();

    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Update(0, data);

    /// <summary>
    /// Continues <paramref name="crc"/> (a finished CRC-32C, 0 for nothing yet) with <paramref name="data"/>:
    /// <c>Update(Update(0, a), b) == Compute(a ++ b)</c>.
    /// </summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        // Both tests are JIT-time constants: the branch not taken is not compiled in.
        // An x64 without carry-less multiply (a few early SSE4.2 parts) takes the portable path.
        if (Sse42.X64.IsSupported && Pclmulqdq.IsSupported)
        {
            return ~UpdateX64(~crc, data);
        }

        return UpdatePortable(crc, data);
    }

    /// <summary>The x64 path on a register (not inverted). Internal for tests.</summary>
    internal static uint UpdateX64(uint register, ReadOnlySpan<byte> data)
    {
        ref var start = ref MemoryMarshal.GetReference(data);
        var length = (nuint)data.Length;
        nuint done = 0;
        ulong r = register;
        if (length >= MinLaneWords * 24)
        {
            r = Blocks(r, ref start, length, out var taken); // apart, so short inputs skip its prologue
            done = taken; // a copy: a local whose address was taken would live in memory through the loop below
        }

        for (; length - done >= 8; done += 8)
        {
            r = Sse42.X64.Crc32(r, Read(ref start, done));
        }

        var r32 = (uint)r;
        if (length - done >= 4)
        {
            r32 = Sse42.Crc32(r32, Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, done)));
            done += 4;
        }

        for (; done < length; done++)
        {
            r32 = Sse42.Crc32(r32, Unsafe.Add(ref start, done));
        }

        return r32;
    }

    /// <summary>
    /// Full blocks while they fit, then one shorter block for the rest if its lanes get at least
    /// <see cref="MinLaneWords"/> words; <paramref name="done"/> says how many bytes they took. The rest, under
    /// 3 × <see cref="MinLaneWords"/> words, is for the single stream.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ulong Blocks(ulong r, ref byte start, nuint length, out nuint done)
    {
        const nuint blockBytes = 3 * LaneWords * 8;
        done = 0;
        if (length >= blockBytes)
        {
            var k = Vector128.Create(Shift[3 * LaneWords], Shift[2 * LaneWords]); // hoisted: the loop reads no array
            var kLane = Shift[LaneWords];
            do
            {
                r = Block(r, ref Unsafe.Add(ref start, done), LaneWords * 8, k, kLane);
                done += blockBytes;
            }
            while (length - done >= blockBytes);
        }

        var laneWords = (int)((length - done) / 24);
        if (laneWords >= MinLaneWords)
        {
            var k = Vector128.Create(Shift[3 * laneWords], Shift[2 * laneWords]);
            r = Block(r, ref Unsafe.Add(ref start, done), (nuint)laneWords * 8, k, Shift[laneWords]);
            done += (nuint)laneWords * 24;
        }

        return r;
    }

    /// <summary>
    /// One block of three lanes of <paramref name="lane"/> bytes (a multiple of 8, at least 8) starting at
    /// <paramref name="block"/>, on top of register <paramref name="r"/>. <paramref name="k"/> holds k(3·lane) and
    /// k(2·lane), <paramref name="kLane"/> is k(lane).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Block(ulong r, ref byte block, nuint lane, Vector128<ulong> k, ulong kLane)
    {
        ref var laneB = ref Unsafe.Add(ref block, lane);
        ref var laneC = ref Unsafe.Add(ref block, 2 * lane);
        ulong a = 0, b = 0, c = 0;
        var last = lane - 8;
        for (nuint i = 0; i < last; i += 8)
        {
            a = Sse42.X64.Crc32(a, Read(ref block, i));
            b = Sse42.X64.Crc32(b, Read(ref laneB, i));
            c = Sse42.X64.Crc32(c, Read(ref laneC, i));
        }

        a = Sse42.X64.Crc32(a, Read(ref block, last));
        b = Sse42.X64.Crc32(b, Read(ref laneB, last));
        var ra = Vector128.Create(r, a);
        var carried = Pclmulqdq.CarrylessMultiply(ra, k, 0x00) // r · k(3·lane)
            ^ Pclmulqdq.CarrylessMultiply(ra, k, 0x11) // a · k(2·lane)
            ^ Pclmulqdq.CarrylessMultiply(Vector128.CreateScalar(b), Vector128.CreateScalar(kLane), 0x00); // b · k(lane)
        return Sse42.X64.Crc32(c, Read(ref laneC, last) ^ carried.ToScalar());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Read(ref byte start, nuint offset) => Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, offset));

    /// <summary>
    /// Without the x64 instructions: System.IO.Hashing computes the CRC of the data alone, and the CRC passed in is
    /// carried over the data's length (the inversions cancel: Update(c, D) = Compute(D) ⊕ c·x^(8·|D|) mod P).
    /// Internal for tests.
    /// </summary>
    internal static uint UpdatePortable(uint crc, ReadOnlySpan<byte> data)
    {
        var hash = Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);
        if (crc == 0)
        {
            return hash;
        }

        for (var j = 0; j < 31 && (data.Length >> j) != 0; j++)
        {
            if (((data.Length >> j) & 1) != 0)
            {
                crc = Multiply(crc, BytePowers[j]);
            }
        }

        return hash ^ crc;
    }

    /// <summary>u·v mod P, both in register bit order (bit i is the coefficient of x^(31−i)).</summary>
    private static uint Multiply(uint u, uint v)
    {
        uint product = 0;
        for (var i = 0; i < 32; i++) // Horner over v's coefficients, highest power (bit 0) first
        {
            product = TimesX(product) ^ ((v >> i & 1) != 0 ? u : 0);
        }

        return product;
    }

    /// <summary>u·x mod P: what one zero bit does to the register.</summary>
    private static uint TimesX(uint u) => (u >> 1) ^ ((u & 1) != 0 ? Polynomial : 0);

    private static ulong[] ShiftConstants(int maxWords)
    {
        var shift = new ulong[maxWords + 1];
        var power = 0x80000000u; // x^0
        for (var i = 0; i < 31; i++)
        {
            power = TimesX(power);
        }

        // power = x^31 = x^(64·1 − 33); each further word multiplies by x^64
        for (var m = 1; m <= maxWords; m++)
        {
            shift[m] = power;
            for (var i = 0; i < 64; i++)
            {
                power = TimesX(power);
            }
        }

        return shift;
    }

    private static uint[] BytePowerTable()
    {
        var powers = new uint[31];
        var power = 0x80000000u; // x^0
        for (var i = 0; i < 8; i++)
        {
            power = TimesX(power);
        }

        for (var j = 0; j < powers.Length; j++)
        {
            powers[j] = power; // x^(8·2^j)
            power = Multiply(power, power);
        }

        return powers;
    }
}
