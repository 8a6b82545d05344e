using System.Collections.Immutable;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;
using Rtt.Core.Errors;
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

    /// <summary>The gateway of the silo running on a workspace (from .rtt/state/silo.json), or null when none runs.</summary>
    public static RttClientOptions? FromWorkspace(RttWorkspace workspace) =>
        SiloInfo.ReadLive(workspace.SiloInfoPath) is { } info
            ? new RttClientOptions { GatewayPort = info.GatewayPort, ClusterId = info.ClusterId, ServiceId = info.ServiceId }
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
    public async Task<ClusterStatus> GetStatusAsync()
    {
        var management = Cluster.GetGrain<IManagementGrain>(0);
        var hosts = await management.GetDetailedHosts(onlyActive: true);
        var members = hosts
            .Select(h => new ClusterMember(h.SiloName, h.SiloAddress.ToString(), h.Status.ToString(), h.HostName, h.StartTime, h.ProxyPort))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ThenBy(m => m.Address, StringComparer.Ordinal)
            .ToImmutableArray();

        var ids = await Cluster.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey).List();
        var nodes = ImmutableArray.CreateBuilder<NodeRecord>(ids.Length);
        foreach (var id in ids)
        {
            if (await Cluster.GetGrain<INodeGrain>(id).Get() is { } record)
            {
                nodes.Add(record);
            }
        }

        return new ClusterStatus(members, nodes.ToImmutable());
    }

    /// <summary>Every version of a symbol, through the registry grain (lowest version first; empty when unknown).</summary>
    public Task<ImmutableArray<SymbolVersion>> ResolveSymbolAsync(string symbol) =>
        Cluster.GetGrain<IRegistryGrain>(IRegistryGrain.WorkspaceKey).ResolveSymbol(symbol);

    public async ValueTask DisposeAsync()
    {
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

/// <summary>One active silo of the cluster.</summary>
public sealed record ClusterMember(string Name, string Address, string Status, string HostName, DateTime Started, int GatewayPort);

/// <summary>What <c>rtt status</c> shows.</summary>
public sealed record ClusterStatus(ImmutableArray<ClusterMember> Members, ImmutableArray<NodeRecord> Nodes);
