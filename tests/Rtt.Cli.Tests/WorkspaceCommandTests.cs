using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

[Collection(ProcessCollection.Name)]
public sealed class WorkspaceCommandTests
{
    [Fact]
    public void Init_creates_a_workspace_and_refuses_to_overwrite_it()
    {
        using var dir = new TempDir();
        var first = RttProcess.Run(dir.Path, "init", "ws");
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Contains("signing key", first.Stdout);
        var key = File.ReadAllBytes(dir["ws/.rtt/keys/default.key"]);

        var second = RttProcess.Run(dir.Path, "init", "ws");
        Assert.Equal(1, second.ExitCode);
        Assert.Contains(ErrorCodes.WorkspaceExists, second.Stderr);
        Assert.DoesNotContain("   at ", second.Stderr); // no stack trace
        Assert.Equal(key, File.ReadAllBytes(dir["ws/.rtt/keys/default.key"]));
    }

    [Fact]
    public void Init_from_the_bundled_quickstart_example()
    {
        using var dir = new TempDir();
        var result = RttProcess.Run(dir.Path, "init", "--example", "quickstart", "qs");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.True(File.Exists(dir["qs/.rtt/routes.json"]));
        Assert.Contains("rtt://core/api/metrics", File.ReadAllText(dir["qs/.rtt/routes.json"]));
        Assert.True(File.Exists(dir["qs/agents/common/summarize.agent.json"]));

        var unknown = RttProcess.Run(dir.Path, "init", "--example", "nope", "x");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains(ErrorCodes.ExampleNotFound, unknown.Stderr);
        Assert.Contains("quickstart", unknown.Stderr); // names what exists
        Assert.False(Directory.Exists(dir["x"]));
    }

    [Fact]
    public void Keys_list_new_trust_revoke()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init", "a").ExitCode);
        Assert.Equal(0, RttProcess.Run(dir.Path, "init", "b").ExitCode);
        var ws = dir["a"];

        var created = RttProcess.Run(ws, "keys", "new", "ops", "--use");
        Assert.True(created.ExitCode == 0, created.ToString());

        var otherPub = Directory.GetFiles(dir["b/.rtt/registry/trust/keys"]).Single();
        var trusted = RttProcess.Run(ws, "keys", "trust", otherPub, "--name", "partner");
        Assert.True(trusted.ExitCode == 0, trusted.ToString());

        var revoked = RttProcess.Run(ws, "keys", "revoke", "partner", "--reason", "rotated");
        Assert.True(revoked.ExitCode == 0, revoked.ToString());

        // From a subfolder: the workspace is found upwards.
        Directory.CreateDirectory(Path.Combine(ws, "agents", "common"));
        var list = RttProcess.Run(Path.Combine(ws, "agents", "common"), "keys", "list", "--json");
        Assert.True(list.ExitCode == 0, list.ToString());
        var keys = JsonNode.Parse(list.Stdout)!["keys"]!.AsArray();
        Assert.Equal(3, keys.Count);
        Assert.Single(keys, k => (bool)k!["signing"]! && (string?)k["name"] == "ops");
        Assert.Single(keys, k => (bool)k!["revoked"]! && (string?)k["name"] == "partner");

        var table = RttProcess.Run(ws, "keys", "list");
        Assert.Contains("revoked", table.Stdout);
        Assert.Contains("ops", table.Stdout);
    }

    [Fact]
    public void Keys_errors_are_clear()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var missing = RttProcess.Run(dir.Path, "keys", "trust", dir["nope.pub"]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains(ErrorCodes.KeyFileMissing, missing.Stderr);

        var badName = RttProcess.Run(dir.Path, "keys", "new", "../evil");
        Assert.Equal(1, badName.ExitCode);
        Assert.Contains(ErrorCodes.KeyNameInvalid, badName.Stderr);

        var unknown = RttProcess.Run(dir.Path, "keys", "revoke", "nobody");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains(ErrorCodes.KeyUnknown, unknown.Stderr);
    }

    [Fact]
    public void Commands_outside_a_workspace_say_so()
    {
        using var dir = new TempDir();
        var result = RttProcess.Run(dir.Path, "keys", "list");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.WorkspaceNotFound, result.Stderr);
        Assert.Contains("rtt init", result.Stderr);
    }

    [Fact]
    public void Usage_errors_exit_1()
    {
        using var dir = new TempDir();
        var result = RttProcess.Run(dir.Path, "frobnicate");
        Assert.Equal(1, result.ExitCode);
        var help = RttProcess.Run(dir.Path, "--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var command in new[] { "init", "keys", "up", "status" })
        {
            Assert.Contains(command, help.Stdout);
        }
    }
}
