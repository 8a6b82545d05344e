using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Tests;

/// <summary>
/// Capability tokens at attach (issue 17, docs/fabric.md attach protocol v3): no token, an expired one, one attenuated
/// to another route, a replayed one: each refused with its own code while a valid one works; the lane is closed with
/// RTT-TOKEN-019 when its token expires; a token-attached lane cannot send frames for another route.
/// </summary>
public sealed class AttachTokenTests : IDisposable
{
    private const uint Upper = 7;
    private const uint Other = 8;
    private readonly TestLanes _lanes = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-attach-").FullName;
    private readonly RttWorkspace _ws;
    private readonly SigningKey _key;

    public AttachTokenTests()
    {
        _ws = WorkspaceInitializer.Create(_dir).Workspace;
        _key = _ws.LoadSigningKey();
    }

    private async Task<(LaneHost Host, LaneHostListener Listener, string Control)> Start(bool strict)
    {
        var host = new LaneHost();
        await host.SwapAsync(new RouteTable([
            new RouteEntry(Upper, "rtt://core/api/upper", new DriverEndpoint(new EchoDriver())),
            new RouteEntry(Other, "rtt://core/api/other", new DriverEndpoint(new EchoDriver())),
        ]));
        var control = _lanes.SocketPath(strict ? "strict" : "dev");
        var listener = new LaneHostListener(host, new LaneOptions(), control, admission: new LaneAdmission(TokenVerifier.ForWorkspace(_ws), strict));
        return (host, listener, control);
    }

    private string Token(string saddr = "rtt://core/api/*", TimeSpan? ttl = null, DateTimeOffset? now = null) =>
        CapabilityToken.Issue(_key, saddr, ["open", "rx", "tx"], [], ttl ?? TimeSpan.FromMinutes(5), now ?? DateTimeOffset.UtcNow);

    private static string Refused(string control, string? token, string route = "rtt://core/api/upper") =>
        Assert.Throws<TokenException>(() => LaneAttach.ConnectUnix(control, route, LaneKind.Uds, null, token)).Code;

    [Fact]
    public async Task Strict_mode_refuses_each_bad_token_with_its_own_code_and_admits_a_valid_one()
    {
        var (host, listener, control) = await Start(strict: true);
        using (host)
        using (listener)
        {
            Assert.Equal(ErrorCodes.TokenMissing, Refused(control, null));
            Assert.Equal(ErrorCodes.TokenExpired, Refused(control, Token(ttl: TimeSpan.FromMinutes(1), now: DateTimeOffset.UtcNow.AddMinutes(-2))));
            var elsewhere = CapabilityToken.Attenuate(Token(), new TokenNarrowing("rtt://core/api/other"));
            Assert.Equal(ErrorCodes.TokenRouteDenied, Refused(control, elsewhere));
            Assert.Equal(ErrorCodes.TokenVerbDenied, Refused(control, CapabilityToken.Attenuate(Token(), new TokenNarrowing(Verbs: ["open", "rx"]))));

            var valid = Token("rtt://core/api/upper");
            var (lane, routeId) = LaneAttach.ConnectUnix(control, "rtt://core/api/upper", LaneKind.Uds, null, valid);
            using (lane)
            {
                Assert.Equal(Upper, routeId);
                Assert.Equal("hi", await Echo(lane, Upper, "hi"));

                // A lane admitted for one route cannot carry frames for another.
                var (flags, text) = await Send(lane, Other, "x");
                Assert.True((flags & FrameFlags.Error) != 0);
                Assert.StartsWith(ErrorCodes.TokenRouteDenied, text, StringComparison.Ordinal);
            }

            Assert.Equal(ErrorCodes.TokenReplayed, Refused(control, valid)); // the same token again
            // Counted by the listener right after it sent the refusal: the client may read it first, so wait a moment.
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (listener.RefusedAttaches < 5 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }

            Assert.Equal(5, listener.RefusedAttaches);
        }
    }

    [Fact]
    public async Task Dev_mode_admits_the_silos_own_user_without_a_token_but_still_checks_a_presented_one()
    {
        var (host, listener, control) = await Start(strict: false);
        using (host)
        using (listener)
        {
            var (lane, _) = LaneAttach.ConnectUnix(control, "rtt://core/api/other", LaneKind.Uds);
            lane.Dispose();
            using var stranger = SigningKey.Generate();
            var foreign = CapabilityToken.Issue(stranger, "rtt://*", ["open", "rx", "tx"], [], TimeSpan.FromMinutes(1), DateTimeOffset.UtcNow);
            Assert.Equal(ErrorCodes.TokenIssuerUnknown, Refused(control, foreign));
        }
    }

    [Fact]
    public async Task An_attached_lane_is_closed_with_a_named_error_when_its_token_expires()
    {
        var (host, listener, control) = await Start(strict: true);
        using (host)
        using (listener)
        {
            // Times are whole seconds: a token issued 1.5 s ago for 3 s has 1-2 s left.
            var now = DateTimeOffset.UtcNow;
            var token = CapabilityToken.Issue(_key, "rtt://core/api/upper", ["open", "rx", "tx"], [], TimeSpan.FromSeconds(3), now.AddSeconds(-1.5));
            using var client = Rtt.Client.Lanes.LaneClient.Attach(control, "rtt://core/api/upper", LaneKind.Uds, token: token);
            Assert.Equal(2, (await client.RequestAsync(new byte[2])).Length);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (client.Connected && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            Assert.False(client.Connected, "the lane outlived its token");
            Assert.Equal(ErrorCodes.TokenLaneExpired, client.CloseReason?.Code);
            Assert.Equal(1, host.ExpiredLanes);
            var ex = await Assert.ThrowsAnyAsync<Exception>(() => client.RequestAsync(new byte[1], TimeSpan.FromSeconds(2)));
            Assert.NotNull(ex);
        }
    }

    private static async Task<string> Echo(IFrameLane lane, uint route, string text)
    {
        var (flags, answer) = await Send(lane, route, text);
        Assert.True((flags & FrameFlags.Error) == 0, answer);
        return answer;
    }

    private static async Task<(FrameFlags Flags, string Text)> Send(IFrameLane lane, uint route, string text)
    {
        Assert.True(lane.Send(route, 1, System.Text.Encoding.UTF8.GetBytes(text)));
        lane.Flush();
        (FrameFlags, string)? got = null;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (got is null && DateTime.UtcNow < deadline)
        {
            lane.Poll((in FrameHeader h, ReadOnlySpan<byte> p) => got = (h.Flags, System.Text.Encoding.UTF8.GetString(p)));
            if (got is null)
            {
                await Task.Delay(5);
            }
        }

        return got ?? throw new TimeoutException("no answer");
    }

    public void Dispose()
    {
        _key.Dispose();
        _lanes.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
