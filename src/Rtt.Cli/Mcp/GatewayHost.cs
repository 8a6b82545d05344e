using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Mcp;

/// <summary>How <c>rtt mcp serve</c> listens (docs/gateway.md).</summary>
public sealed record GatewayHttpOptions(IPAddress Bind, int Port, string Path, string Token, IReadOnlyList<string> AllowedOrigins)
{
    /// <summary>Verifies capability tokens presented as bearer (null: only the workspace credential is accepted).</summary>
    public Rtt.Core.Tokens.TokenVerifier? Tokens { get; init; }
}

/// <summary>Runs an <see cref="McpGateway"/> on stdio or on Streamable HTTP with a bearer credential and Origin/Host checks.</summary>
public static class GatewayHost
{
    public static Implementation ServerInfo => new() { Name = "rtt", Version = typeof(GatewayHost).Assembly.GetName().Version?.ToString(3) ?? "0.0.0" };

    /// <summary>Serves on stdin/stdout until the client closes stdin (logs on stderr only: stdout belongs to the protocol).</summary>
    public static async Task RunStdioAsync(McpGateway gateway, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder([]);
        Logging(builder.Logging);
        Configure(builder.Services, gateway).WithStdioServerTransport();
        using var host = builder.Build();
        await host.RunAsync(cancellationToken);
    }

    /// <summary>
    /// Serves Streamable HTTP at <c>http://BIND:PORT/PATH</c>. Every request needs <c>Authorization: Bearer TOKEN</c>
    /// (else 401 before anything runs); a request whose Origin is not allowed, or whose Host is not the bound loopback
    /// name when bound to loopback (DNS rebinding), is refused with 403. <paramref name="onListening"/> gets the URL.
    /// </summary>
    public static async Task RunHttpAsync(McpGateway gateway, GatewayHttpOptions options, Action<Uri> onListening, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(options.Bind, options.Port));
        Logging(builder.Logging); // no request logging: the Authorization header is never written anywhere
        builder.Services.AddSingleton(gateway);
        AddHttpServer(builder.Services);
        await using var app = builder.Build();
        var credentials = new GatewayCredentials(Encoding.UTF8.GetBytes(options.Token), options.Tokens);
        var loopback = IPAddress.IsLoopback(options.Bind);
        UseGuard(app, null, credentials, context => HostOrOriginRefusal(context, loopback, options.AllowedOrigins));
        app.MapMcp(options.Path);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            throw new RttException(ErrorCodes.PortInUse, $"{options.Bind}:{options.Port} is in use", "--port", "pick another --port, or --port 0 for any free one");
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        onListening(new Uri(new Uri(address), options.Path));
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }

        await app.StopAsync(CancellationToken.None);
    }

    /// <summary>
    /// Adds the gateway's MCP server for Streamable HTTP to a container holding the <see cref="McpGateway"/> singleton: the
    /// one implementation behind <c>rtt mcp serve --http</c> and the silo's <see cref="GatewayModule"/>. 2025-11-25 clients
    /// (initialize) get a session, so list_changed, progress and cancellation reach them; 2026-07-28 clients are served per
    /// request, as the SDK does. A capability token reaches only the tools whose target it allows (docs/gateway.md): the
    /// others are not listed, and calling one by name is refused with the token's code.
    /// </summary>
    public static IMcpServerBuilder AddHttpServer(IServiceCollection services)
    {
        var builder = services.AddMcpServer(o => o.ServerInfo = ServerInfo);
        services.AddOptions<ModelContextProtocol.Server.McpServerOptions>().Configure<McpGateway>(Serve);
        return builder
            .WithHttpTransport(http =>
            {
                http.SessionMode = ModelContextProtocol.AspNetCore.HttpServerSessionMode.StatefulForInitializeClients;
#pragma warning disable MCPEXP002 // the session's own server (for subscription updates after the subscribe request) and its end (to withdraw them)
                http.RunSessionHandler = async (context, server, cancellationToken) =>
                {
                    var gateway = context.RequestServices.GetRequiredService<McpGateway>();
                    gateway.SessionStarted(server);
                    try
                    {
                        await server.RunAsync(cancellationToken);
                    }
                    finally
                    {
                        gateway.SessionEnded(server.SessionId);
                    }
                };
#pragma warning restore MCPEXP002
            })
            .WithRequestFilters(filters =>
            {
                filters.AddListToolsFilter(next => async (request, cancellationToken) =>
                {
                    var result = await next(request, cancellationToken);
                    if (GatewayAccess.FromPrincipal(request.User) is { Rights: not null } access)
                    {
                        var gateway = request.Services!.GetRequiredService<McpGateway>();
                        result.Tools = [.. result.Tools.Where(t => gateway.Tools.FirstOrDefault(g => g.Name == t.Name) is { } tool && access.Allows(tool.Route.To))];
                    }

                    return result;
                });
                // A capability token sees only the prompts, resources and templates whose symbols it allows (their requests are refused likewise).
                filters.AddListPromptsFilter(next => async (request, cancellationToken) =>
                {
                    var result = await next(request, cancellationToken);
                    if (GatewayAccess.FromPrincipal(request.User) is { Rights: not null } access)
                    {
                        var gateway = request.Services!.GetRequiredService<McpGateway>();
                        result.Prompts = [.. result.Prompts.Where(p => gateway.Others.FirstOrDefault(o => o.Primitive == Rtt.Registry.McpPrimitive.Prompt && o.Name == p.Name) is { } prompt && access.Allows(prompt.Route.To))];
                    }

                    return result;
                });
                filters.AddListResourcesFilter(next => async (request, cancellationToken) =>
                {
                    var result = await next(request, cancellationToken);
                    if (GatewayAccess.FromPrincipal(request.User) is { Rights: not null } access)
                    {
                        var gateway = request.Services!.GetRequiredService<McpGateway>();
                        result.Resources = [.. result.Resources.Where(r => gateway.Others.FirstOrDefault(o => o.Primitive == Rtt.Registry.McpPrimitive.Resource && o.Name == r.Uri) is { } resource && access.Allows(resource.Route.To))];
                    }

                    return result;
                });
                filters.AddListResourceTemplatesFilter(next => async (request, cancellationToken) =>
                {
                    var result = await next(request, cancellationToken);
                    if (GatewayAccess.FromPrincipal(request.User) is { Rights: not null } access)
                    {
                        var gateway = request.Services!.GetRequiredService<McpGateway>();
                        result.ResourceTemplates = [.. result.ResourceTemplates.Where(r => gateway.Others.FirstOrDefault(o => o.Primitive == Rtt.Registry.McpPrimitive.Template && o.Name == r.UriTemplate) is { } template && access.Allows(template.Route.To))];
                    }

                    return result;
                });
                filters.AddCallToolFilter(next => (request, cancellationToken) =>
                {
                    if (GatewayAccess.FromPrincipal(request.User) is { Rights: not null } access
                        && request.Services!.GetRequiredService<McpGateway>().Tools.FirstOrDefault(g => g.Name == request.Params?.Name) is { } tool && !access.Allows(tool.Route.To))
                    {
                        throw new ModelContextProtocol.McpProtocolException(
                            $"{ErrorCodes.TokenRouteDenied}: the capability token does not allow open,rx,tx on {tool.Route.To}", ModelContextProtocol.McpErrorCode.InvalidParams);
                    }

                    return next(request, cancellationToken);
                });
            });
    }

    /// <summary>
    /// The gateway's check in front of its MCP endpoint (every request, or those under <paramref name="scope"/>): the
    /// Host/Origin refusal <paramref name="hostOrOrigin"/> gives, then the bearer credential (401 with
    /// <c>WWW-Authenticate: Bearer</c>); an admitted request carries its <see cref="GatewayAccess"/> as its principal.
    /// </summary>
    public static void UseGuard(IApplicationBuilder app, PathString? scope, GatewayCredentials credentials, Func<HttpContext, (int Status, string Message)?> hostOrOrigin)
    {
        app.Use(async (context, next) =>
        {
            if (scope is { } under && !context.Request.Path.StartsWithSegments(under))
            {
                await next(context);
                return;
            }

            GatewayAccess? access = null;
            if ((hostOrOrigin(context) ?? BearerRefusal(context, credentials, out access)) is { } refusal)
            {
                context.Response.StatusCode = refusal.Status;
                if (refusal.Status == StatusCodes.Status401Unauthorized)
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer realm=\"rtt\"";
                }

                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32001,\"message\":\"" + refusal.Message + "\"}}", context.RequestAborted);
                return;
            }

            context.User = access!.ToPrincipal();
            await next(context);
        });
    }

    /// <summary>
    /// Why a request is refused for its Host or Origin (403), or null: an Origin that is neither a loopback origin nor
    /// allowed, or, when bound to loopback, a Host that is not a loopback name (DNS rebinding). Never echoes what was sent.
    /// </summary>
    public static (int Status, string Message)? HostOrOriginRefusal(HttpContext context, bool loopback, IReadOnlyList<string> allowedOrigins)
    {
        // Origin first: a browser page on another site must not learn even whether a credential is needed.
        var origin = context.Request.Headers.Origin.ToString();
        if (origin.Length > 0 && !OriginAllowed(origin, allowedOrigins))
        {
            return (StatusCodes.Status403Forbidden, "origin not allowed");
        }

        if (loopback && !Rtt.Silo.Web.RttWebHost.IsLoopbackName(context.Request.Host.Host))
        {
            return (StatusCodes.Status403Forbidden, "host not allowed");
        }

        return null;
    }

    /// <summary>Why a request is refused for its bearer credential (401), or null with the access it gives.</summary>
    public static (int Status, string Message)? BearerRefusal(HttpContext context, GatewayCredentials credentials, out GatewayAccess? access)
    {
        access = null;
        var header = context.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return (StatusCodes.Status401Unauthorized, "a bearer credential is required");
        }

        access = credentials.Check(header["Bearer ".Length..].Trim(), out var why);
        return access is null ? (StatusCodes.Status401Unauthorized, why) : null;
    }

    private static bool OriginAllowed(string origin, IReadOnlyList<string> allowed)
    {
        if (allowed.Contains(origin, StringComparer.OrdinalIgnoreCase))
        {
            return true;
        }

        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) && Rtt.Silo.Web.RttWebHost.IsLoopbackName(uri.Host);
    }

    /// <summary>
    /// The workspace-issued gateway credential: <c>.rtt/keys/mcp-gateway.token</c> (mode 0600), made on first use (32 random
    /// bytes, base64url). A client sends it as <c>Authorization: Bearer …</c>.
    /// </summary>
    public static string Token(RttWorkspace workspace, string? file)
    {
        var path = file ?? System.IO.Path.Combine(workspace.Keys, "mcp-gateway.token");
        if (!File.Exists(path))
        {
            if (file is not null)
            {
                throw new RttException(ErrorCodes.GatewayCredential, "the token file does not exist", path, "name a file holding the bearer token, or leave out --token-file to use the workspace's");
            }

            var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            Core.Json.AtomicFile.WriteAllBytes(path, Encoding.ASCII.GetBytes(token + "\n"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            return token;
        }

        var text = File.ReadAllText(path).Trim();
        if (text.Length < 16)
        {
            throw new RttException(ErrorCodes.GatewayCredential, "the token file holds fewer than 16 characters", path, "put a long random token in it, or delete it to have a new one made");
        }

        return text;
    }

    private static void Logging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.SetMinimumLevel(LogLevel.Warning);
        logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None); // a failed start is reported once, as an RTT error
    }

    private static IMcpServerBuilder Configure(IServiceCollection services, McpGateway gateway) =>
        services.AddMcpServer(o =>
        {
            o.ServerInfo = ServerInfo;
            Serve(o, gateway);
        });

    /// <summary>
    /// What the gateway's MCP server offers (both transports): the tools, prompts and resources (and templates) of the
    /// gateway's collections, each with list_changed; completion/complete sent on the route of the prompt or template it
    /// completes; resources/subscribe and unsubscribe sent on the resource's route (docs/gateway.md, "Prompts and resources").
    /// </summary>
    private static void Serve(ModelContextProtocol.Server.McpServerOptions o, McpGateway gateway)
    {
        o.Capabilities = new ServerCapabilities
        {
            Tools = new ToolsCapability { ListChanged = true },
            Prompts = new PromptsCapability { ListChanged = true },
            Resources = new ResourcesCapability { ListChanged = true, Subscribe = true },
            Completions = new CompletionsCapability(),
        };
        o.ToolCollection = gateway.Collection;
        o.PromptCollection = gateway.Prompts;
        o.ResourceCollection = gateway.Resources;
        o.Handlers.CompleteHandler = (request, cancellationToken) =>
            gateway.CompletionTarget(request.Params?.Ref) is { } target
                ? gateway.RequestAsync<CompleteResult>(target, RequestMethods.CompletionComplete,
                    System.Text.Json.JsonSerializer.SerializeToNode(request.Params, ModelContextProtocol.McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(CompleteRequestParams))), request.User, cancellationToken)
                : throw new ModelContextProtocol.McpProtocolException("completion/complete: the reference names no prompt or resource template served here", ModelContextProtocol.McpErrorCode.InvalidParams);
        o.Handlers.SubscribeToResourcesHandler = (request, cancellationToken) => Subscription(gateway, RequestMethods.ResourcesSubscribe, request.Params?.Uri, request.Server, request.User, cancellationToken);
        o.Handlers.UnsubscribeFromResourcesHandler = (request, cancellationToken) => Subscription(gateway, RequestMethods.ResourcesUnsubscribe, request.Params?.Uri, request.Server, request.User, cancellationToken);
        o.Handlers.SubscriptionsListenHandler = (request, cancellationToken) => gateway.ListenAsync(request.Params, request.JsonRpcRequest.Id, request.Server, request.User, cancellationToken);
    }

    private static ValueTask<EmptyResult> Subscription(McpGateway gateway, string method, string? uri, ModelContextProtocol.Server.McpServer server, System.Security.Claims.ClaimsPrincipal? user, CancellationToken cancellationToken) =>
        gateway.ResourceOf(uri) is not { } resource
            ? throw new ModelContextProtocol.McpProtocolException($"{method}: no resource {uri} is served here", ModelContextProtocol.McpErrorCode.InvalidParams)
            : method == RequestMethods.ResourcesSubscribe
                ? gateway.SubscribeAsync(resource, uri!, server, user, cancellationToken)
                : gateway.UnsubscribeAsync(resource, uri!, server, user);
}
