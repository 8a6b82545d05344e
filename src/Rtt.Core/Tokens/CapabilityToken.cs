using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Tokens;

/// <summary>A capability token's refusal: a stable RTT-TOKEN code, never the token's secret in the message.</summary>
public sealed class TokenException(string code, string message, string? location = null, string? remedy = null, Exception? inner = null)
    : RttException(code, message, location, remedy, inner);

/// <summary>What a token allows: a symbol pattern, verbs, scopes, and the window it is valid in.</summary>
public sealed record TokenRights(string Saddr, IReadOnlyList<string> Verbs, IReadOnlyList<string> Scopes, DateTimeOffset NotBefore, DateTimeOffset Expires)
{
    /// <summary>True when <paramref name="symbol"/> is covered by <see cref="Saddr"/> (exact, or a prefix pattern ending in <c>*</c>).</summary>
    public bool Covers(string symbol) => CapabilityToken.Matches(Saddr, symbol);
}

/// <summary>How a new block narrows its token; null members leave that right as it is.</summary>
public sealed record TokenNarrowing(string? Saddr = null, IReadOnlyList<string>? Verbs = null, IReadOnlyList<string>? Scopes = null, DateTimeOffset? Expires = null);

/// <summary>
/// RTT capability tokens (docs/tokens.md): <c>rtt1.</c> + base64url (no padding) of the RFC 8785 bytes of
/// <c>{"format":"rtt.token/1","blocks":[…],"proof":{…}}</c>. Block 0 (authority) is signed by a key the workspace
/// trusts; each later block only narrows and is signed with the private half of the fresh key the block before it
/// names (<c>next_key</c>); the proof is either that last private key (<c>secret</c>: the holder may attenuate further)
/// or a signature with it (<c>seal</c>: no further blocks). Parsing checks structure and every signature but the
/// authority's; <see cref="TokenVerifier"/> adds trust, revocation, time and replay.
/// </summary>
public sealed partial class CapabilityToken
{
    public const string Prefix = "rtt1.";
    public const string Format = "rtt.token/1";
    public const int MaxChars = 8192;
    public const int MaxBlocks = 8;
    public const int MaxScopes = 32;
    public const int MaxSaddr = 256;
    public static readonly TimeSpan MaxTtl = TimeSpan.FromDays(30);
    public static readonly IReadOnlyList<string> AllVerbs = ["close", "open", "rx", "tx"];

    // AllVerbs as a set: checked at every mint and read (a list behind an interface is a slow Contains there).
    private static readonly System.Collections.Frozen.FrozenSet<string> VerbSet = System.Collections.Frozen.FrozenSet.ToFrozenSet(AllVerbs, StringComparer.Ordinal);

    private CapabilityToken(string text, JsonObject envelope, IReadOnlyList<(JsonObject Body, byte[] Sig)> blocks, TokenRights rights, bool sealedToken, byte[]? secret)
    {
        Text = text;
        _envelope = envelope;
        _blocks = blocks;
        Rights = rights;
        Sealed = sealedToken;
        _secret = secret;
        TokenId = (string)blocks[0].Body["token_id"]!;
        IssuerKeyId = (string)blocks[0].Body["issuer"]!;
        Nonce = (string)blocks[0].Body["nonce"]!;
    }

    private readonly byte[]? _secret;
    private JsonObject? _envelope;
    private IReadOnlyList<(JsonObject Body, byte[] Sig)>? _blocks;

    /// <summary>The token as it travels.</summary>
    public string Text { get; }

    /// <summary>The decoded envelope (canonical JSON). A MAC token read from its bytes (<see cref="ParseMac"/>) parses it when first
    /// asked; a compact one (<c>rttm2</c>) shows its members in the same envelope, with format <c>rtt.mac/2</c>.</summary>
    public JsonObject Envelope => _envelope ?? LazyInitializer.EnsureInitialized(ref _envelope, () => _compact ? CompactEnvelope() : (JsonObject)JsonNode.Parse(_decoded!)!);

    public IReadOnlyList<(JsonObject Body, byte[] Sig)> Blocks =>
        _blocks ?? LazyInitializer.EnsureInitialized(ref _blocks, () => [((JsonObject)Envelope["body"]!, _mac!)]);

    /// <summary>The rights of the last block: what the token allows.</summary>
    public TokenRights Rights { get; }

    public bool Sealed { get; }

    public string TokenId { get; }

    public string IssuerKeyId { get; }

    public string Nonce { get; }

    /// <summary>The issuer's signature over block 0, checked by <see cref="VerifyAuthority"/>.</summary>
    public byte[] AuthoritySignature => Blocks[0].Sig;

    /// <summary>Issues a token signed by <paramref name="issuer"/> (a key the verifying workspace trusts).</summary>
    public static string Issue(SigningKey issuer, string saddr, IReadOnlyList<string> verbs, IReadOnlyList<string> scopes, TimeSpan ttl, DateTimeOffset now) =>
        Chain([], Authority(issuer, saddr, verbs, scopes, ttl, now), issuer);

    /// <summary>
    /// <see cref="Seal"/> of <see cref="Issue"/> in one step, as every one-use token is made (an apply, a call's lane):
    /// the block's next key seals it at once, so the token is not encoded, decoded and its secret imported again.
    /// </summary>
    public static string IssueSealed(SigningKey issuer, string saddr, IReadOnlyList<string> verbs, IReadOnlyList<string> scopes, TimeSpan ttl, DateTimeOffset now)
    {
        var body = Authority(issuer, saddr, verbs, scopes, ttl, now);
        var (sig, next) = Link(body, issuer);
        using var _ = next;
        var seal = next.Sign(SealPayload(sig));
        return Encode([(body, sig)], new JsonObject { ["seal"] = Convert.ToBase64String(seal) });
    }

    private static JsonObject Authority(SigningKey issuer, string saddr, IReadOnlyList<string> verbs, IReadOnlyList<string> scopes, TimeSpan ttl, DateTimeOffset now)
    {
        var (nbf, exp) = Window(now, ttl);
        var body = new JsonObject
        {
            ["kind"] = "authority",
            ["token_id"] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
            ["issuer"] = issuer.KeyId,
            ["saddr"] = CheckSaddr(saddr, "--saddr"),
            ["verbs"] = ToArray(CheckVerbs(verbs, "--verb")),
            ["scopes"] = ToArray(CheckScopes(scopes, "--scope")),
            ["nbf"] = Time(nbf),
            ["exp"] = Time(exp),
            ["nonce"] = Base64Url(RandomNumberGenerator.GetBytes(32)),
        };
        return body;
    }

    /// <summary>A new token's nbf and exp: whole seconds, exp at least a second after nbf.</summary>
    private static (DateTimeOffset Nbf, DateTimeOffset Exp) Window(DateTimeOffset now, TimeSpan ttl)
    {
        if (ttl <= TimeSpan.Zero || ttl > MaxTtl)
        {
            throw new TokenException(ErrorCodes.TokenRequestInvalid, $"a token lives between 1 s and {MaxTtl.TotalDays:0} days, not {ttl}", "--ttl", "give e.g. --ttl 5m, 1h or 7d");
        }

        var nbf = Truncate(now);
        var exp = Truncate(now + ttl);
        return (nbf, exp <= nbf ? nbf.AddSeconds(1) : exp);
    }

    /// <summary>Adds a block that narrows the token (offline: only the token's own proof secret is needed).</summary>
    public static string Attenuate(string token, TokenNarrowing narrowing)
    {
        var parsed = Parse(token);
        if (parsed.IsMac)
        {
            throw new TokenException(ErrorCodes.TokenSealed, "a MAC token cannot be attenuated (it has no key chain)", "token", "attenuate a signed token (`rtt token issue`)");
        }

        if (parsed.Sealed || parsed._secret is null)
        {
            throw new TokenException(ErrorCodes.TokenSealed, "the token is sealed: no block can be added", "token", "attenuate the unsealed token it was made from");
        }

        var rights = parsed.Rights;
        var body = new JsonObject { ["kind"] = "attenuation", ["prev"] = Convert.ToBase64String(parsed.Blocks[^1].Sig) };
        if (narrowing.Saddr is { } s)
        {
            CheckSaddr(s, "--saddr");
            if (!Narrows(rights.Saddr, s))
            {
                throw new TokenException(ErrorCodes.TokenWidened, $"saddr \"{s}\" is not within \"{rights.Saddr}\"", "--saddr", "give a pattern inside the token's own");
            }

            body["saddr"] = s;
        }

        if (narrowing.Verbs is { } v)
        {
            var verbs = CheckVerbs(v, "--verb");
            if (verbs.Except(rights.Verbs).Any())
            {
                throw new TokenException(ErrorCodes.TokenWidened, $"verbs {string.Join(",", verbs)} are not within {string.Join(",", rights.Verbs)}", "--verb", "give a subset of the token's verbs");
            }

            body["verbs"] = ToArray(verbs);
        }

        if (narrowing.Scopes is { } sc)
        {
            var scopes = CheckScopes(sc, "--scope");
            if (scopes.Except(rights.Scopes).Any())
            {
                throw new TokenException(ErrorCodes.TokenWidened, $"scopes {string.Join(",", scopes)} are not within {string.Join(",", rights.Scopes)}", "--scope", "give a subset of the token's scopes");
            }

            body["scopes"] = ToArray(scopes);
        }

        if (narrowing.Expires is { } e)
        {
            var exp = Truncate(e);
            if (exp > rights.Expires)
            {
                throw new TokenException(ErrorCodes.TokenWidened, $"expiry {Time(exp)} is later than the token's {Time(rights.Expires)}", "--ttl", "give a shorter time");
            }

            body["exp"] = Time(exp);
        }

        using var key = SigningKey.FromSeed(parsed._secret);
        return Chain(parsed.Blocks, body, key);
    }

    /// <summary>Replaces the proof secret by a seal: the token can be used but no longer attenuated.</summary>
    public static string Seal(string token)
    {
        var parsed = Parse(token);
        if (parsed.Sealed || parsed._secret is null)
        {
            throw new TokenException(ErrorCodes.TokenSealed, "the token is sealed already", "token", "use it as it is");
        }

        using var key = SigningKey.FromSeed(parsed._secret);
        var seal = key.Sign(SealPayload(parsed.Blocks[^1].Sig));
        return Encode(parsed.Blocks, new JsonObject { ["seal"] = Convert.ToBase64String(seal) });
    }

    private static string Chain(IReadOnlyList<(JsonObject Body, byte[] Sig)> blocks, JsonObject body, SigningKey signer)
    {
        var (sig, next) = Link(body, signer);
        using var _ = next;
        var secret = (string)next.ToPrivateKeyJson()["private_key"]!;
        return Encode([.. blocks, (body, sig)], new JsonObject { ["secret"] = secret });
    }

    /// <summary>Names a fresh next key in <paramref name="body"/> and signs it: the block's signature and that key (the caller disposes it).</summary>
    private static (byte[] Sig, SigningKey Next) Link(JsonObject body, SigningKey signer)
    {
        var next = SigningKey.Generate();
        try
        {
            body["next_key"] = Convert.ToBase64String(next.PublicKey.RawPublicKey);
            return (signer.Sign(CanonicalJson.Serialize(body)), next);
        }
        catch
        {
            next.Dispose();
            throw;
        }
    }

    private static string Encode(IReadOnlyList<(JsonObject Body, byte[] Sig)> blocks, JsonObject proof)
    {
        var array = new JsonArray();
        foreach (var (body, sig) in blocks)
        {
            array.Add(new JsonObject { ["body"] = body.DeepClone(), ["sig"] = Convert.ToBase64String(sig) });
        }

        var envelope = new JsonObject { ["format"] = Format, ["blocks"] = array, ["proof"] = proof };
        var text = Prefix + Base64Url(CanonicalJson.Serialize(envelope));
        if (text.Length > MaxChars)
        {
            throw new TokenException(ErrorCodes.TokenTooLarge, $"the token would be {text.Length} characters (at most {MaxChars})", "token", "use fewer blocks or scopes");
        }

        return text;
    }

    private static byte[] SealPayload(byte[] lastSig) => CanonicalJson.Serialize(new JsonObject { ["sealed"] = Convert.ToBase64String(lastSig) });

    /// <summary>The envelope of a token's text: present, not too long, the prefix, strict base64url of canonical JSON (RTT-TOKEN-001/003/016).</summary>
    private static JsonObject Decode([System.Diagnostics.CodeAnalysis.NotNull] string? text, string prefix) => Decode(text, prefix, out _);

    private static JsonObject Decode([System.Diagnostics.CodeAnalysis.NotNull] string? text, string prefix, out byte[] bytes)
    {
        if (string.IsNullOrEmpty(text))
        {
            throw new TokenException(ErrorCodes.TokenMissing, "no capability token was given", "token", "issue one with `rtt token issue` (docs/tokens.md)");
        }

        if (text.Length > MaxChars)
        {
            throw TooLong(text);
        }

        if (!text.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw Malformed($"a token starts with \"{Prefix}\" (or \"{MacPrefix}\", \"{Mac2Prefix}\")");
        }

        bytes = FromBase64Url(text.AsSpan(prefix.Length)) ?? throw Malformed($"the text after \"{prefix}\" is not unpadded base64url");
        JsonObject envelope;
        try
        {
            envelope = CanonicalJson.ParseNode(bytes, "token") as JsonObject ?? throw Malformed("the decoded token is not a JSON object");
        }
        catch (RttException ex)
        {
            throw Malformed($"the decoded token is not valid JSON ({ex.Code})");
        }

        if (!CanonicalJson.IsPlainCanonical(bytes) && !CanonicalJson.Serialize(envelope).AsSpan().SequenceEqual(bytes))
        {
            throw Malformed("the decoded token is not in canonical form (RFC 8785)");
        }

        return envelope;
    }

    /// <summary>
    /// Decodes a token and checks everything that needs no trust store: encoding, canonical form, shape, every
    /// attenuation block's signature and link, narrowing, and the proof. Block 0's signature is checked by
    /// <see cref="VerifyAuthority"/> with the issuer's key.
    /// </summary>
    public static CapabilityToken Parse(string? text)
    {
        if (text is not null && text.StartsWith(Mac2Prefix, StringComparison.Ordinal))
        {
            return ParseMac2(text);
        }

        if (text is not null && text.StartsWith(MacPrefix, StringComparison.Ordinal))
        {
            return ParseMac(text);
        }

        var envelope = Decode(text, Prefix);

        ExpectMembers(envelope, "token", "blocks", "format", "proof");
        if (Str(envelope, "format", "token") != Format)
        {
            throw Shape("token.format", $"format must be \"{Format}\"");
        }

        if (envelope["blocks"] is not JsonArray list || list.Count == 0)
        {
            throw Shape("token.blocks", "blocks must be a non-empty list");
        }

        if (list.Count > MaxBlocks)
        {
            throw new TokenException(ErrorCodes.TokenTooLarge, $"the token has {list.Count} blocks (at most {MaxBlocks})", "token.blocks", "attenuate a token with fewer blocks");
        }

        var blocks = new List<(JsonObject, byte[])>();
        TokenRights? rights = null;
        for (var i = 0; i < list.Count; i++)
        {
            var where = $"token.blocks[{i}]";
            if (list[i] is not JsonObject block)
            {
                throw Shape(where, "a block must be {\"body\":{…},\"sig\":\"<base64>\"}");
            }

            ExpectMembers(block, where, "body", "sig");
            var body = block["body"] as JsonObject ?? throw Shape($"{where}.body", "body must be an object");
            var sig = Bytes(block, "sig", where, 64);
            if (i == 0)
            {
                ExpectMembers(body, $"{where}.body", "exp", "issuer", "kind", "nbf", "next_key", "nonce", "saddr", "scopes", "token_id", "verbs");
                if (Str(body, "kind", where) != "authority")
                {
                    throw Shape($"{where}.body.kind", "block 0 must be the authority block");
                }

                rights = AuthorityRights(body, where);
            }
            else
            {
                ExpectMembers(body, $"{where}.body", ["kind", "next_key", "prev"], ["exp", "saddr", "scopes", "verbs"]);
                if (Str(body, "kind", where) != "attenuation")
                {
                    throw Shape($"{where}.body.kind", "blocks after the first must be attenuation blocks");
                }

                var prevSig = blocks[i - 1].Item2;
                if (Str(body, "prev", where) != Convert.ToBase64String(prevSig))
                {
                    throw new TokenException(ErrorCodes.TokenChainBroken, $"block {i} does not follow block {i - 1} (prev does not name its signature): blocks were reordered or spliced", where,
                        "use the token as it was issued or attenuated");
                }

                var key = NextKey(blocks[i - 1].Item1, i - 1);
                if (!key.Verify(CanonicalJson.Serialize(body), sig))
                {
                    throw new TokenException(ErrorCodes.TokenSignatureInvalid, $"block {i}'s signature does not verify with the key block {i - 1} names", where,
                        "the token was changed after it was made: use the original");
                }

                rights = Narrow(rights!, body, where);
            }

            _ = NextKey(body, i);
            blocks.Add((body, sig));
        }

        var proof = envelope["proof"] as JsonObject ?? throw Shape("token.proof", "proof must be {\"secret\":…} or {\"seal\":…}");
        var last = NextKey(blocks[^1].Item1, blocks.Count - 1);
        byte[]? secret = null;
        var sealedToken = false;
        if (proof.Count == 1 && proof.ContainsKey("secret"))
        {
            secret = Bytes(proof, "secret", "token.proof", 32);
            using var k = SigningKey.FromSeed(secret);
            if (!k.PublicKey.RawPublicKey.AsSpan().SequenceEqual(last.RawPublicKey))
            {
                throw new TokenException(ErrorCodes.TokenProofInvalid, "the proof secret is not the key the last block names: the chain was truncated or the proof replaced", "token.proof",
                    "use the token as it was issued or attenuated");
            }
        }
        else if (proof.Count == 1 && proof.ContainsKey("seal"))
        {
            sealedToken = true;
            if (!last.Verify(SealPayload(blocks[^1].Item2), Bytes(proof, "seal", "token.proof", 64)))
            {
                throw new TokenException(ErrorCodes.TokenProofInvalid, "the seal does not verify with the key the last block names: the chain was truncated or the seal forged", "token.proof",
                    "use the sealed token as it was made");
            }
        }
        else
        {
            throw Shape("token.proof", "proof must be exactly {\"secret\":…} or {\"seal\":…}");
        }

        return new CapabilityToken(text, envelope, blocks, rights!, sealedToken, secret);
    }

    /// <summary>Checks block 0's signature with the issuer's key.</summary>
    public bool VerifyAuthority(TrustedKey issuer) =>
        issuer.KeyId == IssuerKeyId && issuer.Verify(CanonicalJson.Serialize(Blocks[0].Body), Blocks[0].Sig);

    /// <summary>The rights an authority body (or a MAC token's body) grants, after checking its id, issuer, nonce and window.</summary>
    private static TokenRights AuthorityRights(JsonObject body, string where)
    {
        CheckTokenId(Str(body, "token_id", where), where);
        CheckIssuer(Str(body, "issuer", where), where);
        CheckNonce(Str(body, "nonce", where), where);
        var nbf = ReadTime(body, "nbf", where);
        var exp = ReadTime(body, "exp", where);
        CheckWindow(nbf, exp, where);
        return new TokenRights(CheckSaddr(Str(body, "saddr", where), $"{where}.body.saddr", shape: true), ReadList(body, "verbs", where, verbs: true),
            ReadList(body, "scopes", where, verbs: false), nbf, exp);
    }

    // The checks of an authority (or MAC) body's members, in the order AuthorityRights makes them; ParseMac's reader makes
    // them in the same order on the same values, so either path refuses a body with the same first error.
    private static void CheckTokenId(string tokenId, string where)
    {
        if (tokenId.Length != 32 || !LowerHex(tokenId))
        {
            throw Shape($"{where}.body.token_id", "token_id must be 32 lowercase hex digits");
        }
    }

    private static void CheckIssuer(string issuer, string where)
    {
        if (!issuer.StartsWith("sha256:", StringComparison.Ordinal) || issuer.Length != 71 || !LowerHex(issuer.AsSpan(7)))
        {
            throw Shape($"{where}.body.issuer", "issuer must be a key id sha256:<64 hex>");
        }
    }

    // Loops rather than LINQ over the characters: every management call's token goes through these checks.
    private static bool LowerHex(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (!char.IsAsciiHexDigitLower(c))
            {
                return false;
            }
        }

        return true;
    }

    private static void CheckNonce(string nonce, string where)
    {
        Span<byte> decoded = stackalloc byte[33];
        if (nonce.Length > 44 || !TryFromBase64Url(nonce, decoded, out var length) || length != 32)
        {
            throw Shape($"{where}.body.nonce", "nonce must be 32 bytes in unpadded base64url");
        }
    }

    private static void CheckWindow(DateTimeOffset nbf, DateTimeOffset exp, string where)
    {
        if (exp <= nbf || exp - nbf > MaxTtl)
        {
            throw Shape($"{where}.body.exp", $"exp must be after nbf and at most {MaxTtl.TotalDays:0} days later");
        }
    }

    private static TokenRights Narrow(TokenRights parent, JsonObject body, string where)
    {
        var saddr = parent.Saddr;
        if (body.ContainsKey("saddr"))
        {
            saddr = CheckSaddr(Str(body, "saddr", where), $"{where}.body.saddr", shape: true);
            if (!Narrows(parent.Saddr, saddr))
            {
                throw Widened(where, $"saddr \"{saddr}\" is not within \"{parent.Saddr}\"");
            }
        }

        var verbs = parent.Verbs;
        if (body.ContainsKey("verbs"))
        {
            verbs = ReadList(body, "verbs", where, verbs: true);
            if (verbs.Except(parent.Verbs).Any())
            {
                throw Widened(where, $"verbs {string.Join(",", verbs)} are not within {string.Join(",", parent.Verbs)}");
            }
        }

        var scopes = parent.Scopes;
        if (body.ContainsKey("scopes"))
        {
            scopes = ReadList(body, "scopes", where, verbs: false);
            if (scopes.Except(parent.Scopes).Any())
            {
                throw Widened(where, $"scopes {string.Join(",", scopes)} are not within {string.Join(",", parent.Scopes)}");
            }
        }

        var exp = parent.Expires;
        if (body.ContainsKey("exp"))
        {
            exp = ReadTime(body, "exp", where);
            if (exp > parent.Expires)
            {
                throw Widened(where, $"exp {Time(exp)} is later than {Time(parent.Expires)}");
            }
        }

        return new TokenRights(saddr, verbs, scopes, parent.NotBefore, exp);
    }

    private static TokenException Widened(string where, string what) =>
        new(ErrorCodes.TokenWidened, $"an attenuation block widens the token: {what}", where, "a block may only narrow; use the token as it was attenuated");

    /// <summary>True when <paramref name="pattern"/> covers <paramref name="symbol"/>: equal, or a prefix pattern ending in <c>*</c>.</summary>
    public static bool Matches(string pattern, string symbol) =>
        pattern.EndsWith('*') ? symbol.StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal) : pattern == symbol;

    /// <summary>True when every symbol <paramref name="child"/> covers is covered by <paramref name="parent"/>.</summary>
    public static bool Narrows(string parent, string child) =>
        parent.EndsWith('*') ? child.StartsWith(parent.AsSpan(0, parent.Length - 1), StringComparison.Ordinal) : child == parent;

    private static string CheckSaddr(string saddr, string where, bool shape = false)
    {
        var star = saddr.IndexOf('*', StringComparison.Ordinal);
        if (!saddr.StartsWith("rtt://", StringComparison.Ordinal) || saddr.Length > MaxSaddr || (star >= 0 && star != saddr.Length - 1)
            || saddr.AsSpan().IndexOfAnyExceptInRange('!', '~') >= 0)
        {
            var why = $"saddr \"{Clip(saddr)}\" must be rtt://… (at most {MaxSaddr} printable ASCII characters), optionally ending in one *";
            throw shape ? Shape(where, why) : new TokenException(ErrorCodes.TokenRequestInvalid, why, where, "give e.g. rtt://core/api/upper or rtt://core/api/*");
        }

        return saddr;
    }

    /// <summary>The names sorted (ordinal) with repeats removed: what Distinct and Order give, without their enumerators.</summary>
    private static List<string> SortedSet(IEnumerable<string> names)
    {
        var list = new List<string>(names);
        list.Sort(StringComparer.Ordinal);
        var kept = 0;
        for (var i = 0; i < list.Count; i++)
        {
            if (kept == 0 || !string.Equals(list[kept - 1], list[i], StringComparison.Ordinal))
            {
                list[kept++] = list[i];
            }
        }

        list.RemoveRange(kept, list.Count - kept);
        return list;
    }

    private static bool AllKnownVerbs(List<string> verbs)
    {
        foreach (var v in verbs)
        {
            if (!VerbSet.Contains(v))
            {
                return false;
            }
        }

        return true;
    }

    private static bool AllScopeNames(List<string> scopes)
    {
        foreach (var s in scopes)
        {
            if (!ScopeOk(s))
            {
                return false;
            }
        }

        return true;
    }

    private static List<string> CheckVerbs(IEnumerable<string> verbs, string where)
    {
        var list = SortedSet(verbs);
        if (list.Count == 0 || !AllKnownVerbs(list))
        {
            throw new TokenException(ErrorCodes.TokenRequestInvalid, $"verbs must be some of {string.Join(",", AllVerbs)}", where, "give e.g. --verb open,tx,rx");
        }

        return list;
    }

    private static List<string> CheckScopes(IEnumerable<string> scopes, string where)
    {
        var list = SortedSet(scopes);
        if (list.Count > MaxScopes || !AllScopeNames(list))
        {
            throw new TokenException(ErrorCodes.TokenRequestInvalid, $"scopes are at most {MaxScopes} names of 1-64 characters from a-z 0-9 . _ : -", where, "give e.g. --scope metrics.read");
        }

        return list;
    }

    private static readonly System.Buffers.SearchValues<char> ScopeChars = System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789._:-");

    private static bool ScopeOk(string s) => s.Length is > 0 and <= 64 && !s.AsSpan().ContainsAnyExcept(ScopeChars);

    private static List<string> ReadList(JsonObject body, string name, string where, bool verbs)
    {
        if (body[name] is not JsonArray array || array.Any(e => e is not JsonValue v || !v.TryGetValue<string>(out _)))
        {
            throw Shape($"{where}.body.{name}", $"{name} must be a list of strings");
        }

        return CheckList([.. array.Select(e => (string)e!)], name, where, verbs);
    }

    private static List<string> CheckList(List<string> list, string name, string where, bool verbs)
    {
        var ascending = true; // strictly ascending in ordinal order: equal to its own sorted set
        for (var i = 1; i < list.Count && ascending; i++)
        {
            ascending = string.CompareOrdinal(list[i - 1], list[i]) < 0;
        }

        if (!ascending || (verbs ? list.Count == 0 || !AllKnownVerbs(list) : list.Count > MaxScopes || !AllScopeNames(list)))
        {
            throw Shape($"{where}.body.{name}", verbs ? $"verbs must be a sorted, non-empty set of {string.Join(",", AllVerbs)}" : "scopes must be a sorted set of scope names");
        }

        return list;
    }

    private static TrustedKey NextKey(JsonObject body, int index)
    {
        var raw = Bytes(body, "next_key", $"token.blocks[{index}].body", 32);
        try
        {
            return new TrustedKey(raw);
        }
        catch (ArgumentException)
        {
            throw Shape($"token.blocks[{index}].body.next_key", "next_key is not an Ed25519 public key");
        }
    }

    private static void ExpectMembers(JsonObject obj, string where, params string[] required) => ExpectMembers(obj, where, required, []);

    private static void ExpectMembers(JsonObject obj, string where, string[] required, string[] optional)
    {
        foreach (var name in required)
        {
            if (!obj.ContainsKey(name))
            {
                throw Shape(where, $"member \"{name}\" is missing");
            }
        }

        foreach (var (name, _) in obj)
        {
            if (!required.Contains(name) && !optional.Contains(name))
            {
                throw Shape(where, $"unknown member \"{Clip(name)}\"");
            }
        }
    }

    private static string Str(JsonObject obj, string name, string where) =>
        obj[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Shape($"{where}.{name}", $"{name} must be a string");

    private static byte[] Bytes(JsonObject obj, string name, string where, int length) => Bytes(Str(obj, name, where), name, where, length);

    private static byte[] Bytes(ReadOnlySpan<char> text, string name, string where, int length)
    {
        // Decoded and encoded again into the stack (the canonical text only: no whitespace, no stray bits); up to 64 bytes here.
        Span<byte> bytes = stackalloc byte[64];
        Span<char> again = stackalloc char[88];
        if (length <= 64 && text.Length <= again.Length && Convert.TryFromBase64Chars(text, bytes, out var written) && written == length
            && Convert.TryToBase64Chars(bytes[..written], again, out var chars) && again[..chars].SequenceEqual(text))
        {
            return bytes[..written].ToArray();
        }

        throw Shape($"{where}.{name}", $"{name} must be {length} bytes in padded standard base64");
    }

    /// <summary>
    /// <c>yyyy-MM-ddTHH:mm:ssZ</c> read digit by digit (a token's two times are read at every call; the culture-aware
    /// parser costs a quarter of a MAC token's read): null for anything else, which the exact parser then reads or refuses.
    /// </summary>
    internal static DateTimeOffset? FixedTime(ReadOnlySpan<char> t)
    {
        if (t.Length != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != 'Z')
        {
            return null;
        }

        static int Digits(ReadOnlySpan<char> t, int at, int count)
        {
            var value = 0;
            for (var i = at; i < at + count; i++)
            {
                var d = t[i] - '0';
                if ((uint)d > 9)
                {
                    return -1;
                }

                value = (value * 10) + d;
            }

            return value;
        }

        var (year, month, day, hour, minute, second) = (Digits(t, 0, 4), Digits(t, 5, 2), Digits(t, 8, 2), Digits(t, 11, 2), Digits(t, 14, 2), Digits(t, 17, 2));
        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour is < 0 or > 23 || minute is < 0 or > 59 || second is < 0 or > 59)
        {
            return null;
        }

        return new DateTimeOffset(year, month, day, hour, minute, second, TimeSpan.Zero);
    }

    private static DateTimeOffset ReadTime(JsonObject body, string name, string where) => ParseTime(Str(body, name, where), name, where);

    private static DateTimeOffset ParseTime(ReadOnlySpan<char> text, string name, string where)
    {
        if (FixedTime(text) is { } quick)
        {
            return quick;
        }

        if (text.Length != 20 || !DateTimeOffset.TryParseExact(text, "yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
        {
            throw Shape($"{where}.body.{name}", $"{name} must be a UTC time like 2026-01-02T03:04:05Z");
        }

        return t;
    }

    public static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static DateTimeOffset Truncate(DateTimeOffset t) => new(t.UtcTicks - (t.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

    private static JsonArray ToArray(IEnumerable<string> items) => [.. items.Select(i => (JsonNode)i)];

    private static string Clip(string s) => s.Length > 40 ? s[..40] + "…" : s;

    private static TokenException TooLong(string text) =>
        new(ErrorCodes.TokenTooLarge, $"the token is {text.Length} characters (at most {MaxChars})", "token", "use the token as `rtt token issue` printed it");

    private static TokenException Malformed(string why) =>
        new(ErrorCodes.TokenMalformed, $"not a capability token: {why}", "token", "pass the token exactly as `rtt token issue` or `rtt token attenuate` printed it");

    private static TokenException Shape(string where, string why) =>
        new(ErrorCodes.TokenShape, $"the token's content is not valid: {why}", where, "pass the token exactly as rtt made it (docs/tokens.md)");

    public static string Base64Url(ReadOnlySpan<byte> bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);

    /// <summary>
    /// Strict unpadded base64url: null for any other alphabet, padding, or a non-canonical last character (the runtime's decoder
    /// refuses one with stray bits; the differential test in TokenTests holds it to the reference decoding).
    /// </summary>
    public static byte[]? FromBase64Url(ReadOnlySpan<char> text)
    {
        var bytes = new byte[System.Buffers.Text.Base64Url.GetMaxDecodedLength(text.Length)];
        if (!TryFromBase64Url(text, bytes, out var written))
        {
            return null;
        }

        return written == bytes.Length ? bytes : bytes[..written];
    }

    /// <summary><see cref="FromBase64Url"/> into <paramref name="bytes"/> (room for GetMaxDecodedLength of the text); false where it gives null.</summary>
    private static bool TryFromBase64Url(ReadOnlySpan<char> text, Span<byte> bytes, out int written)
    {
        written = 0;
        if (text.Length % 4 == 1)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_')
            {
                return false; // no padding, no whitespace (the decoder would skip it), nothing else
            }
        }

        try
        {
            return System.Buffers.Text.Base64Url.TryDecodeFromChars(text, bytes, out written);
        }
        catch (FormatException)
        {
            return false; // "Try" is about the destination's room: a last character with stray bits (not canonical) throws
        }
    }
}
