using System.Buffers.Binary;
using Rtt.Silo.Endpoints;

namespace Rtt.Silo.Tests;

/// <summary>
/// The driver sandbox's seccomp program (classic BPF made in C#), run through a small interpreter of the instructions it
/// uses, so its logic is checked on any kernel (this machine's kernel cannot load seccomp filters at all).
/// </summary>
public sealed class SeccompFilterTests
{
    private const uint X64 = 0xC000003E;
    private const uint Allow = 0x7FFF0000;
    private const uint Eperm = 0x00050001;
    private const uint Kill = 0x80000000;

    [Theory]
    [InlineData(101u, Eperm)]       // ptrace
    [InlineData(165u, Eperm)]       // mount
    [InlineData(175u, Eperm)]       // init_module
    [InlineData(313u, Eperm)]       // finit_module
    [InlineData(321u, Eperm)]       // bpf
    [InlineData(272u, Eperm)]       // unshare
    [InlineData(0u, Allow)]         // read
    [InlineData(1u, Allow)]         // write
    [InlineData(202u, Allow)]       // futex
    [InlineData(9u, Allow)]         // mmap
    [InlineData(42u, Allow)]        // connect (the network namespace stops it, not the filter)
    [InlineData(0x40000001u, Kill)] // the x32 ABI
    public void Each_call_gets_its_action(uint nr, uint expected) => Assert.Equal(expected, Run(nr, X64, 0, 0));

    [Theory]
    [InlineData(17u, 3u, Eperm)]   // AF_PACKET
    [InlineData(2u, 3u, Eperm)]    // AF_INET, SOCK_RAW
    [InlineData(2u, 3u | 0x80000u, Eperm)] // SOCK_RAW | SOCK_CLOEXEC
    [InlineData(2u, 1u, Allow)]    // AF_INET, SOCK_STREAM
    [InlineData(1u, 1u | 0x800u, Allow)] // AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK
    public void Raw_and_packet_sockets_are_refused_and_others_allowed(uint domain, uint type, uint expected) => Assert.Equal(expected, Run(41, X64, domain, type));

    [Fact]
    public void Another_architecture_is_killed() => Assert.Equal(Kill, Run(0, 0x40000003 /* i386 */, 0, 0));

    [Fact]
    public void Every_denied_call_is_refused()
    {
        foreach (var (name, (x64, _)) in Sandbox.Denied)
        {
            Assert.True(Run(x64, X64, 0, 0) == Eperm, name);
        }
    }

    /// <summary>Runs the program on seccomp_data { nr, arch, ip, args[6] }: LD W ABS, JEQ/JGE/JSET K, AND K, RET K.</summary>
    private static uint Run(uint nr, uint arch, uint arg0, uint arg1)
    {
        var data = new byte[64];
        BinaryPrimitives.WriteUInt32LittleEndian(data, nr);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(4), arch);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(16), arg0);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(24), arg1);
        var program = Sandbox.Filter();
        Assert.Equal(0, program.Length % 8);
        uint a = 0;
        for (var pc = 0; pc < program.Length / 8;)
        {
            var ins = program.AsSpan(pc * 8, 8);
            var code = BinaryPrimitives.ReadUInt16LittleEndian(ins);
            var (jt, jf, k) = (ins[2], ins[3], BinaryPrimitives.ReadUInt32LittleEndian(ins[4..]));
            switch (code)
            {
                case 0x20: a = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan((int)k)); pc++; break;
                case 0x54: a &= k; pc++; break;
                case 0x15: pc += 1 + (a == k ? jt : jf); break;
                case 0x35: pc += 1 + (a >= k ? jt : jf); break;
                case 0x45: pc += 1 + ((a & k) != 0 ? jt : jf); break;
                case 0x06: return k;
                default: throw new InvalidOperationException($"unexpected instruction {code:x} at {pc}");
            }
        }

        throw new InvalidOperationException("the program ran off its end");
    }
}
