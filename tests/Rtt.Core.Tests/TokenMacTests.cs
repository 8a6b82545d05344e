using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

/// <summary>MAC tokens (docs/tokens.md, MAC tokens): made and checked only with the issuer's private key; refused otherwise.</summary>
public sealed class TokenMacTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-token-mac-").FullName;
    private readonly RttWorkspace _ws;
    private readonly SigningKey _key;

    public TokenMacTests()
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

    private string Issue(SigningKey? key = null, TimeSpan? ttl = null) =>
        CapabilityToken.IssueMac(key ?? _key, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs, [], ttl ?? TimeSpan.FromMinutes(2), Now);

    private static string Encode(JsonObject envelope) => CapabilityToken.MacPrefix + CapabilityToken.Base64Url(CanonicalJson.Serialize(envelope));

    private static JsonObject Envelope(string text) => (JsonObject)JsonNode.Parse(CapabilityToken.FromBase64Url(text.AsSpan(CapabilityToken.MacPrefix.Length))!)!;

    [Fact]
    public void A_mac_token_from_the_workspace_key_is_admitted_once_with_the_rights_it_names()
    {
        var text = Issue();
        Assert.StartsWith("rttm1.", text, StringComparison.Ordinal);
        var verifier = Verifier();
        var token = verifier.Admit(text, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs);
        Assert.True(token.IsMac);
        Assert.Equal(_key.KeyId, token.IssuerKeyId);
        Assert.Equal(Now.AddMinutes(2), token.Rights.Expires);
        Assert.Equal(ErrorCodes.TokenReplayed, Assert.Throws<TokenException>(() => verifier.Admit(text, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs)).Code);
        Assert.Equal(ErrorCodes.TokenRouteDenied, Assert.Throws<TokenException>(() => verifier.Admit(Issue(), ManagementTokens.Symbol(ManagementTokens.Rollback), ManagementTokens.Verbs)).Code);
    }

    [Fact]
    public void The_mac_is_hmac_sha256_with_the_documented_key_derivation_so_an_outsider_holding_the_seed_can_recompute_it()
    {
        var envelope = Envelope(Issue());
        Assert.Equal(["body", "format", "mac"], envelope.Select(m => m.Key));
        Assert.Equal("rtt.mac/1", (string?)envelope["format"]);
        var body = (JsonObject)envelope["body"]!;
        Assert.Equal(["exp", "issuer", "kind", "nbf", "nonce", "saddr", "scopes", "token_id", "verbs"], body.Select(m => m.Key).Order(StringComparer.Ordinal));
        var seed = Convert.FromBase64String((string)_key.ToPrivateKeyJson()["private_key"]!);
        var macKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, seed, 32, Encoding.ASCII.GetBytes("rtt.mac/1"), Encoding.ASCII.GetBytes(_key.KeyId));
        Assert.Equal(Convert.ToBase64String(HMACSHA256.HashData(macKey, CanonicalJson.Serialize(body))), (string?)envelope["mac"]);
        Assert.DoesNotContain(Convert.ToBase64String(seed), envelope.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(macKey), envelope.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_changed_body_or_mac_is_refused_and_a_malformed_one_names_what_is_wrong()
    {
        var widened = Envelope(Issue());
        widened["body"]!["saddr"] = "rtt://rtt/manage/*";
        Assert.Equal(ErrorCodes.TokenSignatureInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(Encode(widened))).Code);

        var later = Envelope(Issue());
        later["body"]!["exp"] = CapabilityToken.Time(Now.AddDays(1));
        Assert.Equal(ErrorCodes.TokenSignatureInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(Encode(later))).Code);

        var zeroed = Envelope(Issue());
        zeroed["mac"] = Convert.ToBase64String(new byte[32]);
        Assert.Equal(ErrorCodes.TokenSignatureInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(Encode(zeroed))).Code);

        var extra = Envelope(Issue());
        extra["proof"] = new JsonObject();
        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(Encode(extra))).Code);

        var kind = Envelope(Issue());
        kind["body"]!["kind"] = "authority";
        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(Encode(kind))).Code);

        var shortMac = Envelope(Issue());
        shortMac["mac"] = Convert.ToBase64String(new byte[16]);
        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(Encode(shortMac))).Code);

        var text = Issue();
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => Verifier().Verify(text + "=")).Code);
        var pretty = CapabilityToken.MacPrefix + CapabilityToken.Base64Url(Encoding.UTF8.GetBytes(Envelope(text).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true })));
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => Verifier().Verify(pretty)).Code);
    }

    [Fact]
    public void A_mac_token_is_checked_only_by_a_holder_of_its_key_and_like_any_token_for_trust_time_and_revocation()
    {
        // A key the workspace trusts but whose private half it does not hold: the MAC cannot be checked.
        using var colleague = SigningKey.Generate();
        TrustStore.WriteTrustedKey(_ws.Trust, "colleague", colleague.PublicKey);
        var fromColleague = Assert.Throws<TokenException>(() => Verifier().Verify(Issue(colleague)));
        Assert.Equal(ErrorCodes.TokenMacKeyUnknown, fromColleague.Code);
        Assert.Contains(colleague.KeyId, fromColleague.Message, StringComparison.Ordinal);
        Assert.Equal(colleague.KeyId, Verifier().Verify(CapabilityToken.IssueSealed(colleague, "rtt://rtt/manage/apply", ["tx"], [], TimeSpan.FromMinutes(2), Now)).IssuerKeyId); // its signed token is fine

        // A verifier with no private key at all (e.g. a front end built from a trust store alone).
        var keyless = new TokenVerifier(_ws.LoadTrustStore(), time: new FixedTime(Now.AddSeconds(10)));
        Assert.Equal(ErrorCodes.TokenMacKeyUnknown, Assert.Throws<TokenException>(() => keyless.Verify(Issue())).Code);

        using var stranger = SigningKey.Generate();
        Assert.Equal(ErrorCodes.TokenIssuerUnknown, Assert.Throws<TokenException>(() => Verifier().Verify(Issue(stranger))).Code);
        Assert.Equal(ErrorCodes.TokenExpired, Assert.Throws<TokenException>(() => Verifier(Now.AddMinutes(2)).Verify(Issue())).Code);
        Assert.Equal(ErrorCodes.TokenNotYetValid, Assert.Throws<TokenException>(() => Verifier(Now.AddSeconds(-1)).Verify(Issue())).Code);

        var verifier = Verifier();
        var revoked = Issue();
        RevokedTokens.Revoke(_ws, CapabilityToken.Parse(revoked).TokenId, "test", Now);
        Assert.Equal(ErrorCodes.TokenRevoked, Assert.Throws<TokenException>(() => verifier.Verify(revoked)).Code);

        var beforeRevocation = Issue();
        verifier.Verify(Issue()); // its MAC key is kept by now
        TrustStore.Revoke(_ws.Trust, _key.KeyId, "test", Now);
        Assert.Equal(ErrorCodes.TokenIssuerRevoked, Assert.Throws<TokenException>(() => verifier.Verify(beforeRevocation)).Code);
    }

    [Fact]
    public void A_remembered_signature_is_accepted_only_for_the_same_bytes_and_the_same_signature()
    {
        var data = Encoding.UTF8.GetBytes("{\"plan_id\":\"x\"}");
        var signature = _key.Sign(data);
        Assert.True(_key.PublicKey.VerifyRemembered(data, signature));
        Assert.True(_key.PublicKey.VerifyRemembered(data, signature)); // from the kept hash
        var other = (byte[])data.Clone();
        other[^2] ^= 1;
        Assert.False(_key.PublicKey.VerifyRemembered(other, signature));
        var forged = (byte[])signature.Clone();
        forged[10] ^= 1;
        Assert.False(_key.PublicKey.VerifyRemembered(data, forged));
        Assert.False(_key.PublicKey.VerifyRemembered(data, signature.AsSpan(0, 63)));
        using var stranger = SigningKey.Generate();
        Assert.False(stranger.PublicKey.VerifyRemembered(data, signature));
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
