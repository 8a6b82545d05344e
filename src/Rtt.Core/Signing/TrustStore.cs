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
            foreach (var file in System.IO.Directory.GetFiles(keysDir, "*.pub").Order(StringComparer.Ordinal))
            {
                var key = TrustedKey.Load(file);
                keys.TryAdd(key.KeyId, new TrustedKeyEntry(Path.GetFileNameWithoutExtension(file), key, file));
            }
        }

        var revoked = new SortedDictionary<string, Revocation>(StringComparer.Ordinal);
        var revokedPath = Path.Combine(trustDirectory, RevokedFileName);
        if (File.Exists(revokedPath))
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
                revoked[keyId] = new Revocation(keyId, (string?)list[i]?["reason"] ?? "", (string?)list[i]?["revoked_at"] ?? "");
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
    public string Verify(JsonObject signedObject, string? location = null)
    {
        var block = ObjectSigner.ReadSignBlock(signedObject, location);
        if (_revoked.TryGetValue(block.KeyId, out var revocation))
        {
            throw new SigningException(ErrorCodes.SignerRevoked,
                $"signed by revoked key {block.KeyId}{(revocation.Reason.Length > 0 ? $" (revoked: {revocation.Reason})" : "")}", location,
                "re-sign with a trusted key");
        }

        if (!_keys.TryGetValue(block.KeyId, out var entry))
        {
            throw new SigningException(ErrorCodes.SignerUnknown, $"signed by key {block.KeyId}, which this workspace does not trust", location,
                "trust the signer's public key with `rtt keys trust FILE.pub`, or re-sign with a trusted key");
        }

        if (!entry.Key.Verify(ObjectSigner.SigningPayload(signedObject), block.Signature))
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
    public static void Revoke(string trustDirectory, string keyId, string reason, DateTimeOffset now)
    {
        var store = Load(trustDirectory);
        if (store._revoked.ContainsKey(keyId))
        {
            return;
        }

        store._revoked[keyId] = new Revocation(keyId, reason, now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
        var list = new JsonArray();
        foreach (var r in store._revoked.Values)
        {
            list.Add(new JsonObject { ["key_id"] = r.KeyId, ["reason"] = r.Reason, ["revoked_at"] = r.RevokedAt });
        }

        AtomicFile.WriteAllBytes(store.RevokedPath, PrettyJson.ToUtf8(new JsonObject { ["revoked"] = list }));
    }
}

/// <summary>A trusted key with the name of its file.</summary>
public sealed record TrustedKeyEntry(string Name, TrustedKey Key, string Path);

/// <summary>A revoked key.</summary>
public sealed record Revocation(string KeyId, string Reason, string RevokedAt);

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
