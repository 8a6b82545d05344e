using System.Runtime.InteropServices;
using Rtt.Core.Errors;
using Rtt.Fabric.Interop;

namespace Rtt.Fabric.Shm;

/// <summary>
/// A shared memory segment: an anonymous memfd (no name on disk, freed by the kernel when the last fd and
/// mapping go), mapped read-write and shared. The creator passes the fd to the peer over a Unix socket.
/// </summary>
public sealed unsafe class ShmSegment : IDisposable
{
    private int _fd;
    private nint _address;

    private ShmSegment(int fd, nint address, long size)
    {
        _fd = fd;
        _address = address;
        Size = size;
    }

    public long Size { get; }

    public int Fd => _fd;

    public byte* Base => (byte*)_address;

    /// <summary>Creates and maps a zero-filled segment of <paramref name="size"/> bytes.</summary>
    public static ShmSegment Create(string name, long size)
    {
        var fd = Libc.MemfdCreate(name, Libc.MfdCloexec);
        if (fd < 0)
        {
            throw Fail("memfd_create");
        }

        if (Libc.Ftruncate(fd, size) != 0)
        {
            var ex = Fail("ftruncate");
            Libc.Close(fd);
            throw ex;
        }

        return Map(fd, size);
    }

    /// <summary>Maps a segment received from the peer; takes ownership of <paramref name="fd"/>.</summary>
    public static ShmSegment Map(int fd, long size)
    {
        var address = Libc.Mmap(0, (nuint)size, Libc.ProtRead | Libc.ProtWrite, Libc.MapShared, fd, 0);
        if (address == -1)
        {
            var ex = Fail("mmap");
            Libc.Close(fd);
            throw ex;
        }

        return new ShmSegment(fd, address, size);
    }

    /// <summary>Closes the fd but keeps the mapping (after the fd was passed on, the mapping is all we need).</summary>
    public void CloseFd()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.Close(fd);
        }
    }

    public void Dispose()
    {
        CloseFd();
        var address = Interlocked.Exchange(ref _address, 0);
        if (address != 0)
        {
            Libc.Munmap(address, (nuint)Size);
        }
    }

    private static RttException Fail(string call) =>
        new(ErrorCodes.LaneSetupFailed, $"{call} failed (errno {Marshal.GetLastPInvokeError()})", "shm segment",
            "check the memlock and open-file limits (ulimit -l, ulimit -n) and that /proc/sys/vm/max_map_count is not exhausted");
}
