using System.Runtime.InteropServices;

namespace Rtt.Fabric.Interop;

/// <summary>
/// The few Linux calls .NET does not wrap: memfd segments, futex waits on shared memory, fd passing
/// (SCM_RIGHTS) and CPU affinity. x86_64 and arm64 only (the two futex syscall numbers below).
/// </summary>
internal static unsafe partial class Libc
{
    public const int ProtRead = 0x1;
    public const int ProtWrite = 0x2;
    public const int MapShared = 0x01;
    public const uint MfdCloexec = 0x0001;
    public const int SolSocket = 1;
    public const int ScmRights = 1;
    public const int MsgCmsgCloexec = 0x40000000;
    public const int EAGAIN = 11;
    public const int EINTR = 4;
    public const int ETIMEDOUT = 110;
    public const int EfdNonblock = 0x800;
    public const int EfdCloexec = 0x80000;
    public const short PollIn = 0x1;
    public const short PollOut = 0x4;

    private const int FutexWait = 0;
    private const int FutexWake = 1;

    private static readonly long SysFutex = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 202,
        Architecture.Arm64 => 98,
        _ => -1,
    };

    [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MemfdCreate(string name, uint flags);

    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint addr, nuint length);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall6(long number, int* addr, int op, int val, Timespec* timeout, nint addr2, int val3);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int socket, MsgHdr* message, int flags);

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    public static partial int SchedSetAffinity(int pid, nuint cpuSetSize, ulong* mask);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initialValue, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>Sleeps while <c>*addr == expected</c>, at most <paramref name="timeoutNs"/>; works across processes on a MAP_SHARED word.</summary>
    public static void FutexWaitShared(int* addr, int expected, long timeoutNs)
    {
        var ts = new Timespec { Seconds = timeoutNs / 1_000_000_000, Nanoseconds = timeoutNs % 1_000_000_000 };
        _ = Syscall6(SysFutex, addr, FutexWait, expected, &ts, 0, 0); // EAGAIN (value changed), EINTR, ETIMEDOUT: the caller re-checks
    }

    /// <summary>Wakes every waiter on the shared word.</summary>
    public static void FutexWakeShared(int* addr) => _ = Syscall6(SysFutex, addr, FutexWake, int.MaxValue, null, 0, 0);

    public const int MembarrierQuery = 0;
    public const int MembarrierGlobalExpedited = 1 << 1;
    public const int MembarrierRegisterGlobalExpedited = 1 << 2;

    private static readonly long SysMembarrier = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 324,
        Architecture.Arm64 => 283,
        _ => -1,
    };

    /// <summary>membarrier(2): returns the syscall's result (-1 when the architecture has none we know).</summary>
    public static long Membarrier(int command) => SysMembarrier < 0 ? -1 : SyscallMembarrier(SysMembarrier, command, 0, 0);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallMembarrier(long number, int command, uint flags, int cpuId);

    /// <summary>True while a process with that pid exists (signal 0 checks without sending).</summary>
    public static bool ProcessExists(int pid) => pid > 0 && (Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == 1 /* EPERM: exists */);

    [StructLayout(LayoutKind.Sequential)]
    public struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short ReturnedEvents;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct cmsghdr followed by two ints (fds): CMSG_LEN(8) = CMSG_SPACE(8) = 24 on 64-bit Linux (CMSG_LEN(4) = 20 with one fd).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CmsgFd2
    {
        public nuint Length;
        public int Level;
        public int Type;
        public int Fd0;
        public int Fd1;
    }
}

/// <summary>Signals to other processes (the CLI's benchmarks stop the silos they start as `rtt up` would be stopped).</summary>
public static class ProcessSignals
{
    /// <summary>Sends SIGTERM (a clean stop); false when the process is gone or may not be signalled.</summary>
    public static bool Terminate(int pid) => Libc.Kill(pid, 15) == 0;
}
