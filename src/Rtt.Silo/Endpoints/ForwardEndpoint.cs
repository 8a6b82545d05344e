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
/// socket by route id (nodes of one host), or a TCP lane attached to its TCP lane address (<c>tcp://host:port</c>:
/// nodes on different hosts, with a lane token for the route's target minted with the workspace key), and relays the answers (a <see cref="LaneEndpoint"/>, on the worker thread like a process
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
            var why = $"route {lane.From} -> {lane.To} is served by node {lane.Forward}, which never registered a lane address this host can reach " +
                      "(its silo is down, or it is on another host and its lane host has no TCP listener: set Lanes:TcpPort and Lanes:TcpAddress on that silo, operations.md)";
            return new ForwardEndpoint(lane, context, Unavailable(lane, why));
        }

        var endpoint = TryAttach(lane, socket, context, out var reason) is { } attached
            ? new ForwardEndpoint(lane, context, attached)
            : new ForwardEndpoint(lane, context, Unavailable(lane, reason!));
        if (endpoint.Endpoint is LaneEndpoint)
        {
            endpoint._attached.TrySetResult();
            context.Logger.LogInformation("Forward of route {Route} to node {Node}: attached ({Socket})", lane.RouteId, lane.Forward, socket);
        }

        endpoint._loop = Task.Run(() => endpoint.KeepAttachedAsync(socket));
        return endpoint;
    }

    private static DriverEndpoint Unavailable(LaneTarget lane, string why) =>
        new(new UnavailableDriver($"forward:{lane.Forward}", ErrorCodes.EndpointUnavailable, why));

    private static LaneEndpoint? TryAttach(LaneTarget lane, string socket, EndpointContext context, out string? why)
    {
        try
        {
            var route = lane.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var (upstream, _) = socket.StartsWith(TcpScheme, StringComparison.Ordinal)
                ? LaneAttach.ConnectTcp(TcpTarget(socket), route, HostSide, LaneToken(lane, context))
                : LaneAttach.ConnectUnix(socket, route, LaneKind.Uds, HostSide);
            why = null;
            return new LaneEndpoint($"forward:{lane.Forward}", upstream);
        }
        catch (Exception ex) when (ex is RttException or IOException or System.Net.Sockets.SocketException or FormatException)
        {
            why = $"route {lane.From} -> {lane.To} is forwarded to node {lane.Forward}'s lane host ({socket}), which does not serve it: {ex.Message}";
            return null;
        }
    }

    private const string TcpScheme = "tcp://";

    /// <summary><c>tcp://host:port</c> (an IP address or a host name, IPv6 in brackets) to the address to connect to.</summary>
    public static System.Net.IPEndPoint TcpTarget(string address)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || uri.Scheme != "tcp" || uri.Port <= 0)
        {
            throw new FormatException($"\"{address}\" is not tcp://host:port");
        }

        var ip = System.Net.IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var parsed) ? parsed
            : System.Net.Dns.GetHostAddresses(uri.IdnHost).OrderBy(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1).FirstOrDefault()
              ?? throw new FormatException($"host {uri.IdnHost} has no address");
        return new System.Net.IPEndPoint(ip, uri.Port);
    }

    /// <summary>A lane token for the route's target (TCP attaches need one: docs/tokens.md), minted for each attach.</summary>
    private static string? LaneToken(LaneTarget lane, EndpointContext context) =>
        Rtt.Core.Tokens.ManagementTokens.MintLane(context.Workspace.Signer.Current(), lane.To, TimeSpan.FromHours(1));

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
            else if (TryAttach(_lane, socket, _context, out _) is { } next)
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
