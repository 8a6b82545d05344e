using Microsoft.Extensions.Logging;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Grains.Nodes;

namespace Rtt.Silo.Endpoints;

/// <summary>
/// A route the planner placed across nodes, served on the caller's node (fabric.md, "Lanes across silos"): this lane
/// host forwards each call to the lane host of the target's node over a UDS lane attached to that node's control
/// socket by route id, and relays the answers (a <see cref="LaneEndpoint"/>, on the worker thread like a process
/// service). Until the other lane host serves the route (its silo's commit may come after this one) or after it went
/// away, calls and probes are answered with <c>RTT-CALL-003</c> naming the node, and the endpoint attaches again
/// every 100 ms to 1 s, replacing itself in the table when it succeeds.
/// </summary>
public sealed class ForwardEndpoint : IServedEndpoint
{
    private static readonly LaneOptions HostSide = new() { Backpressure = BackpressurePolicy.Fail }; // the host never waits for a peer

    private readonly LaneTarget _lane;
    private readonly EndpointContext _context;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _attached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<IFrameLane> _retired = [];
    private Task? _loop;

    private ForwardEndpoint(LaneTarget lane, EndpointContext context, Endpoint first)
    {
        _lane = lane;
        _context = context;
        Endpoint = first;
    }

    public Endpoint Endpoint { get; private set; }

    /// <summary>Completes when the first attach to the other lane host succeeded (the verify probe waits for it, briefly).</summary>
    public Task Attached => _attached.Task;

    /// <summary>Attaches at once when it can; otherwise serves the reason and keeps trying in the background.</summary>
    public static ForwardEndpoint Start(LaneTarget lane, EndpointContext context)
    {
        if (lane.ForwardTo is not { } socket)
        {
            var why = $"route {lane.From} -> {lane.To} is served by node {lane.Forward}, whose lane host is not on this host or never registered a lane socket: " +
                      "lanes across hosts are not forwarded (run the caller on the target's host, or pin both symbols to one host)";
            return new ForwardEndpoint(lane, context, Unavailable(lane, why));
        }

        var endpoint = TryAttach(lane, socket, out var reason) is { } attached
            ? new ForwardEndpoint(lane, context, attached)
            : new ForwardEndpoint(lane, context, Unavailable(lane, reason!));
        if (endpoint.Endpoint is LaneEndpoint)
        {
            endpoint._attached.TrySetResult();
        }

        endpoint._loop = Task.Run(() => endpoint.KeepAttachedAsync(socket));
        return endpoint;
    }

    private static DriverEndpoint Unavailable(LaneTarget lane, string why) =>
        new(new UnavailableDriver($"forward:{lane.Forward}", ErrorCodes.EndpointUnavailable, why));

    private static LaneEndpoint? TryAttach(LaneTarget lane, string socket, out string? why)
    {
        try
        {
            var (upstream, _) = LaneAttach.ConnectUnix(socket, lane.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture), LaneKind.Uds, HostSide);
            why = null;
            return new LaneEndpoint($"forward:{lane.Forward}", upstream);
        }
        catch (Exception ex) when (ex is RttException or IOException or System.Net.Sockets.SocketException)
        {
            why = $"route {lane.From} -> {lane.To} is forwarded to node {lane.Forward}'s lane host ({socket}), which does not serve it: {ex.Message}";
            return null;
        }
    }

    /// <summary>Attaches again whenever the upstream lane is gone (the other silo restarted, or it did not serve the route yet).</summary>
    private async Task KeepAttachedAsync(string socket)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (!_stop.IsCancellationRequested)
        {
            if (Endpoint is LaneEndpoint { Upstream.PeerGone: false })
            {
                delay = TimeSpan.FromMilliseconds(100);
            }
            else if (TryAttach(_lane, socket, out _) is { } next)
            {
                var old = Endpoint;
                Endpoint = next;
                try
                {
                    await _context.Replace(old, next);
                    _context.Logger.LogInformation("Forward of route {Route} to node {Node}: attached ({Socket})", _lane.RouteId, _lane.Forward, socket);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    _context.Logger.LogError(ex, "Forward of route {Route} to node {Node}: could not swap in the new attach", _lane.RouteId, _lane.Forward);
                }

                _attached.TrySetResult();
                if (old is LaneEndpoint l)
                {
                    lock (_retired)
                    {
                        _retired.Add(l.Upstream);
                    }
                }
            }
            else
            {
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
            }

            try
            {
                await Task.Delay(delay, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        if (Endpoint is LaneEndpoint l)
        {
            l.Upstream.Dispose();
        }

        lock (_retired)
        {
            foreach (var lane in _retired)
            {
                lane.Dispose();
            }

            _retired.Clear();
        }

        _stop.Dispose();
    }
}
