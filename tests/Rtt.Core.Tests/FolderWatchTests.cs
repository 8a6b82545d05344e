using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

/// <summary>
/// The folder watch the token verifier asks before each call instead of reading the trust files' status (FolderWatch): every
/// kind of change is seen by the very next question, nothing is seen twice, and a folder made, deleted or made again is
/// followed.
/// </summary>
public sealed class FolderWatchTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-watch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Every_change_in_the_folders_is_seen_by_the_next_question_and_only_once()
    {
        var file = Path.Combine(_dir, "revoked.json");
        File.WriteAllText(file, "{}");
        var keys = Path.Combine(_dir, "keys");
        var watch = FolderWatch.Open(_dir, keys);
        Assert.NotNull(watch); // this project runs on Linux: a null here means every verifier falls back to status reads
        Assert.False(watch.Changed()); // what was read before Open is current
        Assert.False(watch.Complete); // keys/ is missing: not every folder is watched

        // Rewritten in place, same length (what a status read taken in the same second could miss).
        File.WriteAllText(file, "[]");
        Assert.True(watch.Changed());
        Assert.False(watch.Changed());

        // Replaced by a rename, as the workspace's atomic writes do.
        File.WriteAllText(file + ".tmp", "{\"revoked\":[]}");
        File.Move(file + ".tmp", file, overwrite: true);
        Assert.True(watch.Changed());
        Assert.False(watch.Changed());

        // Its mode changed; then deleted.
        File.SetUnixFileMode(file, UnixFileMode.UserRead);
        Assert.True(watch.Changed());
        File.Delete(file);
        Assert.True(watch.Changed());
        Assert.False(watch.Changed());

        // A second folder missing at first: its creation is a change of the first, and it is watched from then on.
        Directory.CreateDirectory(keys);
        Assert.True(watch.Changed());
        Assert.True(watch.Complete);
        File.WriteAllText(Path.Combine(keys, "k.pub"), "key");
        Assert.True(watch.Changed());
        Assert.False(watch.Changed());

        // Deleted and made again: followed to the new folder.
        Directory.Delete(keys, recursive: true);
        Assert.True(watch.Changed());
        Assert.False(watch.Complete);
        Directory.CreateDirectory(keys);
        Assert.True(watch.Changed());
        File.WriteAllText(Path.Combine(keys, "k2.pub"), "key");
        Assert.True(watch.Changed());
        Assert.False(watch.Changed());

        // Reading changes nothing.
        _ = File.ReadAllText(Path.Combine(keys, "k2.pub"));
        _ = Directory.GetFiles(keys);
        Assert.False(watch.Changed());
    }

    [Fact]
    public void Two_watches_of_one_folder_each_see_a_change_once_and_a_lost_first_folder_gives_no_answer()
    {
        var first = FolderWatch.Open(_dir)!;
        var second = FolderWatch.Open(_dir)!;
        File.WriteAllText(Path.Combine(_dir, "a"), "1");
        Assert.True(first.Changed());
        Assert.True(second.Changed()); // the first's question consumed the kernel's event, not the second's change
        Assert.False(first.Changed());
        Assert.False(second.Changed());

        var gone = Path.Combine(_dir, "gone");
        Directory.CreateDirectory(gone);
        var watch = FolderWatch.Open(gone)!;
        Directory.Delete(gone);
        Assert.Null(watch.Changed()); // the folder is not there to watch: the caller must read the status itself
        Assert.Null(FolderWatch.Open(Path.Combine(_dir, "never")));
    }
}
