using Microsoft.AspNetCore.Http;
using Rtt.Core.Errors;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Silo.Web;

namespace Rtt.Silo.Tests;

/// <summary>The silo web host's plain parts: Host/Origin refusals, the credential check, sessions, settings.</summary>
public sealed class WebHostTests : IDisposable
{
    private readonly RttWorkspace _workspace = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-web-").FullName).Workspace;

    private static DefaultHttpContext Request(string method, string host, string? origin = null, string? bearer = null, string? cookie = null)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Scheme = "http";
        context.Request.Host = new HostString(host);
        context.Request.Path = "/api/plans";
        if (origin is not null)
        {
            context.Request.Headers.Origin = origin;
        }

        if (bearer is not null)
        {
            context.Request.Headers.Authorization = $"Bearer {bearer}";
        }

        if (cookie is not null)
        {
            context.Request.Headers.Cookie = $"{RttWebHost.CookieName}={cookie}";
        }

        return context;
    }

    [Theory]
    [InlineData("GET", "127.0.0.1:7411", null, null)]
    [InlineData("GET", "localhost:7411", null, null)]
    [InlineData("GET", "[::1]:7411", null, null)]
    [InlineData("GET", "127.0.0.1:7411", "http://127.0.0.1:7411", null)]
    [InlineData("POST", "127.0.0.1:7411", "http://127.0.0.1:7411", null)]
    [InlineData("GET", "rebind.example:7411", null, "host not allowed")]
    [InlineData("GET", "127.0.0.1:7411", "http://evil.example", "origin not allowed")]
    [InlineData("POST", "127.0.0.1:7411", "http://127.0.0.1:7412", "origin not allowed")]
    [InlineData("POST", "127.0.0.1:7411", null, "origin required")]
    public void Host_and_origin_are_checked_before_credentials(string method, string host, string? origin, string? refused)
    {
        var refusal = RttWebHost.Refusal(Request(method, host, origin), loopback: true);
        Assert.Equal(refused, refusal?.Reason);
        if (refused is not null)
        {
            Assert.Equal(StatusCodes.Status403Forbidden, refusal!.Value.Status);
        }
    }

    [Fact]
    public void A_bearer_post_without_origin_is_let_through_to_the_credential_check()
    {
        Assert.Null(RttWebHost.Refusal(Request("POST", "127.0.0.1:7411", bearer: "rtt1.x"), loopback: true));
        Assert.Null(RttWebHost.Refusal(Request("GET", "10.0.0.5:7411"), loopback: false)); // an explicit non-loopback bind takes its own names
    }

    [Fact]
    public void Credentials_need_rx_on_the_panel_symbol_and_sessions_expire()
    {
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var verifier = TokenVerifier.ForWorkspace(_workspace, time);
        var sessions = new WebSessions(time);
        using var key = _workspace.LoadSigningKey();
        string Issue(string saddr, params string[] verbs) => CapabilityToken.Seal(CapabilityToken.Issue(key, saddr, verbs, [], TimeSpan.FromMinutes(5), time.GetUtcNow()));

        var (none, why) = RttWebHost.Authenticate(Request("GET", "127.0.0.1:1"), sessions, verifier);
        Assert.Null(none);
        Assert.StartsWith("credentials required", why, StringComparison.Ordinal);

        var (reader, _) = RttWebHost.Authenticate(Request("GET", "127.0.0.1:1", bearer: Issue(RttWebHost.PanelSymbol, "rx")), sessions, verifier);
        Assert.Equal(new WebPrincipal("bearer", reader!.Bearer, false, false), reader);

        var (admin, _) = RttWebHost.Authenticate(Request("GET", "127.0.0.1:1", bearer: Issue(ManagementTokens.Symbol("*"), "rx", "tx")), sessions, verifier);
        Assert.True(admin!.CanApply && admin.CanRollback);

        var (other, refusal) = RttWebHost.Authenticate(Request("GET", "127.0.0.1:1", bearer: Issue("rtt://core/api/*", "rx")), sessions, verifier);
        Assert.Null(other);
        Assert.StartsWith("RTT-TOKEN-", refusal, StringComparison.Ordinal);
        Assert.DoesNotContain("rtt1.", refusal, StringComparison.Ordinal);

        var id = sessions.Open(new WebPrincipal("session", null, true, false), TimeSpan.FromMinutes(10));
        Assert.Equal("session", RttWebHost.Authenticate(Request("GET", "127.0.0.1:1", cookie: id), sessions, verifier).Principal?.Kind);
        Assert.Null(RttWebHost.Authenticate(Request("GET", "127.0.0.1:1", cookie: id + "x"), sessions, verifier).Principal);
        time.Advance(TimeSpan.FromMinutes(11));
        Assert.Null(sessions.Find(id));
        var closed = sessions.Open(new WebPrincipal("session", null, false, false), TimeSpan.FromMinutes(10));
        sessions.Close(closed);
        Assert.Null(sessions.Find(closed));
    }

    [Theory]
    [InlineData("localhost", 7411, 480)]
    [InlineData("127.0.0.1", 70000, 480)]
    [InlineData("127.0.0.1", 7411, 0)]
    public void Bad_web_settings_are_refused_with_the_setting_named(string bind, int port, int minutes)
    {
        var ex = Assert.Throws<HostingException>(() => new RttWebOptions { Bind = bind, Port = port, SessionMinutes = minutes }.Validate());
        Assert.Equal(ErrorCodes.ConfigInvalid, ex.Code);
        Assert.StartsWith("Web:", ex.Location, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_workspace.Root, recursive: true);
}

internal sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    private DateTimeOffset _now = now;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
