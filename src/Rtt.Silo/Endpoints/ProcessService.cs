using System.Diagnostics;
using System.Net.Sockets;
using System.Numerics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Services;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Silo.Endpoints;

/// <summary>
/// A <c>process</c> endpoint: a service in another process speaking RTT frames over a lane (docs/calls.md). The silo
/// listens on a Unix socket of its own for this endpoint, starts the service (unless <c>attach</c>) with that socket in
/// <c>RTT_SERVICE_SOCKET</c>, and the lane the service attaches with becomes the route's <see cref="LaneEndpoint"/>.
/// Supervised: a service that exits is restarted with backoff (1/4 s doubling to 10 s); every new attach replaces the
/// endpoint in the route table (in-flight calls on the old one get RTT-LANE-005). Its stdout and stderr go to the silo log.
/// </summary>
public sealed class ProcessService : IServedEndpoint
{
    private readonly JsonObject _serve;
    private readonly EndpointContext _context;
    private readonly Socket _listener;
    private readonly string _socketPath;
    private readonly CancellationTokenSource _stop = new();
    private readonly int _window;
    private static readonly LaneOptions HostSide = new() { Backpressure = BackpressurePolicy.Fail }; // the host never waits for a service

    private readonly LaneOptions _options = HostSide;
    private readonly List<IFrameLane> _retired = [];
    private Process? _process;
    private Task? _supervisor;
    private Task? _acceptor;

    private ProcessService(JsonObject serve, EndpointContext context, Socket listener, string socketPath, LaneEndpoint first, Process? process)
    {
        _serve = serve;
        _context = context;
        _listener = listener;
        _socketPath = socketPath;
        _window = first.Window;
        Endpoint = first;
        _process = process;
    }

    public Endpoint Endpoint { get; private set; }

    /// <summary>
    /// The Unix socket a process endpoint's service attaches on: <c>.rtt/state/svc-&lt;12 hex of the endpoint hash&gt;.sock</c>,
    /// or a temp-folder path when that is too long for a Unix socket (the same rule as the lane control socket).
    /// </summary>
    public static string SocketPath(RttWorkspace workspace, string shortHash) => workspace.StateSocket($"svc-{shortHash}.sock", $"rtt-svc-{shortHash}");

    public static async Task<IServedEndpoint> StartAsync(JsonObject serve, EndpointContext context, CancellationToken cancellationToken)
    {
        var path = SocketPath(context.Workspace, context.Short);
        var listener = LaneSockets.ListenUnix(path);
        Process? process = null;
        try
        {
            var attachOnly = (bool?)serve["attach"] ?? false;
            if (!attachOnly)
            {
                process = Launch(serve, context, path);
            }

            var timeout = TimeSpan.FromMilliseconds((int?)serve["start_timeout_ms"] ?? ServeSpec.DefaultStartTimeoutMs);
            var lane = await AcceptAsync(listener, process, context, timeout, cancellationToken);
            var window = (int)BitOperations.RoundUpToPowerOf2((uint)((int?)serve["window"] ?? ServeSpec.DefaultWindow));
            var endpoint = new LaneEndpoint($"process:{context.Short}", lane, null, window);
            var service = new ProcessService(serve, context, listener, path, endpoint, process);
            service._acceptor = Task.Run(service.AcceptLoopAsync);
            if (process is not null)
            {
                service._supervisor = Task.Run(service.SuperviseAsync);
            }

            context.Logger.LogInformation("Process endpoint {Endpoint} attached ({Lane}) on {Socket}", context.Short, lane.Kind, path);
            return service;
        }
        catch
        {
            Stop(process);
            listener.Dispose();
            TryDelete(path);
            throw;
        }
    }

    private static Process Launch(JsonObject serve, EndpointContext context, string socketPath)
    {
        var root = context.Workspace.Root;
        var info = new ProcessStartInfo(ServeSpec.ResolvePath(root, (string)serve["command"]!, isCommand: true))
        {
            WorkingDirectory = serve["cwd"] is { } cwd ? ServeSpec.ResolvePath(root, (string)cwd!) : root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in serve["args"] as JsonArray ?? [])
        {
            info.ArgumentList.Add(ServeSpec.Expand((string)arg!));
        }

        foreach (var (name, value) in serve["env"] as JsonObject ?? [])
        {
            info.Environment[name] = ServeSpec.Expand((string)value!);
        }

        info.Environment[ServiceHost.SocketVariable] = socketPath;
        info.Environment[ServiceHost.LaneVariable] = (string?)serve["lane"] ?? "shm";
        if (Sandbox.Of(serve, root) is { } profile)
        {
            info = Sandbox.Wrap(info, profile, context.Workspace, [socketPath]); // bubblewrap + seccomp (docs/security.md)
            if (Sandbox.SeccompUnavailable() is { } noFilter)
            {
                context.Logger.LogWarning("Process endpoint {Endpoint} runs in its bubblewrap sandbox WITHOUT the seccomp filter: {Why}", context.Short, noFilter);
            }
        }

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException("no process started");
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new RttException(ErrorCodes.EndpointUnavailable, $"cannot start \"{info.FileName}\": {ex.Message}", context.Hash,
                "check serve.command (a path relative to the workspace, or a program on PATH) and serve.cwd");
        }

        var tag = context.Short;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                context.Logger.LogInformation("[svc {Endpoint} stdout] {Line}", tag, e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                context.Logger.LogInformation("[svc {Endpoint} stderr] {Line}", tag, e.Data); // as an MCP server's stderr: its diagnostics, not ours to rate
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        context.Logger.LogInformation("Process endpoint {Endpoint}: started {Command} (pid {Pid})", tag, info.FileName, process.Id);
        return process;
    }

    /// <summary>Waits for the service to attach; fails when the process exits first or the time runs out.</summary>
    private static async Task<IFrameLane> AcceptAsync(Socket listener, Process? process, EndpointContext context, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var accept = listener.AcceptAsync(cts.Token).AsTask();
        var exited = process is null ? Task.Delay(Timeout.Infinite, cts.Token) : process.WaitForExitAsync(cts.Token);
        var first = await Task.WhenAny(accept, exited);
        if (first == accept && accept.IsCompletedSuccessfully)
        {
            var socket = accept.Result;
            return await Task.Run(() => LaneAttach.Accept(socket, _ => 1u, HostSide, context.Doorbell))
                ?? throw new RttException(ErrorCodes.EndpointUnavailable, "the service connected but did not speak the attach protocol", context.Hash,
                    "serve the lane with Rtt.Fabric.Services.ServiceHost (docs/calls.md)");
        }

        cts.Cancel();
        if (process is { HasExited: true })
        {
            throw new RttException(ErrorCodes.EndpointUnavailable, $"the service process exited at start with code {process.ExitCode} before attaching", context.Hash,
                "run the command by hand to see why; its output is in the silo log");
        }

        cancellationToken.ThrowIfCancellationRequested();
        throw new RttException(ErrorCodes.EndpointUnavailable, $"the service did not attach within {timeout.TotalMilliseconds:0} ms", context.Hash,
            "a process service attaches on RTT_SERVICE_SOCKET (docs/calls.md); raise serve.start_timeout_ms if it starts slowly");
    }

    /// <summary>Every later attach (a restarted service, or one that reattached by itself) replaces the endpoint.</summary>
    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            IFrameLane? lane;
            try
            {
                var socket = await _listener.AcceptAsync(_stop.Token);
                lane = await Task.Run(() => LaneAttach.Accept(socket, _ => 1u, _options, _context.Doorbell));
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _context.Logger.LogWarning("Process endpoint {Endpoint}: an attach failed: {Message}", _context.Short, ex.Message);
                continue;
            }

            if (lane is null)
            {
                continue;
            }

            var old = Endpoint;
            var next = new LaneEndpoint($"process:{_context.Short}", lane, null, _window);
            Endpoint = next;
            try
            {
                await _context.Replace(old, next);
                _context.Logger.LogInformation("Process endpoint {Endpoint}: the service attached again; route table updated", _context.Short);
            }
            catch (Exception ex)
            {
                _context.Logger.LogError(ex, "Process endpoint {Endpoint}: could not swap in the new attach", _context.Short);
            }

            if (old is LaneEndpoint l)
            {
                lock (_retired)
                {
                    _retired.Add(l.Upstream);
                }
            }
        }
    }

    /// <summary>Restarts the service when it exits (backoff 1/4 s doubling to 10 s; back to 1/4 s after a minute up).</summary>
    private async Task SuperviseAsync()
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!_stop.IsCancellationRequested)
        {
            var process = _process!;
            var started = DateTime.UtcNow;
            try
            {
                await process.WaitForExitAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            _context.Logger.LogWarning("Process endpoint {Endpoint}: the service (pid {Pid}) exited with code {Code}; restarting in {Delay} ms",
                _context.Short, process.Id, process.ExitCode, backoff.TotalMilliseconds);
            process.Dispose();
            if (DateTime.UtcNow - started > TimeSpan.FromMinutes(1))
            {
                backoff = TimeSpan.FromMilliseconds(250);
            }

            try
            {
                await Task.Delay(backoff, _stop.Token);
                _process = Launch(_serve, _context, _socketPath);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (RttException ex)
            {
                _context.Logger.LogError("Process endpoint {Endpoint}: restart failed: {Message}", _context.Short, ex.Message);
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        foreach (var task in new[] { _acceptor, _supervisor })
        {
            if (task is not null)
            {
                await task.ConfigureAwait(false);
            }
        }

        if (Endpoint is LaneEndpoint l)
        {
            l.Upstream.Dispose(); // the service sees its lane close and exits by itself
        }

        lock (_retired)
        {
            foreach (var lane in _retired)
            {
                lane.Dispose();
            }
        }

        if (_process is { } p)
        {
            try
            {
                if (!p.WaitForExit(2000))
                {
                    Stop(p);
                }
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        TryDelete(_socketPath);
    }

    private static void Stop(Process? process)
    {
        try
        {
            if (process is { HasExited: false })
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
