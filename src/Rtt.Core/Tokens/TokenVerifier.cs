using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tokens;

/// <summary>
/// Verifies capability tokens for a workspace (docs/tokens.md): the authority block's issuer must be a trusted,
/// unrevoked key of the trust store; the token id must not be revoked (<c>registry/trust/revoked-tokens.json</c>);
/// now must lie in [nbf, exp); then <see cref="Authorize"/> checks a symbol and verbs, and <see cref="Consume"/> spends
/// the nonce once (a bounded replay cache). The trust files are re-read when they change, so a revocation takes effect
/// without a restart. Thread-safe. This is the public verify API other front ends (the MCP gateway's bearer) use.
/// </summary>
public sealed class TokenVerifier
{
    private readonly string? _trustDirectory;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private TrustStore _trust;
    private HashSet<string> _revokedTokens;
    private (DateTime, DateTime, long, DateTime, long) _stamp;
    private readonly Func<SigningKey>? _ownKey;
    private readonly Dictionary<string, byte[]> _macKeys = new(StringComparer.Ordinal); // key id -> MAC key, for keys _ownKey has been

    /// <param name="ownKey">The private key this verifier holds, if any (a silo's workspace signing key, as it is now): MAC
    /// tokens (docs/tokens.md) verify only for keys it has returned. The key it returns is not disposed here.</param>
    public TokenVerifier(TrustStore trust, IEnumerable<string>? revokedTokenIds = null, TimeProvider? time = null, ReplayCache? replay = null, Func<SigningKey>? ownKey = null)
    {
        _trust = trust;
        _revokedTokens = [.. revokedTokenIds ?? []];
        _time = time ?? TimeProvider.System;
        Replay = replay ?? new ReplayCache();
        _ownKey = ownKey;
    }

    private TokenVerifier(RttWorkspace workspace, FolderWatch? watch, (DirectoryInfo, FileInfo, FileInfo) files, (DateTime, DateTime, long, DateTime, long) stamp, TimeProvider? time, ReplayCache? replay)
        : this(workspace.LoadTrustStore(), RevokedTokens.Load(workspace), time, replay, workspace.Signer.Current)
    {
        _trustDirectory = workspace.Trust;
        _trustFiles = files;
        _watch = watch;
        _stamp = stamp;
        _nextStamp = Environment.TickCount64 + StampEveryMs;
    }

    private readonly FolderWatch? _watch;
    private long _nextStamp;
    private bool _reload;
    private const long StampEveryMs = 1000;

    /// <summary>
    /// A verifier over the workspace's trust store and token revocations, re-read when they change; it holds the workspace's
    /// signing key (<see cref="RttWorkspace.Signer"/>), so MAC tokens made with that key verify too.
    /// </summary>
    public static TokenVerifier ForWorkspace(RttWorkspace workspace, TimeProvider? time = null, ReplayCache? replay = null)
    {
        // Watched and stamped before the files are read: a change while they are read is seen at the next call.
        var keys = Path.Combine(workspace.Trust, "keys");
        var watch = FolderWatch.Open(workspace.Trust, keys);
        (DirectoryInfo, FileInfo, FileInfo) files = (new DirectoryInfo(keys), new FileInfo(Path.Combine(workspace.Trust, TrustStore.RevokedFileName)),
            new FileInfo(Path.Combine(workspace.Trust, RevokedTokens.FileName)));
        return new(workspace, watch, files, Stamp(files), time, replay);
    }

    public ReplayCache Replay { get; }

    /// <summary>The trust store as of now: the workspace's, read again when its files change (as for tokens).</summary>
    public TrustStore Trust => Current().Item1;

    /// <summary>
    /// Decodes and verifies a token: structure, chain, proof, issuer trusted, token not revoked, inside its time window.
    /// Throws <see cref="TokenException"/> (RTT-TOKEN-…) otherwise. Does not spend the nonce.
    /// </summary>
    public CapabilityToken Verify(string? text) => Verify(text, out _);

    private CapabilityToken Verify(string? text, out TrustStore trust)
    {
        var token = CapabilityToken.Parse(text);
        (trust, var revoked) = Current();
        if (trust.IsRevoked(token.IssuerKeyId))
        {
            throw new TokenException(ErrorCodes.TokenIssuerRevoked, $"the token's issuer {token.IssuerKeyId} is a revoked key", "token.blocks[0].body.issuer",
                "ask for a token issued with a current key (`rtt keys list`)");
        }

        var issuer = trust.Find(token.IssuerKeyId);
        if (issuer is null || !trust.IsTrusted(token.IssuerKeyId))
        {
            throw new TokenException(ErrorCodes.TokenIssuerUnknown, $"the token's issuer {token.IssuerKeyId} is not a key this workspace trusts", "token.blocks[0].body.issuer",
                "issue the token with a trusted key, or trust the issuer with `rtt keys trust FILE.pub`");
        }

        if (token.IsMac)
        {
            if (!token.VerifyMac(MacKey(token.IssuerKeyId)))
            {
                throw new TokenException(ErrorCodes.TokenSignatureInvalid, "the MAC token's mac does not match its body", "token.mac",
                    "the token was changed after it was made: use the original");
            }
        }
        else if (!token.VerifyAuthority(issuer.Key))
        {
            throw new TokenException(ErrorCodes.TokenSignatureInvalid, "the authority block's signature does not verify with the issuer's key", "token.blocks[0]",
                "the token was changed after it was issued: use the original");
        }

        if (revoked.Contains(token.TokenId))
        {
            throw new TokenException(ErrorCodes.TokenRevoked, $"token {token.TokenId} is revoked", "token", "ask for a new token");
        }

        var now = _time.GetUtcNow();
        if (now < token.Rights.NotBefore)
        {
            throw new TokenException(ErrorCodes.TokenNotYetValid, $"the token is valid from {CapabilityToken.Time(token.Rights.NotBefore)}, it is {CapabilityToken.Time(now)}", "token",
                "wait, or check this machine's clock");
        }

        if (now >= token.Rights.Expires)
        {
            throw new TokenException(ErrorCodes.TokenExpired, $"the token expired at {CapabilityToken.Time(token.Rights.Expires)}", "token", "ask for a new token");
        }

        return token;
    }

    /// <summary>Checks that the token's rights cover <paramref name="symbol"/>, every verb asked and every scope required.</summary>
    public static void Authorize(CapabilityToken token, string symbol, IEnumerable<string> verbs, IEnumerable<string>? scopes = null)
    {
        if (!token.Rights.Covers(symbol))
        {
            throw new TokenException(ErrorCodes.TokenRouteDenied, $"the token allows \"{token.Rights.Saddr}\", not \"{symbol}\"", symbol,
                "use a token issued (or attenuated) for this symbol");
        }

        foreach (var verb in verbs)
        {
            if (!token.Rights.Verbs.Contains(verb))
            {
                throw new TokenException(ErrorCodes.TokenVerbDenied, $"the token does not allow \"{verb}\" (it allows {string.Join(",", token.Rights.Verbs)})", symbol,
                    $"use a token with the {verb} verb");
            }
        }

        foreach (var scope in scopes ?? [])
        {
            if (!token.Rights.Scopes.Contains(scope))
            {
                throw new TokenException(ErrorCodes.TokenScopeDenied, $"the token does not carry scope \"{scope}\"", symbol, $"use a token with --scope {scope}");
            }
        }
    }

    /// <summary>Spends the token's nonce: a second use before its expiry is refused (RTT-TOKEN-013).</summary>
    public void Consume(CapabilityToken token) => Replay.Spend(token.Nonce, token.Rights.Expires, _time.GetUtcNow());

    /// <summary>Verify, authorize and consume in one step (what an attach does).</summary>
    public CapabilityToken Admit(string? text, string symbol, IEnumerable<string> verbs, IEnumerable<string>? scopes = null) =>
        Admit(text, symbol, verbs, scopes, out _);

    /// <summary>
    /// <see cref="Admit(string?, string, IEnumerable{string}, IEnumerable{string}?)"/>, giving also the trust store the token
    /// was checked with: a call admitted with it can check what it carries (a plan's signature) against the same trust, as of
    /// its admission, without reading the trust folder's stamps again (see <see cref="TrustOfCall"/>).
    /// </summary>
    public CapabilityToken Admit(string? text, string symbol, IEnumerable<string> verbs, IEnumerable<string>? scopes, out TrustStore trust)
    {
        var token = Verify(text, out trust);
        Authorize(token, symbol, verbs, scopes);
        Consume(token);
        return token;
    }

    private static readonly AsyncLocal<TrustStore?> CallTrust = new();

    /// <summary>
    /// The trust store the current call was admitted with, when the code that admitted it runs the call under
    /// <see cref="RunAdmitted"/> (the silo's management filter does); null elsewhere.
    /// </summary>
    public static TrustStore? TrustOfCall => CallTrust.Value;

    /// <summary>
    /// Runs <paramref name="call"/> with <see cref="TrustOfCall"/> set to <paramref name="trust"/> in its async flow only
    /// (the value is this method's own: its caller's flow does not see it).
    /// </summary>
    public static async Task RunAdmitted(TrustStore trust, Func<Task> call)
    {
        CallTrust.Value = trust;
        await call();
    }

    private (TrustStore, HashSet<string>) Current()
    {
        lock (_gate)
        {
            if (_trustDirectory is not null)
            {
                // The folder watch says at once whether the trust folder changed (a revocation counts from the call after the
                // write); the stamps are compared too, at most once a second while it says nothing and at every call without
                // one, for what it cannot see (a folder above the trust folder replaced).
                // A read that failed (a file torn or broken by hand) is tried again at every call until it succeeds: until then
                // calls are refused with its error, as before the watch, not admitted against the trust read before the change.
                var changed = _watch?.Changed();
                var now = Environment.TickCount64;
                if (changed is not false || _reload || now >= _nextStamp)
                {
                    var stamp = Stamp(_trustFiles);
                    if (changed is true || _reload || stamp != _stamp)
                    {
                        _reload = true;
                        _trust = TrustStore.Load(_trustDirectory);
                        _revokedTokens = [.. RevokedTokens.LoadFrom(_trustDirectory)];
                        _stamp = stamp;
                        _reload = false;
                    }

                    _nextStamp = now + StampEveryMs;
                }
            }

            return (_trust, _revokedTokens);
        }
    }

    /// <summary>The MAC key of <paramref name="keyId"/>, when this verifier holds that private key (RTT-TOKEN-022 otherwise).</summary>
    private byte[] MacKey(string keyId)
    {
        lock (_gate)
        {
            if (_macKeys.TryGetValue(keyId, out var kept))
            {
                return kept;
            }
        }

        SigningKey? own = null;
        string? why = null;
        try
        {
            own = _ownKey?.Invoke();
        }
        catch (RttException ex)
        {
            why = $" (its own key cannot be read: {ex.Code} {ex.Message})";
        }

        if (own is null || own.KeyId != keyId)
        {
            throw new TokenException(ErrorCodes.TokenMacKeyUnknown,
                $"the MAC token was made with key {keyId}, whose private key this verifier does not hold{why ?? (own is null ? "" : $" (it holds {own.KeyId})")}", "token.body.issuer",
                "a MAC token is checked only by a silo signing with the same workspace key: present a signed token (`rtt token issue`), or use the silo's workspace");
        }

        var key = own.MacKey.ToArray(); // a copy: the signing key zeroes its own when it is disposed
        lock (_gate)
        {
            _macKeys[keyId] = key;
        }

        return key;
    }

    // The trust folder's files, kept so that a stamp refreshes each one (one status read) without building its path again.
    private readonly (DirectoryInfo Keys, FileInfo Revoked, FileInfo Tokens) _trustFiles;

    /// <summary>When and how large the trust files are now (the kept infos are refreshed in place: called under the gate, or before the verifier exists).</summary>
    private static (DateTime, DateTime, long, DateTime, long) Stamp((DirectoryInfo Keys, FileInfo Revoked, FileInfo Tokens) files)
    {
        var (keys, revoked, tokens) = files;
        keys.Refresh();
        revoked.Refresh();
        tokens.Refresh();
        return (keys.Exists ? keys.LastWriteTimeUtc : default, revoked.LastWriteTimeUtc, revoked.Exists ? revoked.Length : -1,
            tokens.LastWriteTimeUtc, tokens.Exists ? tokens.Length : -1);
    }
}

/// <summary>
/// Spent nonces until their token's expiry, at most <see cref="Capacity"/>: expired entries go first; when all are live
/// the new token is refused (RTT-TOKEN-018) rather than forgetting a live nonce (which would allow a replay).
/// </summary>
/// <remarks>
/// The entries hold no references (a nonce of up to 47 ASCII characters is kept as its characters, any other as its
/// SHA-256, the two kinds told apart by the last byte; expiries as ticks): tens of thousands of live nonces then cost the
/// collector nothing, where strings kept in a long-lived table were each one more object promoted out of generation 0 and
/// one more reference from an old table to a young object to scan at every collection.
/// </remarks>
public sealed class ReplayCache(int capacity = 100_000)
{
    private readonly Dictionary<NonceKey, long> _spent = [];
    private readonly PriorityQueue<NonceKey, long> _byExpiry = new();
    private readonly Lock _gate = new();

    public int Capacity { get; } = capacity;

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _spent.Count;
            }
        }
    }

    public void Spend(string nonce, DateTimeOffset expires, DateTimeOffset now)
    {
        var key = NonceKey.Of(nonce);
        var (expiresTicks, nowTicks) = (expires.UtcTicks, now.UtcTicks);
        lock (_gate)
        {
            while (_byExpiry.TryPeek(out var old, out var exp) && exp <= nowTicks)
            {
                _byExpiry.Dequeue();
                _spent.Remove(old);
            }

            if (_spent.ContainsKey(key))
            {
                throw new TokenException(ErrorCodes.TokenReplayed, "the token's nonce was used already (a token opens one lane)", "token.blocks[0].body.nonce",
                    "issue a fresh token for each attach");
            }

            if (_spent.Count >= Capacity)
            {
                throw new TokenException(ErrorCodes.TokenReplayCacheFull, $"{Capacity} unexpired tokens were used already; no more are admitted until some expire", "token",
                    "issue tokens with shorter lifetimes (--ttl)");
            }

            _spent[key] = expiresTicks;
            _byExpiry.Enqueue(key, expiresTicks);
        }
    }

    /// <summary>A nonce as 48 bytes: its ASCII characters and their count (0-47), or 0xFF and the SHA-256 of its UTF-8.</summary>
    internal readonly record struct NonceKey(Int128 A, Int128 B, Int128 C)
    {
        private const int Bytes = 48;

        public static NonceKey Of(string nonce)
        {
            Span<byte> bytes = stackalloc byte[Bytes];
            bytes.Clear();
            if (nonce.Length < Bytes && System.Text.Ascii.IsValid(nonce))
            {
                System.Text.Encoding.ASCII.GetBytes(nonce, bytes);
                bytes[Bytes - 1] = (byte)nonce.Length;
            }
            else
            {
                System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(nonce), bytes);
                bytes[Bytes - 1] = 0xFF;
            }

            return new(System.Runtime.InteropServices.MemoryMarshal.Read<Int128>(bytes), System.Runtime.InteropServices.MemoryMarshal.Read<Int128>(bytes[16..]),
                System.Runtime.InteropServices.MemoryMarshal.Read<Int128>(bytes[32..]));
        }
    }
}

/// <summary>Revoked token ids: <c>registry/trust/revoked-tokens.json</c> = <c>{"revoked":[{"token_id","reason","revoked_at"}]}</c>.</summary>
public static class RevokedTokens
{
    public const string FileName = "revoked-tokens.json";

    public static IReadOnlyList<string> Load(RttWorkspace workspace) => LoadFrom(workspace.Trust);

    public static IReadOnlyList<string> LoadFrom(string trustDirectory)
    {
        var path = Path.Combine(trustDirectory, FileName);
        if (!WorkspaceFiles.Exists(path))
        {
            return [];
        }

        var root = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path, WorkspaceFiles.DocumentLimit), path) as JsonObject;
        if (root?["revoked"] is not JsonArray list || list.Any(e => e?["token_id"] is not JsonValue v || !v.TryGetValue<string>(out _)))
        {
            throw new DocumentException(ErrorCodes.DocumentShape, "expected {\"revoked\": [{\"token_id\",\"reason\",\"revoked_at\"}, …]}", path, "restore the file");
        }

        return [.. list.Select(e => (string)e!["token_id"]!)];
    }

    /// <summary>Adds a token id (32 hex) to the list; adding one twice changes nothing.</summary>
    public static bool Revoke(RttWorkspace workspace, string tokenId, string reason, DateTimeOffset now)
    {
        if (tokenId.Length != 32 || !tokenId.All(char.IsAsciiHexDigitLower))
        {
            throw new TokenException(ErrorCodes.TokenRequestInvalid, "a token id is 32 lowercase hex digits (`rtt token inspect` shows it)", tokenId, "give the token_id");
        }

        var path = Path.Combine(workspace.Trust, FileName);
        var existing = LoadFrom(workspace.Trust);
        if (existing.Contains(tokenId))
        {
            return false;
        }

        var list = WorkspaceFiles.Exists(path) ? (JsonArray)((JsonObject)CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path), path))["revoked"]!.DeepClone() : [];
        list.Add(new JsonObject { ["token_id"] = tokenId, ["reason"] = reason, ["revoked_at"] = CapabilityToken.Time(now) });
        AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(new JsonObject { ["revoked"] = list }));
        return true;
    }
}
