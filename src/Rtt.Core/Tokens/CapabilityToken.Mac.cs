using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Tokens;

/// <summary>
/// MAC tokens (docs/tokens.md, MAC tokens): a one-block token whose proof is an HMAC-SHA256 with a key derived from the
/// issuer's private key (<see cref="SigningKey.MacKey"/>), so only a holder of that private key can make or check one.
/// They are for a caller and a silo that share the workspace's signing key (the management calls of `rtt` and of the
/// silo's own services): two hashes instead of a key generation, two signatures and two Ed25519 verifications per call.
/// <c>rttm1.</c> + base64url (no padding) of the RFC 8785 bytes of <c>{"body":{…},"format":"rtt.mac/1","mac":"…"}</c>.
/// </summary>
public sealed partial class CapabilityToken
{
    public const string MacPrefix = "rttm1.";
    public const string MacFormat = "rtt.mac/1";

    /// <summary>True for a MAC token: its one block's <c>Sig</c> is the HMAC, checked by <see cref="VerifyMac"/>.</summary>
    public bool IsMac { get; private init; }

    /// <summary>A MAC token allowing what an authority block would, made with <paramref name="issuer"/>'s MAC key.</summary>
    public static string IssueMac(SigningKey issuer, string saddr, IReadOnlyList<string> verbs, IReadOnlyList<string> scopes, TimeSpan ttl, DateTimeOffset now)
    {
        var body = Authority(issuer, saddr, verbs, scopes, ttl, now);
        body["kind"] = "mac";
        var mac = HMACSHA256.HashData(issuer.MacKey, CanonicalJson.Serialize(body));
        var envelope = new JsonObject { ["body"] = body, ["format"] = MacFormat, ["mac"] = Convert.ToBase64String(mac) };
        return MacPrefix + Base64Url(CanonicalJson.Serialize(envelope));
    }

    /// <summary>
    /// True when the token's MAC is the one <paramref name="macKey"/> makes over its body (compared in fixed time).
    /// The caller must hold the issuer's private key: <paramref name="macKey"/> is that key's <see cref="SigningKey.MacKey"/>.
    /// </summary>
    public bool VerifyMac(ReadOnlySpan<byte> macKey) =>
        IsMac && CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(macKey, CanonicalJson.Serialize(Blocks[0].Body)), Blocks[0].Sig);

    private static CapabilityToken ParseMac(string text)
    {
        var envelope = Decode(text, MacPrefix);
        ExpectMembers(envelope, "token", "body", "format", "mac");
        if (Str(envelope, "format", "token") != MacFormat)
        {
            throw Shape("token.format", $"format must be \"{MacFormat}\"");
        }

        var body = envelope["body"] as JsonObject ?? throw Shape("token.body", "body must be an object");
        ExpectMembers(body, "token.body", "exp", "issuer", "kind", "nbf", "nonce", "saddr", "scopes", "token_id", "verbs");
        if (Str(body, "kind", "token") != "mac")
        {
            throw Shape("token.body.kind", "a MAC token's body has kind \"mac\"");
        }

        var rights = AuthorityRights(body, "token");
        var mac = Bytes(envelope, "mac", "token", 32);
        return new CapabilityToken(text, envelope, [(body, mac)], rights, sealedToken: true, secret: null) { IsMac = true };
    }
}
