using System.Globalization;
using System.Runtime.InteropServices;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Registry;
using Rtt.Views;

namespace Rtt.Views.Mount;

/// <summary>What to mount: one provider's current view set at the root, or every provider's (one folder each).</summary>
/// <param name="Provider">The provider shown at the root; null with <paramref name="All"/>.</param>
/// <param name="Poll">How often the registry index is checked for a newly recorded view set.</param>
/// <param name="WatchSources">Also watch the bases and overlays: on a change, record the views again (as
/// <c>rtt view build --record-only</c> does) so the mount switches to them.</param>
public sealed record ViewMountOptions(string MountPoint, string? Provider, bool All, string? Env, TimeSpan Poll, bool WatchSources = false);

/// <summary>
/// <c>rtt view mount</c>: checks the mount point, opens <c>/dev/fuse</c>, mounts a read-only <c>fuse.rtt</c> file system
/// there and serves the current view sets from the registry with <see cref="FuseServer"/>. A watcher switches to a newly
/// recorded set (any <c>rtt view build</c>, <c>--record-only</c> included) atomically. The server ends when the folder is
/// unmounted (<see cref="Unmount(string, bool)"/>, <c>rtt view unmount</c>, <c>umount</c>) or the process exits.
/// </summary>
public sealed class ViewMount : IDisposable
{
    public const string FsType = "fuse.rtt";
    public const string DevFuse = "/dev/fuse";

    private readonly RttWorkspace _workspace;
    private readonly ViewMountOptions _options;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private RegistryStore _store;
    private RegistryStore? _previous;
    private FuseServer? _server;
    private Thread? _watcher;
    private int _fd = -1;
    private (DateTime, long) _stamp;

    private ViewMount(RttWorkspace workspace, ViewMountOptions options, Action<string> log, RegistryStore store)
    {
        _workspace = workspace;
        _options = options;
        _log = log;
        _store = store;
    }

    public string MountPoint { get; private set; } = "";

    public ViewMountTree Tree => _server!.Tree;

    /// <summary>Completes when the file system is unmounted.</summary>
    public Task Stopped => _server!.Stopped;

    /// <summary>Set switches done since the start.</summary>
    public int Switches { get; private set; }

    public long Faults => _server?.Faults ?? 0;

    /// <summary>Mounts and starts serving. Every refusal is an <see cref="RttException"/> with a remedy.</summary>
    public static ViewMount Start(RttWorkspace workspace, ViewMountOptions options, Action<string> log)
    {
        var mountPoint = CheckMountPoint(options.MountPoint);
        var mount = new ViewMount(workspace, options, log, RegistryStore.Open(workspace)) { MountPoint = mountPoint };
        try
        {
            if (options.WatchSources)
            {
                mount._sources = mount.SourceStamp();
                mount.Record(); // the mount starts with what the sources say now
                mount._store.Dispose();
                mount._store = RegistryStore.Open(workspace);
            }

            mount._stamp = mount.IndexStamp();
            var tree = mount.Load(mount._store) ?? throw NoSet(options);
            if (Native.Geteuid() != 0 || Environment.GetEnvironmentVariable("RTT_VIEW_MOUNT_HELPER") == "fusermount3")
            {
                mount._fd = MountWithHelper(mountPoint); // a normal user: fusermount3 (setuid) mounts and hands over the descriptor
            }
            else
            {
                mount._fd = OpenFuse();
                DoMount(mount._fd, mountPoint);
            }

            mount._server = new FuseServer(mount._fd, tree, mount.ReadObject, log);
            mount._server.Start();
            mount._watcher = new Thread(mount.Watch) { IsBackground = true, Name = "rtt-view-watch" };
            mount._watcher.Start();
            return mount;
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    private byte[] ReadObject(string hash) => Volatile.Read(ref _store).ReadBytes(hash);

    /// <summary>The tree of the current sets, or null when none is recorded.</summary>
    private ViewMountTree? Load(RegistryStore store)
    {
        _ = store.Pack; // opened now, once: readers on several threads then share it
        var sets = new List<(string, ViewSet)>();
        if (_options.All)
        {
            foreach (var provider in ViewSets.Providers(store, _options.Env))
            {
                if (ViewSets.Latest(store, provider, _options.Env) is { } set)
                {
                    sets.Add((provider, set));
                }
            }
        }
        else if (ViewSets.Latest(store, _options.Provider!, _options.Env) is { } set)
        {
            sets.Add(("", set));
        }

        return sets.Count == 0 ? null : ViewMountTree.Build(sets);
    }

    /// <summary>Records the views of the mounted provider(s) from the sources, as <c>rtt view build --record-only</c>.</summary>
    private void Record()
    {
        var result = new ViewBuilder(_workspace).Build(_options.All ? null : _options.Provider, _options.Env, recordOnly: true);
        foreach (var set in result.Sets ?? [])
        {
            _log($"recorded {set.Key} from the sources ({set.Files.Count} file(s))");
        }
    }

    /// <summary>Names, sizes and times of every base and overlay file: a change means the sources were edited.</summary>
    private string SourceStamp()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var (folder, depth) in new[] { (ViewSources.BaseFolder, 0), (ViewSources.ProviderOverlayFolder, 1), (ViewSources.EnvOverlayFolder, 1) })
        {
            var dir = Path.Combine(_workspace.Root, folder);
            if (!Directory.Exists(dir))
            {
                continue;
            }

            var options = new EnumerationOptions { RecurseSubdirectories = depth > 0, MaxRecursionDepth = depth, AttributesToSkip = 0 };
            foreach (var file in Directory.EnumerateFileSystemEntries(dir, "*", options).Order(StringComparer.Ordinal))
            {
                var info = new FileInfo(file);
                sb.Append(file).Append('|').Append(info.Exists ? info.Length : -1).Append('|').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
            }
        }

        return sb.ToString();
    }

    private string? _sources;

    private (DateTime, long) IndexStamp()
    {
        var info = new FileInfo(_workspace.IndexPath);
        return info.Exists ? (info.LastWriteTimeUtc, info.Length) : (DateTime.MinValue, -1);
    }

    private void Watch()
    {
        while (!_stop.Token.WaitHandle.WaitOne(_options.Poll))
        {
            try
            {
                if (_options.WatchSources && SourceStamp() is var sources && sources != _sources)
                {
                    _sources = sources;
                    try
                    {
                        Record();
                    }
                    catch (RttException ex)
                    {
                        _log($"kept the current views: the sources do not build: {ex.Headline}"); // e.g. a file saved half-way; the next save retries
                    }
                }

                var stamp = IndexStamp();
                if (stamp == _stamp)
                {
                    continue;
                }

                _stamp = stamp;
                var store = RegistryStore.Open(_workspace);
                var tree = Load(store);
                var current = _server!.Tree;
                if (tree is null || tree.Sets.Select(s => s.Hash).SequenceEqual(current.Sets.Select(s => s.Hash)))
                {
                    store.Dispose();
                    continue;
                }

                _previous?.Dispose(); // two generations back: no reader uses it any more
                _previous = Interlocked.Exchange(ref _store, store);
                _server.Switch(tree);
                Switches++;
                _log($"switched to {string.Join(", ", tree.Sets.Select(s => $"{s.Key} (recorded {s.RecordedAt:yyyy-MM-ddTHH:mm:ssZ})"))}");
            }
            catch (RttException ex)
            {
                _log($"kept the current views: the registry cannot be read now: {ex.Headline}");
            }
            catch (IOException ex)
            {
                _log($"kept the current views: {ex.Message}");
            }
        }
    }

    /// <summary>A folder that exists, is empty and is not a mount already; the full path.</summary>
    public static string CheckMountPoint(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        if (full.Length == 0)
        {
            full = "/";
        }

        if (File.Exists(full))
        {
            throw new RttException(ErrorCodes.ViewMountPoint, "the mount point is a file, not a folder", full, "give an empty folder (mkdir it)");
        }

        if (!Directory.Exists(full))
        {
            throw new RttException(ErrorCodes.ViewMountPoint, "the mount point does not exist", full, $"create it first: mkdir -p {full}");
        }

        if (IsMounted(full))
        {
            throw new RttException(ErrorCodes.ViewMountPoint, "something is already mounted there", full, $"unmount it first (rtt view unmount {full}), or pick another folder");
        }

        if (Directory.EnumerateFileSystemEntries(full).Any())
        {
            throw new RttException(ErrorCodes.ViewMountPoint, "the mount point is not empty (a mount would hide its files)", full,
                "give an empty folder; to write the files into a folder instead, use `rtt view build`");
        }

        return full;
    }

    private static int OpenFuse()
    {
        if (!File.Exists(DevFuse))
        {
            throw new RttException(ErrorCodes.ViewFuseUnavailable, "FUSE is not available: there is no /dev/fuse", DevFuse,
                "load the module (modprobe fuse), or in a container pass the device (docker run --device /dev/fuse --cap-add SYS_ADMIN); meanwhile `rtt view build` writes the same files");
        }

        var fd = Native.Open(DevFuse, Native.ORdwr | Native.OCloexec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new RttException(ErrorCodes.ViewFuseUnavailable, $"cannot open /dev/fuse: {Native.Describe(errno)}", DevFuse,
                errno is Native.EACCES or Native.EPERM
                    ? "give this user access (Debian: install fuse3, which makes /dev/fuse mode 0666), or run as root; meanwhile `rtt view build` writes the same files"
                    : "check that the fuse module is loaded (modprobe fuse); meanwhile `rtt view build` writes the same files");
        }

        return fd;
    }

    /// <summary>mount(2) a read-only fuse.rtt file system on the open connection. Needs CAP_SYS_ADMIN (root).</summary>
    private static void DoMount(int fd, string mountPoint)
    {
        var uid = Native.Geteuid();
        var data = string.Create(CultureInfo.InvariantCulture,
            $"fd={fd},rootmode=40000,user_id={uid},group_id={Native.Getegid()},default_permissions{(uid == 0 ? ",allow_other" : "")}");
        if (Native.Mount("rtt", mountPoint, FsType, Native.MsRdonly | Native.MsNosuid | Native.MsNodev, data) == 0)
        {
            return;
        }

        var errno = Marshal.GetLastPInvokeError();
        throw new RttException(ErrorCodes.ViewFuseUnavailable, $"the kernel refused the mount: {Native.Describe(errno)}", mountPoint,
            errno == Native.EPERM
                ? "mounting needs root (CAP_SYS_ADMIN) here: run rtt view mount as root, or use `rtt view build` to write the files instead"
                : "check dmesg for the reason; `rtt view build` writes the same files instead");
    }

    /// <summary>
    /// Mounts through <c>fusermount3</c> (package fuse3, setuid root): it opens /dev/fuse, mounts, and passes the open
    /// descriptor back over a Unix socket named by <c>_FUSE_COMMFD</c> (SCM_RIGHTS). Returns the descriptor.
    /// </summary>
    private static unsafe int MountWithHelper(string mountPoint)
    {
        const string Helper = "fusermount3";
        if (!File.Exists(DevFuse))
        {
            OpenFuse(); // throws the clear error
        }

        var pair = stackalloc int[2];
        if (Native.SocketPair(Native.AfUnix, Native.SockStream, 0, pair) != 0)
        {
            throw new RttException(ErrorCodes.ViewFuseUnavailable, $"socketpair failed: {Native.Describe(Marshal.GetLastPInvokeError())}", mountPoint, "retry");
        }

        try
        {
            var info = new System.Diagnostics.ProcessStartInfo(Helper) { RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in new[] { "-o", "ro,nosuid,nodev,default_permissions,subtype=rtt,fsname=rtt", "--", mountPoint })
            {
                info.ArgumentList.Add(arg);
            }

            info.Environment["_FUSE_COMMFD"] = pair[1].ToString(CultureInfo.InvariantCulture); // inherited: no close-on-exec
            System.Diagnostics.Process process;
            try
            {
                process = System.Diagnostics.Process.Start(info)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                throw new RttException(ErrorCodes.ViewFuseUnavailable, "mounting as a normal user needs fusermount3, which is not installed", mountPoint,
                    "install it (Debian/Ubuntu: apt-get install fuse3), or run as root; meanwhile `rtt view build` writes the same files");
            }

            using (process)
            {
                Native.Close(pair[1]);
                pair[1] = -1;
                var fd = ReceiveFd(pair[0]);
                var stderr = process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (fd < 0 || process.ExitCode != 0)
                {
                    if (fd >= 0)
                    {
                        Native.Close(fd);
                    }

                    throw new RttException(ErrorCodes.ViewFuseUnavailable, $"fusermount3 could not mount: {stderr.Trim()}", mountPoint,
                        "check that /dev/fuse is usable by this user (fuse3 installed) and the folder is yours; or run as root; meanwhile `rtt view build` writes the same files");
                }

                return fd;
            }
        }
        finally
        {
            Native.Close(pair[0]);
            if (pair[1] >= 0)
            {
                Native.Close(pair[1]);
            }
        }
    }

    private static unsafe int ReceiveFd(int socket)
    {
        byte data = 0;
        var iov = new Native.IoVec { Base = &data, Length = 1 };
        var control = stackalloc byte[64];
        var message = new Native.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = 64 };
        nint n;
        do
        {
            n = Native.RecvMsg(socket, &message, 0);
        }
        while (n < 0 && Marshal.GetLastPInvokeError() == Native.EINTR);

        // struct cmsghdr { size_t len; int level; int type; } then the descriptor
        if (n <= 0 || message.ControlLength < 20 || *(int*)(control + 8) != Native.SolSocket || *(int*)(control + 12) != Native.ScmRights)
        {
            return -1;
        }

        return *(int*)(control + 16);
    }

    /// <summary>True when <paramref name="path"/> is a mount point (any file system), from /proc/self/mountinfo.</summary>
    public static bool IsMounted(string path) => MountType(path) is not null;

    /// <summary>The file system type mounted at <paramref name="path"/> (the last mount there), or null.</summary>
    public static string? MountType(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        string? type = null;
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mount-point options [optional…] - type source super-options
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (fields.Length > 4 && dash > 0 && dash + 1 < fields.Length && Unescape(fields[4]) == full)
            {
                type = fields[dash + 1];
            }
        }

        return type;
    }

    private static string Unescape(string field) =>
        System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());

    /// <summary>
    /// Unmounts an rtt view mount (its server, if still running, then exits). Busy (a reader has a file open or its working
    /// folder inside): refused unless <paramref name="lazy"/>, which detaches the mount now and frees it when the last reader
    /// leaves. A mount whose server died (kill -9) is unmounted the same way.
    /// </summary>
    public static void Unmount(string path, bool lazy)
    {
        var full = Path.GetFullPath(path).TrimEnd('/');
        var type = MountType(full);
        if (type != FsType)
        {
            throw new RttException(ErrorCodes.ViewUnmount, type is null ? "not a mount point" : $"not an rtt view mount (it is {type})", full,
                "give the folder `rtt view mount` was started on (mount -t fuse.rtt lists them)");
        }

        if (Native.Umount2(full, lazy ? Native.MntDetach : 0) == 0)
        {
            return;
        }

        var errno = Marshal.GetLastPInvokeError();
        if (errno == Native.EPERM && File.Exists("/usr/bin/fusermount3"))
        {
            var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("fusermount3", lazy ? ["-u", "-z", full] : ["-u", full]) { RedirectStandardError = true })!;
            var err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode == 0)
            {
                return;
            }

            throw new RttException(ErrorCodes.ViewUnmount, $"fusermount3 -u failed: {err.Trim()}", full, "run it as the user who mounted, or as root");
        }

        throw new RttException(ErrorCodes.ViewUnmount, $"cannot unmount: {Native.Describe(errno)}", full,
            errno == Native.EBUSY
                ? "a process has a file open or its working folder inside (fuser -vm shows which); close it, or use --lazy to detach now and free it when the last one leaves"
                : "run as root (or the user who mounted it)");
    }

    private static RttException NoSet(ViewMountOptions options) =>
        new(ErrorCodes.ViewSetMissing,
            options.All ? $"no view set is recorded for environment {options.Env ?? "(none)"}" : $"no view set is recorded for {options.Provider} (environment {options.Env ?? "none"})",
            options.All ? null : ViewSets.Id(options.Provider!, options.Env),
            $"record one with `rtt view build{(options.All ? "" : $" --provider {options.Provider}")}{(options.Env is null ? "" : $" --env {options.Env}")}` (add --record-only to write no files)");

    /// <summary>Stops watching and closes the connection (the kernel then fails every access with ENOTCONN until the folder
    /// is unmounted); call <see cref="Unmount(string, bool)"/> first for a clean stop.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _watcher?.Join(TimeSpan.FromSeconds(5));
        if (_fd >= 0)
        {
            Native.Close(_fd);
            _fd = -1;
        }

        _server?.Dispose();
        _store.Dispose();
        _previous?.Dispose();
    }
}
