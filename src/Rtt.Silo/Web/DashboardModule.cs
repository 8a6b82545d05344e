using Microsoft.AspNetCore.Builder;
using Orleans.Dashboard;

namespace Rtt.Silo.Web;

/// <summary>
/// The Orleans Dashboard (Microsoft.Orleans.Dashboard) at <c>/dashboard/</c> on the silo's web host, when
/// <c>Dashboard:Enabled</c> (or `rtt up --dashboard`): behind the same credentials as the panel (docs/observability.md).
/// </summary>
public sealed class DashboardModule : IRttWebModule
{
    public const string Path = "/dashboard";

    public string Name => "Dashboard";

    public void ConfigureSilo(ISiloBuilder silo) => silo.AddDashboard();

    public void Map(WebApplication app) => app.MapOrleansDashboard(Path);

    public string? StartLine(Uri baseAddress) => $"dashboard: {new Uri(baseAddress, Path + "/")}";
}
