using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Tests;

/// <summary>
/// A sandboxed `process` driver with real processes (issue 17, docs/security.md): the quickstart's text service, served
/// under bubblewrap with a seccomp filter, answers its normal calls while it cannot open a TCP connection, write outside
/// the path its manifest gives, read a file it was not given, or ptrace.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class SandboxProcessTests
{
    private const string Upper = "rtt://core/api/upper";

    [Fact]
    public void A_sandboxed_driver_serves_calls_and_cannot_reach_the_network_the_workspace_or_ptrace()
    {
        Assert.True(File.Exists("/usr/bin/bwrap"), "bubblewrap is not installed (.ci/run installs it: apt-get install bubblewrap)");
        using var dir = TempDir.Quickstart(out var ws, scan: false);
        var outside = Path.Combine(dir.Path, "outside.txt");
        var given = Path.Combine(ws, "boxed-out");
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", "core.api.upper.boxed.json"), new JsonObject
        {
            ["address"] = Upper, ["version"] = "1.1.0", ["input"] = "rtt.types/Text", ["output"] = "rtt.types/Text",
            ["lanes"] = new JsonArray("shm", "uds", "tcp"), ["latency_us"] = 100, ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
            ["serve"] = new JsonObject
            {
                ["kind"] = "process", ["command"] = "${RTT_HOME}/Rtt.Samples.TextService", ["args"] = new JsonArray("--tag", "v1", "--allow-probes"),
                ["sandbox"] = new JsonObject { ["network"] = false, ["write"] = new JsonArray("boxed-out") },
            },
        }.ToJsonString());
        Assert.Equal(0, RttProcess.Run(ws, "scan").ExitCode);
        // A kernel without seccomp filters (this machine's) runs the namespace sandbox alone, as the silo says at start;
        // the filter's logic is tested in SeccompFilterTests there.
        var seccomp = Rtt.Silo.Endpoints.Sandbox.SeccompUnavailable() is null;
        var env = seccomp ? null : new Dictionary<string, string> { ["RTT_Security__SandboxWithoutSeccomp"] = "true" };
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), env, TimeSpan.FromSeconds(60));
        try
        {
            Assert.Equal(0, RttProcess.Run(ws, "plan").ExitCode);
            var apply = RttProcess.Run(ws, "apply");
            Assert.True(apply.ExitCode == 0, apply.ToString());
            var plan = File.ReadAllText(Path.Combine(ws, ".rtt", "plans", "applied.json"));
            Assert.Contains("\"sandbox\"", plan, StringComparison.Ordinal); // the profile is part of the signed plan

            Assert.Equal("v1:HELLO", Call(ws, "hello"));

            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            Assert.StartsWith("denied", Call(ws, $"probe:tcp:{port}"), StringComparison.Ordinal);
            Assert.False(listener.Pending(), "a connection reached the host");

            // The root is read-only; the workspace is not there (a write to its path lands in the sandbox's own tmpfs at most).
            Assert.StartsWith("denied", Call(ws, "probe:write:/usr/rtt-sandbox-probe"), StringComparison.Ordinal);
            Assert.False(File.Exists("/usr/rtt-sandbox-probe"));
            var routes = Path.Combine(ws, ".rtt", "routes.json");
            var before = File.ReadAllText(routes);
            Call(ws, $"probe:write:{routes}");
            Call(ws, $"probe:write:{outside}");
            Assert.Equal(before, File.ReadAllText(routes));
            Assert.False(File.Exists(outside));
            Assert.StartsWith("ok", Call(ws, $"probe:write:{Path.Combine(given, "x.txt")}"), StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(given, "x.txt")), "the given path is writable");

            var secret = Call(ws, $"probe:read:{Path.Combine(ws, ".rtt", "keys", "default.key")}");
            Assert.StartsWith("denied", secret, StringComparison.Ordinal);
            if (seccomp)
            {
                Assert.Equal("denied errno 1", Call(ws, "probe:ptrace")); // EPERM from the seccomp filter (ESRCH without it)
            }
            else
            {
                Assert.Contains("Driver sandbox without seccomp", silo.Stderr, StringComparison.Ordinal);
                Assert.StartsWith("denied", Call(ws, "probe:ptrace"), StringComparison.Ordinal); // the parent is outside: ESRCH
            }

            Assert.Equal("v1:STILL SERVING", Call(ws, "still serving"));
        }
        finally
        {
            silo.Terminate();
            Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
        }
    }

    private static string Call(string ws, string text)
    {
        var r = RttProcess.Run(ws, "call", Upper, "--args", text);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout.Trim();
    }
}
