using System.Collections.Immutable;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Grains.Registry;

namespace Rtt.Client;

/// <summary>Where and how to reach a silo's gateway.</summary>
public sealed record RttClientOptions
{
    public int GatewayPort { get; init; } = 30000;
    public string ClusterId { get; init; } = "rtt";
    public string ServiceId { get; init; } = "rtt";
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The silo's lane control socket, for calls (<see cref="RttClient.CallAsync"/>); set by <see cref="FromWorkspace"/>.</summary>
    public string? LaneControlSocket { get; init; }

    /// <summary>
    /// The capability token presented when a call attaches a route's lane (docs/tokens.md), given the target symbol; null
    /// presents none (a dev-mode silo admits its own user over the Unix socket). A token opens one lane, so return a fresh
    /// one per call of this function. <see cref="WithWorkspaceTokens"/> mints them with the workspace's signing key.
    /// </summary>
    public Func<string, string?>? LaneToken { get; init; }

    /// <summary>
    /// These options, presenting a fresh lane token per attach issued with the workspace's signing key (valid 1 h, for that
    /// symbol only), or none when this user cannot read the key (then only a dev-mode silo admits the attach).
    /// </summary>
    public RttClientOptions WithWorkspaceTokens(RttWorkspace workspace) => this with
    {
        LaneToken = symbol =>
        {
            SigningKey key;
            try
            {
                key = workspace.LoadSigningKey();
            }
            catch (RttException)
            {
                return null;
            }

            using (key)
            {
                return Core.Tokens.ManagementTokens.MintLane(key, symbol, TimeSpan.FromHours(1));
            }
        },
    };

    /// <summary>The gateway of the silo running on a workspace (from .rtt/state/silo.json), or null when none runs.</summary>
    public static RttClientOptions? FromWorkspace(RttWorkspace workspace) =>
        SiloInfo.ReadLive(workspace.SiloInfoPath) is { } info
            ? new RttClientOptions { GatewayPort = info.GatewayPort, ClusterId = info.ClusterId, ServiceId = info.ServiceId, LaneControlSocket = workspace.LaneControlSocket }
                .WithWorkspaceTokens(workspace)
            : null;
}

/// <summary>
/// The client apps use: connects to a running silo's gateway and calls RTT's grains.
/// <code>await using var rtt = await RttClient.ConnectAsync(new RttClientOptions { GatewayPort = 30000 });</code>
/// </summary>
public sealed class RttClient : IAsyncDisposable
{
    private readonly IHost _host;

    private RttClient(IHost host, RttClientOptions options)
    {
        _host = host;
        Options = options;
        Cluster = host.Services.GetRequiredService<IClusterClient>();
    }

    public RttClientOptions Options { get; }

    /// <summary>The Orleans client, for calling any grain interface.</summary>
    public IClusterClient Cluster { get; }

    /// <summary>Connects, or throws <see cref="HostingException"/> (RTT-CLIENT-001) when no silo answers.</summary>
    public static async Task<RttClient> ConnectAsync(RttClientOptions options, CancellationToken cancellationToken = default)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ApplicationName = "rtt-client" });
        builder.UseOrleansClient(client => client.UseLocalhostClustering(options.GatewayPort, options.ServiceId, options.ClusterId));
        Grains.RttExceptions.Add(builder.Services);
        var host = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            await host.StartAsync(timeout.Token);
            return new RttClient(host, options);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            host.Dispose();
            throw new HostingException(ErrorCodes.NoSiloAnswers, $"no silo answers at gateway 127.0.0.1:{options.GatewayPort}", $"127.0.0.1:{options.GatewayPort}",
                "start one with `rtt up`, or give the right port with --gateway-port", ex);
        }
    }

    /// <summary>Cluster members (active silos) and the registered nodes, each sorted by name.</summary>
    public Task<ClusterStatus> GetStatusAsync() => GetStatusAsync(_directory ??= Cluster.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey));

    // The grain references this client calls most, made once (a reference from a string key is a few allocations per call).
    private INodeDirectoryGrain? _directory;
    private IRegistryGrain? _registry;

    /// <summary>The same through any grain factory (the silo's own: the panel's /api/status).</summary>
    public static Task<ClusterStatus> GetStatusAsync(IGrainFactory grains) => GetStatusAsync(grains.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey));

    private static async Task<ClusterStatus> GetStatusAsync(INodeDirectoryGrain directory)
    {
        // One call, answered from what the node directory keeps (the node grains push their snapshots to it; the membership
        // entries are read again when the membership version changes, at most 1 s apart), already merged and sorted.
        var status = await directory.Status();
        var members = ImmutableArray.CreateBuilder<ClusterMember>(status.Members.Length);
        foreach (var m in status.Members)
        {
            members.Add(new ClusterMember(m.Name, m.Address, m.Status, m.HostName, m.Started, m.ProxyPort, m.Numa, m.Node));
        }

        return new ClusterStatus(members.MoveToImmutable(), status.Records, status.Placements);
    }

    /// <summary>Every version of a symbol, through the registry grain (lowest version first; empty when unknown).</summary>
    public Task<ImmutableArray<SymbolVersion>> ResolveSymbolAsync(string symbol) =>
        (_registry ??= Cluster.GetGrain<IRegistryGrain>(IRegistryGrain.WorkspaceKey)).ResolveSymbol(symbol);

    private readonly Lock _callerGate = new();
    private Calls.LaneCaller? _caller;
    private IReadOnlyList<CallRoute>? _routes;
    private string? _routesPlan;

    /// <summary>
    /// Calls <paramref name="symbol"/> through RTT (docs/calls.md): the symbol resolves through the applied plan to a
    /// route (the one from <paramref name="from"/> when given); the payload travels on that route's lane (SHM, attached
    /// once and reused) to the endpoint that serves the symbol, and its answer's bytes come back. Error frames throw
    /// their code (RTT-CALL-…, RTT-LANE-…); no route: RTT-CALL-006.
    /// </summary>
    public async Task<byte[]> CallAsync(string symbol, ReadOnlyMemory<byte> payload, string? from = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var route = await RouteAsync(symbol, from);
        return await Caller.CallAsync(route, payload, timeout, cancellationToken);
    }

    /// <summary>Calls an MCP tool symbol with its arguments and returns its <c>CallToolResult</c> (a tool failure is <see cref="Calls.ToolResult.IsError"/>, not an exception).</summary>
    public async Task<Calls.ToolResult> CallToolAsync(string symbol, System.Text.Json.Nodes.JsonObject arguments, string? from = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var route = await RouteAsync(symbol, from);
        if (!route.IsMcp)
        {
            throw new RttException(ErrorCodes.CallInputInvalid, $"{symbol} is served by a {route.EndpointKind} endpoint, not an MCP tool", symbol, "use CallAsync with the endpoint's own payload");
        }

        return await Caller.CallToolAsync(route, arguments, timeout, cancellationToken);
    }

    private Calls.LaneCaller Caller
    {
        get
        {
            lock (_callerGate)
            {
                return _caller ??= new Calls.LaneCaller(Options.LaneControlSocket ?? throw new RttException(ErrorCodes.CallInputInvalid,
                    "this client does not know the silo's lane socket", null, "connect with RttClientOptions.FromWorkspace(workspace), or set LaneControlSocket"),
                    Fabric.Lanes.LaneKind.Shm, Options.LaneToken is { } mint ? route => mint(route.To) : null);
            }
        }
    }

    private async Task<CallRoute> RouteAsync(string symbol, string? from)
    {
        var routes = _routes;
        if (routes is null || !routes.Any(r => r.To == symbol && (from is null || r.From == from)))
        {
            var applied = await Cluster.GetGrain<Grains.Reconciling.IReconcilerGrain>(Grains.Reconciling.IReconcilerGrain.ClusterKey).AppliedRoutes();
            routes = [.. applied.Routes.Select(r => new CallRoute(r.From, r.To, r.RouteId, r.Node, r.Lane, r.Endpoint, r.EndpointKind, r.Tool))];
            _routes = routes;
            _routesPlan = applied.PlanId;
        }

        return CallRoutes.Resolve(routes, symbol, from, _routesPlan);
    }

    public async ValueTask DisposeAsync()
    {
        _caller?.Dispose();
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _host.Dispose();
        }
    }
}

/// <summary>
/// One active silo of the cluster; <see cref="Numa"/> and <see cref="Node"/> are its metadata (the NUMA node it is
/// bound to, <c>all</c> when unbound; the node it serves), empty when it published none.
/// </summary>
public sealed record ClusterMember(string Name, string Address, string Status, string HostName, DateTime Started, int GatewayPort, string Numa = "", string Node = "");

/// <summary>What <c>rtt status</c> shows: the silos, the registered nodes and where each node's grain runs with its lanes.</summary>
public sealed record ClusterStatus(ImmutableArray<ClusterMember> Members, ImmutableArray<NodeRecord> Nodes, ImmutableArray<NodePlacement> Placements = default);
