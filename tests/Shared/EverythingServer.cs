using System.Diagnostics;
using Xunit;

namespace Rtt.Tests.Shared;

/// <summary>
/// The real <c>@modelcontextprotocol/server-everything</c> from npm, installed under tests/mcp by .ci/run (or here,
/// once, when it is missing). Compiled into each test project that starts it (linked source, one copy).
/// </summary>
public sealed class EverythingServer
{
    public EverythingServer()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rtt.sln")))
        {
            dir = dir.Parent;
        }

        var folder = Path.Combine(dir!.FullName, "tests", "mcp");
        Entry = Path.Combine(folder, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
        if (!File.Exists(Entry))
        {
            using var npm = Process.Start(new ProcessStartInfo("npm", "install --no-audit --no-fund") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true })!;
            npm.WaitForExit(TimeSpan.FromMinutes(5));
        }

        Assert.True(File.Exists(Entry), $"npm install in {folder} did not provide {Entry}");
    }

    /// <summary>The server's entry script (run it with <c>node ENTRY stdio</c>).</summary>
    public string Entry { get; }
}
