namespace Rtt.Cli.Tests;

/// <summary>A temp folder removed at the end of the test.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("rtt-cli-").FullName;

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    /// <summary>A temp folder holding a workspace made from the bundled quickstart (in <c>qs/</c>), optionally scanned.</summary>
    public static TempDir Quickstart(out string workspace, bool scan = false)
    {
        var dir = new TempDir();
        workspace = dir["qs"];
        var init = RttProcess.Run(dir.Path, "init", "--example", "quickstart", workspace);
        Assert.True(init.ExitCode == 0, init.ToString());
        if (scan)
        {
            var scanned = RttProcess.Run(workspace, "scan");
            Assert.True(scanned.ExitCode == 0, scanned.ToString());
        }

        return dir;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Process tests start silos; running them one at a time keeps a 2-core machine responsive.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessCollection
{
    public const string Name = "processes";
}
