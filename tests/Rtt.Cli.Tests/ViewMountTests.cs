using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Views.Mount;

namespace Rtt.Cli.Tests;

/// <summary>A fact that runs only where a FUSE mount can work: a /dev/fuse this process can open, and root for mount(2).</summary>
public sealed class FuseFactAttribute : FactAttribute
{
    public FuseFactAttribute()
    {
        if (!File.Exists(ViewMount.DevFuse))
        {
            Skip = "FUSE cannot work here: there is no /dev/fuse";
        }
        else if (!Environment.IsPrivilegedProcess)
        {
            Skip = "FUSE cannot work here: rtt view mount mounts with mount(2), which needs root (CAP_SYS_ADMIN)";
        }
        else
        {
            try
            {
                using var _ = new FileStream(ViewMount.DevFuse, FileMode.Open, FileAccess.ReadWrite);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Skip = $"FUSE cannot work here: /dev/fuse cannot be opened ({ex.Message})";
            }
        }
    }
}

/// <summary>A running <c>rtt view mount</c>; disposing always leaves no mount behind (unmount, then a lazy detach).</summary>
public sealed class MountedView : IDisposable
{
    private MountedView(RttProcess process, string dir)
    {
        Process = process;
        Dir = dir;
    }

    public RttProcess Process { get; }

    public string Dir { get; }

    public string this[string rel] => Path.Combine(Dir, rel);

    public static MountedView Start(string workspace, string dir, params string[] args) => StartWith(null, workspace, dir, args);

    public static MountedView StartWith(IReadOnlyDictionary<string, string>? env, string workspace, string dir, params string[] args)
    {
        Directory.CreateDirectory(dir);
        var process = RttProcess.Start(workspace, env, ["view", "mount", .. args, dir]);
        var mounted = new MountedView(process, dir);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (process.Stdout.Contains("mounted ", StringComparison.Ordinal) && ViewMount.MountType(dir) == ViewMount.FsType)
            {
                return mounted;
            }

            if (process.HasExited)
            {
                mounted.Dispose();
                throw new InvalidOperationException($"rtt view mount exited with {process.ExitCode}\n{process.Stdout}\n{process.Stderr}");
            }

            Thread.Sleep(25);
        }

        mounted.Dispose();
        throw new TimeoutException($"rtt view mount did not mount in 30 s\n{process.Stdout}\n{process.Stderr}");
    }

    public void Dispose()
    {
        if (ViewMount.MountType(Dir) == ViewMount.FsType)
        {
            try
            {
                ViewMount.Unmount(Dir, lazy: true);
            }
            catch (Core.Errors.RttException)
            {
                Shell.Run("fusermount3", "-u", "-z", Dir);
            }
        }

        if (!Process.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            Process.Kill();
        }

        Process.Dispose();
    }
}

/// <summary>Runs a plain program (cat, grep, find, diff, python3) and returns its exit code and output.</summary>
public static class Shell
{
    public static RttResult Run(string program, params string[] args) => RunIn(null, program, args);

    public static RttResult RunIn(string? dir, string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (dir is not null)
        {
            info.WorkingDirectory = dir;
        }

        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = System.Diagnostics.Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in 60 s");
        }

        return new RttResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}

/// <summary>
/// <c>rtt view mount</c> on real FUSE mounts of the quickstart's views: compared with <c>rtt view build</c>'s files by
/// <c>diff -r</c>, read by real programs, switched live, tampered with, unmounted busy and after kill -9.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ViewMountTests
{
    private static (TempDir Dir, string Workspace) BuiltQuickstart()
    {
        var dir = TempDir.Quickstart(out var ws);
        var build = RttProcess.Run(ws, "view", "build", "--env", "prod");
        Assert.True(build.ExitCode == 0, build.ToString());
        return (dir, ws);
    }

    private static void AssertSameTree(string expected, string actual)
    {
        var diff = Shell.Run("diff", "-r", expected, actual);
        Assert.True(diff.ExitCode == 0, $"diff -r {expected} {actual}\n{diff}");
    }

    [FuseFact]
    public void The_mount_is_byte_for_byte_what_build_writes_and_real_readers_read_it()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        {
            using (var claude = MountedView.Start(ws, dir["m-claude"], "--provider", "claude", "--env", "prod"))
            using (var all = MountedView.Start(ws, dir["m-all"], "--all", "--env", "prod"))
            {
                AssertSameTree(Path.Combine(ws, "providers", "claude"), claude.Dir);
                AssertSameTree(Path.Combine(ws, "providers"), all.Dir);

                var cat = Shell.Run("cat", claude[".claude/agents/summarize.md"]);
                Assert.Equal(File.ReadAllText(Path.Combine(ws, "providers/claude/.claude/agents/summarize.md")), cat.Stdout);
                var grep = Shell.Run("grep", "-r", "-l", "summarize", all.Dir);
                Assert.Equal(
                    new[] { all["claude/.rtt-owned.json"], all["claude/.claude/agents/summarize.md"], all["openai/AGENTS.md"] }.Order(StringComparer.Ordinal),
                    grep.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal));
                var find = Shell.Run("find", all.Dir, "-type", "f");
                Assert.Equal(4, find.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

                // Python reads the Claude file's front matter with a YAML parser (when PyYAML is installed).
                var py = Shell.Run("python3", "-c",
                    "import sys\ntry:\n import yaml\nexcept ImportError:\n print('no-yaml'); sys.exit(0)\n"
                    + "t = open(sys.argv[1]).read(); fm = yaml.safe_load(t.split('---')[1]); print(fm['name'], fm['model'])", claude[".claude/agents/summarize.md"]);
                Assert.True(py.ExitCode == 0, py.ToString());
                Assert.True(py.Stdout.Trim() is "summarize haiku" or "no-yaml", py.Stdout);

                // Times are the view set's record time, the same for every entry and every listing.
                var set = RttProcess.Run(ws, "cat", "view-set:claude/prod@1");
                Assert.True(set.ExitCode == 0, set.ToString());
                var recorded = DateTimeOffset.Parse((string)JsonNode.Parse(set.Stdout)!["recorded_at"]!, System.Globalization.CultureInfo.InvariantCulture);
                foreach (var entry in new[] { claude.Dir, claude[".claude"], claude[".claude/agents/summarize.md"], claude[".rtt-owned.json"] })
                {
                    Assert.Equal(recorded.UtcDateTime, Directory.Exists(entry) ? Directory.GetLastWriteTimeUtc(entry) : File.GetLastWriteTimeUtc(entry));
                }

                var ls1 = Shell.Run("ls", "-lnR", "--time-style=+%s", all.Dir).Stdout;
                var ls2 = Shell.Run("ls", "-lnR", "--time-style=+%s", all.Dir).Stdout;
                Assert.Equal(ls1, ls2);

                // Read-only.
                Assert.ThrowsAny<Exception>(() => File.WriteAllText(claude["x.md"], "no"));
                Assert.ThrowsAny<Exception>(() => File.AppendAllText(claude[".claude/agents/summarize.md"], "no"));
            }

            Assert.Null(ViewMount.MountType(dir["m-claude"]));
            Assert.Null(ViewMount.MountType(dir["m-all"]));
        }
    }

    [FuseFact]
    public void A_rebuild_switches_the_mount_while_an_open_file_keeps_its_content()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        using (var mount = MountedView.Start(ws, dir["m"], "--provider", "claude", "--env", "prod", "--poll-ms", "50"))
        {
            var path = mount[".claude/agents/summarize.md"];
            var before = File.ReadAllBytes(path);
            using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            var head = new byte[10];
            reader.ReadExactly(head);

            File.WriteAllText(Path.Combine(ws, "overlays/env/prod/summarize.patch.json"), """{"instructions": "Switched while a reader held the old file."}""");
            var build = RttProcess.Run(ws, "view", "build", "--env", "prod");
            Assert.True(build.ExitCode == 0, build.ToString());
            var expected = File.ReadAllBytes(Path.Combine(ws, "providers/claude/.claude/agents/summarize.md"));
            Assert.NotEqual(before, expected);

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (!File.ReadAllBytes(path).AsSpan().SequenceEqual(expected) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }

            Assert.Equal(expected, File.ReadAllBytes(path));
            AssertSameTree(Path.Combine(ws, "providers", "claude"), mount.Dir);

            // The reader opened before the switch still reads the old bytes, whole.
            var rest = new MemoryStream();
            reader.CopyTo(rest);
            Assert.Equal(before, head.Concat(rest.ToArray()).ToArray());
            Assert.Contains("switched to view-set:claude/prod@2", mount.Process.Stderr, StringComparison.Ordinal);
        }
    }

    [FuseFact]
    public void A_flipped_bit_in_a_view_object_gives_EIO_for_that_file_only()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        using (var mount = MountedView.Start(ws, dir["m"], "--all", "--env", "prod"))
        {
            var good = Shell.Run("cat", mount["claude/.claude/agents/summarize.md"]);
            Assert.Equal(0, good.ExitCode);

            var set = JsonNode.Parse(RttProcess.Run(ws, "cat", "view-set:claude/prod@1").Stdout)!;
            var viewHash = (string)set["views"]!["summarize"]!;
            var objectPath = Path.Combine(ws, ".rtt", "registry", "cas", "sha256", viewHash["sha256:".Length..] + ".json");
            var bytes = File.ReadAllBytes(objectPath);
            bytes[bytes.Length / 2] ^= 0x04;
            File.WriteAllBytes(objectPath, bytes);

            var bad = Shell.Run("cat", mount["claude/.claude/agents/summarize.md"]);
            Assert.NotEqual(0, bad.ExitCode);
            Assert.Contains("Input/output error", bad.Stderr, StringComparison.Ordinal);
            Assert.Contains("EIO claude/.claude/agents/summarize.md", mount.Process.Stderr, StringComparison.Ordinal);
            Assert.Contains("RTT-VIEW-015", mount.Process.Stderr, StringComparison.Ordinal);

            // Every other file still reads, and matches what build wrote.
            foreach (var other in new[] { "claude/.rtt-owned.json", "openai/AGENTS.md", "openai/.rtt-owned.json" })
            {
                var read = Shell.Run("cat", mount[other]);
                Assert.True(read.ExitCode == 0, $"{other}: {read}");
                Assert.Equal(File.ReadAllText(Path.Combine(ws, "providers", other)), read.Stdout);
            }

            // Listing and stat never read a view object: they still work for the damaged file.
            Assert.True(File.Exists(mount["claude/.claude/agents/summarize.md"]));
        }
    }

    [FuseFact]
    public void Unmount_with_a_reader_inside_is_refused_and_lazy_detaches_until_it_leaves()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        using (var mount = MountedView.Start(ws, dir["m"], "--provider", "claude", "--env", "prod"))
        {
            using var reader = new FileStream(mount[".claude/agents/summarize.md"], FileMode.Open, FileAccess.Read);
            var refused = RttProcess.Run(ws, "view", "unmount", mount.Dir);
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains("RTT-VIEW-016", refused.Stderr, StringComparison.Ordinal);
            Assert.Contains("--lazy", refused.Stderr, StringComparison.Ordinal);
            Assert.Equal(ViewMount.FsType, ViewMount.MountType(mount.Dir));

            var lazy = RttProcess.Run(ws, "view", "unmount", "--lazy", mount.Dir);
            Assert.True(lazy.ExitCode == 0, lazy.ToString());
            Assert.Null(ViewMount.MountType(mount.Dir));
            Assert.Empty(Directory.EnumerateFileSystemEntries(mount.Dir)); // the folder is free at once

            // The reader inside is still served, whole; the mount process ends when it leaves.
            var text = new StreamReader(reader).ReadToEnd();
            Assert.StartsWith("---\nname: summarize\n", text, StringComparison.Ordinal);
            Assert.False(mount.Process.HasExited);
            reader.Dispose();
            Assert.True(mount.Process.WaitForExit(TimeSpan.FromSeconds(10)), mount.Process.Stderr);
            Assert.Equal(0, mount.Process.ExitCode);
            Assert.Contains("unmounted", mount.Process.Stdout, StringComparison.Ordinal);
        }
    }

    [FuseFact]
    public void Kill_9_of_the_mount_process_leaves_no_hung_mount_after_unmount()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        {
            using (var mount = MountedView.Start(ws, dir["m"], "--provider", "claude", "--env", "prod"))
            {
                mount.Process.Kill();
                var ls = Shell.Run("ls", mount.Dir);
                Assert.NotEqual(0, ls.ExitCode);
                Assert.Contains("not connected", ls.Stderr, StringComparison.Ordinal);

                var sw = Stopwatch.StartNew();
                var unmount = RttProcess.Run(ws, "view", "unmount", mount.Dir);
                Assert.True(unmount.ExitCode == 0, unmount.ToString());
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30));
                Assert.Null(ViewMount.MountType(mount.Dir));
                Assert.Empty(Directory.EnumerateFileSystemEntries(mount.Dir));
            }

            // The folder can be mounted again.
            using var again = MountedView.Start(ws, dir["m"], "--provider", "claude", "--env", "prod");
            AssertSameTree(Path.Combine(ws, "providers", "claude"), again.Dir);
        }
    }

    [FuseFact]
    public void Mount_errors_name_the_problem_and_the_remedy()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        {
            Directory.CreateDirectory(dir["full"]);
            File.WriteAllText(dir["full/keep.txt"], "mine");
            var notEmpty = RttProcess.Run(ws, "view", "mount", "--provider", "claude", "--env", "prod", dir["full"]);
            Assert.Equal(1, notEmpty.ExitCode);
            Assert.Contains("RTT-VIEW-013", notEmpty.Stderr, StringComparison.Ordinal);
            Assert.Contains("not empty", notEmpty.Stderr, StringComparison.Ordinal);

            var file = RttProcess.Run(ws, "view", "mount", "--provider", "claude", "--env", "prod", dir["full/keep.txt"]);
            Assert.Contains("RTT-VIEW-013", file.Stderr, StringComparison.Ordinal);
            Assert.Contains("not a folder", file.Stderr, StringComparison.Ordinal);

            Directory.CreateDirectory(dir["empty"]);
            var noSet = RttProcess.Run(ws, "view", "mount", "--provider", "gemini", dir["empty"]);
            Assert.Equal(1, noSet.ExitCode);
            Assert.Contains("RTT-VIEW-012", noSet.Stderr, StringComparison.Ordinal);
            Assert.Contains("rtt view build --provider gemini", noSet.Stderr, StringComparison.Ordinal);
            Assert.Null(ViewMount.MountType(dir["empty"]));

            var notMount = RttProcess.Run(ws, "view", "unmount", dir["empty"]);
            Assert.Equal(1, notMount.ExitCode);
            Assert.Contains("RTT-VIEW-016", notMount.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", notMount.Stderr + noSet.Stderr + file.Stderr + notEmpty.Stderr, StringComparison.Ordinal);
        }
    }

    [FuseFact]
    public void Record_only_switches_a_mount_without_writing_providers()
    {
        var (dir, ws) = BuiltQuickstart();
        using (dir)
        using (var mount = MountedView.Start(ws, dir["m"], "--provider", "openai", "--env", "prod", "--poll-ms", "50"))
        {
            var written = File.ReadAllBytes(Path.Combine(ws, "providers/openai/AGENTS.md"));
            File.WriteAllText(Path.Combine(ws, "overlays/env/prod/_global.patch.json"), """{"description": "Recorded, not written."}""");
            var record = RttProcess.Run(ws, "view", "build", "--env", "prod", "--record-only");
            Assert.True(record.ExitCode == 0, record.ToString());
            Assert.Contains("view-set:openai/prod@2", record.Stdout, StringComparison.Ordinal);
            Assert.Equal(written, File.ReadAllBytes(Path.Combine(ws, "providers/openai/AGENTS.md")));

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (!Encoding.UTF8.GetString(File.ReadAllBytes(mount["AGENTS.md"])).Contains("Recorded, not written.", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }

            Assert.Contains("Recorded, not written.", File.ReadAllText(mount["AGENTS.md"]), StringComparison.Ordinal);

            // A build afterwards writes exactly what the mount already shows.
            Assert.Equal(0, RttProcess.Run(ws, "view", "build", "--env", "prod").ExitCode);
            AssertSameTree(Path.Combine(ws, "providers", "openai"), mount.Dir);
        }
    }
    [FuseFact]
    public void With_watch_an_overlay_edit_switches_the_mount_and_a_broken_edit_keeps_the_last_good_views()
    {
        using var dir = TempDir.Quickstart(out var ws); // nothing built or recorded: --watch records at start
        using var mount = MountedView.Start(ws, dir["m"], "--provider", "claude", "--env", "prod", "--watch", "--poll-ms", "50");
        Assert.Contains("recorded view-set:claude/prod@1 from the sources", mount.Process.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(ws, "providers")));
        var path = mount[".claude/agents/summarize.md"];

        var overlay = Path.Combine(ws, "overlays/env/prod/summarize.patch.json");
        File.WriteAllText(overlay, """{"instructions": "Edited while mounted."}""");
        WaitFor(() => File.ReadAllText(path).Contains("Edited while mounted.", StringComparison.Ordinal));

        File.WriteAllText(overlay, """{"instructions": "half-saved""");
        WaitFor(() => mount.Process.Stderr.Contains("kept the current views: the sources do not build", StringComparison.Ordinal));
        Assert.Contains("Edited while mounted.", File.ReadAllText(path), StringComparison.Ordinal);

        File.WriteAllText(overlay, """{"instructions": "Saved whole."}""");
        WaitFor(() => File.ReadAllText(path).Contains("Saved whole.", StringComparison.Ordinal));
        Assert.Equal(0, RttProcess.Run(ws, "view", "build", "--env", "prod").ExitCode);
        AssertSameTree(Path.Combine(ws, "providers", "claude"), mount.Dir);
    }

    [FuseFact]
    public void The_silo_keeps_a_mount_of_every_provider_and_unmounts_it_on_stop()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var mnt = dir["views"];
        Directory.CreateDirectory(mnt);
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), new Dictionary<string, string> { ["RTT_ENV"] = "prod" },
            TimeSpan.FromSeconds(90), "--mount-views", mnt);
        try
        {
            Assert.Contains($"views     mounted at {mnt} (view-set:claude/prod@1, view-set:openai/prod@1)", silo.Stdout, StringComparison.Ordinal);
            Assert.Equal(0, RttProcess.Run(ws, "view", "build", "--env", "prod").ExitCode);
            AssertSameTree(Path.Combine(ws, "providers"), mnt);

            silo.Terminate();
            Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(60)), silo.Stdout + silo.Stderr);
            Assert.Equal(0, silo.ExitCode);
            Assert.Null(ViewMount.MountType(mnt));
            Assert.Empty(Directory.EnumerateFileSystemEntries(mnt));
        }
        finally
        {
            if (ViewMount.MountType(mnt) is not null)
            {
                Shell.Run("umount", "-l", mnt);
            }
        }
    }

    [FuseFact]
    public void The_fusermount3_path_mounts_the_same_files()
    {
        if (!File.Exists("/usr/bin/fusermount3"))
        {
            return; // the root path is tested above; without fuse3 a normal user gets RTT-VIEW-014 naming it
        }

        var (dir, ws) = BuiltQuickstart();
        using (dir)
        {
            using (var mount = MountedView.StartWith(new Dictionary<string, string> { ["RTT_VIEW_MOUNT_HELPER"] = "fusermount3" }, ws, dir["m"], "--provider", "claude", "--env", "prod"))
            {
                AssertSameTree(Path.Combine(ws, "providers", "claude"), mount.Dir);
                var unmount = RttProcess.Run(ws, "view", "unmount", mount.Dir);
                Assert.True(unmount.ExitCode == 0, unmount.ToString());
                Assert.True(mount.Process.WaitForExit(TimeSpan.FromSeconds(10)));
            }

            Assert.Null(ViewMount.MountType(dir["m"]));
        }
    }

    private static void WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold within 15 s");
            Thread.Sleep(25);
        }
    }
}
