using System.Buffers.Binary;

namespace Rtt.Views.Mount;

/// <summary>
/// The slice of the Linux FUSE kernel protocol (include/uapi/linux/fuse.h, version 7) a read-only file system needs:
/// opcodes, and the little structs read from and written to <c>/dev/fuse</c>, as offsets into byte spans.
/// </summary>
internal static class FuseProtocol
{
    public const uint Major = 7;
    public const uint Minor = 31; // what this server speaks; the kernel adapts to an older minor than its own

    public const int InHeaderSize = 40; // len u32, opcode u32, unique u64, nodeid u64, uid u32, gid u32, pid u32, extlen u16, pad u16
    public const int OutHeaderSize = 16; // len u32, error s32, unique u64
    public const int AttrSize = 88;
    public const int EntryOutSize = 40 + AttrSize;
    public const int AttrOutSize = 16 + AttrSize;
    public const int OpenOutSize = 16;
    public const int InitOutSize = 64;
    public const int StatfsOutSize = 80;
    public const int DirentHeaderSize = 24;

    public const ulong RootId = 1;

    // Opcodes
    public const uint Lookup = 1;
    public const uint Forget = 2;
    public const uint GetAttr = 3;
    public const uint Open = 14;
    public const uint Read = 15;
    public const uint StatFs = 17;
    public const uint Release = 18;
    public const uint Flush = 25;
    public const uint Init = 26;
    public const uint OpenDir = 27;
    public const uint ReadDir = 28;
    public const uint ReleaseDir = 29;
    public const uint Interrupt = 36;
    public const uint Destroy = 38;
    public const uint BatchForget = 42;

    // Write-side opcodes: refused with EROFS (the mount is read-only, so the kernel should never send them).
    public static bool IsWrite(uint opcode) => opcode is 4 or 6 or 8 or 9 or 10 or 11 or 12 or 13 or 16 or 21 or 24 or 35 or 43 or 45 or 47 or 51;

    // Init flags
    public const uint AsyncRead = 1 << 0;
    public const uint ParallelDirops = 1 << 18;

    // Open reply flags
    public const uint FopenKeepCache = 1 << 1;

    // Notifications (unique 0; the code in the error field)
    public const int NotifyInvalInode = 2;
    public const int NotifyInvalEntry = 3;

    public const uint DtDir = 4;
    public const uint DtReg = 8;

    public static void WriteAttr(Span<byte> s, ulong ino, long size, uint mode, uint nlink, uint uid, uint gid, DateTimeOffset time)
    {
        var seconds = (ulong)Math.Max(0, time.ToUnixTimeSeconds());
        BinaryPrimitives.WriteUInt64LittleEndian(s, ino);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], (ulong)size);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], (ulong)((size + 511) / 512));
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], seconds); // atime
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], seconds); // mtime
        BinaryPrimitives.WriteUInt64LittleEndian(s[40..], seconds); // ctime
        s.Slice(48, 12).Clear(); // nanoseconds: the record time has whole seconds
        BinaryPrimitives.WriteUInt32LittleEndian(s[60..], mode);
        BinaryPrimitives.WriteUInt32LittleEndian(s[64..], nlink);
        BinaryPrimitives.WriteUInt32LittleEndian(s[68..], uid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[72..], gid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[76..], 0); // rdev
        BinaryPrimitives.WriteUInt32LittleEndian(s[80..], 4096); // blksize
        BinaryPrimitives.WriteUInt32LittleEndian(s[84..], 0);
    }

    public static void WriteOutHeader(Span<byte> s, int length, int error, ulong unique)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)length);
        BinaryPrimitives.WriteInt32LittleEndian(s[4..], error);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], unique);
    }
}
