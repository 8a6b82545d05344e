using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>One in-process cluster (two silos) for the whole collection; grain state in memory.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private readonly MemoryLedgerStore _ledgers = new();

    public InProcessTestCluster Cluster { get; private set; } = null!;

    /// <summary>The workspace the silos serve (registry grains read its CAS).</summary>
    public RttWorkspace Workspace { get; } = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-grains-").FullName).Workspace;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(initialSilosCount: 2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(RttStorage.Name);
            silo.AddRttGrains();
            silo.Services.AddSingleton(Workspace);
            silo.Services.AddSingleton<IParticipantLedgerStore>(_ledgers); // one for both silos, like the shared database
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        Directory.Delete(Workspace.Root, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}

/// <summary>Participant ledgers in memory, for the memory-storage cluster (the silo uses SQLite).</summary>
public sealed class MemoryLedgerStore : IParticipantLedgerStore
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _ledgers = new(StringComparer.Ordinal);

    public Task<LedgerState?> ReadAsync(string key) =>
        Task.FromResult(_ledgers.TryGetValue(key, out var json) ? LedgerJson.Read(json) : null);

    public Task WriteAsync(string key, LedgerState state)
    {
        _ledgers[key] = LedgerJson.Write(state); // a copy: the grain keeps changing its own
        return Task.CompletedTask;
    }
}
