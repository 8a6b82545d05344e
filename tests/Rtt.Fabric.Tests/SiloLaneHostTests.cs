using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Rtt.Client.Lanes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Grains.Nodes;
using Rtt.Reconciling;
using Rtt.Silo.Lanes;

namespace Rtt.Fabric.Tests;

/// <summary>The silo's lane host service on a quickstart workspace, and a client attaching to its route.</summary>
public sealed class SiloLaneHostTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "rtt-fab-ws-" + Guid.NewGuid().ToString("N")[..8]);

    private static string Examples { get; } = Path.GetFullPath(typeof(SiloLaneHostTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RttExamplesDirectory").Value!);

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    public async Task The_quickstart_route_is_served_and_a_client_gets_answers_by_frame_id(LaneKind kind)
    {
        var workspace = WorkspaceInitializer.Create(_root, Path.Combine(Examples, "quickstart")).Workspace;
        using var service = new LaneHostService(workspace, new RttLaneOptions(), NullLogger<LaneHostService>.Instance);
        await service.StartAsync(CancellationToken.None);
        Assert.Empty(service.Routes.Routes); // a silo serves nothing until its node grain restores or commits a plan's lanes
        var lane = new LaneTarget(RouteIds.Of("rtt://ui/hook/refresh", "rtt://core/api/metrics"), "rtt://core/api/metrics", "rtt://ui/hook/refresh", "rtt://core/api/metrics", kind == LaneKind.Shm ? "shm" : "uds", RingSize: 1024);
        await service.ServeAsync([lane]);
        Assert.Empty(await service.ProbeAsync([lane], TimeSpan.FromSeconds(10))); // the probe the reconciler's verify phase sends
        var unknown = lane with { RouteId = lane.RouteId + 1 };
        var failed = Assert.Single(await service.ProbeAsync([lane, unknown], TimeSpan.FromSeconds(10)));
        Assert.Equal(unknown, failed.Lane); // a route the host does not serve is answered with an error frame
        Assert.StartsWith("RTT-LANE-003", failed.Why, StringComparison.Ordinal);

        var route = Assert.Single(service.Routes.Routes);
        Assert.Equal("rtt://core/api/metrics", route.Name);
        Assert.Equal(new LanePlan(kind, 4 << 20), route.Lane); // the plan's lane kind and ring_size (1024 frames x 4 KiB)
        Assert.Equal(LaneClient.ControlSocketOf(workspace), service.ControlSocket);

        using (var client = LaneClient.Attach(service.ControlSocket, "rtt://core/api/metrics")) // the planned kind
        {
            Assert.Equal(kind, client.Kind);
            Assert.Equal(route.RouteId, client.RouteId);
            var requests = Enumerable.Range(0, 50).Select(i => client.RequestAsync(BitConverter.GetBytes(i * 7919))).ToArray();
            var answers = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(30));
            for (var i = 0; i < answers.Length; i++)
            {
                Assert.Equal(i * 7919, BitConverter.ToInt32(answers[i])); // each answer completes its own request
            }
        }

        var ex = Assert.Throws<RttException>(() => LaneClient.Attach(service.ControlSocket, "rtt://ui/hook/none", kind));
        Assert.Equal(ErrorCodes.LaneRouteUnknown, ex.Code);

        await service.StopAsync(CancellationToken.None);
        Assert.False(File.Exists(service.ControlSocket)); // the control socket is removed on stop
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
