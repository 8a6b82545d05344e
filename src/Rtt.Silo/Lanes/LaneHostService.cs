using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

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
public sealed class LaneHostService(RttWorkspace workspace, RttLaneOptions options, ILogger<LaneHostService> logger) : IHostedService, ILaneHost, IDisposable
{
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

    /// <summary>
    /// The workspace's routes as a table: ids 1..n in (from, to) order so they are the same on every start;
    /// each route is named by its target symbol and served by the built-in echo driver until service drivers land.
    /// </summary>
    public static RouteTable FromWorkspace(RttWorkspace workspace)
    {
        var routes = (RttWorkspace.ReadObject(workspace.RoutesPath)["routes"] as JsonArray ?? [])
            .OfType<JsonObject>()
            .Select(r => (From: (string?)r["from"] ?? "", To: (string?)r["to"] ?? ""))
            .Where(r => r.To.Length > 0)
            .OrderBy(r => r.From, StringComparer.Ordinal).ThenBy(r => r.To, StringComparer.Ordinal)
            .ToList();
        var echo = new DriverEndpoint(new EchoDriver());
        return new RouteTable(routes.Select((r, i) => new RouteEntry((uint)(i + 1), r.To, echo)));
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
        await _host.SwapAsync(FromWorkspace(workspace));
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
        services.AddSingleton<LaneHostService>();
        services.AddSingleton<ILaneHost>(sp => sp.GetRequiredService<LaneHostService>());
        services.AddHostedService(sp => sp.GetRequiredService<LaneHostService>());
        return services;
    }
}
