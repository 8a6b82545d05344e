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
        var bodyBytes = CanonicalJson.Serialize(body);
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(issuer.MacKey, bodyBytes, mac);

        // The envelope's canonical bytes written as they are: its members in order, the body's own canonical bytes, and
        // standard base64 (nothing in it is escaped in JSON).
        var tail = MacTail(Convert.ToBase64String(mac));
        var envelope = new byte[MacHead.Length + bodyBytes.Length + tail.Length];
        MacHead.CopyTo(envelope, 0);
        bodyBytes.CopyTo(envelope, MacHead.Length);
        tail.CopyTo(envelope, MacHead.Length + bodyBytes.Length);
        return MacPrefix + Base64Url(envelope);
    }

    /// <summary>
    /// True when the token's MAC is the one <paramref name="macKey"/> makes over its body (compared in fixed time).
    /// The caller must hold the issuer's private key: <paramref name="macKey"/> is that key's <see cref="SigningKey.MacKey"/>.
    /// </summary>
    public bool VerifyMac(ReadOnlySpan<byte> macKey)
    {
        if (!IsMac || _macBody is null)
        {
            return false;
        }

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(macKey, _macBody, mac);
        return CryptographicOperations.FixedTimeEquals(mac, Blocks[0].Sig);
    }

    private static readonly byte[] MacHead = "{\"body\":"u8.ToArray();

    private static byte[] MacTail(string macBase64) => System.Text.Encoding.ASCII.GetBytes($",\"format\":\"{MacFormat}\",\"mac\":\"{macBase64}\"}}");

    private byte[]? _macBody; // the body's canonical bytes, as they sit in the decoded envelope

    private static CapabilityToken ParseMac(string text)
    {
        var envelope = Decode(text, MacPrefix, out var bytes);
        ExpectMembers(envelope, "token", "body", "format", "mac");
        if (Str(envelope, "format", "token") != MacFormat)
        {
            throw Shape("token.format", $"format must be \"{MacFormat}\"");
        }

        var body = envelope["body"] as JsonObject ?? throw Shape("token.body", "body must be an object");
        ExpectMembers(body, "token.body", "exp", "issuer", "kind", "nbf", "nonce", "saddr", "scopes", "token_id", "verbs");
        if (Str(body, "kind", "token.body") != "mac")
        {
            throw Shape("token.body.kind", "a MAC token's body has kind \"mac\"");
        }

        var rights = AuthorityRights(body, "token");
        var mac = Bytes(envelope, "mac", "token", 32);

        // The envelope is canonical with exactly these members, so the body's canonical bytes are what lies between its head
        // and its tail (checked, not assumed).
        var tail = MacTail(Convert.ToBase64String(mac));
        if (bytes.Length < MacHead.Length + tail.Length || !bytes.AsSpan().StartsWith(MacHead) || !bytes.AsSpan().EndsWith(tail))
        {
            throw Malformed("the decoded MAC token is not laid out as {\"body\":…,\"format\":…,\"mac\":…}");
        }

        return new CapabilityToken(text, envelope, [(body, mac)], rights, sealedToken: true, secret: null)
        {
            IsMac = true,
            _macBody = bytes[MacHead.Length..^tail.Length],
        };
    }
}
