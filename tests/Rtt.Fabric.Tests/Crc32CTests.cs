using System.IO.Hashing;
using Rtt.Fabric.Frames;

namespace Rtt.Fabric.Tests;

public sealed class Crc32CTests
{
    private static readonly byte[] Data = RandomBytes((1 << 20) + 8, seed: 20240611);

    private static uint Reference(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void The_check_value_and_the_empty_input_are_right()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0u, Crc32C.Compute([]));
        Assert.Equal(0xE3069283u, Crc32C.UpdatePortable(0, "123456789"u8));
        Assert.Equal(0u, Crc32C.UpdatePortable(0, []));
        Assert.Equal(0xE3069283u, Crc32C.Update(0xE3069283u, [])); // nothing more: the same value
    }

    [Fact]
    public void Every_length_up_to_4096_at_every_unaligned_start_matches_System_IO_Hashing()
    {
        for (var offset = 1; offset <= 7; offset++)
        {
            for (var length = 0; length <= 4096; length++)
            {
                var data = Data.AsSpan(offset, length);
                var crc = Crc32C.Compute(data);
                if (crc != Reference(data))
                {
                    Assert.Fail($"length {length} at offset {offset}: {crc:X8}, expected {Reference(data):X8}");
                }
            }
        }
    }

    [Fact]
    public void Random_lengths_up_to_1_MiB_match_System_IO_Hashing()
    {
        var random = new Random(7);
        for (var i = 0; i < 300; i++)
        {
            var offset = random.Next(1, 8);
            var length = random.Next(0, (1 << 20) + 1);
            var data = Data.AsSpan(offset, length);
            Assert.True(Crc32C.Compute(data) == Reference(data), $"length {length} at offset {offset}");
        }

        Assert.Equal(Reference(Data.AsSpan(1, 1 << 20)), Crc32C.Compute(Data.AsSpan(1, 1 << 20)));
    }

    [Fact]
    public void Updates_over_random_split_points_equal_one_computation()
    {
        var random = new Random(11);
        for (var i = 0; i < 2000; i++)
        {
            var length = i < 1000 ? random.Next(0, 2048) : random.Next(0, 200_000);
            var offset = random.Next(1, 8);
            var data = Data.AsSpan(offset, length);
            var cuts = Enumerable.Range(0, random.Next(1, 5)).Select(_ => random.Next(0, length + 1)).Order().ToArray();

            uint crc = 0, portable = 0;
            var from = 0;
            foreach (var cut in cuts.Append(length))
            {
                crc = Crc32C.Update(crc, data[from..cut]);
                portable = Crc32C.UpdatePortable(portable, data[from..cut]);
                from = cut;
            }

            var expected = Reference(data);
            Assert.True(crc == expected, $"length {length} cut at {string.Join(",", cuts)}");
            Assert.True(portable == expected, $"portable path: length {length} cut at {string.Join(",", cuts)}");
        }
    }

    [Fact]
    public void A_computation_allocates_nothing()
    {
        var data = Data.AsSpan(3, 65536);
        var sink = Crc32C.Compute(data) ^ Crc32C.Update(1, data[..100]) ^ Crc32C.UpdatePortable(1, data[..100]); // type set up
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            sink ^= Crc32C.Compute(data[..(i * 600)]) ^ Crc32C.Update(sink, data[..i]) ^ Crc32C.UpdatePortable(sink, data[..i]);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
