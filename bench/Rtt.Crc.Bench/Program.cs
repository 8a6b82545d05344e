using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Rtt.Fabric.Frames;

// CRC-32C of the lane frame codec: System.IO.Hashing (one crc32 instruction stream on x64) against Crc32C (three
// interleaved streams). The sizes are a header-only frame, small frames and the 4 KiB and 64 KiB lane payloads.
// Short jobs: the machine has two cores and other work on them.
//   dotnet run -c Release --project bench/Rtt.Crc.Bench -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(CrcBench).Assembly).Run(args);

[ShortRunJob]
[MemoryDiagnoser]
public class CrcBench
{
    private byte[] _data = [];

    [Params(24, 64, 88, 4096, 65536)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(42).NextBytes(_data);
    }

    [Benchmark(Baseline = true)]
    public uint SystemIoHashing() => System.IO.Hashing.Crc32.HashToUInt32(System.IO.Hashing.Crc32ParameterSet.Crc32C, _data);

    [Benchmark]
    public uint Crc32CCompute() => Crc32C.Compute(_data);
}
