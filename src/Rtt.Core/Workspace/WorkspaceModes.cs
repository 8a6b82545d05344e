using Rtt.Core.Errors;

namespace Rtt.Core.Workspace;

/// <summary>
/// File modes of a workspace (docs/security.md). RTT sets them explicitly, whatever the umask: 0700 for the folders of
/// <c>.rtt/</c>, 0600 for the files RTT writes there, the lane sockets and the state database. A silo checks them at
/// start and refuses a workspace another local user could change (a trusted key added, a socket attached to, the
/// state database read or rewritten), naming the <c>chmod</c> that fixes it.
/// </summary>
public static class WorkspaceModes
{
    public const UnixFileMode Folder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode File = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private const UnixFileMode GroupOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private const UnixFileMode GroupOtherWrite = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    /// <summary>True when <paramref name="path"/> lies inside a <c>.rtt</c> folder (files RTT writes there get 0600).</summary>
    public static bool InsideWorkspaceDir(string path)
    {
        var full = Path.GetFullPath(path);
        var marker = Path.DirectorySeparatorChar + RttWorkspace.DirectoryName + Path.DirectorySeparatorChar;
        return full.Contains(marker, StringComparison.Ordinal);
    }

    /// <summary>Creates a folder (and any missing parents) with mode 0700 and sets 0700 on it, whatever the umask.</summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
            return;
        }

        Directory.CreateDirectory(path, Folder);
        System.IO.File.SetUnixFileMode(path, Folder);
    }

    /// <summary>Sets 0600 on a file (a socket, the state database) when it exists.</summary>
    public static void RestrictFile(string path)
    {
        if (!OperatingSystem.IsWindows() && Path.Exists(path))
        {
            System.IO.File.SetUnixFileMode(path, File);
        }
    }

    /// <summary>Sets 0700 on every folder and 0600 on every file under <paramref name="dir"/> (a freshly made <c>.rtt/</c>).</summary>
    public static void LockDown(string dir)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        System.IO.File.SetUnixFileMode(dir, Folder);
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var info = new FileInfo(entry);
            if (info.LinkTarget is not null)
            {
                continue; // a symbolic link has no mode of its own
            }

            System.IO.File.SetUnixFileMode(entry, Directory.Exists(entry) ? Folder : File);
        }
    }

    /// <summary>What a start checks, each with the mode bits that make it too open.</summary>
    public static IEnumerable<(string Path, bool IsFolder, UnixFileMode TooOpen)> Checked(RttWorkspace ws)
    {
        // Group/other write on these lets another user change what the workspace trusts or plans.
        yield return (ws.Dir, true, GroupOtherWrite);
        yield return (ws.Registry, true, GroupOtherWrite);
        yield return (ws.Trust, true, GroupOtherWrite);
        yield return (ws.TrustKeys, true, GroupOtherWrite);
        yield return (ws.SettingsPath, false, GroupOtherWrite);
        yield return (Path.Combine(ws.Trust, "revoked.json"), false, GroupOtherWrite);
        if (Directory.Exists(ws.TrustKeys))
        {
            foreach (var pub in Directory.EnumerateFiles(ws.TrustKeys).Order(StringComparer.Ordinal))
            {
                yield return (pub, false, GroupOtherWrite);
            }
        }

        // Secrets and the silo's state: no access at all for group and others.
        yield return (ws.Keys, true, GroupOther);
        if (Directory.Exists(ws.Keys))
        {
            foreach (var key in Directory.EnumerateFiles(ws.Keys).Order(StringComparer.Ordinal))
            {
                yield return (key, false, GroupOther);
            }
        }

        yield return (ws.State, true, GroupOther);
        yield return (ws.StateDatabasePath, false, GroupOtherWrite); // unreadable to others through state/ (0700)
    }

    /// <summary>
    /// Refuses a workspace whose folders or files are too open (RTT-SEC-001), naming the first offender and the
    /// <c>chmod</c> that fixes it. Paths that do not exist are skipped (a start creates them with the right modes).
    /// </summary>
    public static void Check(RttWorkspace ws)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        foreach (var (path, isFolder, tooOpen) in Checked(ws))
        {
            if (!Path.Exists(path) || new FileInfo(path).LinkTarget is not null || Directory.Exists(path) != isFolder)
            {
                continue; // missing, a link, or the wrong kind of entry: the readers' own checks name those
            }

            var mode = System.IO.File.GetUnixFileMode(path);
            if ((mode & tooOpen) != 0)
            {
                var want = isFolder ? "700" : "600";
                throw new WorkspaceException(ErrorCodes.ModesTooOpen,
                    $"{(isFolder ? "folder" : "file")} is too open (mode {Octal(mode)}): other local users could {((tooOpen & UnixFileMode.GroupRead) != 0 ? "read or change" : "change")} it",
                    path, $"run `chmod {want} '{path}'` (RTT sets {want} itself whatever the umask; docs/security.md)");
            }
        }
    }

    /// <summary>A mode as three octal digits, e.g. <c>755</c>.</summary>
    public static string Octal(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8).PadLeft(3, '0');
}
