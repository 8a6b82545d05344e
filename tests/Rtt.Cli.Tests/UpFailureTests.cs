using System.Globalization;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>
/// `rtt up` runs that fail on a user's mistake (issue 15, items 7 and 10): one RTT error and its hint on stderr, no
/// Orleans log lines or stack traces (the start's log goes to .rtt/state/silo-start.log), nothing of the silo left
/// behind, nothing of the user's deleted.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class UpFailureTests
{
    private static RttResult Up(string workspace) =>
        RttProcess.Run(workspace, "up", "--once", "--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture),
            "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture));

    private static void OneClearError(RttResult result, string code)
    {
        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Contains(code, result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);   // no stack trace
        Assert.DoesNotContain(" fail: ", result.Stderr);  // no host/Orleans error lines before the RTT one
        Assert.DoesNotContain(" warn: ", result.Stderr);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length <= 2, result.ToString());
    }

    [Fact]
    public void An_mcp_gateway_without_a_caller_symbol_or_with_a_bad_call_timeout_is_one_clear_error()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        string[] ports = ["--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture), "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture), "--panel-port", "0"];

        var notSymbol = RttProcess.Run(dir.Path, ["up", "--once", "--mcp", "ui/chat/tools", .. ports]);
        OneClearError(notSymbol, ErrorCodes.GatewayOptionInvalid);
        Assert.Contains("McpGateway:Caller", notSymbol.Stderr);
        var noCaller = RttProcess.RunWith(dir.Path, new Dictionary<string, string> { ["RTT_McpGateway__Enabled"] = "true" }, ["up", "--once", .. ports]);
        OneClearError(noCaller, ErrorCodes.GatewayOptionInvalid);
        Assert.Contains("no caller symbol", noCaller.Stderr);
        var timeout = RttProcess.RunWith(dir.Path, new Dictionary<string, string> { ["RTT_McpGateway__CallTimeoutSeconds"] = "0" }, ["up", "--once", "--mcp", "rtt://ui/chat/tools", .. ports]);
        OneClearError(timeout, ErrorCodes.GatewayOptionInvalid);
        Assert.Contains("McpGateway:CallTimeoutSeconds", timeout.Stderr);
        Assert.False(File.Exists(dir[".rtt/state/silo.json"]));
    }

    [Fact]
    public void A_folder_at_the_lane_socket_path_is_one_clear_error_and_stays()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        Directory.CreateDirectory(dir[".rtt/state/lanes.sock"]);

        var result = Up(dir.Path);

        OneClearError(result, ErrorCodes.LaneSetupFailed);
        Assert.Contains("a folder is where the lane socket goes", result.Stderr);
        Assert.DoesNotContain("Address already in use", result.Stderr);
        Assert.Contains("lanes.sock", result.Stderr);
        Assert.True(Directory.Exists(dir[".rtt/state/lanes.sock"]));
        Assert.False(File.Exists(dir[".rtt/state/silo.json"]));
        // The detail is kept, stack trace included, for whoever wants it.
        var log = File.ReadAllText(dir[".rtt/state/silo-start.log"]);
        Assert.Contains("Hosting failed to start", log);
        Assert.Contains("   at ", log);
    }

    [Fact]
    public void A_regular_file_at_the_lane_socket_path_is_refused_not_deleted()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        File.WriteAllText(dir[".rtt/state/lanes.sock"], "my notes");

        var result = Up(dir.Path);

        OneClearError(result, ErrorCodes.LaneSetupFailed);
        Assert.Contains("not a socket", result.Stderr);
        Assert.Equal("my notes", File.ReadAllText(dir[".rtt/state/lanes.sock"]));
    }

    [Fact]
    public void A_discovery_error_in_up_once_is_reported_once_and_leaves_no_silo_json()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        Directory.CreateDirectory(dir["agents"]);
        File.WriteAllText(dir["agents/bad.agent.json"], "{");

        var result = Up(dir.Path);

        Assert.True(result.ExitCode == 1, result.ToString());
        Assert.Single(result.Stderr.Split("error RTT-", StringSplitOptions.None).Skip(1)); // the error once, not twice
        Assert.Contains(ErrorCodes.JsonInvalid, result.Stderr);
        Assert.Contains("bad.agent.json", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.DoesNotContain(" warn: ", result.Stderr);
        Assert.False(File.Exists(dir[".rtt/state/silo.json"]), "a silo that is gone left its silo.json");
        Assert.False(File.Exists(dir[".rtt/state/lanes.sock"]));

        // The workspace is free at once: a fixed agent starts.
        File.WriteAllText(dir["agents/bad.agent.json"], """{"id":"bad","version":"1.0.0","description":"now fine","instructions":"say hi"}""");
        var again = Up(dir.Path);
        Assert.True(again.ExitCode == 0, again.ToString());
    }
}
