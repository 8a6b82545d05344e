using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Rtt.Core.Errors;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Silo.Web;

namespace Rtt.Cli.Mcp;

/// <summary>
/// The MCP gateway served by a running silo (docs/gateway.md, "In the silo"): <c>rtt up --mcp rtt://…</c> or the
/// <c>McpGateway</c> section (<c>Enabled</c>, <c>Caller</c>, <c>CallTimeoutSeconds</c>) mounts at <c>/mcp</c> on the silo's
/// web host the same Streamable HTTP server <c>rtt mcp serve --http</c> runs (<see cref="GatewayHost.AddHttpServer"/>,
/// <see cref="GatewayHost.UseGuard"/>, <see cref="McpGateway"/>), behind the same credentials: the workspace gateway
/// token or a capability token as bearer. The web host's own Host/Origin checks come first; its panel credential does not
/// apply to <c>/mcp</c> (a public path of the web host, guarded by the gateway's own bearer check).
/// </summary>
public sealed class GatewayModule(RttWorkspace workspace, IConfiguration configuration) : IRttWebModule
{
    public const string Section = "McpGateway";
    public const string Path = "/mcp";

    private McpGateway? _gateway;

    public string Name => Section;

    public IReadOnlyList<string> PublicPaths => [Path];

    /// <summary>The caller symbol the silo's gateway serves (<c>McpGateway:Caller</c>).</summary>
    public string Caller => (string?)configuration[$"{Section}:Caller"] ?? "";

    public void ConfigureServices(IServiceCollection services)
    {
        var caller = Caller;
        if (!caller.StartsWith("rtt://", StringComparison.Ordinal))
        {
            throw new HostingException(ErrorCodes.GatewayOptionInvalid, caller.Length == 0 ? "the MCP gateway has no caller symbol" : $"\"{caller}\" is not a symbol",
                $"{Section}:Caller", "name the caller whose routed tools the silo serves, e.g. rtt up --mcp rtt://ui/chat/tools");
        }

        var seconds = 300.0;
        if (configuration[$"{Section}:CallTimeoutSeconds"] is { } text
            && (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out seconds) || !(seconds > 0) || seconds > 86_400))
        {
            throw new HostingException(ErrorCodes.GatewayOptionInvalid, $"\"{text}\" is not a number of seconds from above 0 to 86400", $"{Section}:CallTimeoutSeconds", "e.g. 60 (the default is 300)");
        }

        var token = Encoding.UTF8.GetBytes(GatewayHost.Token(workspace, null)); // made on first use, as by rtt mcp serve --http
        // The silo's lane host is not up yet: the watch's first tick reads the plan and probes the tools.
        var gateway = _gateway = new McpGateway(workspace, caller, TimeSpan.FromSeconds(seconds), syncNow: false);
        services.AddSingleton(gateway); // an instance: the container does not dispose it, GatewayLifetime does
        services.AddSingleton(sp => new GatewayCredentials(token, sp.GetRequiredService<TokenVerifier>())); // the silo's verifier: one replay cache with lane attaches
        services.AddHostedService(sp => new GatewayLifetime(gateway, sp.GetRequiredService<IHostApplicationLifetime>()));
        GatewayHost.AddHttpServer(services);
    }

    public void Map(WebApplication app)
    {
        // Host and Origin were checked by the web host (RttWebHost.Refusal); the bearer is the gateway's own.
        GatewayHost.UseGuard(app, Path, app.Services.GetRequiredService<GatewayCredentials>(), _ => null);
        app.MapMcp(Path);
    }

    public string? StartLine(Uri baseAddress) =>
        $"mcp: {new Uri(baseAddress, Path)} (as {_gateway?.Caller}; bearer: the token in .rtt/keys/mcp-gateway.token, or a capability token)";

    /// <summary>Starts the gateway's watch once the silo (and its lane host) is up; stops it with the silo.</summary>
    private sealed class GatewayLifetime(McpGateway gateway, IHostApplicationLifetime lifetime) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.ApplicationStarted.Register(() => gateway.StartWatching(TimeSpan.FromMilliseconds(500)));
            return Task.CompletedTask;
        }

        public async Task StopAsync(CancellationToken cancellationToken) => await gateway.DisposeAsync();
    }
}
