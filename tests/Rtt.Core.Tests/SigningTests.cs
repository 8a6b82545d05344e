using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Tests;

public sealed class SigningTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-sign-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonObject Plan() => new()
    {
        ["plan_id"] = "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ["routes_add"] = new JsonArray(new JsonObject { ["from"] = "rtt://ui/hook/refresh", ["to"] = "rtt://core/api/metrics", ["lane"] = "shm" }),
        ["placement"] = new JsonObject { ["rtt://ui/hook/refresh"] = "node0" },
    };

    private TrustStore TrustOnly(params SigningKey[] keys)
    {
        var trust = Path.Combine(_dir, "trust");
        var i = 0;
        foreach (var key in keys)
        {
            TrustStore.WriteTrustedKey(trust, $"k{i++}", key.PublicKey);
        }

        return TrustStore.Load(trust);
    }

    [Fact]
    public void Key_id_is_sha256_of_the_raw_public_key()
    {
        using var key = SigningKey.Generate();
        Assert.Equal(ContentHash.Of(key.PublicKey.RawPublicKey), key.KeyId);
        Assert.Equal(32, key.PublicKey.RawPublicKey.Length);
    }

    [Fact]
    public void Sign_block_has_the_blueprint_shape_and_verifies()
    {
        using var key = SigningKey.Generate();
        var signed = ObjectSigner.Sign(Plan(), key);
        var sign = signed["sign"]!.AsObject();
        Assert.Equal(["alg", "key_id", "sig"], sign.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal("ed25519", (string?)sign["alg"]);
        Assert.Equal(key.KeyId, (string?)sign["key_id"]);
        Assert.Equal(64, Convert.FromBase64String((string)sign["sig"]!).Length);

        Assert.Equal(key.KeyId, TrustOnly(key).Verify(signed));
    }

    [Fact]
    public void Signature_covers_canonical_bytes_without_sign_so_member_order_does_not_matter()
    {
        using var key = SigningKey.Generate();
        var signed = ObjectSigner.Sign(Plan(), key);
        // Re-serialise with different member order and white space: still verifies.
        var reordered = CanonicalJson.ParseNode(Encoding.UTF8.GetBytes("""{"sign":""" + signed["sign"]!.ToJsonString() + """, "placement" : {"rtt://ui/hook/refresh":"node0"},"routes_add":[{"to":"rtt://core/api/metrics","lane":"shm","from":"rtt://ui/hook/refresh"}],"plan_id":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}""")).AsObject();
        Assert.Equal(key.KeyId, TrustOnly(key).Verify(reordered));
        // An outside verifier needs only the canonical bytes and the raw key.
        var payload = CanonicalJson.Serialize(Plan());
        Assert.Equal(payload, ObjectSigner.SigningPayload(signed));
    }

    [Fact]
    public void Tampered_message_fails()
    {
        using var key = SigningKey.Generate();
        var signed = ObjectSigner.Sign(Plan(), key);
        signed["placement"]!["rtt://ui/hook/refresh"] = "node1";
        var ex = Assert.Throws<SigningException>(() => TrustOnly(key).Verify(signed, "plan.json"));
        Assert.Equal(ErrorCodes.SignatureInvalid, ex.Code);
        Assert.Equal("plan.json", ex.Location);
    }

    [Fact]
    public void Tampered_signature_fails_for_every_byte_position_sampled()
    {
        using var key = SigningKey.Generate();
        var signed = ObjectSigner.Sign(Plan(), key);
        var trust = TrustOnly(key);
        var sig = Convert.FromBase64String((string)signed["sign"]!["sig"]!);
        foreach (var position in new[] { 0, 17, 31, 32, 63 })
        {
            var bad = (byte[])sig.Clone();
            bad[position] ^= 0x01;
            var copy = (JsonObject)signed.DeepClone();
            copy["sign"]!["sig"] = Convert.ToBase64String(bad);
            Assert.Equal(ErrorCodes.SignatureInvalid, Assert.Throws<SigningException>(() => trust.Verify(copy)).Code);
        }
    }

    [Fact]
    public void Tampered_key_fails()
    {
        using var key = SigningKey.Generate();
        var signed = ObjectSigner.Sign(Plan(), key);
        // Trust a key whose bytes differ from the signer's by one bit, and claim its id in the block.
        var raw = key.PublicKey.RawPublicKey.ToArray();
        raw[5] ^= 0x10;
        TrustedKey other;
        try
        {
            other = new TrustedKey(raw);
        }
        catch (ArgumentException)
        {
            return; // not a valid curve point: a tampered key cannot even be imported
        }

        var trust = Path.Combine(_dir, "trust2");
        TrustStore.WriteTrustedKey(trust, "tampered", other);
        signed["sign"]!["key_id"] = other.KeyId;
        var ex = Assert.Throws<SigningException>(() => TrustStore.Load(trust).Verify(signed));
        Assert.Equal(ErrorCodes.SignatureInvalid, ex.Code);
    }

    [Fact]
    public void Unsigned_unknown_and_revoked_are_refused_with_their_own_codes()
    {
        using var trusted = SigningKey.Generate();
        using var stranger = SigningKey.Generate();
        var store = TrustOnly(trusted);

        Assert.Equal(ErrorCodes.Unsigned, Assert.Throws<SigningException>(() => store.Verify(Plan())).Code);
        Assert.Equal(ErrorCodes.SignerUnknown, Assert.Throws<SigningException>(() => store.Verify(ObjectSigner.Sign(Plan(), stranger))).Code);

        var signed = ObjectSigner.Sign(Plan(), trusted);
        TrustStore.Revoke(store.Directory, trusted.KeyId, "laptop lost", DateTimeOffset.UnixEpoch);
        var reloaded = TrustStore.Load(store.Directory);
        Assert.False(reloaded.IsTrusted(trusted.KeyId));
        var ex = Assert.Throws<SigningException>(() => reloaded.Verify(signed));
        Assert.Equal(ErrorCodes.SignerRevoked, ex.Code);
        Assert.Contains("laptop lost", ex.Message);
    }

    [Fact]
    public void Malformed_sign_block_is_refused()
    {
        using var key = SigningKey.Generate();
        var signed = ObjectSigner.Sign(Plan(), key);
        signed["sign"]!["sig"] = "not base64!";
        Assert.Equal(ErrorCodes.SignatureMalformed, Assert.Throws<SigningException>(() => TrustOnly(key).Verify(signed)).Code);
        signed["sign"]!["alg"] = "rsa";
        Assert.Equal(ErrorCodes.SignatureMalformed, Assert.Throws<SigningException>(() => TrustOnly(key).Verify(signed)).Code);
    }

    [Fact]
    public void A_sign_member_that_is_not_an_object_is_malformed_not_missing()
    {
        using var key = SigningKey.Generate();
        foreach (var (value, kind) in new (System.Text.Json.Nodes.JsonNode?, string)[] { (42, "a number"), ("x", "a string"), (new System.Text.Json.Nodes.JsonArray(), "a list"), (null, "null") })
        {
            var plan = Plan();
            plan["sign"] = value;
            var ex = Assert.Throws<SigningException>(() => TrustOnly(key).Verify(plan, "p.json"));
            Assert.Equal(ErrorCodes.SignatureMalformed, ex.Code);
            Assert.Contains($"is {kind}, not a sign block", ex.Message, StringComparison.Ordinal);
            Assert.Equal("p.json", ex.Location);
        }

        var unsigned = Plan();
        Assert.Equal(ErrorCodes.Unsigned, Assert.Throws<SigningException>(() => TrustOnly(key).Verify(unsigned)).Code);
    }

    [Fact]
    public void Key_files_round_trip_and_a_wrong_key_id_is_caught()
    {
        using var key = SigningKey.Generate();
        var path = Path.Combine(_dir, "k.key");
        AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(key.ToPrivateKeyJson()), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var loaded = SigningKey.Load(path);
        Assert.Equal(key.KeyId, loaded.KeyId);
        Assert.Equal(key.Sign("x"u8), loaded.Sign("x"u8)); // Ed25519 is deterministic

        var json = key.ToPrivateKeyJson();
        json["key_id"] = "sha256:" + new string('0', 64);
        File.WriteAllBytes(path, PrettyJson.ToUtf8(json));
        Assert.Equal(ErrorCodes.KeyFileInvalid, Assert.Throws<SigningException>(() => SigningKey.Load(path)).Code);
        Assert.Equal(ErrorCodes.KeyFileMissing, Assert.Throws<SigningException>(() => SigningKey.Load(Path.Combine(_dir, "none.key"))).Code);
    }

    [Fact]
    public void Known_answer_rfc8032_test_1()
    {
        // RFC 8032 section 7.1, TEST 1: empty message.
        using var key = SigningKey.FromSeed(Convert.FromHexString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
        Assert.Equal("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", Convert.ToHexStringLower(key.PublicKey.RawPublicKey));
        Assert.Equal("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            Convert.ToHexStringLower(key.Sign([])));
    }

    [Theory]
    [InlineData("ok-name_1.v2", true)]
    [InlineData("../evil", false)]
    [InlineData("a/b", false)]
    [InlineData(".hidden", false)]
    [InlineData("", false)]
    public void Key_names_are_safe_file_names(string name, bool ok)
    {
        if (ok)
        {
            KeyNames.Validate(name);
        }
        else
        {
            Assert.Equal(ErrorCodes.KeyNameInvalid, Assert.Throws<SigningException>(() => KeyNames.Validate(name)).Code);
        }
    }
}
