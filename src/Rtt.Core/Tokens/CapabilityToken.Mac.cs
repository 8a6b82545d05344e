using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
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
    /// <remarks>
    /// The envelope's canonical bytes are written as they are (no node tree: every management call mints one): the body's
    /// members in RFC 8785 order, strings that need no escape but the address (written by the canonical writer), then the
    /// MAC's tail (<see cref="MacTail"/>, as the reader checks it). TokenTests check the bytes against the canonical serializer's.
    /// </remarks>
    public static string IssueMac(SigningKey issuer, string saddr, IReadOnlyList<string> verbs, IReadOnlyList<string> scopes, TimeSpan ttl, DateTimeOffset now)
    {
        var (nbf, exp) = Window(now, ttl);
        CheckSaddr(saddr, "--saddr");
        var verbList = CheckVerbs(verbs, "--verb");
        var scopeList = CheckScopes(scopes, "--scope");
        Span<byte> random = stackalloc byte[48]; // token id (16 bytes), nonce (32)
        TakeRandom(random);

        var output = MintBuffer ??= new ArrayBufferWriter<byte>(1024);
        output.ResetWrittenCount();
        output.Write(MacHead);
        output.Write("{\"exp\":"u8);
        WriteTime(output, exp);
        output.Write(",\"issuer\":\""u8);
        WriteAscii(output, issuer.KeyId);
        output.Write("\",\"kind\":\"mac\",\"nbf\":"u8);
        WriteTime(output, nbf);
        output.Write(",\"nonce\":\""u8);
        output.Advance(System.Buffers.Text.Base64Url.EncodeToUtf8(random[16..], output.GetSpan(43)));
        output.Write("\",\"saddr\":"u8);
        CanonicalJson.TryWriteString(output, saddr); // printable ASCII (checked): always written
        output.Write(",\"scopes\":"u8);
        WriteNames(output, scopeList);
        output.Write(",\"token_id\":\""u8);
        Convert.TryToHexStringLower(random[..16], output.GetSpan(32), out var hex);
        output.Advance(hex);
        output.Write("\",\"verbs\":"u8);
        WriteNames(output, verbList);
        output.Write("}"u8);

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        Hmac(issuer.MacKey, default, output.WrittenSpan[MacHead.Length..], mac);
        output.Write(MacTailHead);
        output.Advance(System.Buffers.Text.Base64.EncodeToUtf8(mac, output.GetSpan(44), out _, out var macChars) == OperationStatus.Done ? macChars : throw new InvalidOperationException("base64 of a MAC"));
        output.Write("\"}"u8);

        // One string: the prefix and the envelope's base64url written into it.
        var envelope = output.WrittenSpan;
        return string.Create(MacPrefix.Length + System.Buffers.Text.Base64Url.GetEncodedLength(envelope.Length), output, static (chars, written) =>
        {
            MacPrefix.CopyTo(chars);
            System.Buffers.Text.Base64Url.EncodeToChars(written.WrittenSpan, chars[MacPrefix.Length..]);
        });
    }

    // Random bytes for the MAC tokens made on this thread, drawn from the system's generator for 32 tokens at a time (its system
    // call cost 2 µs of a 6 µs mint where measured). Each byte is handed out once and wiped as it is taken. The token id and the
    // nonce are not secrets (they travel in the token's text); they must be unpredictable to whoever lacks the MAC key, which
    // the generator's output is, however it is portioned.
    [ThreadStatic]
    private static byte[]? RandomPool;

    [ThreadStatic]
    private static int RandomTaken;

    private static void TakeRandom(Span<byte> into)
    {
        var pool = RandomPool;
        if (pool is null || RandomTaken + into.Length > pool.Length)
        {
            pool = RandomPool ??= new byte[48 * 32];
            RandomNumberGenerator.Fill(pool);
            RandomTaken = 0;
        }

        var taken = pool.AsSpan(RandomTaken, into.Length);
        taken.CopyTo(into);
        CryptographicOperations.ZeroMemory(taken);
        RandomTaken += into.Length;
    }

    // The envelope of the MAC token being made on this thread (the string is made from it before the method returns).
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? MintBuffer;

    private static ReadOnlySpan<byte> MacTailHead => ",\"format\":\"rtt.mac/1\",\"mac\":\""u8;

    private static void WriteAscii(ArrayBufferWriter<byte> output, string ascii) => output.Advance(Encoding.ASCII.GetBytes(ascii, output.GetSpan(ascii.Length)));

    private static void WriteTime(ArrayBufferWriter<byte> output, DateTimeOffset t)
    {
        // "yyyy-MM-ddTHH:mm:ssZ" digit by digit (the culture-aware formatter was a sixth of a mint); Time() writes the same text.
        var u = t.UtcDateTime;
        var span = output.GetSpan(22);
        "\"0000-00-00T00:00:00Z\""u8.CopyTo(span);
        Digits(span.Slice(1, 4), u.Year);
        Digits(span.Slice(6, 2), u.Month);
        Digits(span.Slice(9, 2), u.Day);
        Digits(span.Slice(12, 2), u.Hour);
        Digits(span.Slice(15, 2), u.Minute);
        Digits(span.Slice(18, 2), u.Second);
        output.Advance(22);

        static void Digits(Span<byte> into, int value)
        {
            for (var i = into.Length - 1; i >= 0; i--, value /= 10)
            {
                into[i] = (byte)('0' + (value % 10));
            }
        }
    }

    // Verbs and scopes: checked names (lowercase letters, digits, . _ : -), written between quotes as they are.
    private static void WriteNames(ArrayBufferWriter<byte> output, List<string> names)
    {
        output.Write("["u8);
        for (var i = 0; i < names.Count; i++)
        {
            output.Write(i == 0 ? "\""u8 : ",\""u8);
            WriteAscii(output, names[i]);
            output.Write("\""u8);
        }

        output.Write("]"u8);
    }

    /// <summary>
    /// True when the token's MAC is the one <paramref name="macKey"/> makes over its body (compared in fixed time).
    /// The caller must hold the issuer's private key: <paramref name="macKey"/> is that key's <see cref="SigningKey.MacKey"/>.
    /// </summary>
    public bool VerifyMac(ReadOnlySpan<byte> macKey)
    {
        if (!IsMac || _mac is null)
        {
            return false;
        }

        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        Hmac(macKey, _compact ? Mac2Domain : default, _macBody.Span, mac);
        return CryptographicOperations.FixedTimeEquals(mac, _mac);
    }

    // The HMAC-SHA256 state keyed with the last MAC key used on this thread, and a copy of that key: a one-shot HMAC sets
    // the key up at every call (half of the 1.5 µs a token's body cost where measured); a kept state is reset to the keyed
    // state after each use. A thread that uses another key replaces it (the old copy wiped).
    [ThreadStatic]
    private static byte[]? HmacKey;

    [ThreadStatic]
    private static IncrementalHash? HmacState;

    /// <param name="domain">What goes in before <paramref name="data"/>: nothing for <c>rtt.mac/1</c> (its data is JSON), the
    /// format's name for <c>rtt.mac/2</c>, so no bytes are the MAC's input in both formats.</param>
    private static void Hmac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> domain, ReadOnlySpan<byte> data, Span<byte> mac)
    {
        var state = HmacState;
        if (state is null || HmacKey is not { } kept || !kept.AsSpan().SequenceEqual(key))
        {
            state?.Dispose();
            if (HmacKey is { } old)
            {
                CryptographicOperations.ZeroMemory(old);
            }

            HmacKey = key.ToArray();
            state = HmacState = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        }

        state.AppendData(domain);
        state.AppendData(data);
        if (state.GetHashAndReset(mac) != HMACSHA256.HashSizeInBytes)
        {
            throw new CryptographicException("HMAC-SHA256 gave a hash of another size");
        }
    }

    private static readonly byte[] MacHead = "{\"body\":"u8.ToArray();

    private static byte[] MacTail(string macBase64) => System.Text.Encoding.ASCII.GetBytes($",\"format\":\"{MacFormat}\",\"mac\":\"{macBase64}\"}}");

    private ReadOnlyMemory<byte> _macBody; // the body's canonical bytes, as they sit in the decoded envelope
    private byte[]? _mac;
    private readonly byte[]? _decoded; // a MAC token read without a node tree: its envelope's bytes (Envelope parses them when asked)

    /// <summary>A MAC token read from its bytes: <paramref name="decoded"/> is the JSON form's envelope (null for the compact form), <paramref name="macBody"/> what its MAC covers.</summary>
    private CapabilityToken(string text, byte[]? decoded, ReadOnlyMemory<byte> macBody, byte[] mac, TokenRights rights, string tokenId, string issuer, string nonce, bool compact)
    {
        Text = text;
        _decoded = decoded;
        _compact = compact;
        _macBody = macBody;
        _mac = mac;
        Rights = rights;
        Sealed = true;
        IsMac = true;
        TokenId = tokenId;
        IssuerKeyId = issuer;
        Nonce = nonce;
    }

    /// <summary>
    /// Reads a MAC token. One whose decoded envelope is plain canonical JSON (what <see cref="IssueMac"/> makes: no escapes)
    /// is read with a forward reader and checked member by member in the order the node path checks them; anything else (an
    /// escaped address, a member missing, extra or of another type, text that is not canonical) takes the node path, which
    /// gives the precise error. <paramref name="reader"/> false forces the node path (TokenTests compare the two).
    /// </summary>
    internal static CapabilityToken ParseMac(string text, bool reader = true)
    {
        if (reader && text.Length <= MaxChars && FromBase64Url(text.AsSpan(MacPrefix.Length)) is { } decoded && CanonicalJson.IsPlainCanonical(decoded)
            && ReadMac(text, decoded) is { } read)
        {
            return read;
        }

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
            _macBody = bytes.AsMemory(MacHead.Length, bytes.Length - MacHead.Length - tail.Length),
            _mac = mac,
        };
    }

    /// <summary>The reader path of <see cref="ParseMac"/>: null when the envelope is not laid out exactly as a MAC token's.</summary>
    private static CapabilityToken? ReadMac(string text, byte[] decoded)
    {
        // The members read only to be checked (times, kind, format, mac) are read into the stack, not into strings.
        Span<char> exp = stackalloc char[ShortMember], nbf = stackalloc char[ShortMember], macText = stackalloc char[ShortMember];
        var r = new Utf8JsonReader(decoded);
        if (!r.Read() || r.TokenType != JsonTokenType.StartObject || !Name(ref r, "body"u8) || !r.Read() || r.TokenType != JsonTokenType.StartObject
            || !Chars(ref r, "exp"u8, exp, out var expLength) || !String(ref r, "issuer"u8, out var issuer) || !Name(ref r, "kind"u8) || !r.Read() || r.TokenType != JsonTokenType.String)
        {
            return null;
        }

        var kindIsMac = r.ValueTextEquals("mac"u8);
        if (!Chars(ref r, "nbf"u8, nbf, out var nbfLength) || !String(ref r, "nonce"u8, out var nonce) || !String(ref r, "saddr"u8, out var saddr)
            || !Strings(ref r, "scopes"u8, out var scopes) || !String(ref r, "token_id"u8, out var tokenId) || !Strings(ref r, "verbs"u8, out var verbs)
            || !r.Read() || r.TokenType != JsonTokenType.EndObject)
        {
            return null;
        }

        var bodyEnd = (int)r.BytesConsumed;
        if (!Name(ref r, "format"u8) || !r.Read() || r.TokenType != JsonTokenType.String)
        {
            return null;
        }

        var formatIsMac = r.ValueTextEquals(MacFormatUtf8);
        if (!Chars(ref r, "mac"u8, macText, out var macLength) || !r.Read() || r.TokenType != JsonTokenType.EndObject || r.BytesConsumed != decoded.Length)
        {
            return null;
        }

        // The node path's checks, in its order.
        if (!formatIsMac)
        {
            throw Shape("token.format", $"format must be \"{MacFormat}\"");
        }

        if (!kindIsMac)
        {
            throw Shape("token.body.kind", "a MAC token's body has kind \"mac\"");
        }

        const string where = "token";
        CheckTokenId(tokenId, where);
        CheckIssuer(issuer, where);
        CheckNonce(nonce, where);
        var notBefore = ParseTime(nbf[..nbfLength], "nbf", where);
        var expires = ParseTime(exp[..expLength], "exp", where);
        CheckWindow(notBefore, expires, where);
        var rights = new TokenRights(CheckSaddr(saddr, $"{where}.body.saddr", shape: true), CheckList(verbs, "verbs", where, verbs: true),
            CheckList(scopes, "scopes", where, verbs: false), notBefore, expires);
        var mac = Bytes(macText[..macLength], "mac", where, 32);
        return new CapabilityToken(text, decoded, decoded.AsMemory(MacHead.Length, bodyEnd - MacHead.Length), mac, rights, tokenId, issuer, nonce, compact: false);
    }

    private static bool Name(ref Utf8JsonReader r, ReadOnlySpan<byte> name) => r.Read() && r.TokenType == JsonTokenType.PropertyName && r.ValueTextEquals(name);

    private const int ShortMember = 64; // the longest of exp, nbf (20 characters) and mac (44) a MAC token read into the stack has
    private static ReadOnlySpan<byte> MacFormatUtf8 => "rtt.mac/1"u8;

    /// <summary>A string member into <paramref name="value"/> (<paramref name="length"/> characters); false when it is not there or longer than the span (the node path then says why).</summary>
    private static bool Chars(ref Utf8JsonReader r, ReadOnlySpan<byte> name, scoped Span<char> value, out int length)
    {
        length = 0;
        if (!Name(ref r, name) || !r.Read() || r.TokenType != JsonTokenType.String || r.HasValueSequence || r.ValueSpan.Length > value.Length)
        {
            return false;
        }

        length = r.CopyString(value);
        return true;
    }

    private static bool String(ref Utf8JsonReader r, ReadOnlySpan<byte> name, out string value)
    {
        value = "";
        if (!Name(ref r, name) || !r.Read() || r.TokenType != JsonTokenType.String)
        {
            return false;
        }

        value = r.GetString()!;
        return true;
    }

    private static bool Strings(ref Utf8JsonReader r, ReadOnlySpan<byte> name, out List<string> values)
    {
        values = [];
        if (!Name(ref r, name) || !r.Read() || r.TokenType != JsonTokenType.StartArray)
        {
            return false;
        }

        while (r.Read() && r.TokenType == JsonTokenType.String)
        {
            values.Add(r.GetString()!);
        }

        return r.TokenType == JsonTokenType.EndArray;
    }
}
