using Rtt.Core.Errors;

namespace Rtt.Core.Json;

/// <summary>
/// Writes a file whole or not at all: a temp file beside it, flushed to disk, then renamed over the target.
/// </summary>
public static class AtomicFile
{
    /// <param name="durable">Flush the file to disk before the rename. Batch writers pass false and call
    /// <see cref="SyncFileSystem"/> once before they publish (one barrier instead of one fsync per file).</param>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, UnixFileMode? mode = null, bool durable = true) =>
        WriteBeside(path, bytes, mode, durable).Commit();

    /// <summary>
    /// A file written whole beside its target but not yet in place: <see cref="Pending.Commit"/> renames it over the target,
    /// <see cref="Pending.Discard"/> deletes it. For a file whose content is ready before it is known whether it will be
    /// published (the reconciler's applied.json, written while the transaction runs).
    /// </summary>
    public sealed class Pending
    {
        private readonly string _path;
        private readonly string _temp;
        private readonly UnixFileMode? _mode;
        private int _done;

        internal Pending(string path, string temp, UnixFileMode? mode) => (_path, _temp, _mode) = (path, temp, mode);

        /// <summary>Renames the written file over the target (once).</summary>
        public void Commit()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                AtomicFile.Commit(_path, _temp, _mode);
            }
        }

        /// <summary>Deletes the written file (once); the target is left as it is.</summary>
        public void Discard()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                TryDelete(_temp);
            }
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to a temp file beside <paramref name="path"/>, as <see cref="WriteAllBytes"/> does before its rename.</summary>
    public static Pending WriteBeside(string path, ReadOnlySpan<byte> bytes, UnixFileMode? mode = null, bool durable = true)
    {
        var (stream, temp) = Begin(path, ref mode);
        try
        {
            using (stream)
            {
                stream.Write(bytes);
                if (mode is { } exact && !OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(stream.SafeFileHandle, exact); // the creation mode is cut by the umask; this is the mode asked for
                }

                stream.Flush(flushToDisk: durable);
            }
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw Failed(path, temp, ex);
        }

        return new Pending(path, temp, null); // the mode is set: the commit is the rename alone
    }

    /// <summary>
    /// The same, with the content written by <paramref name="write"/> into the temp file as it goes, so a large file
    /// (index.json or symbols.json of 100,000 agents) is never held in memory whole.
    /// </summary>
    public static void Write(string path, Action<Stream> write, UnixFileMode? mode = null, bool durable = true)
    {
        var (stream, temp) = Begin(path, ref mode);
        try
        {
            using (stream)
            {
                var buffered = new BufferedStream(stream, 1 << 16); // not disposed: that would close the file before its flush
                write(buffered);
                buffered.Flush();

                stream.Flush(flushToDisk: durable);
            }
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw Failed(path, temp, ex);
        }
        catch
        {
            TryDelete(temp); // the writer's own error (a bad document): nothing half-written stays behind
            throw;
        }

        Commit(path, temp, mode);
    }

    private static (FileStream Stream, string Temp) Begin(string path, ref UnixFileMode? mode)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        // Inside .rtt/ every file is 0600 and every folder RTT makes 0700, whatever the umask (docs/security.md).
        var inWorkspace = Workspace.WorkspaceModes.InsideWorkspaceDir(path);
        mode ??= inWorkspace ? Workspace.WorkspaceModes.File : null;
        try
        {
            if (inWorkspace && !OperatingSystem.IsWindows() && !System.IO.Directory.Exists(directory))
            {
                System.IO.Directory.CreateDirectory(directory, Workspace.WorkspaceModes.Folder);
            }
            else
            {
                System.IO.Directory.CreateDirectory(directory);
            }

            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (mode is { } m && !OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = m; // set at creation, so the secret is never readable by others
            }

            return (new FileStream(temp, options), temp);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw Failed(path, temp, ex);
        }
    }

    private static void Commit(string path, string temp, UnixFileMode? mode)
    {
        try
        {
            if (mode is { } exact && !OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, exact); // the creation mode is cut by the umask; this is the mode asked for
            }

            File.Move(temp, path, overwrite: true);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw Failed(path, temp, ex);
        }
    }

    private static WorkspaceException Failed(string path, string temp, Exception ex)
    {
        TryDelete(temp);
        return ex is UnauthorizedAccessException
            ? new WorkspaceException(ErrorCodes.WorkspaceUnwritable, "cannot write file: permission denied", path,
                "make the folder writable or choose another workspace", ex)
            : new WorkspaceException(ErrorCodes.WorkspaceUnwritable, $"cannot write file: {ex.Message}", path,
                "check free space and permissions", ex);
    }

    /// <summary>
    /// Makes every write to the file system holding <paramref name="directory"/> durable (Linux syncfs), so that
    /// a batch of files written with durable: false is on disk before anything that names them is published.
    /// </summary>
    public static void SyncFileSystem(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        // syncfs takes any descriptor on the file system; .NET will not open a folder, so open a marker file in it.
        using var handle = File.OpenHandle(Path.Combine(directory, ".syncfs"), FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
        if (SyncFs((int)handle.DangerousGetHandle()) != 0)
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceUnwritable, $"syncfs failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})", directory,
                "check the disk: written files could not be made durable");
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static extern int SyncFs(int fd);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
