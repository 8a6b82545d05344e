using Microsoft.Extensions.Logging.Abstractions;
using Rtt.Core.Errors;
using Rtt.Core.Lanes;
using Rtt.Core.Workspace;
using Rtt.Fabric.Lanes;
using Rtt.Silo.Lanes;

namespace Rtt.Grains.Tests;

/// <summary>The lane defaults and the Unix socket path limit have one copy (<see cref="LaneDefaults"/>) that every user follows.</summary>
public sealed class LaneDefaultsTests
{
    [Fact]
    public void The_silos_lane_configuration_and_the_fabrics_lane_options_default_to_the_same_values()
    {
        var configured = new RttLaneOptions();
        var lane = new LaneOptions();
        Assert.Equal((LaneDefaults.RingCapacity, LaneDefaults.MaxPayload), (configured.RingCapacity, configured.MaxPayload));
        Assert.Equal((LaneDefaults.RingCapacity, LaneDefaults.MaxPayload), (lane.RingCapacity, lane.MaxPayload));
        Assert.Equal(LaneDefaults.MaxPayload, Rtt.Core.Autotune.Trace.MaxPayload);
        Assert.Equal(LaneDefaults.MaxPayload, Rtt.Fabric.Stubs.StubConformance.MaxPayload);
    }

    [Fact]
    public void A_workspace_socket_moves_to_the_temp_folder_past_the_limit_and_a_configured_one_past_it_is_refused()
    {
        const string suffix = "/.rtt/state/lanes.sock";
        var fits = Path.Combine(Path.GetTempPath(), "w").TrimEnd('/');
        fits += new string('a', LaneDefaults.MaxSocketPath - suffix.Length - fits.Length);
        Directory.CreateDirectory(Path.Combine(fits, ".rtt"));
        Directory.CreateDirectory(Path.Combine(fits + "b", ".rtt"));
        try
        {
            Check(fits, suffix);
        }
        finally
        {
            Directory.Delete(fits, recursive: true);
            Directory.Delete(fits + "b", recursive: true);
        }
    }

    private static void Check(string fits, string suffix)
    {
        var atLimit = RttWorkspace.Find(fits, fits);
        Assert.Equal(LaneDefaults.MaxSocketPath, atLimit.LaneControlSocket.Length);
        Assert.StartsWith(fits, atLimit.LaneControlSocket, StringComparison.Ordinal);
        var over = RttWorkspace.Find(fits + "b", fits + "b");
        Assert.StartsWith(Path.GetTempPath(), over.LaneControlSocket, StringComparison.Ordinal);
        Assert.DoesNotContain(".rtt", over.LaneControlSocket, StringComparison.Ordinal);

        using var host = new LaneHostService(atLimit, new RttLaneOptions { ControlSocket = fits + "b" + suffix }, NullLogger<LaneHostService>.Instance);
        var refused = Assert.Throws<HostingException>(() => host.StartAsync(CancellationToken.None).GetAwaiter().GetResult());
        Assert.Equal(ErrorCodes.LaneConfigInvalid, refused.Code);
        Assert.Contains($"({LaneDefaults.MaxSocketPath} characters)", refused.Message, StringComparison.Ordinal);
    }
}
