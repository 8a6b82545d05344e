using System.Diagnostics;
using System.Globalization;
using System.Net;
using Rtt.Core.Autotune;
using Trace = Rtt.Core.Autotune.Trace;
using Rtt.Core.Errors;
using Rtt.Fabric.Autotune;
using Rtt.Lanes.Bench;
using Rtt.Fabric.Lanes;

namespace Rtt.Cli.Autotune;

/// <summary>
/// Measures one <see cref="TuneSettings"/> on one trace: starts a lane host process with those settings
/// (<c>rtt autotune host</c>: the real lane host, listener and idle strategy), replays the trace through it from this
/// process at its recorded timing (p50/p99, HdrHistogram as <c>rtt bench lanes</c>) and at full speed (frames/s), and
/// reads the host process's CPU time (all its threads, ns from /proc/PID/task/*/schedstat) per replayed frame.
/// </summary>
internal sealed class ReplayBench : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"rtt-tune-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
    private int _runs;
    private readonly Trace _warmUp;

    public ReplayBench(Trace trace, LaneKind lane)
    {
        Trace = trace;
        Lane = lane;
        _warmUp = new Trace([.. trace.Frames.Take(1_000)], "warm-up");
        Directory.CreateDirectory(_dir);
    }

    public Trace Trace { get; }

    public LaneKind Lane { get; }

    /// <summary>Seconds the measurements took so far, and how many there were.</summary>
    public double SecondsSpent { get; private set; }

    public int Measurements { get; private set; }

    public ReplayFigures Measure(TuneSettings settings) => Measure(settings, Lane);

    public ReplayFigures Measure(TuneSettings settings, LaneKind lane)
    {
        var started = Stopwatch.GetTimestamp();
        var socket = Path.Combine(_dir, $"h{_runs++}.sock");
        using var host = StartHost(settings, socket, lane == LaneKind.Tcp);
        try
        {
            // Warm-up, unrecorded: the first 1,000 frames at full speed, so JIT compilation and the first touches of the
            // fresh rings (a new host process per setting) are not measured as the trace's tail latency.
            TraceReplayer.Run(_warmUp, socket, host.Tcp, lane, fullSpeed: true, ringCapacity: settings.RingCapacity);
            var cpuBefore = CpuNs(host.Process.Id);
            var timed = TraceReplayer.Run(Trace, socket, host.Tcp, lane, fullSpeed: false, ringCapacity: settings.RingCapacity);
            var full = TraceReplayer.Run(Trace, socket, host.Tcp, lane, fullSpeed: true, ringCapacity: settings.RingCapacity);
            var cpu = CpuNs(host.Process.Id) - cpuBefore;
            var stats = LatencyStats.From(timed.Latency);
            return new ReplayFigures(stats.P50, stats.P99, full.FramesPerSecond, (double)cpu / (timed.Frames + full.Frames), timed.Frames);
        }
        catch (RttException ex) when (ex.Code == ErrorCodes.TuneReplayFailed)
        {
            host.Process.StandardInput.Close(); // the host prints its counts as it exits
            var said = host.Process.WaitForExit(5000) ? host.Process.StandardError.ReadToEnd().Trim() : "";
            throw new RttException(ex.Code, $"{ex.Message} ({settings}); {said}", ex.Location, ex.Remedy, ex);
        }
        finally
        {
            SecondsSpent += Stopwatch.GetElapsedTime(started).TotalSeconds;
            Measurements++;
        }
    }

    /// <summary>The host process's threads' CPU time so far, ns (0 when /proc does not say).</summary>
    private static long CpuNs(int pid)
    {
        long total = 0;
        try
        {
            foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    var text = File.ReadAllText(Path.Combine(task, "schedstat"));
                    total += long.Parse(text.AsSpan(0, text.IndexOf(' ')), CultureInfo.InvariantCulture);
                }
                catch (IOException)
                {
                    // the thread ended meanwhile
                }
            }
        }
        catch (DirectoryNotFoundException)
        {
        }

        return total;
    }

    private HostProcess StartHost(TuneSettings settings, string socket, bool tcp)
    {
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            info.ArgumentList.Add(typeof(ReplayBench).Assembly.Location); // run as `dotnet rtt.dll`
        }

        string[] args =
        [
            "autotune", "host", "--socket", socket, "--routes", string.Join('\n', Trace.Routes),
            "--max-answer", Trace.Frames.Max(f => f.AnswerBytes).ToString(CultureInfo.InvariantCulture),
            "--ring", settings.RingSize.ToString(CultureInfo.InvariantCulture), "--spins", settings.Spins.ToString(CultureInfo.InvariantCulture),
            "--yields", settings.Yields.ToString(CultureInfo.InvariantCulture), "--park", settings.Park ? "true" : "false", "--cpus", settings.Cpus.Count == 0 ? "any" : settings.CpusText,
        ];
        foreach (var arg in args.Concat(tcp ? ["--tcp"] : []))
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        var ready = process.StandardOutput.ReadLineAsync();
        if (!ready.Wait(TimeSpan.FromSeconds(30)) || ready.Result is not { } line || !line.StartsWith("ready ", StringComparison.Ordinal))
        {
            var error = process.HasExited || process.WaitForExit(2000) ? process.StandardError.ReadToEnd().Trim() : "no answer in 30 s";
            try
            {
                process.Kill();
            }
            catch (InvalidOperationException)
            {
            }

            process.Dispose();
            throw new RttException(ErrorCodes.TuneReplayFailed, $"the replay lane host ({settings}) did not start: {error}", "rtt autotune host",
                "check the settings (CPUs this process may use) and that rtt runs");
        }

        var port = int.Parse(line["ready ".Length..], CultureInfo.InvariantCulture);
        return new HostProcess(process, port > 0 ? new IPEndPoint(IPAddress.Loopback, port) : null);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private sealed record HostProcess(Process Process, IPEndPoint? Tcp) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                Process.StandardInput.Close(); // the host exits when its stdin closes
                if (!Process.WaitForExit(5000))
                {
                    Process.Kill();
                    Process.WaitForExit(2000);
                }
            }
            catch (InvalidOperationException)
            {
            }

            Process.Dispose();
        }
    }
}
