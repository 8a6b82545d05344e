using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Signing;

namespace Rtt.Core.Tokens;

/// <summary>
/// Compact MAC tokens (docs/tokens.md, "Compact MAC tokens"): the same rights, checks and key as <c>rttm1</c>, in a fixed binary
/// layout instead of canonical JSON: <c>rttm2.</c> + base64url (no padding) of
/// <c>issuer (32) | token_id (16) | nbf (8) | exp (8) | nonce (32) | verbs (1) | saddr length (2) | saddr | scope count (1) |
/// (scope length (1) | scope)… | mac (32)</c>, integers big-endian, times in seconds since 1970-01-01T00:00:00Z, and
/// <c>mac</c> = HMAC-SHA256 of <c>"rtt.mac/2"</c> followed by every byte before it. A management call's token is then 212
/// characters instead of 537, and is written and read without JSON: where measured, a third of a token's minting and most
/// of its reading went to the JSON envelope.
/// </summary>
public sealed partial class CapabilityToken
{
    public const string Mac2Prefix = "rttm2.";
    public const string Mac2Format = "rtt.mac/2";

    private const int Mac2Issuer = 0, Mac2Id = 32, Mac2Nbf = 48, Mac2Exp = 56, Mac2Nonce = 64, Mac2Verbs = 96, Mac2SaddrLength = 97, Mac2Saddr = 99;
    private const int Mac2MacBytes = 32;

    /// <summary>The shortest layout: a one-character address is refused by its check, but the layout itself is read first.</summary>
    private const int Mac2Shortest = Mac2Saddr + 1 + 1 + Mac2MacBytes;

    private static ReadOnlySpan<byte> Mac2Domain => "rtt.mac/2"u8;

    /// <summary>The verbs' bits, in <see cref="AllVerbs"/> order: close 1, open 2, rx 4, tx 8.</summary>
    private static readonly IReadOnlyList<string>[] VerbLists = [.. Enumerable.Range(0, 16).Select(mask => (IReadOnlyList<string>)AllVerbs.Where((_, i) => (mask & (1 << i)) != 0).ToArray())];

    private static readonly IReadOnlyList<string> NoScopes = [];

    private readonly bool _compact;

    /// <summary>The compact form of <see cref="IssueMac"/>: the same rights and MAC key, in the binary layout above.</summary>
    public static string IssueMac2(SigningKey issuer, string saddr, IReadOnlyList<string> verbs, IReadOnlyList<string> scopes, TimeSpan ttl, DateTimeOffset now)
    {
        var (nbf, exp) = Window(now, ttl);
        CheckSaddr(saddr, "--saddr");
        var verbList = CheckVerbs(verbs, "--verb");
        var scopeList = CheckScopes(scopes, "--scope");
        var size = Mac2Saddr + saddr.Length + 1 + Mac2MacBytes;
        foreach (var scope in scopeList)
        {
            size += 1 + scope.Length;
        }

        Span<byte> token = size <= 1024 ? stackalloc byte[size] : new byte[size]; // at most 99 + 256 + 1 + 32 × 65 + 32
        if (Convert.FromHexString(issuer.KeyId.AsSpan("sha256:".Length), token.Slice(Mac2Issuer, 32), out _, out var read) != System.Buffers.OperationStatus.Done || read != 32)
        {
            throw new InvalidOperationException($"the key id {issuer.KeyId} is not sha256:<64 hex>");
        }

        TakeRandom(token.Slice(Mac2Id, 16));
        BinaryPrimitives.WriteInt64BigEndian(token[Mac2Nbf..], nbf.ToUnixTimeSeconds());
        BinaryPrimitives.WriteInt64BigEndian(token[Mac2Exp..], exp.ToUnixTimeSeconds());
        TakeRandom(token.Slice(Mac2Nonce, 32));
        var mask = 0;
        foreach (var verb in verbList)
        {
            mask |= 1 << VerbBit(verb);
        }

        token[Mac2Verbs] = (byte)mask;
        BinaryPrimitives.WriteUInt16BigEndian(token[Mac2SaddrLength..], (ushort)saddr.Length);
        var at = Mac2Saddr + Encoding.ASCII.GetBytes(saddr, token[Mac2Saddr..]); // printable ASCII (checked)
        token[at++] = (byte)scopeList.Count;
        foreach (var scope in scopeList)
        {
            token[at++] = (byte)scope.Length;
            at += Encoding.ASCII.GetBytes(scope, token[at..]);
        }

        Hmac(issuer.MacKey, Mac2Domain, token[..at], token[at..]);
        Span<char> text = stackalloc char[Mac2Prefix.Length + System.Buffers.Text.Base64Url.GetEncodedLength(size)];
        Mac2Prefix.CopyTo(text);
        System.Buffers.Text.Base64Url.EncodeToChars(token, text[Mac2Prefix.Length..]);
        return new string(text);
    }

    private static int VerbBit(string verb) => verb switch
    {
        "close" => 0,
        "open" => 1,
        "rx" => 2,
        "tx" => 3,
        _ => throw new ArgumentException($"unknown verb {verb}", nameof(verb)), // CheckVerbs let only these through
    };

    /// <summary>
    /// Reads a compact MAC token: the layout (RTT-TOKEN-001 when a length runs past the end or bytes are left over before
    /// the MAC), then each member with the checks and codes of the JSON form, in its order (token_id and issuer need none:
    /// any 16 and 32 bytes are one). The MAC is checked by the verifier (<see cref="VerifyMac"/>), which holds the key.
    /// </summary>
    private static CapabilityToken ParseMac2(string text)
    {
        if (text.Length > MaxChars)
        {
            throw TooLong(text);
        }

        var bytes = FromBase64Url(text.AsSpan(Mac2Prefix.Length)) ?? throw Malformed($"the text after \"{Mac2Prefix}\" is not unpadded base64url");
        if (bytes.Length < Mac2Shortest)
        {
            throw Malformed($"a compact MAC token has at least {Mac2Shortest} bytes, this one {bytes.Length}");
        }

        var saddrLength = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(Mac2SaddrLength));
        var at = Mac2Saddr + saddrLength;
        if (at + 1 + Mac2MacBytes > bytes.Length)
        {
            throw Malformed("the compact MAC token's address runs past its end");
        }

        var scopeCount = bytes[at++];
        var scopes = scopeCount == 0 ? null : new List<string>(scopeCount);
        for (var i = 0; i < scopeCount; i++)
        {
            if (at >= bytes.Length - Mac2MacBytes || bytes[at] > bytes.Length - Mac2MacBytes - at - 1)
            {
                throw Malformed("the compact MAC token's scopes run past its end");
            }

            var length = bytes[at++];
            scopes!.Add(Encoding.Latin1.GetString(bytes, at, length));
            at += length;
        }

        if (at != bytes.Length - Mac2MacBytes)
        {
            throw Malformed($"the compact MAC token has {bytes.Length - Mac2MacBytes - at} bytes between its scopes and its MAC");
        }

        // The JSON form's checks, in its order (token_id, issuer, nonce, times, address, verbs, scopes).
        const string where = "token";
        var nbf = UnixTime(BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(Mac2Nbf)), "nbf");
        var exp = UnixTime(BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(Mac2Exp)), "exp");
        CheckWindow(nbf, exp, where);
        var saddr = CheckSaddr(Encoding.Latin1.GetString(bytes, Mac2Saddr, saddrLength), $"{where}.body.saddr", shape: true); // a byte over 0x7e is refused as a character
        var mask = bytes[Mac2Verbs];
        if (mask is 0 or > 15)
        {
            throw Shape($"{where}.body.verbs", $"verbs must be a sorted, non-empty set of {string.Join(",", AllVerbs)}");
        }

        var rights = new TokenRights(saddr, VerbLists[mask], scopes is null ? NoScopes : CheckList(scopes, "scopes", where, verbs: false), nbf, exp);
        return new CapabilityToken(text, null, bytes.AsMemory(0, bytes.Length - Mac2MacBytes), bytes[^Mac2MacBytes..], rights,
            Convert.ToHexStringLower(bytes.AsSpan(Mac2Id, 16)), "sha256:" + Convert.ToHexStringLower(bytes.AsSpan(Mac2Issuer, 32)),
            System.Buffers.Text.Base64Url.EncodeToString(bytes.AsSpan(Mac2Nonce, 32)), compact: true);

        static DateTimeOffset UnixTime(long seconds, string name) =>
            seconds is >= 0 and <= 253_402_300_799 // 1970-01-01 to 9999-12-31T23:59:59Z: what the JSON form's times can say after 1970
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : throw Shape($"{where}.body.{name}", $"{name} must be a time between 1970 and 9999 in seconds since 1970-01-01T00:00:00Z");
    }


    /// <summary>What <c>rtt token inspect</c> shows of a compact MAC token: the JSON form's envelope with its members (format <c>rtt.mac/2</c>).</summary>
    private JsonObject CompactEnvelope() => new()
    {
        ["body"] = new JsonObject
        {
            ["exp"] = Time(Rights.Expires),
            ["issuer"] = IssuerKeyId,
            ["kind"] = "mac",
            ["nbf"] = Time(Rights.NotBefore),
            ["nonce"] = Nonce,
            ["saddr"] = Rights.Saddr,
            ["scopes"] = new JsonArray([.. Rights.Scopes.Select(s => (JsonNode)s)]),
            ["token_id"] = TokenId,
            ["verbs"] = new JsonArray([.. Rights.Verbs.Select(v => (JsonNode)v)]),
        },
        ["format"] = Mac2Format,
        ["mac"] = Convert.ToBase64String(_mac!),
    };
}
