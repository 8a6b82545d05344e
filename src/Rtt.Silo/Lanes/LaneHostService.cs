using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Routing;
using Rtt.Grains.Nodes;

namespace Rtt.Silo.Lanes;

/// <summary>The <c>Lanes</c> configuration section.</summary>
public sealed class RttLaneOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>The Unix control socket clients attach on; default <c>.rtt/state/lanes.sock</c>.</summary>
    public string? ControlSocket { get; set; }

    /// <summary>Also accept TCP lanes on 127.0.0.1:PORT (0: no TCP listener).</summary>
    public int TcpPort { get; set; }

    public int RingCapacity { get; set; } = 1 << 20;

    public int MaxPayload { get; set; } = 64 * 1024;

    /// <summary>CPUs the lane worker thread is pinned to (empty: not pinned).</summary>
    public List<int> Cpus { get; set; } = [];
}

/// <summary>
/// The silo's lane host: one per node, owning all its lanes. Starts a <see cref="LaneHost"/> worker thread
/// (outside any grain turn), serves the workspace's routes, and accepts client attachments on the control
/// socket. Grains drive it through <see cref="ILaneHost"/>; no frame ever enters the actor scheduler.
/// </summary>
public sealed class LaneHostService(RttWorkspace workspace, RttLaneOptions options, ILogger<LaneHostService> logger, string nodeId = "node0") : IHostedService, ILaneHost, INodeLaneHost, IDisposable
{
    private static readonly DriverEndpoint Echo = new(new EchoDriver());

    private LaneHost? _host;
    private LaneHostListener? _listener;

    /// <summary>
    /// <c>Lanes:ControlSocket</c>, else <c>.rtt/state/lanes.sock</c>, else (a workspace path too long for a Unix
    /// socket) a short path in the temp folder derived from the workspace, so each workspace has its own.
    /// </summary>
    public string ControlSocket => options.ControlSocket ?? DefaultControlSocket(workspace);

    public static string DefaultControlSocket(RttWorkspace workspace)
    {
        var inState = Path.Combine(workspace.State, "lanes.sock");
        if (Path.GetFullPath(inState).Length <= MaxSocketPath)
        {
            return inState;
        }

        var id = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(workspace.Root)))[..12];
        return Path.Combine(Path.GetTempPath(), $"rtt-lanes-{id}.sock");
    }

    private const int MaxSocketPath = 100; // sun_path holds 108 bytes with the terminator; keep a margin

    public IPEndPoint? TcpEndPoint => _listener?.TcpEndPoint;

    public RouteTable Routes => _host?.Routes ?? RouteTable.Empty;

    public IReadOnlyList<IFrameLane> Inbound => _host?.Inbound ?? [];

    public bool Running => _host is not null;

    public Task SwapAsync(RouteTable next) => (_host ?? throw new InvalidOperationException("the lane host is not running")).SwapAsync(next);

    public string NodeId => nodeId;

    public IReadOnlyCollection<uint> RouteIds => [.. Routes.Routes.Select(r => r.RouteId)];

    /// <summary>
    /// A plan's lanes for this node as a table: each route keeps the id the plan gives it, is named by its target
    /// symbol, and is served by the built-in echo driver (service drivers attach as lane endpoints).
    /// </summary>
    public static RouteTable TableOf(IEnumerable<LaneTarget> lanes) => new(lanes.Select(l => new RouteEntry(l.RouteId, l.Name, Echo)));

    public Task ServeAsync(IReadOnlyList<LaneTarget> lanes) => SwapAsync(TableOf(lanes));

    /// <summary>Attaches over the control socket like a client (SHM, UDS, or TCP when a TCP port is open) and sends one probe frame.</summary>
    public Task<string?> ProbeAsync(LaneTarget lane, TimeSpan timeout) => Task.Run(() => Probe(lane, timeout));

    private string? Probe(LaneTarget lane, TimeSpan timeout)
    {
        if (_host is null)
        {
            return "the lane host is not running";
        }

        IFrameLane client;
        try
        {
            client = lane.Kind == "tcp" && TcpEndPoint is { } tcp
                ? LaneAttach.ConnectTcp(tcp, lane.Name).Lane
                : LaneAttach.ConnectUnix(ControlSocket, lane.Name, lane.Kind == "uds" || lane.Kind == "tcp" ? LaneKind.Uds : LaneKind.Shm).Lane;
        }
        catch (RttException ex)
        {
            return $"attach failed: {ex.Message}";
        }

        using (client)
        {
            Span<byte> probe = stackalloc byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(probe, 0x45424f52505454UL); // "RTTPROBE"
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(probe[8..], lane.RouteId);
            if (!client.Send(lane.RouteId, 1, probe) || !client.Flush())
            {
                return "the probe frame could not be sent";
            }

            var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
            var answered = false;
            var echoed = false;
            var expected = probe.ToArray();
            while (!answered && Environment.TickCount64 < deadline && !client.PeerGone)
            {
                if (client.Poll((in FrameHeader h, ReadOnlySpan<byte> payload) =>
                    {
                        answered = h.FrameId == 1 && h.RouteId == lane.RouteId;
                        echoed = answered && payload.SequenceEqual(expected);
                    }) == 0)
                {
                    client.WaitForData(TimeSpan.FromMilliseconds(5));
                }
            }

            return answered ? echoed ? null : "the answer did not match the probe" : client.PeerGone ? "the lane host closed the lane" : $"no answer within {timeout.TotalMilliseconds:0} ms";
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            return;
        }

        if (Path.GetFullPath(ControlSocket).Length > MaxSocketPath)
        {
            throw new HostingException(ErrorCodes.LaneConfigInvalid, "the lane control socket path is longer than a Unix socket allows (about 100 bytes)", "Lanes:ControlSocket",
                "set Lanes:ControlSocket (or RTT_Lanes__ControlSocket) to a shorter path");
        }

        var laneOptions = new LaneOptions { RingCapacity = options.RingCapacity, MaxPayload = options.MaxPayload };
        _host = new LaneHost(cpus: options.Cpus);
        // Starts empty: the node grain makes it serve the last committed plan's lanes when the node registers.
        _listener = new LaneHostListener(_host, laneOptions, ControlSocket, options.TcpPort != 0 ? new IPEndPoint(IPAddress.Loopback, options.TcpPort) : null);
        logger.LogInformation("Lane host up: {Routes} route(s), control socket {Socket}", _host.Routes.Routes.Count, ControlSocket);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _listener?.Dispose();
        _listener = null;
        _host?.Dispose();
        _host = null;
    }
}

public static class LaneHostingExtensions
{
    /// <summary>Registers the lane host (after Orleans, so it starts once the silo is up).</summary>
    public static IServiceCollection AddRttLanes(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection("Lanes").Get<RttLaneOptions>() ?? new RttLaneOptions();
        services.AddSingleton(options);
        services.AddSingleton(sp => new LaneHostService(
            sp.GetRequiredService<RttWorkspace>(), options, sp.GetRequiredService<ILogger<LaneHostService>>(), sp.GetRequiredService<Hosting.RttSiloOptions>().NodeId));
        services.AddSingleton<ILaneHost>(sp => sp.GetRequiredService<LaneHostService>());
        services.AddSingleton<INodeLaneHost>(sp => sp.GetRequiredService<LaneHostService>());
        services.AddHostedService(sp => sp.GetRequiredService<LaneHostService>());
        return services;
    }
}
