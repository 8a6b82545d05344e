using System.Diagnostics;
using System.Globalization;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Tests;

/// <summary>
/// Endpoints locked down (issue 17, docs/security.md): under umask 000 the workspace, the state folder, the database and
/// the lane socket still get 0700/0600; another local user (nobody) can neither add a trusted key nor attach; the
/// silo's ports listen on loopback only; a too-open workspace is refused at start with the chmod that fixes it.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class EndpointModesTests
{
    private static readonly UnixFileMode Private = WorkspaceModes.Folder;

    [Fact]
    public void Under_umask_000_everything_of_a_running_silo_is_private_and_nobody_gets_in()
    {
        using var dir = new TempDir();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755: nobody may walk up to the workspace, no further
        var ws = dir["ws"];
        var init = Shell(dir.Path, $"umask 000; exec '{Rtt()}' init --example quickstart '{ws}'");
        Assert.True(init.ExitCode == 0, init.ToString());
        Assert.Equal(Private, File.GetUnixFileMode(Path.Combine(ws, ".rtt")));
        Assert.Equal(Private, File.GetUnixFileMode(Path.Combine(ws, ".rtt/registry/trust/keys")));
        Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(Path.Combine(ws, ".rtt/keys/default.key")));

        var (siloPort, gatewayPort) = (RttProcess.FreePort(), RttProcess.FreePort());
        using var silo = StartUnderUmask000(ws, siloPort, gatewayPort);
        try
        {
            var state = Path.Combine(ws, ".rtt/state");
            Assert.Equal(Private, File.GetUnixFileMode(state));
            foreach (var file in new[] { "rtt.db", "lanes.sock", "silo.json" })
            {
                Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(Path.Combine(state, file)));
            }

            // Loopback only: the silo and gateway ports are bound to 127.0.0.1, not 0.0.0.0.
            var listening = ListeningTcp();
            foreach (var port in new[] { siloPort, gatewayPort })
            {
                Assert.True(listening.TryGetValue(port, out var address), $"port {port} not listening");
                Assert.Equal("0100007F", address);
            }

            if (!NobodyAvailable())
            {
                Assert.Fail("runuser -u nobody is not available on this machine: the cross-user checks cannot run");
            }

            // Another local user can neither add a trusted key nor reach the lane socket.
            var evil = Path.Combine(ws, ".rtt/registry/trust/keys/evil.pub");
            var write = Nobody($"echo '{{}}' > '{evil}'");
            Assert.NotEqual(0, write.ExitCode);
            Assert.False(File.Exists(evil));
            var attach = Nobody($"/usr/bin/python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); s.connect('{Path.Combine(state, "lanes.sock")}')\"");
            Assert.NotEqual(0, attach.ExitCode);
            Assert.Contains("PermissionError", attach.Stderr, StringComparison.Ordinal);
            var read = Nobody($"cat '{Path.Combine(ws, ".rtt/keys/default.key")}'");
            Assert.NotEqual(0, read.ExitCode);
        }
        finally
        {
            silo.Terminate();
            Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
        }
    }

    [Fact]
    public void A_too_open_trust_folder_stops_the_start_with_the_chmod_that_fixes_it()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var keys = dir[".rtt/registry/trust/keys"];
        File.SetUnixFileMode(keys, (UnixFileMode)0x1FF); // 0777, as a umask 000 copy leaves it
        var result = RttProcess.Run(dir.Path, "up", "--once");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.ModesTooOpen, result.Stderr, StringComparison.Ordinal);
        Assert.Contains($"chmod 700 '{keys}'", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir[".rtt/state/rtt.db"]), "nothing should start on a too-open workspace");
    }

    private static string Rtt() => Path.Combine(RttProcess.CliDirectory, "rtt");

    private static RttProcess StartUnderUmask000(string ws, int siloPort, int gatewayPort)
    {
        var silo = RttProcess.Start(ws, null, ["up", "--silo-port", siloPort.ToString(CultureInfo.InvariantCulture), "--gateway-port", gatewayPort.ToString(CultureInfo.InvariantCulture)], shell: "umask 000; exec \"$0\" \"$@\"");
        return RttProcess.WaitUntilUp(silo, ws, TimeSpan.FromSeconds(60));
    }

    /// <summary>TCP ports in LISTEN state and the address each is bound to (hex, as /proc/net/tcp gives it).</summary>
    private static Dictionary<int, string> ListeningTcp()
    {
        var result = new Dictionary<int, string>();
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts[3] == "0A")
            {
                var local = parts[1].Split(':');
                result[int.Parse(local[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture)] = local[0];
            }
        }

        return result;
    }

    private static bool NobodyAvailable() => File.Exists("/usr/sbin/runuser") && Environment.UserName == "root" && Nobody("true").ExitCode == 0;

    private static RttResult Nobody(string command) => Run("/usr/sbin/runuser", "/", ["-u", "nobody", "--", "/bin/sh", "-c", command]);

    private static RttResult Shell(string cwd, string command) => Run("/bin/sh", cwd, ["-c", command]);

    private static RttResult Run(string file, string cwd, string[] args)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
        }

        p.WaitForExit();
        return new RttResult(p.ExitCode, stdout.Result, stderr.Result);
    }
}
