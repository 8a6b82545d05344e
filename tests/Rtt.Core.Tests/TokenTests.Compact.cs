using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Xunit;

namespace Rtt.Core.Tests;

/// <summary>Compact MAC tokens (<c>rttm2</c>, docs/tokens.md): the binary layout, its MAC, and the checks of the JSON form.</summary>
public sealed partial class TokenTests
{
    private string IssueCompact(string saddr = "rtt://rtt/manage/apply", string[]? verbs = null, string[]? scopes = null, TimeSpan? ttl = null, SigningKey? key = null) =>
        CapabilityToken.IssueMac2(key ?? _key, saddr, verbs ?? ["tx"], scopes ?? [], ttl ?? TimeSpan.FromMinutes(2), Now);

    private static byte[] CompactBytes(string text) => CapabilityToken.FromBase64Url(text.AsSpan(CapabilityToken.Mac2Prefix.Length))!;

    private static string CompactText(byte[] bytes) => CapabilityToken.Mac2Prefix + CapabilityToken.Base64Url(bytes);

    private byte[] DerivedMacKey()
    {
        var seed = Convert.FromBase64String((string)_key.ToPrivateKeyJson()["private_key"]!);
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, seed, 32, Encoding.ASCII.GetBytes("rtt.mac/1"), Encoding.ASCII.GetBytes(_key.KeyId));
    }

    /// <summary>The bytes with their MAC made again (as the key's holder would): a token whose content, not its MAC, is wrong.</summary>
    private byte[] Remac(byte[] body)
    {
        var mac = HMACSHA256.HashData(DerivedMacKey(), (byte[])[.. "rtt.mac/2"u8, .. body]);
        return [.. body, .. mac];
    }

    [Fact]
    public void A_compact_token_carries_the_rights_of_the_json_form_and_is_admitted_once()
    {
        var text = IssueCompact(saddr: "rtt://core/api/*", verbs: ["tx", "open", "rx"], scopes: ["metrics.read", "a:b"]);
        Assert.StartsWith("rttm2.", text, StringComparison.Ordinal);
        var token = CapabilityToken.Parse(text);
        Assert.True(token.IsMac);
        Assert.True(token.Sealed);
        Assert.Equal(_key.KeyId, token.IssuerKeyId);
        Assert.Matches("^[0-9a-f]{32}$", token.TokenId);
        Assert.Equal(43, token.Nonce.Length);
        Assert.Equal("rtt://core/api/*", token.Rights.Saddr);
        Assert.Equal(["open", "rx", "tx"], token.Rights.Verbs);
        Assert.Equal(["a:b", "metrics.read"], token.Rights.Scopes);
        Assert.Equal((Now, Now.AddMinutes(2)), (token.Rights.NotBefore, token.Rights.Expires));
        Assert.True(token.VerifyMac(_key.MacKey));
        using var other = SigningKey.Generate();
        Assert.False(token.VerifyMac(other.MacKey));

        // What `rtt token inspect` shows: the JSON form's envelope, format rtt.mac/2, the same members.
        var envelope = token.Envelope;
        Assert.Equal("rtt.mac/2", (string?)envelope["format"]);
        Assert.Equal(["exp", "issuer", "kind", "nbf", "nonce", "saddr", "scopes", "token_id", "verbs"], ((JsonObject)envelope["body"]!).Select(m => m.Key));
        Assert.Equal(token.Nonce, (string?)envelope["body"]!["nonce"]);
        Assert.Equal(Convert.ToBase64String(CompactBytes(text)[^32..]), (string?)envelope["mac"]);

        var verifier = Verifier();
        var apply = IssueCompact();
        Assert.Equal(212, apply.Length); // an apply's token, against 537 characters in the JSON form
        Assert.Equal(_key.KeyId, verifier.Admit(apply, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs).IssuerKeyId);
        Assert.Equal(ErrorCodes.TokenReplayed, Assert.Throws<TokenException>(() => verifier.Admit(apply, ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs)).Code);
        Assert.Equal(ErrorCodes.TokenRouteDenied, Assert.Throws<TokenException>(() => verifier.Admit(IssueCompact(), ManagementTokens.Symbol(ManagementTokens.Rollback), ManagementTokens.Verbs)).Code);
        Assert.Equal(ErrorCodes.TokenVerbDenied, Assert.Throws<TokenException>(() => verifier.Admit(IssueCompact(), ManagementTokens.Symbol(ManagementTokens.Apply), ["open"])).Code);

        // The JSON form is still read by the same verifier, and the two forms never share a MAC input.
        Assert.True(verifier.Admit(ManagementTokens.MintMac(_key, ManagementTokens.Apply, new FixedTime(Now)), ManagementTokens.Symbol(ManagementTokens.Apply), ManagementTokens.Verbs).IsMac);
    }

    [Fact]
    public void The_layout_and_the_mac_are_as_documented_so_an_outsider_holding_the_seed_can_make_and_check_one()
    {
        var bytes = CompactBytes(IssueCompact(scopes: ["x"]));
        var saddr = "rtt://rtt/manage/apply"u8;
        Assert.Equal(99 + saddr.Length + 1 + 2 + 32, bytes.Length);
        Assert.Equal(SHA256.HashData(_key.PublicKey.RawPublicKey), bytes[..32]);
        Assert.Equal(Now.ToUnixTimeSeconds(), BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(48)));
        Assert.Equal(Now.AddMinutes(2).ToUnixTimeSeconds(), BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(56)));
        Assert.Equal(8, bytes[96]); // tx
        Assert.Equal(saddr.Length, BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(97)));
        Assert.Equal(saddr.ToArray(), bytes[99..(99 + saddr.Length)]);
        Assert.Equal([1, 1, (byte)'x'], bytes[(99 + saddr.Length)..^32]);
        Assert.Equal(HMACSHA256.HashData(DerivedMacKey(), (byte[])[.. "rtt.mac/2"u8, .. bytes[..^32]]), bytes[^32..]);

        // Made by hand from the layout: admitted.
        var made = new List<byte>();
        made.AddRange(SHA256.HashData(_key.PublicKey.RawPublicKey));
        made.AddRange(Enumerable.Repeat((byte)7, 16));
        made.AddRange(BigEndian(Now.ToUnixTimeSeconds()));
        made.AddRange(BigEndian(Now.AddSeconds(30).ToUnixTimeSeconds()));
        made.AddRange(Enumerable.Range(0, 32).Select(i => (byte)i));
        made.AddRange([2 | 8, 0, 6, .. "rtt://"u8, 0]);
        var token = Verifier().Admit(CompactText(Remac([.. made])), "rtt://", ["open", "tx"]);
        Assert.Equal(string.Concat(Enumerable.Repeat("07", 16)), token.TokenId);
        Assert.Equal("rtt://", token.Rights.Saddr);
        Assert.Equal(CapabilityToken.Base64Url(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()), token.Nonce);

        static byte[] BigEndian(long value)
        {
            var b = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(b, value);
            return b;
        }
    }

    [Fact]
    public void Every_changed_bit_truncation_or_extra_byte_is_refused_by_the_reader_or_by_the_mac()
    {
        var bytes = CompactBytes(IssueCompact(saddr: "rtt://core/api/*", verbs: ["rx", "tx"], scopes: ["metrics.read"]));
        var verifier = Verifier();
        var refusedByShape = 0;
        for (var bit = 0; bit < bytes.Length * 8; bit++)
        {
            var changed = (byte[])bytes.Clone();
            changed[bit / 8] ^= (byte)(1 << (bit % 8));
            var error = Assert.Throws<TokenException>(() => verifier.Verify(CompactText(changed)));
            Assert.Contains(error.Code, new[] { ErrorCodes.TokenMalformed, ErrorCodes.TokenShape, ErrorCodes.TokenSignatureInvalid, ErrorCodes.TokenIssuerUnknown, ErrorCodes.TokenNotYetValid, ErrorCodes.TokenExpired });
            refusedByShape += error.Code is ErrorCodes.TokenMalformed or ErrorCodes.TokenShape ? 1 : 0;
        }

        Assert.InRange(refusedByShape, 1, bytes.Length * 8 - 1); // some bits break the layout or a member's shape; the others the MAC

        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Contains(Assert.Throws<TokenException>(() => CapabilityToken.Parse(CompactText(bytes[..length]))).Code, new[] { ErrorCodes.TokenMalformed, ErrorCodes.TokenShape });
        }

        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => CapabilityToken.Parse(CompactText([.. bytes, 0]))).Code);
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => CapabilityToken.Parse(CompactText(bytes) + "=")).Code);
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => CapabilityToken.Parse(CompactText(bytes).Replace('-', '+').Replace('_', '/') + "+")).Code);
        Assert.Equal(ErrorCodes.TokenTooLarge, Assert.Throws<TokenException>(() => CapabilityToken.Parse("rttm2." + new string('A', 9000))).Code);

        // A last character with stray bits (not canonical base64url): the text is not the one the bytes encode.
        var text = CompactText(bytes);
        var last = text[^1];
        var stray = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".First(c => c != last && CapabilityToken.FromBase64Url((text[..^1] + c).AsSpan(6)) is null);
        Assert.Equal(ErrorCodes.TokenMalformed, Assert.Throws<TokenException>(() => CapabilityToken.Parse(text[..^1] + stray)).Code);
    }

    [Fact]
    public void A_well_made_token_with_content_the_json_form_refuses_is_refused_with_the_same_code_and_place()
    {
        var good = CompactBytes(IssueCompact(scopes: ["a", "b"]))[..^32];
        var saddrAt = 99;
        var scopesAt = saddrAt + "rtt://rtt/manage/apply".Length;
        (Action<byte[]> Change, string Where)[] cases =
        [
            (b => b[96] = 0, "token.body.verbs"),
            (b => b[96] = 16, "token.body.verbs"),
            (b => b[saddrAt] = (byte)'x', "token.body.saddr"),
            (b => b[saddrAt + 7] = 0xE9, "token.body.saddr"),
            (b => b[saddrAt + 7] = (byte)'*', "token.body.saddr"),
            (b => BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(56), Now.ToUnixTimeSeconds()), "token.body.exp"), // exp = nbf
            (b => BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(56), Now.AddDays(31).ToUnixTimeSeconds()), "token.body.exp"),
            (b => BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(48), -1), "token.body.nbf"),
            (b => BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(56), long.MaxValue), "token.body.exp"),
            (b => (b[scopesAt + 2], b[scopesAt + 4]) = ((byte)'b', (byte)'a'), "token.body.scopes"), // not sorted
            (b => b[scopesAt + 4] = (byte)'a', "token.body.scopes"), // a repeat
            (b => b[scopesAt + 2] = (byte)'A', "token.body.scopes"),
        ];
        foreach (var (change, where) in cases)
        {
            var bytes = (byte[])good.Clone();
            change(bytes);
            var error = Assert.Throws<TokenException>(() => Verifier().Verify(CompactText(Remac(bytes))));
            Assert.Equal((ErrorCodes.TokenShape, where), (error.Code, error.Location));
        }

        Assert.Equal(ErrorCodes.TokenShape, Assert.Throws<TokenException>(() => Verifier().Verify(CompactText(Remac([.. good[..scopesAt], 1, 0])))).Code); // an empty scope name
        Assert.True(CapabilityToken.Parse(CompactText(Remac(good))).VerifyMac(_key.MacKey));
    }

    [Fact]
    public void A_client_presents_compact_tokens_only_to_a_silo_whose_silo_json_says_it_reads_them()
    {
        var path = Path.Combine(_dir, "silo.json");
        var info = new SiloInfo(Environment.ProcessId, "node0", 1, 2, "c", "s", Now, _key.KeyId, SiloInfo.NewestMacFormat);
        info.Write(path);
        Assert.Equal(2, SiloInfo.ReadLive(path)!.MacFormat);
        Assert.StartsWith("rttm2.", Presented(SiloInfo.ReadLive(path)), StringComparison.Ordinal);

        // A silo.json from before compact tokens has no mac_format: JSON MAC tokens, which such a silo reads.
        var old = info.ToJson();
        old.Remove("mac_format");
        File.WriteAllText(path, old.ToJsonString());
        Assert.Equal(1, SiloInfo.ReadLive(path)!.MacFormat);
        Assert.StartsWith("rttm1.", Presented(SiloInfo.ReadLive(path)), StringComparison.Ordinal);

        // Another key's silo: a sealed token.
        using var other = SigningKey.Generate();
        Assert.StartsWith("rtt1.", Presented(info with { SigningKeyId = other.KeyId }), StringComparison.Ordinal);

        string Presented(SiloInfo? silo) => ManagementTokens.MintFor(_key, ManagementTokens.Apply, silo); // what ManagementCalls.Present presents
    }
}
