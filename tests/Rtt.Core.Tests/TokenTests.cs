using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

/// <summary>Capability tokens (docs/tokens.md): issue, attenuate, seal, verify; the chain only narrows.</summary>
public sealed class TokenTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-token-").FullName;
    private readonly RttWorkspace _ws;
    private readonly SigningKey _key;

    public TokenTests()
    {
        _ws = WorkspaceInitializer.Create(_dir).Workspace;
        _key = _ws.LoadSigningKey();
    }

    public void Dispose()
    {
        _key.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private TokenVerifier Verifier(DateTimeOffset? at = null) => TokenVerifier.ForWorkspace(_ws, new FixedTime(at ?? Now.AddSeconds(10)));

    private string Issue(string saddr = "rtt://core/api/*", string verbs = "open,rx,tx", TimeSpan? ttl = null) =>
        CapabilityToken.Issue(_key, saddr, verbs.Split(','), ["metrics.read", "x"], ttl ?? TimeSpan.FromMinutes(5), Now);

    [Fact]
    public void An_issued_token_verifies_and_allows_what_it_says()
    {
        var text = Issue();
        Assert.StartsWith("rtt1.", text, StringComparison.Ordinal);
        var token = Verifier().Admit(text, "rtt://core/api/upper", ["open", "tx", "rx"], ["metrics.read"]);
        Assert.Equal(_key.KeyId, token.IssuerKeyId);
        Assert.Equal(Now.AddMinutes(5), token.Rights.Expires);
        Assert.Equal(["open", "rx", "tx"], token.Rights.Verbs);
    }

    [Fact]
    public void The_envelope_is_canonical_json_so_an_outsider_can_recompute_every_signature()
    {
        var token = CapabilityToken.Parse(Issue());
        var bytes = CapabilityToken.FromBase64Url(token.Text.AsSpan(5))!;
        Assert.Equal(CanonicalJson.Serialize(JsonNode.Parse(bytes)), bytes);
        var body = token.Blocks[0].Body;
        Assert.True(_key.PublicKey.Verify(CanonicalJson.Serialize(body), token.Blocks[0].Sig));
    }

    [Fact]
    public void Attenuation_narrows_offline_and_each_block_is_signed_by_the_key_the_previous_one_names()
    {
        var narrowed = CapabilityToken.Attenuate(Issue(), new TokenNarrowing("rtt://core/api/upper", ["open", "tx"], ["x"], Now.AddMinutes(1)));
        var again = CapabilityToken.Attenuate(narrowed, new TokenNarrowing(Verbs: ["open"]));
        var token = Verifier().Verify(again);
        Assert.Equal(3, token.Blocks.Count);
        Assert.Equal("rtt://core/api/upper", token.Rights.Saddr);
        Assert.Equal(["open"], token.Rights.Verbs);
        Assert.Equal(["x"], token.Rights.Scopes);
        Assert.Equal(Now.AddMinutes(1), token.Rights.Expires);
        var next = new TrustedKey(Convert.FromBase64String((string)token.Blocks[0].Body["next_key"]!));
        Assert.True(next.Verify(CanonicalJson.Serialize(token.Blocks[1].Body), token.Blocks[1].Sig));

        Assert.Equal(ErrorCodes.TokenRouteDenied, Assert.Throws<TokenException>(() => TokenVerifier.Authorize(token, "rtt://core/api/reverse", ["open"])).Code);
        Assert.Equal(ErrorCodes.TokenVerbDenied, Assert.Throws<TokenException>(() => TokenVerifier.Authorize(token, "rtt://core/api/upper", ["tx"])).Code);
    }

    [Theory]
    [InlineData("rtt://other/*", null, null, 0)]
    [InlineData(null, "open,close", null, 0)]
    [InlineData(null, null, "admin", 0)]
    [InlineData(null, null, null, 10)]
    public void Attenuation_that_widens_is_refused(string? saddr, string? verbs, string? scope, int laterMinutes)
    {
        var narrowing = new TokenNarrowing(saddr, verbs?.Split(','), scope is null ? null : [scope], laterMinutes > 0 ? Now.AddMinutes(laterMinutes) : null);
        Assert.Equal(ErrorCodes.TokenWidened, Assert.Throws<TokenException>(() => CapabilityToken.Attenuate(Issue(), narrowing)).Code);
    }

    [Fact]
    public void A_sealed_token_verifies_but_takes_no_more_blocks()
    {
        var sealedToken = CapabilityToken.Seal(Issue());
        Assert.True(Verifier().Verify(sealedToken).Sealed);
        Assert.Equal(ErrorCodes.TokenSealed, Assert.Throws<TokenException>(() => CapabilityToken.Attenuate(sealedToken, new TokenNarrowing(Verbs: ["open"]))).Code);
    }

    [Fact]
    public void A_token_issued_sealed_is_the_token_sealed_after_issue()
    {
        var direct = CapabilityToken.IssueSealed(_key, "rtt://core/api/*", ["open", "rx", "tx"], ["metrics.read", "x"], TimeSpan.FromMinutes(5), Now);
        var twoSteps = CapabilityToken.Seal(Issue());
        var (a, b) = (Verifier().Verify(direct), Verifier().Verify(twoSteps));
        Assert.True(a.Sealed);
        Assert.Equal((b.Rights.Saddr, string.Join(",", b.Rights.Verbs), string.Join(",", b.Rights.Scopes), b.Rights.Expires, b.IssuerKeyId),
            (a.Rights.Saddr, string.Join(",", a.Rights.Verbs), string.Join(",", a.Rights.Scopes), a.Rights.Expires, a.IssuerKeyId));

        // The same envelope, member for member, but for the random parts (token id, nonce, next key, signatures).
        static JsonNode Shape(string text)
        {
            var node = JsonNode.Parse(CapabilityToken.FromBase64Url(text.AsSpan(5))!)!;
            var body = node["blocks"]![0]!["body"]!;
            foreach (var random in new[] { "token_id", "nonce", "next_key" })
            {
                body[random] = "*";
            }

            node["blocks"]![0]!["sig"] = "*";
            node["proof"]!["seal"] = "*";
            return node;
        }

        Assert.Equal(Shape(twoSteps).ToJsonString(), Shape(direct).ToJsonString());
        Assert.Equal(ErrorCodes.TokenSealed, Assert.Throws<TokenException>(() => CapabilityToken.Seal(direct)).Code);
        Assert.NotNull(Verifier().Admit(direct, "rtt://core/api/upper", ["open"]));

        // A seal that is not the next key's signature is refused.
        var forged = JsonNode.Parse(CapabilityToken.FromBase64Url(direct.AsSpan(5))!)!;
        forged["proof"]!["seal"] = Convert.ToBase64String(new byte[64]);
        var forgedText = "rtt1." + Convert.ToBase64String(CanonicalJson.Serialize(forged)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        Assert.Equal(ErrorCodes.TokenProofInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(forgedText)).Code);
    }

    [Fact]
    public void Time_window_revocation_and_replay_each_have_their_code()
    {
        var text = Issue();
        Assert.Equal(ErrorCodes.TokenExpired, Assert.Throws<TokenException>(() => Verifier(Now.AddMinutes(5)).Verify(text)).Code);
        Assert.Equal(ErrorCodes.TokenNotYetValid, Assert.Throws<TokenException>(() => Verifier(Now.AddSeconds(-1)).Verify(text)).Code);

        var verifier = Verifier();
        verifier.Admit(text, "rtt://core/api/upper", ["open"]);
        Assert.Equal(ErrorCodes.TokenReplayed, Assert.Throws<TokenException>(() => verifier.Admit(text, "rtt://core/api/upper", ["open"])).Code);

        RevokedTokens.Revoke(_ws, CapabilityToken.Parse(text).TokenId, "test", Now);
        Assert.Equal(ErrorCodes.TokenRevoked, Assert.Throws<TokenException>(() => verifier.Verify(text)).Code); // re-read without a restart

        var other = Issue();
        TrustStore.Revoke(_ws.Trust, _key.KeyId, "test", Now);
        Assert.Equal(ErrorCodes.TokenIssuerRevoked, Assert.Throws<TokenException>(() => verifier.Verify(other)).Code);
    }

    [Fact]
    public void A_token_from_a_key_the_workspace_does_not_trust_is_refused()
    {
        using var stranger = SigningKey.Generate();
        var text = CapabilityToken.Issue(stranger, "rtt://core/api/*", ["open"], [], TimeSpan.FromMinutes(5), Now);
        Assert.Equal(ErrorCodes.TokenIssuerUnknown, Assert.Throws<TokenException>(() => Verifier().Verify(text)).Code);
    }

    [Fact]
    public void The_replay_cache_is_bounded_forgets_expired_nonces_and_refuses_rather_than_forget_a_live_one()
    {
        var cache = new ReplayCache(capacity: 2);
        cache.Spend("a", Now.AddSeconds(10), Now);
        cache.Spend("b", Now.AddSeconds(20), Now);
        Assert.Equal(ErrorCodes.TokenReplayCacheFull, Assert.Throws<TokenException>(() => cache.Spend("c", Now.AddSeconds(30), Now)).Code);
        cache.Spend("c", Now.AddSeconds(30), Now.AddSeconds(10)); // a expired: room again
        Assert.Equal(2, cache.Count);
        Assert.Equal(ErrorCodes.TokenReplayed, Assert.Throws<TokenException>(() => cache.Spend("b", Now.AddSeconds(20), Now.AddSeconds(11))).Code);
    }

    [Fact]
    public void Tokens_never_carry_the_issuers_secret()
    {
        var seed = (string)_key.ToPrivateKeyJson()["private_key"]!;
        var decoded = Encoding.UTF8.GetString(CapabilityToken.FromBase64Url(Issue().AsSpan(5))!);
        Assert.DoesNotContain(seed, decoded, StringComparison.Ordinal);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
