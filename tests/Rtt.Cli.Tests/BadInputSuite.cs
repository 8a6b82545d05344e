using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Workspace;
using Rtt.Reconciling.Wal;

namespace Rtt.Cli.Tests;

/// <summary>One hostile input: how to plant it in a fresh workspace, the command that reads it, the code it must give.</summary>
public sealed record BadInput(string Class, string Name, Action<string> Plant, string[] Args, string Code, string? Names = null, bool MayWrite = false)
{
    public override string ToString() => $"{Class}: {Name}";
}

/// <summary>
/// The bad-input suite (issue 15): every case runs the real command tree in-process against a fresh copy of a scanned,
/// packed quickstart with a signed WAL, and must exit 1 with its RTT code, say it in one or two stderr lines that name
/// the file (or argument) at fault, print no stack trace, finish within a bound, and leave the workspace as it was
/// (for a tamper case: name the tampering). Cases are listed by class in <see cref="BadInputs"/>.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class BadInputSuite : IClassFixture<BadInputSuite.Template>
{
    private static readonly SemaphoreSlim Gate = new(1, 1); // Console is process-wide: one case at a time
    private readonly Template _template;

    public BadInputSuite(Template template) => _template = template;

    /// <summary>A workspace made once; every case gets its own copy.</summary>
    public sealed class Template : IDisposable
    {
        public Template()
        {
            var init = Run(Dir.Path, ["init", "--example", "quickstart", Root]).GetAwaiter().GetResult();
            Assert.True(init.Exit == 0, init.Err);
            foreach (var args in new[] { new[] { "scan", "--json" }, ["pack"], ["plan"] })
            {
                var r = Run(Root, [.. args, "--workspace", Root]).GetAwaiter().GetResult();
                Assert.True(r.Exit == 0, string.Join(" ", args) + ": " + r.Err);
            }

            var ws = RttWorkspace.Find(Root, Root);
            using var key = ws.LoadSigningKey();
            using var log = WalLog.Open(SqliteWalStore.Open(ws.StateDatabasePath), ws.LoadTrustStore(), WalAnchor.Of(ws));
            for (var i = 0; i < 4; i++)
            {
                log.Append(new JsonObject { ["kind"] = "test", ["n"] = i });
                log.SignHead(key, DateTimeOffset.UnixEpoch.AddSeconds(i));
            }
        }

        public TempDir Dir { get; } = new();

        public string Root => Dir["tpl"];

        public void Dispose() => Dir.Dispose();
    }

    public static TheoryData<BadInput> Cases()
    {
        var data = new TheoryData<BadInput>();
        foreach (var c in BadInputs.All().Where(c => !BadInputs.KnownGaps.Contains(c.ToString())))
        {
            data.Add(c);
        }

        return data;
    }

    [Fact]
    public void The_suite_covers_every_class_with_at_least_250_cases()
    {
        var all = BadInputs.All().ToList();
        Assert.True(all.Count >= 250, $"{all.Count} cases");
        Assert.Equal(all.Count, all.Select(c => c.ToString()).Distinct().Count()); // names are unique
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Is_refused_cleanly(BadInput input)
    {
        using var dir = new TempDir();
        var ws = dir["ws"];
        Copy(_template.Root, ws);
        input.Plant(ws);
        var before = Snapshot(ws);
        var args = input.Args.Select(a => a.Replace("{ws}", ws, StringComparison.Ordinal)).ToList();
        if (!args.Contains("--workspace") && args.Count > 0 && args[0] is not "init")
        {
            args.AddRange(["--workspace", ws]);
        }

        var clock = Stopwatch.StartNew();
        var result = await Run(ws, [.. args]);
        var context = $"{input}\nexit {result.Exit}\nstderr:\n{result.Err}\nstdout:\n{result.Out}";
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}: {context}");
        Assert.True(result.Exit == 1, context);
        Assert.Contains(input.Code, result.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Err, StringComparison.Ordinal);     // no stack trace
        Assert.DoesNotContain("internal error", result.Err, StringComparison.Ordinal);
        var all = result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var lines = all.Where(l => !l.StartsWith("fault", StringComparison.Ordinal)).ToList();
        // `rtt verify` and `rtt wal verify` name each fault on its own "fault" line (tamper cases); others say it in one or two.
        Assert.True(lines.Count <= 2 && all.Length >= 1, $"{lines.Count} stderr lines: {context}");
        if (input.Names is { } names)
        {
            Assert.Contains(names, result.Err, StringComparison.Ordinal);
        }

        if (!input.MayWrite)
        {
            var after = Snapshot(ws); // rtt.db included: `rtt wal` opens it read-only

            Assert.True(before.SequenceEqual(after), $"the workspace changed: {string.Join(", ", after.Except(before).Concat(before.Except(after)).Select(e => e.Key))}\n{context}");
        }
    }

    internal static async Task<(int Exit, string Out, string Err)> Run(string cwd, string[] args)
    {
        await Gate.WaitAsync();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var oldOut = Console.Out;
        var oldErr = Console.Error;
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            var parsed = RttCommands.Build().Parse(args);
            if (parsed.Errors.Count > 0 || (parsed.Action is System.CommandLine.Help.HelpAction && parsed.UnmatchedTokens.Count > 0))
            {
                // What Program does before invoking: unknown commands and options are user errors.
                var run = await parsed.InvokeAsync(new System.CommandLine.InvocationConfiguration { EnableDefaultExceptionHandler = false })
                    .WaitAsync(TimeSpan.FromSeconds(20));
                return (run == 0 ? 1 : run, stdout.ToString(), stderr.ToString());
            }

            var exit = await Task.Run(() => parsed.InvokeAsync(new System.CommandLine.InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false }))
                .WaitAsync(TimeSpan.FromSeconds(20));
            return (exit, stdout.ToString(), stderr.ToString());
        }
        catch (TimeoutException)
        {
            return (-1, stdout.ToString(), stderr + "\n(hung: no answer within 20 s)");
        }
        catch (Exception ex)
        {
            return (-2, stdout.ToString(), stderr + "\n" + ex);
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
            Gate.Release();
        }
    }

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }

        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }

    /// <summary>Every regular file's hash (special files planted by a case by name only), SQLite side files left out.</summary>
    private static SortedDictionary<string, string> Snapshot(string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            var rel = Path.GetRelativePath(root, file);
            if (rel.EndsWith("-shm", StringComparison.Ordinal) || rel.EndsWith("-wal", StringComparison.Ordinal))
            {
                continue;
            }

            var info = new FileInfo(file);
            result[rel] = Directory.Exists(file) ? "dir" : !Rtt.Core.Json.WorkspaceFiles.IsSpecial(file) && info.Length < (64 << 20)
                ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)))
                : $"special or large {info.Length}";
        }

        return result;
    }
}
