using System.Runtime.InteropServices;

namespace Rtt.Core.Workspace;

/// <summary>
/// Tells whether anything in a few folders changed since it was last asked, for a reader that keeps what it read from them
/// (the token verifier's trust store): a file written, renamed in or out, deleted, its mode changed, a folder itself moved or
/// deleted. Linux inotify: the kernel queues an event inside the system call that made the change, so once a writer's call
/// has returned, the next <see cref="Changed"/> sees it; asking costs one non-blocking read of the queue instead of a status
/// read of every file (a path walk each: 2 µs apiece on the machines measured). One inotify instance serves the whole
/// process (the per-user limit is 128 instances, and .NET's own file watchers need some); folders watched twice share their
/// watch. Where inotify is not there (another OS, the instance limit reached) <see cref="Open"/> gives null and the caller
/// compares stamps as before.
/// </summary>
public sealed partial class FolderWatch
{
    private static readonly Lock Gate = new();
    private static int _fd = -1;
    private static bool _unavailable;
    private static long _overflows; // IN_Q_OVERFLOW seen: events were lost, every watch counts as changed
    private static readonly Dictionary<int, long> Events = []; // watch descriptor -> events seen for it

    private readonly string[] _folders;
    private readonly int[] _watches;
    private readonly long[] _seen;
    private long _overflowsSeen;

    private FolderWatch(string[] folders)
    {
        _folders = folders;
        _watches = new int[folders.Length];
        _seen = new long[folders.Length];
    }

    /// <summary>
    /// A watch over <paramref name="folders"/>, the first of which must exist; the others may be missing as long as they lie
    /// in the first (their creation is a change of the first, and they are watched from then on). Null where inotify is not
    /// available or the first folder cannot be watched.
    /// </summary>
    public static FolderWatch? Open(params string[] folders)
    {
        ArgumentOutOfRangeException.ThrowIfZero(folders.Length);
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        lock (Gate)
        {
            if (_fd < 0 && !_unavailable)
            {
                _fd = InotifyInit(NonBlock | CloseOnExec);
                _unavailable = _fd < 0;
            }

            if (_unavailable)
            {
                return null;
            }

            var watch = new FolderWatch([.. folders]);
            Drain();
            return watch.Arm() ? watch : null;
        }
    }

    /// <summary>
    /// True when any of the folders saw an event since the last call (the first call answers false: what was read before
    /// <see cref="Open"/> is current), or when events were lost; null when the first folder can no longer be watched (it was
    /// deleted or replaced by something else): the caller must compare stamps. After a true the folders are watched again by
    /// path, so a folder deleted and made again is followed.
    /// </summary>
    public bool? Changed()
    {
        lock (Gate)
        {
            if (_watches[0] < 0)
            {
                return Arm() ? true : null;
            }

            Drain();
            var changed = _overflows != _overflowsSeen;
            for (var i = 0; i < _watches.Length && !changed; i++)
            {
                changed = _watches[i] >= 0 && Seen(_watches[i]) != _seen[i];
            }

            if (!changed)
            {
                return false;
            }

            return Arm() ? true : null;
        }
    }

    /// <summary>Whether every folder is watched now (one that is missing is not, until a change of the first makes it be looked for again).</summary>
    public bool Complete
    {
        get
        {
            lock (Gate)
            {
                return Array.TrueForAll(_watches, w => w >= 0);
            }
        }
    }

    /// <summary>Adds (or finds again) every folder's watch and remembers where each one's events stand. False when the first cannot be watched.</summary>
    private bool Arm()
    {
        _overflowsSeen = _overflows;
        for (var i = 0; i < _folders.Length; i++)
        {
            _watches[i] = InotifyAddWatch(_fd, _folders[i], Mask);
            _seen[i] = _watches[i] >= 0 ? Seen(_watches[i]) : 0;
        }

        return _watches[0] >= 0;
    }

    private static long Seen(int watch) => Events.TryGetValue(watch, out var n) ? n : 0;

    /// <summary>Reads every queued event (under the gate) and counts it against its watch.</summary>
    private static unsafe void Drain()
    {
        const int size = 4096;
        var buffer = stackalloc byte[size];
        while (true)
        {
            var read = Read(_fd, buffer, size);
            if (read <= 0)
            {
                return; // EAGAIN: the queue is empty (an error other than that is treated the same: the next call reads again)
            }

            for (var at = 0; at + 16 <= read;)
            {
                var wd = *(int*)(buffer + at);
                var mask = *(uint*)(buffer + at + 4);
                var length = *(uint*)(buffer + at + 12);
                if ((mask & QueueOverflow) != 0)
                {
                    _overflows++;
                }
                else
                {
                    Events[wd] = Seen(wd) + 1;
                }

                at += 16 + (int)length;
            }
        }
    }

    private const int NonBlock = 0x800; // IN_NONBLOCK
    private const int CloseOnExec = 0x80000; // IN_CLOEXEC
    private const uint QueueOverflow = 0x4000; // IN_Q_OVERFLOW

    // IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF,
    // only on a folder (IN_ONLYDIR). Not reads: reading the files again after a change queues nothing.
    private const uint Mask = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x01000000;

    [LibraryImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    private static partial int InotifyInit(int flags);

    [LibraryImport("libc", EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int InotifyAddWatch(int fd, string path, uint mask);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint Read(int fd, byte* buffer, nint count);
}
