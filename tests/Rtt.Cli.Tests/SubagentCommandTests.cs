using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>Claude Code subagents and the commands around them, as a user runs them.</summary>
[Collection(ProcessCollection.Name)]
public sealed class SubagentCommandTests
{
    [Fact]
    public void Import_then_build_keeps_the_permission_keys_of_the_issue()
    {
        using var dir = TempDir.Quickstart(out var ws);
        const string md = "---\nname: planner\ndescription: Plans only\ntools: []\ndisallowedTools: Write, Edit, Bash\npermissionMode: plan\ncolor: red\n---\n\nYou plan.\n";
        Directory.CreateDirectory(dir["in/.claude/agents"]);
        File.WriteAllText(dir["in/.claude/agents/planner.md"], md);
        var import = RttProcess.Run(ws, "view", "import", "--provider", "claude", dir["in"]);
        Assert.True(import.ExitCode == 0, import.ToString());
        var build = RttProcess.Run(ws, "view", "build", "--provider", "claude");
        Assert.True(build.ExitCode == 0, build.ToString());
        Assert.Equal(md, File.ReadAllText(Path.Combine(ws, "providers/claude/.claude/agents/planner.md")));
    }

    [Fact]
    public void Unclosed_yaml_is_an_rtt_error_naming_the_file_in_scan_and_import()
    {
        using var dir = TempDir.Quickstart(out var ws);
        Directory.CreateDirectory(Path.Combine(ws, ".claude/agents/team"));
        File.WriteAllText(Path.Combine(ws, ".claude/agents/team/broken.md"), "---\nname: [unclosed\n---\nbody\n");
        foreach (var args in new[] { new[] { "scan" }, ["view", "import", "--provider", "claude", "."] })
        {
            var result = RttProcess.Run(ws, args);
            Assert.True(result.ExitCode == 1, result.ToString());
            Assert.Contains($"error {ErrorCodes.YamlInvalid}", result.Stderr);
            Assert.Contains("broken.md:", result.Stderr);
            Assert.DoesNotContain("   at ", result.Stderr);
        }

        // The good files around it still went in.
        Assert.Contains("\"reviewer@1.0.0\"", File.ReadAllText(Path.Combine(ws, ".rtt/registry/index.json")));
    }

    [Fact]
    public void Scan_paths_are_relative_to_the_current_folder_and_an_unread_file_is_refused()
    {
        using var dir = TempDir.Quickstart(out var ws);
        Directory.CreateDirectory(Path.Combine(ws, "team/.claude/agents"));
        File.WriteAllText(Path.Combine(ws, "team/.claude/agents/helper.md"), "---\nname: helper\ndescription: d\n---\nb\n");
        File.WriteAllText(Path.Combine(ws, "team/notes.md"), "---\nname: notes\ndescription: d\n---\nb\n");
        var scan = RttProcess.Run(Path.Combine(ws, "team"), "scan", ".claude/agents");
        Assert.True(scan.ExitCode == 0, scan.ToString());
        Assert.Contains("added      team/.claude/agents/helper.md", scan.Stdout);

        var notes = RttProcess.Run(Path.Combine(ws, "team"), "scan", "notes.md");
        Assert.True(notes.ExitCode == 1, notes.ToString());
        Assert.Contains("not one discovery reads", notes.Stderr);
    }

    [Fact]
    public void Cat_prints_exactly_the_bytes_its_hash_covers()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        var hash = (string)JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt/registry/index.json")))!["summarize@1.0.0"]!;
        // Read stdout as bytes (RttProcess reads it by lines, which would hide a trailing newline).
        var info = new System.Diagnostics.ProcessStartInfo(Path.Combine(RttProcess.CliDirectory, "rtt"), ["cat", hash])
        {
            WorkingDirectory = ws,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        using var process = System.Diagnostics.Process.Start(info)!;
        using var bytes = new MemoryStream();
        process.StandardOutput.BaseStream.CopyTo(bytes);
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(hash, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes.ToArray())));
    }

    [Fact]
    public void An_unknown_command_with_help_is_an_error()
    {
        using var dir = new TempDir();
        var result = RttProcess.Run(dir.Path, "nosuch", "--help");
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains("unknown command", result.Stderr);
        Assert.Equal(0, RttProcess.Run(dir.Path, "scan", "--help").ExitCode);
    }
}
