using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Silo.Hosting;

namespace Rtt.Silo.Tests;

/// <summary>The silo's choice of WAL store is checked before anything starts.</summary>
public sealed class WalConfigurationTests : IDisposable
{
    private readonly RttWorkspace _workspace = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-walcfg-").FullName).Workspace;

    [Theory]
    [InlineData("mysql", null, ErrorCodes.ConfigInvalid, "unknown WAL provider")]
    [InlineData("postgres", null, ErrorCodes.ConfigInvalid, "Wal:ConnectionString is not set")]
    [InlineData("postgres", "Host=127.0.0.1;Port=1;Database=rtt;Username=rtt;Password=secret-pw;Timeout=2", ErrorCodes.WalUnavailable, "127.0.0.1")]
    public void A_bad_wal_setting_stops_the_start_with_a_clear_error(string provider, string? connection, string code, string says)
    {
        var overrides = new Dictionary<string, string?> { ["Wal:Provider"] = provider, ["Wal:ConnectionString"] = connection, ["Silo:SiloPort"] = FreePort(), ["Silo:GatewayPort"] = FreePort() };
        var ex = Assert.ThrowsAny<RttException>(() => RttSiloHost.Build(_workspace, overrides));
        Assert.Equal(code, ex.Code);
        Assert.Contains(says, ex.Headline, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-pw", ex.Headline, StringComparison.Ordinal);
    }

    private static string FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose() => Directory.Delete(_workspace.Root, recursive: true);
}
