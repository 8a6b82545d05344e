using Microsoft.Win32.SafeHandles;
using Rtt.Core.Errors;
using Rtt.Fabric.Interop;

namespace Rtt.Fabric.Lanes;

/// <summary>
/// One wake-up shared by many lanes: an eventfd the lane host sleeps on (with <c>poll</c>, next to its stream
/// lanes' sockets) while every SHM client lane it accepted holds a copy of the fd. Before it sleeps the host
/// marks each SHM lane's data-waiters word with <see cref="WaitingValue"/>; a client that publishes a frame and
/// finds that mark clears it and writes the eventfd once, so any lane wakes the host at once and an idle host
/// costs no CPU. Commands to the host and peer deaths ring it too.
/// </summary>
public sealed unsafe class LaneDoorbell : IDisposable
{
    /// <summary>The data-waiters value that means "the reader sleeps on its doorbell" (1 means "on the ring's futex").</summary>
    public const int WaitingValue = 2;

    private readonly SafeFileHandle _handle; // reference counted: a late Ring from another thread never hits a reused fd number

    public LaneDoorbell()
    {
        var fd = Libc.EventFd(0, Libc.EfdCloexec | Libc.EfdNonblock);
        if (fd < 0)
        {
            throw new RttException(ErrorCodes.LaneSetupFailed, $"eventfd failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})", "lane host doorbell", "check the process may create file descriptors (ulimit -n)");
        }

        _handle = new SafeFileHandle(fd, ownsHandle: true);
        Fd = fd;
    }

    /// <summary>The eventfd (valid until disposed).</summary>
    public int Fd { get; }

    /// <summary>Wakes the sleeper (a no-op once disposed).</summary>
    public void Ring()
    {
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            Ring(Fd);
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }
    }

    /// <summary>Adds one to an eventfd (the writer side of a lane holds its own copy of the fd).</summary>
    internal static void Ring(int fd)
    {
        ulong one = 1;
        _ = Libc.Write(fd, &one, sizeof(ulong));
    }

    /// <summary>Resets the counter after a wake (non-blocking).</summary>
    public void Drain()
    {
        ulong value;
        _ = Libc.Read(Fd, &value, sizeof(ulong));
    }

    public void Dispose() => _handle.Dispose();
}
