using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Rtt.Core.Errors;

namespace Rtt.Core.Json;

/// <summary>
/// The one way RTT reads a workspace file: only a regular file (a FIFO, device or folder is refused instead of
/// blocking or reading forever), never more than a documented size limit, and every failure an RTT error that
/// names the file (never a .NET exception). docs/errors.md lists the limits.
/// </summary>
public static partial class WorkspaceFiles
{
    /// <summary>Documents, agents, manifests, plans, registry objects and indexes: 16 MiB.</summary>
    public const long DocumentLimit = 16L << 20;

    /// <summary>Keys, trust files, anchors and other small state files: 1 MiB.</summary>
    public const long SmallLimit = 1L << 20;

    /// <summary>Reads a whole regular file of at most <paramref name="limit"/> bytes.</summary>
    public static byte[] ReadBytes(string path, long limit = DocumentLimit)
    {
        SafeFileHandle handle;
        try
        {
            handle = OpenRegular(path);
        }
        catch (FileNotFoundException)
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "file is missing", path, "restore it, or run the command that writes it");
        }
        catch (DirectoryNotFoundException)
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "file is missing (its folder is gone)", path, "restore it, or run the command that writes it");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, ex.Message);
        }

        using (handle)
        {
            long length;
            try
            {
                length = RandomAccess.GetLength(handle);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
            {
                throw Unreadable(path, ex.Message);
            }

            if (length > limit)
            {
                throw TooLarge(path, length, limit);
            }

            var bytes = new byte[length];
            var read = 0;
            try
            {
                while (read < bytes.Length)
                {
                    var n = RandomAccess.Read(handle, bytes.AsSpan(read), read);
                    if (n == 0)
                    {
                        break; // shrank while read: what is there
                    }

                    read += n;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unreadable(path, ex.Message);
            }

            return read == bytes.Length ? bytes : bytes[..read];
        }
    }

    /// <summary>
    /// True when anything is at <paramref name="path"/>: a file, a folder, a FIFO. A reader that takes an absent optional
    /// file as empty asks this (not <see cref="File.Exists"/>, which is false for a folder), so that a folder in the file's
    /// place is refused when read (RTT-WS-006) instead of silently read as "no file" (no revocations, no symbols).
    /// </summary>
    public static bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    /// <summary>
    /// The entries of <paramref name="directory"/> whose names match <paramref name="pattern"/>, folders included, in
    /// ordinal order: a folder named like a file of the kind (<c>x.pub</c>, <c>m.json</c>) is then refused by
    /// <see cref="ReadBytes"/> rather than skipped as if it were not there.
    /// </summary>
    public static IReadOnlyList<string> Entries(string directory, string pattern) =>
        [.. Directory.EnumerateFileSystemEntries(directory, pattern, new EnumerationOptions { AttributesToSkip = 0, IgnoreInaccessible = false, MatchType = MatchType.Simple })
            .Order(StringComparer.Ordinal)];

    /// <summary>True when <paramref name="path"/> names something that is not a regular file (FIFO, device, socket, folder).</summary>
    public static bool IsSpecial(string path)
    {
        try
        {
            using var handle = OpenRegular(path);
            return false;
        }
        catch (WorkspaceException ex) when (ex.Code == ErrorCodes.WorkspaceUnreadable)
        {
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Directory.Exists(path);
        }
    }

    /// <summary>
    /// True when <paramref name="path"/> is a Unix domain socket (open(2) of a socket fails with ENXIO), so that a
    /// stale socket can be replaced while a regular file, FIFO or folder in its place is refused, never deleted.
    /// Off Linux: anything that is not a folder.
    /// </summary>
    public static bool IsSocket(string path)
    {
        if (Directory.Exists(path) || !File.Exists(path))
        {
            return false;
        }

        if (!OperatingSystem.IsLinux())
        {
            return true;
        }

        const int ReadOnlyNonBlockingCloExec = 0x0800 | 0x80000;
        var fd = Open(path, ReadOnlyNonBlockingCloExec);
        if (fd >= 0)
        {
            Close(fd);
            return false;
        }

        return Marshal.GetLastPInvokeError() == 6; // ENXIO
    }

    private static SafeFileHandle OpenRegular(string path)
    {
        if (Directory.Exists(path))
        {
            throw NotAFile(path);
        }

        if (!OperatingSystem.IsLinux())
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }

        // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one; then seekability tells
        // a regular file (or a block device) from a pipe, socket or character device.
        const int ReadOnlyNonBlockingCloExec = 0x0800 | 0x80000;
        var fd = Open(path, ReadOnlyNonBlockingCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                2 => new FileNotFoundException(path),
                13 or 1 => new UnauthorizedAccessException("permission denied"),
                6 or 19 => Unreadable(path, "it is a device or socket, not a regular file"),
                _ => new IOException($"open failed (errno {errno})"),
            };
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Lseek(fd, 0, 1) < 0)
        {
            handle.Dispose();
            throw Unreadable(path, "it is a FIFO, socket or character device, not a regular file");
        }

        return handle;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long Lseek(int fd, long offset, int whence);

    /// <summary>The error for a folder found where a file of some kind belongs (RTT-WS-006).</summary>
    public static WorkspaceException NotAFile(string path) => Unreadable(path, "it is a folder, not a file");

    private static WorkspaceException Unreadable(string path, string why) =>
        new(ErrorCodes.WorkspaceUnreadable, $"cannot read the file: {why}", path,
            "make it a readable regular file (check its permissions; a FIFO, device or folder is never read)");

    private static WorkspaceException TooLarge(string path, long length, long limit) =>
        new(ErrorCodes.WorkspaceFileTooLarge, $"file is {length} bytes, over the limit of {limit} bytes for this kind of file", path,
            "a workspace file this large is not one rtt wrote: check what it is (limits are listed in docs/errors.md)");
}
