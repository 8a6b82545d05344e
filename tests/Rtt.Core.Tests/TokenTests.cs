using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

/// <summary>Capability tokens (docs/tokens.md): issue, attenuate, seal, verify; the chain only narrows; MAC tokens checked only by a holder of their key.</summary>
public sealed partial class TokenTests : IDisposable
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
    public void The_replay_cache_tells_apart_nonces_that_differ_in_length_case_or_a_character_past_the_kept_ones()
    {
        // Kept as characters up to 47, hashed beyond or when not ASCII: every one of these is its own nonce, and each is
        // refused the second time.
        var long47 = new string('n', 47);
        string[] nonces = ["a", "a\0", "A", "", long47, long47 + "n", long47 + "o", long47 + "nn", "é", "e\u0301", new string('n', 200), new string('n', 201)];
        var cache = new ReplayCache(capacity: 100);
        foreach (var n in nonces)
        {
            cache.Spend(n, Now.AddSeconds(30), Now);
        }

        Assert.Equal(nonces.Length, cache.Count);
        Assert.All(nonces, n => Assert.Equal(ErrorCodes.TokenReplayed, Assert.Throws<TokenException>(() => cache.Spend(n, Now.AddSeconds(30), Now)).Code));
    }

    [Fact]
    public void A_tokens_times_read_digit_by_digit_agree_with_the_exact_parser()
    {
        static DateTimeOffset? Exact(string t) => DateTimeOffset.TryParseExact(t, "yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out var v) ? v : null;

        string[] fixedOnes = ["2026-12-05T11:27:31Z", "2024-02-29T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"];
        foreach (var t in fixedOnes)
        {
            Assert.Equal(Exact(t), CapabilityToken.FixedTime(t));
            Assert.NotNull(CapabilityToken.FixedTime(t));
        }

        string[] refused = ["2023-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-04-31T00:00:00Z",
            "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z", "2026-01-01t00:00:00Z", "2026-01-01T00:00:00z", "+026-01-01T00:00:00Z",
            "2026-01-01T00:00:0\uFF15Z", "2026-1-01T00:00:00Z ", "2026-01-01T00:00:00+00:00", "2026-01-01 00:00:00Z"];
        foreach (var t in refused)
        {
            Assert.Null(CapabilityToken.FixedTime(t));
        }

        // Whatever the digit reader accepts, the exact parser reads the same (it is only a faster path to the same answer).
        var random = new Random(20261205);
        const string alphabet = "0123456789-T:Z ";
        for (var n = 0; n < 20_000; n++)
        {
            var chars = "2026-12-05T11:27:31Z".ToCharArray();
            for (var k = random.Next(1, 4); k > 0; k--)
            {
                chars[random.Next(chars.Length)] = alphabet[random.Next(alphabet.Length)];
            }

            var text = new string(chars);
            if (CapabilityToken.FixedTime(text) is { } read)
            {
                Assert.Equal(Exact(text), read);
            }
        }
    }

    [Fact]
    public void A_mac_tokens_times_are_written_as_the_formatter_writes_them()
    {
        DateTimeOffset[] times = [new(2001, 2, 3, 4, 5, 6, TimeSpan.Zero), new(1999, 9, 9, 9, 9, 9, TimeSpan.Zero), new(2026, 12, 31, 23, 59, 59, TimeSpan.Zero),
            new(2026, 12, 5, 12, 30, 0, TimeSpan.FromHours(5.5)), new(987, 10, 11, 12, 13, 14, TimeSpan.Zero), new(2100, 1, 1, 0, 0, 0, TimeSpan.Zero)];
        foreach (var now in times)
        {
            var text = CapabilityToken.IssueMac(_key, "rtt://a", ["tx"], [], TimeSpan.FromSeconds(61), now);
            var body = JsonNode.Parse(CapabilityToken.FromBase64Url(text.AsSpan(CapabilityToken.MacPrefix.Length))!)!["body"]!;
            Assert.Equal(CapabilityToken.Time(now), (string?)body["nbf"]);
            Assert.Equal(CapabilityToken.Time(now.AddSeconds(61)), (string?)body["exp"]);
        }
    }

    [Fact]
    public void Tokens_never_carry_the_issuers_secret()
    {
        var seed = (string)_key.ToPrivateKeyJson()["private_key"]!;
        var decoded = Encoding.UTF8.GetString(CapabilityToken.FromBase64Url(Issue().AsSpan(5))!);
        Assert.DoesNotContain(seed, decoded, StringComparison.Ordinal);
    }

    // MAC tokens (docs/tokens.md, MAC tokens): made and checked only with the issuer's private key; refused otherwise.
    private string IssueMac(SigningKey? key = null, TimeSpan? ttl = null) =>
        CapabilityToken.IssueMac(key ?? _key, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs, [], ttl ?? TimeSpan.FromMinutes(2), Now);

    private static string EncodeMac(JsonObject envelope) => CapabilityToken.MacPrefix + CapabilityToken.Base64Url(CanonicalJson.Serialize(envelope));

    private static JsonObject MacEnvelope(string text) => (JsonObject)JsonNode.Parse(CapabilityToken.FromBase64Url(text.AsSpan(CapabilityToken.MacPrefix.Length))!)!;

    [Fact]
    public void A_trust_file_broken_after_the_verifier_started_refuses_every_call_until_it_reads_back_whole()
    {
        var verifier = Verifier();
        var text = Issue();
        verifier.Verify(text);
        var revoked = Path.Combine(_ws.Trust, TrustStore.RevokedFileName);
        var before = File.Exists(revoked) ? File.ReadAllBytes(revoked) : null;
        File.WriteAllText(revoked, "{\"revoked\": ["); // a hand edit cut short

        // The watch tells of the change once; the calls after it must still be refused, not checked against the trust read
        // before the change.
        for (var i = 0; i < 3; i++)
        {
            Assert.ThrowsAny<RttException>(() => verifier.Verify(text));
        }

        if (before is null)
        {
            File.Delete(revoked);
        }
        else
        {
            File.WriteAllBytes(revoked, before);
        }

        Assert.Equal(text, verifier.Verify(text).Text);
    }

    [Fact]
    public void Mac_tokens_made_in_a_row_never_share_a_token_id_or_nonce_across_the_random_pool_refills()
    {
        // The random bytes come from a per-thread pool of the system generator's output refilled every 32 tokens: 100 tokens
        // cross three refills; each must carry bytes of its own, and the verifier must admit every one once.
        var tokens = Enumerable.Range(0, 100).Select(_ => CapabilityToken.Parse(IssueMac())).ToList();
        Assert.Equal(100, tokens.Select(t => t.TokenId).Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(100, tokens.Select(t => t.Nonce).Distinct(StringComparer.Ordinal).Count());
        Assert.DoesNotContain(tokens, t => t.TokenId == new string('0', 32));
        var verifier = Verifier();
        Assert.All(tokens, t => verifier.Admit(t.Text, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs));
    }

    [Fact]
    public void A_mac_token_from_the_workspace_key_is_admitted_once_with_the_rights_it_names()
    {
        var text = IssueMac();
        Assert.StartsWith("rttm1.", text, StringComparison.Ordinal);
        var verifier = Verifier();
        var token = verifier.Admit(text, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs);
        Assert.True(token.IsMac);
        Assert.Equal(_key.KeyId, token.IssuerKeyId);
        Assert.Equal(Now.AddMinutes(2), token.Rights.Expires);
        Assert.Equal(ErrorCodes.TokenReplayed, Assert.Throws<TokenException>(() => verifier.Admit(text, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs)).Code);
        Assert.Equal(ErrorCodes.TokenRouteDenied, Assert.Throws<TokenException>(() => verifier.Admit(IssueMac(), ManagementTokens.Symbol(ManagementTokens.Rollback), ManagementTokens.Verbs)).Code);
    }

    [Fact]
    public void The_mac_is_hmac_sha256_with_the_documented_key_derivation_so_an_outsider_holding_the_seed_can_recompute_it()
    {
        var envelope = MacEnvelope(IssueMac());
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
        var widened = MacEnvelope(IssueMac());
        widened["body"]!["saddr"] = "rtt://rtt/manage/*";
        Assert.Equal(ErrorCodes.TokenSignatureInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(EncodeMac(widened))).Code);

        var later = MacEnvelope(IssueMac());
        later["body"]!["exp"] = CapabilityToken.Time(Now.AddDays(1));
        Assert.Equal(ErrorCodes.TokenSignatureInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(EncodeMac(later))).Code);

        var zeroed = MacEnvelope(IssueMac());
        zeroed["mac"] = Convert.ToBase64String(new byte[32]);
        Assert.Equal(ErrorCodes.TokenSignatureInvalid, Assert.Throws<TokenException>(() => Verifier().Verify(EncodeMac(zeroed))).Code);

        var extra = MacEnvelope(IssueMac());
        extra["proof"] = new JsonObject();
        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(EncodeMac(extra))).Code);

        var kind = MacEnvelope(IssueMac());
        kind["body"]!["kind"] = "authority";
        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(EncodeMac(kind))).Code);

        var shortMac = MacEnvelope(IssueMac());
        shortMac["mac"] = Convert.ToBase64String(new byte[16]);
        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(EncodeMac(shortMac))).Code);

        var text = IssueMac();
        Assert.Equal(ErrorCodes.TokenSealed, Assert.Throws<TokenException>(() => CapabilityToken.Attenuate(text, new TokenNarrowing(Expires: Now))).Code);
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => Verifier().Verify(text + "=")).Code);
        var pretty = CapabilityToken.MacPrefix + CapabilityToken.Base64Url(Encoding.UTF8.GetBytes(MacEnvelope(text).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true })));
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => Verifier().Verify(pretty)).Code);
    }

    [Fact]
    public void A_mac_token_is_written_as_the_canonical_serializer_writes_its_envelope()
    {
        // IssueMac writes the bytes itself: they must be what RFC 8785 makes of the same envelope, for any address it accepts
        // (quotes and backslashes escaped), any verbs and scopes; the MAC is over the body's canonical bytes.
        string[] saddrs = ["rtt://rtt/manage/apply", "rtt://core/api/*", "rtt://a/\"q\"/b\\c", "rtt://x/<&>+'~`!{}[]|^", "rtt://" + new string('a', 250)];
        string[][] scopeSets = [[], ["metrics.read"], ["z", "a:b", "a", "c-d_e.f"]];
        foreach (var saddr in saddrs)
        {
            foreach (var scopes in scopeSets)
            {
                var text = CapabilityToken.IssueMac(_key, saddr, ["tx", "open", "tx"], scopes, TimeSpan.FromSeconds(90.7), Now.AddTicks(1234567));
                var bytes = CapabilityToken.FromBase64Url(text.AsSpan(CapabilityToken.MacPrefix.Length))!;
                var envelope = (JsonObject)JsonNode.Parse(bytes)!;
                Assert.Equal(CanonicalJson.Serialize(envelope), bytes);
                var body = (JsonObject)envelope["body"]!;
                Assert.Equal(saddr, (string?)body["saddr"]);
                Assert.Equal(["open", "tx"], body["verbs"]!.AsArray().Select(v => (string)v!));
                Assert.Equal(scopes.Order(StringComparer.Ordinal), body["scopes"]!.AsArray().Select(v => (string)v!));
                Assert.Equal(CapabilityToken.Time(Now), (string?)body["nbf"]);
                Assert.Equal(CapabilityToken.Time(Now.AddSeconds(90)), (string?)body["exp"]);
                var token = Verifier().Verify(text);
                Assert.Equal(saddr, token.Rights.Saddr);
                Assert.Equal((string?)body["token_id"], token.TokenId);
                Assert.Equal((string?)body["nonce"], token.Nonce);
            }
        }

        Assert.Equal(ErrorCodes.TokenRequestInvalid, Assert.Throws<TokenException>(() => CapabilityToken.IssueMac(_key, "rtt://a b", ["tx"], [], TimeSpan.FromMinutes(1), Now)).Code);
        Assert.Equal(ErrorCodes.TokenRequestInvalid, Assert.Throws<TokenException>(() => CapabilityToken.IssueMac(_key, "rtt://a", ["fly"], [], TimeSpan.FromMinutes(1), Now)).Code);
        Assert.Equal(ErrorCodes.TokenRequestInvalid, Assert.Throws<TokenException>(() => CapabilityToken.IssueMac(_key, "rtt://a", ["tx"], ["A"], TimeSpan.FromMinutes(1), Now)).Code);
        Assert.Equal(ErrorCodes.TokenRequestInvalid, Assert.Throws<TokenException>(() => CapabilityToken.IssueMac(_key, "rtt://a", ["tx"], [], TimeSpan.Zero, Now)).Code);
    }

    [Fact]
    public void A_mac_token_read_with_the_forward_reader_is_the_token_the_node_path_reads_and_both_refuse_alike()
    {
        // Every one-member change of a MAC envelope (values of each type, removals, extras, escapes) and a few whole texts:
        // the reader path (plain texts) and the node path (forced) accept with the same rights and ids, or refuse with the
        // same code, message and location.
        var issued = IssueMac();
        var original = MacEnvelope(issued);
        JsonNode?[] values = [null, 1, -0.5, true, "", "x", "mac", "rtt.mac/1", "\"q\"", "\u00e9", new JsonArray(), new JsonArray("tx"), new JsonArray("tx", "open"), new JsonArray("open", "tx"),
            new JsonArray(1), new JsonObject(), CapabilityToken.Time(Now), CapabilityToken.Time(Now.AddDays(40)), new string('a', 32), "sha256:" + new string('b', 64),
            CapabilityToken.Base64Url(new byte[32]), Convert.ToBase64String(new byte[32]), "rtt://core/*", "rtt://x*y"];
        var texts = new List<string> { issued, issued + "A", issued[..^2], CapabilityToken.MacPrefix, CapabilityToken.MacPrefix + CapabilityToken.Base64Url("[]"u8) };
        foreach (var path in new[] { "format", "mac", "extra", "body.exp", "body.issuer", "body.kind", "body.nbf", "body.nonce", "body.saddr", "body.scopes", "body.token_id", "body.verbs", "body.extra" })
        {
            var parts = path.Split('.');
            texts.Add(EncodeMac(With(original, parts, remove: true, null)));
            texts.AddRange(values.Select(v => EncodeMac(With(original, parts, remove: false, v))));
        }

        var accepted = 0;
        foreach (var text in texts)
        {
            var (read, readError) = Try(() => CapabilityToken.ParseMac(text, reader: true));
            var (node, nodeError) = Try(() => CapabilityToken.ParseMac(text, reader: false));
            Assert.Equal(nodeError?.Code, readError?.Code);
            Assert.Equal(nodeError?.Message, readError?.Message);
            Assert.Equal(nodeError?.Location, readError?.Location);
            if (node is not null)
            {
                accepted++;
                Assert.Equal(node.Rights.Saddr, read!.Rights.Saddr);
                Assert.Equal(node.Rights.Verbs, read.Rights.Verbs);
                Assert.Equal(node.Rights.Scopes, read.Rights.Scopes);
                Assert.Equal((node.Rights.NotBefore, node.Rights.Expires), (read.Rights.NotBefore, read.Rights.Expires));
                Assert.Equal((node.TokenId, node.IssuerKeyId, node.Nonce, node.IsMac, node.Sealed), (read.TokenId, read.IssuerKeyId, read.Nonce, read.IsMac, read.Sealed));
                Assert.Equal(node.Envelope.ToJsonString(), read.Envelope.ToJsonString());
                Assert.Equal(node.Blocks[0].Sig, read.Blocks[0].Sig);
                Assert.Equal(node.VerifyMac(_key.MacKey), read.VerifyMac(_key.MacKey));
            }
        }

        Assert.InRange(accepted, 3, texts.Count - 50); // the issued token and the changes that keep a valid shape (a new mac, saddr or time) are read; most are refused
        Assert.True(CapabilityToken.ParseMac(issued).VerifyMac(_key.MacKey));

        static JsonObject With(JsonObject envelope, string[] path, bool remove, JsonNode? value)
        {
            var copy = (JsonObject)envelope.DeepClone();
            var target = path.Length == 1 ? copy : (JsonObject)copy[path[0]]!;
            if (remove)
            {
                target.Remove(path[^1]);
            }
            else
            {
                target[path[^1]] = value?.DeepClone();
            }

            return copy;
        }

        static (CapabilityToken?, TokenException?) Try(Func<CapabilityToken> parse)
        {
            try
            {
                return (parse(), null);
            }
            catch (TokenException ex)
            {
                return (null, ex);
            }
        }
    }

    [Fact]
    public void A_mac_token_is_checked_only_by_a_holder_of_its_key_and_like_any_token_for_trust_time_and_revocation()
    {
        // A key the workspace trusts but whose private half it does not hold: the MAC cannot be checked.
        using var colleague = SigningKey.Generate();
        TrustStore.WriteTrustedKey(_ws.Trust, "colleague", colleague.PublicKey);
        var fromColleague = Assert.Throws<TokenException>(() => Verifier().Verify(IssueMac(colleague)));
        Assert.Equal(ErrorCodes.TokenMacKeyUnknown, fromColleague.Code);
        Assert.Contains(colleague.KeyId, fromColleague.Message, StringComparison.Ordinal);
        Assert.Equal(colleague.KeyId, Verifier().Verify(CapabilityToken.IssueSealed(colleague, "rtt://rtt/manage/apply", ["tx"], [], TimeSpan.FromMinutes(2), Now)).IssuerKeyId); // its signed token is fine

        // A verifier with no private key at all (e.g. a front end built from a trust store alone).
        var keyless = new TokenVerifier(_ws.LoadTrustStore(), time: new FixedTime(Now.AddSeconds(10)));
        Assert.Equal(ErrorCodes.TokenMacKeyUnknown, Assert.Throws<TokenException>(() => keyless.Verify(IssueMac())).Code);

        using var stranger = SigningKey.Generate();
        Assert.Equal(ErrorCodes.TokenIssuerUnknown, Assert.Throws<TokenException>(() => Verifier().Verify(IssueMac(stranger))).Code);
        Assert.Equal(ErrorCodes.TokenExpired, Assert.Throws<TokenException>(() => Verifier(Now.AddMinutes(2)).Verify(IssueMac())).Code);
        Assert.Equal(ErrorCodes.TokenNotYetValid, Assert.Throws<TokenException>(() => Verifier(Now.AddSeconds(-1)).Verify(IssueMac())).Code);

        var verifier = Verifier();
        var revoked = IssueMac();
        RevokedTokens.Revoke(_ws, CapabilityToken.Parse(revoked).TokenId, "test", Now);
        Assert.Equal(ErrorCodes.TokenRevoked, Assert.Throws<TokenException>(() => verifier.Verify(revoked)).Code);

        var beforeRevocation = IssueMac();
        verifier.Verify(IssueMac()); // its MAC key is kept by now
        TrustStore.Revoke(_ws.Trust, _key.KeyId, "test", Now);
        Assert.Equal(ErrorCodes.TokenIssuerRevoked, Assert.Throws<TokenException>(() => verifier.Verify(beforeRevocation)).Code);
    }

    [Fact]
    public async Task A_call_run_admitted_sees_the_trust_its_token_was_checked_with_and_nothing_outside_it_does()
    {
        var verifier = Verifier();
        verifier.Admit(IssueMac(), ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs, null, out var trust);
        Assert.True(trust.IsTrusted(_key.KeyId));

        // Revoked after the admission: the call still sees the trust as of its admission; the verifier sees the revocation.
        TrustStore.Revoke(_ws.Trust, _key.KeyId, "test", Now);
        TrustStore? seen = null, seenLater = null;
        await TokenVerifier.RunAdmitted(trust, async () =>
        {
            seen = TokenVerifier.TrustOfCall;
            await Task.Yield();
            seenLater = await Task.Run(() => TokenVerifier.TrustOfCall);
        });
        Assert.Same(trust, seen);
        Assert.Same(trust, seenLater);
        Assert.Null(TokenVerifier.TrustOfCall);
        Assert.True(verifier.Trust.IsRevoked(_key.KeyId));
        Assert.False(trust.IsRevoked(_key.KeyId));

        // Two calls at once each see their own.
        var other = TrustStore.Load(_ws.Trust);
        var gate = new TaskCompletionSource();
        TrustStore? first = null, second = null;
        var a = TokenVerifier.RunAdmitted(trust, async () => { await gate.Task; first = TokenVerifier.TrustOfCall; });
        var b = TokenVerifier.RunAdmitted(other, async () => { await gate.Task; second = TokenVerifier.TrustOfCall; });
        gate.SetResult();
        await Task.WhenAll(a, b);
        Assert.Same(trust, first);
        Assert.Same(other, second);
        Assert.Null(TokenVerifier.TrustOfCall);
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

    [Fact]
    public void Base64url_decoding_accepts_exactly_the_unpadded_canonical_texts()
    {
        // Reference: the alphabet mapped to standard base64, padded, decoded, and accepted only when encoding gives the text back.
        static byte[]? Reference(string text)
        {
            if (text.Length % 4 == 1 || text.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_'))
            {
                return null;
            }

            var standard = text.Replace('-', '+').Replace('_', '/');
            try
            {
                var bytes = Convert.FromBase64String(standard + new string('=', (4 - (standard.Length % 4)) % 4));
                return Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_') == text ? bytes : null;
            }
            catch (FormatException)
            {
                return null;
            }
        }

        var random = new Random(20261204);
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const string Odd = " =+/.\\\né"; // not in the alphabet: each must be refused wherever it stands
        var accepted = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var chars = new char[random.Next(0, 40)];
            for (var j = 0; j < chars.Length; j++)
            {
                chars[j] = random.Next(50) == 0 ? Odd[random.Next(Odd.Length)] : alphabet[random.Next(alphabet.Length)];
            }

            var text = new string(chars);
            var expected = Reference(text);
            var actual = CapabilityToken.FromBase64Url(text);
            Assert.True(expected is null ? actual is null : actual is not null && actual.AsSpan().SequenceEqual(expected), $"\"{text}\"");
            accepted += expected is null ? 0 : 1;
            if (expected is not null)
            {
                Assert.Equal(text, CapabilityToken.Base64Url(expected));
            }
        }

        Assert.InRange(accepted, 2_000, 18_000); // both answers were exercised
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
