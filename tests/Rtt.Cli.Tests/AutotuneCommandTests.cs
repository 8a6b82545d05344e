using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>`rtt autotune` refuses bad input before it measures anything: its code, the place, no stack trace, no profile written.</summary>
[Collection(ProcessCollection.Name)]
public sealed class AutotuneCommandTests
{
    [Fact]
    public void Bad_traces_and_options_are_refused_with_their_codes_and_nothing_is_written()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        File.WriteAllText(dir["bad.ndjson"], "{\"type\":\"frame\"}\nnot json\n");
        File.WriteAllText(dir["empty.ndjson"], "");
        foreach (var (args, code, says) in new (string[], string, string)[]
                 {
                     (["autotune", "--trace", "missing.ndjson"], ErrorCodes.TuneTraceMissing, "missing.ndjson"),
                     (["autotune", "--trace", "bad.ndjson"], ErrorCodes.TuneTraceMalformed, "line 1"),
                     (["autotune", "--trace", "empty.ndjson"], ErrorCodes.TuneTraceEmpty, "empty.ndjson"),
                     (["autotune", "--budget", "5s"], ErrorCodes.TuneInputInvalid, "--budget"),
                     (["autotune", "--live"], ErrorCodes.TuneLiveRefused, "\"slo\" rules"),
                     (["autotune", "live"], ErrorCodes.TuneLiveRefused, "\"slo\" rules"),
                     (["autotune", "--live", "--dry-run"], ErrorCodes.TuneLiveRefused, "--dry-run"),
                     (["autotune", "gen", "--kind", "wobbly", "--seconds", "1", "--rate", "10", "--out", "x.ndjson"], ErrorCodes.TuneInputInvalid, "--kind"),
                 })
        {
            var run = RttProcess.Run(dir.Path, args);
            Assert.True(run.ExitCode == 1, $"rtt {string.Join(' ', args)}: {run}");
            Assert.Contains(code, run.Stderr, StringComparison.Ordinal);
            Assert.Contains(says, run.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", run.Stderr, StringComparison.Ordinal);
        }

        Assert.False(Directory.Exists(dir[".rtt/tuned"]) && Directory.EnumerateFiles(dir[".rtt/tuned"]).Any(), "a refused run wrote into .rtt/tuned");
        Assert.False(File.Exists(dir["x.ndjson"]));
    }
}
