using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

/// <summary>File modes of a workspace (docs/security.md): set explicitly, checked at start.</summary>
public sealed class WorkspaceModesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-modes-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Init_makes_every_folder_0700_and_every_file_0600()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        Assert.Equal(WorkspaceModes.Folder, File.GetUnixFileMode(ws.Dir));
        foreach (var entry in Directory.EnumerateFileSystemEntries(ws.Dir, "*", SearchOption.AllDirectories))
        {
            Assert.Equal(Directory.Exists(entry) ? WorkspaceModes.Folder : WorkspaceModes.File, File.GetUnixFileMode(entry));
        }

        WorkspaceModes.Check(ws); // a fresh workspace passes
    }

    [Fact]
    public void Files_written_inside_the_workspace_are_0600_and_new_folders_0700_outside_stays_as_asked()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        var inside = Path.Combine(ws.Dir, "plans", "new", "x.json");
        AtomicFile.WriteAllBytes(inside, "{}"u8);
        Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(inside));
        Assert.Equal(WorkspaceModes.Folder, File.GetUnixFileMode(Path.GetDirectoryName(inside)!));
        using var partner = SigningKey.Generate();
        var trusted = TrustStore.WriteTrustedKey(ws.Trust, "partner", partner.PublicKey);
        Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(trusted));

        var outside = Path.Combine(_dir, "agents", "a.md");
        AtomicFile.WriteAllBytes(outside, "x"u8, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(outside));
    }

    [Fact]
    public void A_file_written_beside_its_target_replaces_it_only_when_committed_and_leaves_nothing_when_discarded()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        var target = Path.Combine(ws.Dir, "plans", "applied.json");
        AtomicFile.WriteAllBytes(target, "old"u8);
        var folder = Path.GetDirectoryName(target)!;

        var kept = AtomicFile.WriteBeside(target, "new"u8, durable: false);
        Assert.Equal("old", File.ReadAllText(target)); // written whole beside it, not in place yet
        var temp = Assert.Single(Directory.GetFiles(folder), f => f != target);
        Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(temp)); // the mode is set before the rename
        kept.Commit();
        kept.Commit(); // once
        kept.Discard(); // after the commit: nothing to delete, the target stays
        Assert.Equal("new", File.ReadAllText(target));
        Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(target));
        Assert.Equal([target], Directory.GetFiles(folder));

        var dropped = AtomicFile.WriteBeside(target, "other"u8, durable: false);
        dropped.Discard();
        dropped.Commit(); // after the discard: nothing to rename
        Assert.Equal("new", File.ReadAllText(target));
        Assert.Equal([target], Directory.GetFiles(folder));
    }

    public static TheoryData<string, int, string> TooOpen() => new()
    {
        { ".rtt", 0x1FF, "chmod 700" },                            // 0777
        { ".rtt/registry/trust/keys", 0x1FF, "chmod 700" },
        { ".rtt/registry/trust/keys", 0x1F8 | 0x2, "chmod 700" },  // 0772: others may add a key
        { ".rtt/registry/trust/keys/default.pub", 0x1B6, "chmod 600" }, // 0666
        { ".rtt/registry/trust", 0x1F0 | 0x10, "chmod 700" },      // 0770 with group write
        { ".rtt/workspace.json", 0x1B6, "chmod 600" },
        { ".rtt/keys", 0x1ED, "chmod 700" },                       // 0755: others may list keys
        { ".rtt/keys/default.key", 0x1A4, "chmod 600" },           // 0644: others may read the secret
        { ".rtt/state", 0x1E8, "chmod 700" },                      // 0750
    };

    [Theory]
    [MemberData(nameof(TooOpen))]
    public void A_too_open_path_is_refused_with_the_chmod_that_fixes_it(string rel, int mode, string fix)
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        var path = Path.Combine(_dir, rel);
        File.SetUnixFileMode(path, (UnixFileMode)mode);
        var ex = Assert.Throws<WorkspaceException>(() => WorkspaceModes.Check(ws));
        Assert.Equal(ErrorCodes.ModesTooOpen, ex.Code);
        Assert.Equal(Path.GetFullPath(path), ex.Location);
        Assert.Contains($"{fix} '{Path.GetFullPath(path)}'", ex.Remedy, StringComparison.Ordinal);
        Assert.Contains(Convert.ToString(mode, 8), ex.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(path, Directory.Exists(path) ? WorkspaceModes.Folder : WorkspaceModes.File);
        WorkspaceModes.Check(ws); // the fix the message names is enough
    }

    [Fact]
    public void Readable_but_not_writable_trust_files_pass()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        File.SetUnixFileMode(ws.Dir, (UnixFileMode)0x1ED);                                   // 0755
        File.SetUnixFileMode(Path.Combine(ws.TrustKeys, "default.pub"), (UnixFileMode)0x1A4); // 0644
        WorkspaceModes.Check(ws);
    }
}
