using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace Rtt.Cli.Tests;

/// <summary>Runs the built <c>rtt</c> binary as a real OS process.</summary>
public sealed partial class RttProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private bool _disposed;

    private RttProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stdout)
                {
                    _stdout.AppendLine(e.Data);
                }
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public static string CliDirectory { get; } = Path.GetFullPath(typeof(RttProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RttCliDirectory").Value!);

    public int Id => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Starts rtt with the arguments; the environment gets RTT_ settings from <paramref name="env"/>.</summary>
    public static RttProcess Start(string workingDirectory, IReadOnlyDictionary<string, string>? env, params string[] args) => Start(workingDirectory, env, args, shell: null);

    /// <summary>As above; with <paramref name="shell"/>, through <c>/bin/sh -c SHELL rtt ARGS…</c> (e.g. <c>umask 000; exec "$0" "$@"</c>).</summary>
    public static RttProcess Start(string workingDirectory, IReadOnlyDictionary<string, string>? env, string[] args, string? shell)
    {
        if (shell is not null)
        {
            args = ["-c", shell, Path.Combine(CliDirectory, "rtt"), .. args];
        }

        var info = new ProcessStartInfo(shell is null ? Path.Combine(CliDirectory, "rtt") : "/bin/sh")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["NO_COLOR"] = "1";
        info.Environment["COLUMNS"] = "200";
        foreach (var (key, value) in env ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        return new RttProcess(Process.Start(info)!);
    }

    /// <summary>Starts <c>rtt up</c> on a workspace and returns once the silo is up (silo.json written, banner printed).</summary>
    public static RttProcess StartSilo(string workspace, int siloPort, int gatewayPort, IReadOnlyDictionary<string, string>? env, TimeSpan timeout, params string[] extra)
    {
        var silo = Start(workspace, env, ["up", "--silo-port", siloPort.ToString(CultureInfo.InvariantCulture), "--gateway-port", gatewayPort.ToString(CultureInfo.InvariantCulture), .. extra]);
        return WaitUntilUp(silo, workspace, timeout);
    }

    /// <summary>Returns <paramref name="silo"/> once it is up (silo.json written, banner printed); kills it after <paramref name="timeout"/>.</summary>
    public static RttProcess WaitUntilUp(RttProcess silo, string workspace, TimeSpan timeout)
    {
        var info = Path.Combine(workspace, ".rtt", "state", "silo.json");
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (silo.HasExited)
            {
                throw new InvalidOperationException($"silo exited with {silo.ExitCode}\n{silo.Stdout}\n{silo.Stderr}");
            }

            if (silo.Stdout.Contains("Ctrl-C", StringComparison.Ordinal) && File.Exists(info))
            {
                return silo;
            }

            Thread.Sleep(50);
        }

        silo.Kill();
        throw new TimeoutException($"silo did not come up\n{silo.Stdout}\n{silo.Stderr}");
    }

    /// <summary>Runs rtt to completion and returns its exit code and output.</summary>
    public static RttResult Run(string workingDirectory, params string[] args) => RunWith(workingDirectory, null, args);

    public static RttResult RunWith(string workingDirectory, IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        using var p = Start(workingDirectory, env, args);
        if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            p.Kill();
            throw new TimeoutException($"rtt {string.Join(' ', args)} did not finish in 90 s\n{p.Stdout}\n{p.Stderr}");
        }

        return new RttResult(p.ExitCode, p.Stdout, p.Stderr);
    }

    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        _process.WaitForExit(); // drains the output readers
        return true;
    }

    /// <summary>kill -9: no chance to clean up.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    /// <summary>SIGTERM, as a service manager sends it.</summary>
    public void Terminate() => _ = SysKill(_process.Id, 15);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    /// <summary>Kills the process if it still runs; a second call does nothing (a test's finally may dispose what it already did).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }

    /// <summary>A TCP port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public sealed record RttResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}
