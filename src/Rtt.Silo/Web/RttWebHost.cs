using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Silo.Web;

/// <summary>
/// A feature the silo's web host serves (docs/panel.md "Adding endpoints"): the panel, the Orleans Dashboard, later the MCP
/// gateway. Modules are handed to <see cref="Hosting.RttSiloHost.Build"/>; the web host (Kestrel in the silo's own
/// process, one DI container with the silo) starts when at least one is enabled. Every path a module maps needs the
/// panel's credentials (<see cref="RttWebHost"/>) unless it is listed in <see cref="PublicPaths"/>.
/// </summary>
public interface IRttWebModule
{
    /// <summary>A short name (<c>panel</c>, <c>dashboard</c>).</summary>
    string Name { get; }

    /// <summary>Exact paths served without credentials (a login page and its script); everything else needs them.</summary>
    IReadOnlyList<string> PublicPaths => [];

    /// <summary>Services the feature needs, in the silo's own container (grains, the workspace, the token verifier are there).</summary>
    void ConfigureServices(IServiceCollection services)
    {
    }

    /// <summary>Orleans parts the feature needs (the Dashboard's grains).</summary>
    void ConfigureSilo(ISiloBuilder silo)
    {
    }

    /// <summary>Maps the feature's endpoints; called once, after the web host's own checks are in the pipeline.</summary>
    void Map(WebApplication app);

    /// <summary>The line `rtt up` prints for the feature (e.g. <c>panel: http://127.0.0.1:7411/</c>), or null.</summary>
    string? StartLine(Uri baseAddress) => null;
}

/// <summary>
/// The one place that owns the silo's web app: Kestrel on <see cref="RttWebOptions"/>'s address, the Host/Origin checks
/// (DNS rebinding, cross-site writes), the credential check on every non-public path, browser sessions made from a
/// one-time login token, and <c>.rtt/state/web.json</c> naming the URL while it runs.
/// </summary>
public static class RttWebHost
{
    public const string CookieName = "rtt_session";
    public const string LoginPath = "/login";
    public const string SessionPath = "/api/session";
    public const string WebInfoName = "web.json";

    /// <summary>The symbol a panel credential must allow <c>rx</c> on (reads) — <c>rtt://rtt/manage/panel</c>.</summary>
    public static readonly string PanelSymbol = ManagementTokens.Symbol("panel");

    /// <summary>A builder for a silo with a web host: an empty web application builder (no default sources, as the plain host).</summary>
    public static WebApplicationBuilder CreateBuilder(RttWebOptions options)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            ApplicationName = "rtt-silo",
        });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(options.Address, options.Port);
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<WebSessions>();
        builder.Services.AddHostedService<WebInfoService>();
        return builder;
    }

    /// <summary>Adds the checks, the login endpoint and every module's endpoints to a built web application.</summary>
    public static void Configure(WebApplication app, IReadOnlyList<IRttWebModule> modules)
    {
        var options = app.Services.GetRequiredService<RttWebOptions>();
        var sessions = app.Services.GetRequiredService<WebSessions>();
        var verifier = app.Services.GetRequiredService<TokenVerifier>();
        var open = new HashSet<string>(modules.SelectMany(m => m.PublicPaths), StringComparer.Ordinal) { SessionPath };
        app.Use(async (context, next) =>
        {
            context.Response.Headers["X-Content-Type-Options"] = "nosniff";
            context.Response.Headers["Referrer-Policy"] = "no-referrer";
            context.Response.Headers["X-Frame-Options"] = "DENY";
            if (Refusal(context, options.Loopback) is { } refusal)
            {
                await Refuse(context, refusal.Status, refusal.Reason);
                return;
            }

            if (!open.Contains(context.Request.Path.Value ?? ""))
            {
                var principal = Authenticate(context, sessions, verifier);
                if (principal.Refusal is { } why)
                {
                    context.Response.Headers.WWWAuthenticate = "Bearer realm=\"rtt\"";
                    await Refuse(context, StatusCodes.Status401Unauthorized, why);
                    return;
                }

                context.Items[typeof(WebPrincipal)] = principal.Principal;
            }

            await next(context);
        });

        // The login: a one-time token (printed by `rtt up --panel` and `rtt panel`, or any token allowing rx on
        // rtt://rtt/manage/panel) is spent here and becomes an HttpOnly, SameSite=Strict session cookie.
        app.MapPost(SessionPath, async context =>
        {
            string? text = null;
            try
            {
                using var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
                text = doc.RootElement.TryGetProperty("token", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            }
            catch (JsonException)
            {
            }

            CapabilityToken token;
            try
            {
                token = verifier.Admit(text, PanelSymbol, ["rx"]);
            }
            catch (RttException ex)
            {
                await Refuse(context, StatusCodes.Status401Unauthorized, $"{ex.Code}: the login token was refused");
                return;
            }

            var principal = new WebPrincipal("session", null, Allows(token, ManagementTokens.Apply), Allows(token, ManagementTokens.Rollback));
            var id = sessions.Open(principal, TimeSpan.FromMinutes(options.SessionMinutes));
            context.Response.Cookies.Append(CookieName, id, new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Path = "/",
                Secure = false, // plain HTTP on loopback
                MaxAge = TimeSpan.FromMinutes(options.SessionMinutes),
            });
            await Json(context, new System.Text.Json.Nodes.JsonObject { ["apply"] = principal.CanApply, ["rollback"] = principal.CanRollback });
        });
        app.MapPost("/api/logout", async context =>
        {
            if (context.Request.Cookies.TryGetValue(CookieName, out var id))
            {
                sessions.Close(id);
            }

            context.Response.Cookies.Delete(CookieName);
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            await Task.CompletedTask;
        });

        foreach (var module in modules)
        {
            module.Map(app);
        }
    }

    /// <summary>The address Kestrel listens on, once started.</summary>
    public static Uri BaseAddress(IServiceProvider services)
    {
        var address = services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.EndsWith('/') ? address : address + "/");
    }

    /// <summary>Why a request is refused before credentials are looked at (Host and Origin), or null.</summary>
    public static (int Status, string Reason)? Refusal(HttpContext context, bool loopback)
    {
        // DNS rebinding: a page of another site whose name resolves to 127.0.0.1 reaches us with its own name as Host.
        if (loopback && !IsLoopbackName(context.Request.Host.Host))
        {
            return (StatusCodes.Status403Forbidden, "host not allowed");
        }

        var origin = context.Request.Headers.Origin.ToString();
        var self = $"{context.Request.Scheme}://{context.Request.Host.Value}";
        var writes = !HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method);
        if (origin.Length > 0 && !string.Equals(origin, self, StringComparison.OrdinalIgnoreCase))
        {
            return (StatusCodes.Status403Forbidden, "origin not allowed");
        }

        if (writes && origin.Length == 0 && context.Request.Headers.Authorization.Count == 0)
        {
            // A browser sends Origin with every POST; a cookie-carrying write without one is not from our page.
            return (StatusCodes.Status403Forbidden, "origin required");
        }

        return null;
    }

    /// <summary>The session cookie, else an <c>Authorization: Bearer rtt1…</c> token allowing rx on the panel symbol.</summary>
    internal static (WebPrincipal? Principal, string? Refusal) Authenticate(HttpContext context, WebSessions sessions, TokenVerifier verifier)
    {
        var header = context.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var text = header["Bearer ".Length..].Trim();
            try
            {
                var token = verifier.Verify(text);
                TokenVerifier.Authorize(token, PanelSymbol, ["rx"]);
                return (new WebPrincipal("bearer", text, Allows(token, ManagementTokens.Apply), Allows(token, ManagementTokens.Rollback)), null);
            }
            catch (RttException ex)
            {
                return (null, $"{ex.Code}: the bearer token was refused");
            }
        }

        if (context.Request.Cookies.TryGetValue(CookieName, out var id) && sessions.Find(id) is { } principal)
        {
            return (principal, null);
        }

        return (null, "credentials required: log in with the URL `rtt panel` prints, or send Authorization: Bearer <token>");
    }

    /// <summary>Whether the token allows tx on the management operation (checked, not spent).</summary>
    private static bool Allows(CapabilityToken token, string operation)
    {
        try
        {
            TokenVerifier.Authorize(token, ManagementTokens.Symbol(operation), ManagementTokens.Verbs);
            return true;
        }
        catch (RttException)
        {
            return false;
        }
    }

    public static bool IsLoopbackName(string host) =>
        host is "localhost" or "127.0.0.1" or "[::1]" or "::1" || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>The principal the credential check put on the request.</summary>
    public static WebPrincipal Principal(HttpContext context) =>
        context.Items[typeof(WebPrincipal)] as WebPrincipal ?? throw new InvalidOperationException("the request passed no credential check");

    public static async Task Refuse(HttpContext context, int status, string reason)
    {
        context.Response.StatusCode = status;
        await Json(context, new System.Text.Json.Nodes.JsonObject { ["error"] = reason });
    }

    /// <summary>Writes JSON the way the CLI prints it (PrettyJson: canonical member order, two-space indent).</summary>
    public static Task Json(HttpContext context, System.Text.Json.Nodes.JsonNode? node)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.Body.WriteAsync(node is null ? "null"u8.ToArray() : PrettyJson.ToUtf8(node)).AsTask();
    }
}

/// <summary>Who a request comes from: a browser session, or a bearer token (kept to present it to the reconciler).</summary>
public sealed record WebPrincipal(string Kind, string? Bearer, bool CanApply, bool CanRollback);

/// <summary>Browser sessions: random 32-byte ids (only their SHA-256 kept), each with its expiry. Thread-safe.</summary>
public sealed class WebSessions(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (WebPrincipal Principal, DateTimeOffset Expires)> _sessions = new(StringComparer.Ordinal);

    public string Open(WebPrincipal principal, TimeSpan lifetime)
    {
        var id = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = time.GetUtcNow();
        foreach (var stale in _sessions.Where(s => s.Value.Expires <= now).Select(s => s.Key).ToList())
        {
            _sessions.TryRemove(stale, out _);
        }

        _sessions[Key(id)] = (principal, now + lifetime);
        return id;
    }

    public WebPrincipal? Find(string id) =>
        _sessions.TryGetValue(Key(id), out var s) && s.Expires > time.GetUtcNow() ? s.Principal : null;

    public void Close(string id) => _sessions.TryRemove(Key(id), out _);

    private static string Key(string id) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)));
}

/// <summary>Writes <c>.rtt/state/web.json</c> ({"url": …}, mode 0600) once Kestrel listens, for `rtt panel`; removes it on stop.</summary>
internal sealed class WebInfoService(IServiceProvider services, RttWorkspace workspace, IHostApplicationLifetime lifetime) : IHostedService
{
    private string Path => System.IO.Path.Combine(workspace.State, RttWebHost.WebInfoName);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            var url = RttWebHost.BaseAddress(services).ToString();
            AtomicFile.WriteAllBytes(Path, PrettyJson.ToUtf8(new System.Text.Json.Nodes.JsonObject { ["pid"] = Environment.ProcessId, ["url"] = url }), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }
}
