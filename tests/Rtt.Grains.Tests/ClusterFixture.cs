using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;

namespace Rtt.Grains.Tests;

/// <summary>One in-process cluster (two silos) for the whole collection; grain state in memory.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
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
