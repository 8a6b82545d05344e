using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;

namespace Rtt.Core.Signing;

/// <summary>
/// The keys this workspace trusts (<c>registry/trust/keys/*.pub</c>) and the keys it has revoked
/// (<c>registry/trust/revoked.json</c>). A revoked key stays listed so that anything it signed is refused.
/// </summary>
public sealed class TrustStore
{
    public const string RevokedFileName = "revoked.json";
    private readonly SortedDictionary<string, TrustedKeyEntry> _keys;
    private readonly SortedDictionary<string, Revocation> _revoked;

    private TrustStore(string directory, SortedDictionary<string, TrustedKeyEntry> keys, SortedDictionary<string, Revocation> revoked)
    {
        Directory = directory;
        _keys = keys;
        _revoked = revoked;
    }

    /// <summary>The trust folder (<c>.rtt/registry/trust</c>).</summary>
    public string Directory { get; }

    public string KeysDirectory => Path.Combine(Directory, "keys");

    public string RevokedPath => Path.Combine(Directory, RevokedFileName);

    /// <summary>Trusted keys by key_id, in key_id order.</summary>
    public IReadOnlyCollection<TrustedKeyEntry> Keys => _keys.Values;

    /// <summary>Revocations by key_id, in key_id order.</summary>
    public IReadOnlyCollection<Revocation> Revoked => _revoked.Values;

    /// <summary>Loads the trust folder; a missing folder is an empty store.</summary>
    public static TrustStore Load(string trustDirectory)
    {
        var keys = new SortedDictionary<string, TrustedKeyEntry>(StringComparer.Ordinal);
        var keysDir = Path.Combine(trustDirectory, "keys");
        if (System.IO.Directory.Exists(keysDir))
        {
            // Sorted so that which file wins for a duplicate key is the same everywhere.
            foreach (var file in WorkspaceFiles.Entries(keysDir, "*.pub"))
            {
                var key = TrustedKey.Load(file);
                keys.TryAdd(key.KeyId, new TrustedKeyEntry(Path.GetFileNameWithoutExtension(file), key, file));
            }
        }

        var revoked = new SortedDictionary<string, Revocation>(StringComparer.Ordinal);
        var revokedPath = Path.Combine(trustDirectory, RevokedFileName);
        if (WorkspaceFiles.Exists(revokedPath))
        {
            var root = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(revokedPath, WorkspaceFiles.SmallLimit), revokedPath) as JsonObject;
            if (root?["revoked"] is not JsonArray list)
            {
                throw new DocumentException(ErrorCodes.DocumentShape, "expected {\"revoked\": [ … ]}", revokedPath,
                    "restore the file; each entry is {\"key_id\",\"reason\",\"revoked_at\"}");
            }

            for (var i = 0; i < list.Count; i++)
            {
                var keyId = (string?)list[i]?["key_id"]
                    ?? throw new DocumentException(ErrorCodes.DocumentShape, "entry has no key_id", $"{revokedPath}: revoked[{i}]", "add the key_id");
                var kind = list[i]?["kind"] is JsonValue kv && kv.TryGetValue<string>(out var kt) ? kt : Revocation.Compromised;
                if (kind is not (Revocation.Retired or Revocation.Compromised))
                {
                    throw new DocumentException(ErrorCodes.DocumentShape, $"kind must be \"{Revocation.Retired}\" or \"{Revocation.Compromised}\"", $"{revokedPath}: revoked[{i}].kind",
                        "restore the file");
                }

                revoked[keyId] = new Revocation(keyId, (string?)list[i]?["reason"] ?? "", (string?)list[i]?["revoked_at"] ?? "", kind);
            }
        }

        return new TrustStore(trustDirectory, keys, revoked);
    }

    public bool IsTrusted(string keyId) => _keys.ContainsKey(keyId) && !_revoked.ContainsKey(keyId);

    public bool IsRevoked(string keyId) => _revoked.ContainsKey(keyId);

    /// <summary>Finds a trusted key by key_id or by the name of its .pub file.</summary>
    public TrustedKeyEntry? Find(string keyIdOrName) =>
        _keys.TryGetValue(keyIdOrName, out var byId) ? byId : _keys.Values.FirstOrDefault(k => k.Name == keyIdOrName);

    /// <summary>
    /// Verifies a signed object: it must carry a sign block by a trusted, unrevoked key whose signature
    /// covers the canonical object without <c>sign</c>. Returns the signer's key_id.
    /// </summary>
    /// <param name="signedAt">When the signature was made, if the object says (a WAL head's timestamp). A retired key's
    /// signatures stay valid up to its retirement: with no time, a stored object signed by it passes; a time after the
    /// retirement does not. A compromised key's signatures are refused whatever the time.</param>
    public string Verify(JsonObject signedObject, string? location = null, DateTimeOffset? signedAt = null) =>
        Verify(signedObject, ObjectSigner.SigningPayload(signedObject), location, signedAt);

    /// <summary>
    /// As above, with the bytes the signature covers already made by the caller: they must be
    /// <see cref="ObjectSigner.SigningPayload"/> of <paramref name="signedObject"/> (a plan's are made once with its plan_id check).
    /// </summary>
    public string Verify(JsonObject signedObject, byte[] payload, string? location = null, DateTimeOffset? signedAt = null)
    {
        var block = ObjectSigner.ReadSignBlock(signedObject, location);
        if (_revoked.TryGetValue(block.KeyId, out var revocation) && revocation.Kind == Revocation.Retired && _keys.ContainsKey(block.KeyId)
            && (signedAt is null || !DateTimeOffset.TryParse(revocation.RevokedAt, System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal, out var retiredAt) || signedAt <= retiredAt))
        {
            revocation = null; // retired, and signed before the retirement: verified like a trusted key below
        }

        if (revocation is not null)
        {
            throw new SigningException(ErrorCodes.SignerRevoked,
                revocation.Kind == Revocation.Retired
                    ? $"signed by key {block.KeyId} after its retirement at {revocation.RevokedAt}"
                    : $"signed by revoked key {block.KeyId}{(revocation.Reason.Length > 0 ? $" (revoked: {revocation.Reason})" : "")}", location,
                "re-sign with a trusted key: `rtt keys rotate NEW --compromised` re-signs what the registry holds (docs/operations.md, key rotation)");
        }

        if (!_keys.TryGetValue(block.KeyId, out var entry))
        {
            throw new SigningException(ErrorCodes.SignerUnknown, $"signed by key {block.KeyId}, which this workspace does not trust", location,
                "trust the signer's public key with `rtt keys trust FILE.pub`, or re-sign with a trusted key");
        }

        if (!entry!.Key.VerifyRemembered(payload, block.Signature))
        {
            throw new SigningException(ErrorCodes.SignatureInvalid, $"signature by {block.KeyId} does not match the content", location,
                "the object was changed after signing: restore it or re-sign it");
        }

        return block.KeyId;
    }

    /// <summary>Writes a public key into the trust folder as <c>keys/&lt;name&gt;.pub</c>.</summary>
    public static string WriteTrustedKey(string trustDirectory, string name, TrustedKey key)
    {
        KeyNames.Validate(name);
        var path = Path.Combine(trustDirectory, "keys", name + ".pub");
        if (File.Exists(path))
        {
            var existing = TrustedKey.Load(path);
            if (existing.KeyId == key.KeyId)
            {
                return path; // already trusted under this name: nothing to do
            }

            throw new SigningException(ErrorCodes.KeyExists, $"a different key is already trusted under the name \"{name}\"", path,
                "choose another name with --name");
        }

        AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(key.ToJson()));
        return path;
    }

    /// <summary>Adds a key to revoked.json (idempotent: a second revocation keeps the first record).</summary>
    /// <param name="kind"><see cref="Revocation.Compromised"/> (everything it signed is refused) or <see cref="Revocation.Retired"/>
    /// (what it signed up to now stays valid). A retired key can later be marked compromised; never the other way.</param>
    public static void Revoke(string trustDirectory, string keyId, string reason, DateTimeOffset now, string kind = Revocation.Compromised)
    {
        var store = Load(trustDirectory);
        if (store._revoked.TryGetValue(keyId, out var existing) && (existing.Kind == Revocation.Compromised || kind == Revocation.Retired))
        {
            return;
        }

        store._revoked[keyId] = new Revocation(keyId, reason, now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture), kind);
        var list = new JsonArray();
        foreach (var r in store._revoked.Values)
        {
            list.Add(new JsonObject { ["key_id"] = r.KeyId, ["kind"] = r.Kind, ["reason"] = r.Reason, ["revoked_at"] = r.RevokedAt });
        }

        AtomicFile.WriteAllBytes(store.RevokedPath, PrettyJson.ToUtf8(new JsonObject { ["revoked"] = list }));
    }
}

/// <summary>A trusted key with the name of its file.</summary>
public sealed record TrustedKeyEntry(string Name, TrustedKey Key, string Path);

/// <summary>A revoked key.</summary>
public sealed record Revocation(string KeyId, string Reason, string RevokedAt, string Kind = Revocation.Compromised)
{
    /// <summary>Taken out of use: its signatures made before <see cref="RevokedAt"/> stay valid.</summary>
    public const string Retired = "retired";

    /// <summary>Its private key may be known to others: every signature by it is refused.</summary>
    public const string Compromised = "compromised";
}

/// <summary>Key names become file names, so they are restricted to a safe alphabet.</summary>
public static class KeyNames
{
    public static void Validate(string name)
    {
        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || name.StartsWith('.'))
        {
            throw new SigningException(ErrorCodes.KeyNameInvalid, $"invalid key name \"{name}\"", null,
                "use 1-64 characters from A-Z a-z 0-9 - _ . (not starting with a dot)");
        }
    }
}
