using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Workspace;

/// <summary>The workspace's keys: private keys under .rtt/keys, trusted and revoked keys in the registry.</summary>
public sealed class WorkspaceKeys(RttWorkspace workspace)
{
    private const UnixFileMode PrivateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Every key the workspace knows of, in key_id order.</summary>
    public IReadOnlyList<KeyListing> List()
    {
        var trust = workspace.LoadTrustStore();
        var signing = workspace.LoadSettings().SigningKey;
        var rows = new SortedDictionary<string, KeyListing>(StringComparer.Ordinal);
        if (Directory.Exists(workspace.Keys))
        {
            foreach (var file in WorkspaceFiles.Entries(workspace.Keys, "*.key"))
            {
                using var key = SigningKey.Load(file);
                var name = Path.GetFileNameWithoutExtension(file);
                rows[key.KeyId] = new KeyListing(name, key.KeyId, HasPrivateKey: true, trust.IsTrusted(key.KeyId), trust.IsRevoked(key.KeyId), name == signing);
            }
        }

        foreach (var entry in trust.Keys)
        {
            if (!rows.ContainsKey(entry.Key.KeyId))
            {
                rows[entry.Key.KeyId] = new KeyListing(entry.Name, entry.Key.KeyId, HasPrivateKey: false, trust.IsTrusted(entry.Key.KeyId), trust.IsRevoked(entry.Key.KeyId), false);
            }
        }

        foreach (var revoked in trust.Revoked)
        {
            rows.TryAdd(revoked.KeyId, new KeyListing("", revoked.KeyId, HasPrivateKey: false, Trusted: false, Revoked: true, Signing: false));
        }

        return [.. rows.Values];
    }

    /// <summary>Creates a new private key, trusts it, and optionally makes it the signing key.</summary>
    public KeyListing New(string name, bool use)
    {
        var path = workspace.PrivateKeyPath(name);
        if (File.Exists(path))
        {
            throw new SigningException(ErrorCodes.KeyExists, $"a key named \"{name}\" already exists", path, "choose another name");
        }

        using var key = SigningKey.Generate();
        var trusted = Path.Combine(workspace.TrustKeys, name + ".pub");
        if (File.Exists(trusted))
        {
            throw new SigningException(ErrorCodes.KeyExists, $"another key is already trusted under the name \"{name}\"", trusted, "choose another name");
        }

        // Private key first, then trust, then use: a failure at any step leaves nothing half-made (never a trusted
        // public key without its private key).
        try
        {
            AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(key.ToPrivateKeyJson()), PrivateFileMode);
            try
            {
                TrustStore.WriteTrustedKey(workspace.Trust, name, key.PublicKey);
            }
            catch
            {
                File.Delete(path);
                throw;
            }

            if (use)
            {
                try
                {
                    AtomicFile.WriteAllBytes(workspace.SettingsPath, PrettyJson.ToUtf8(new WorkspaceSettings(name).ToJson()));
                }
                catch
                {
                    File.Delete(trusted);
                    File.Delete(path);
                    throw;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceUnwritable, $"cannot write key \"{name}\": {ex.Message}; nothing was changed", workspace.Keys,
                "make .rtt/keys and .rtt/registry/trust/keys writable, then try again");
        }

        return new KeyListing(name, key.KeyId, true, true, false, use);
    }

    /// <summary>Trusts a public key file made elsewhere (a <c>.pub</c> JSON, or a private key file, whose public half is taken).</summary>
    public KeyListing Trust(string publicKeyFile, string? name)
    {
        if (!File.Exists(publicKeyFile))
        {
            throw new SigningException(ErrorCodes.KeyFileMissing, "key file not found", publicKeyFile, "give the path of a .pub file");
        }

        var key = TrustedKey.Load(publicKeyFile);
        var trust = workspace.LoadTrustStore();
        if (trust.IsRevoked(key.KeyId))
        {
            throw new SigningException(ErrorCodes.SignerRevoked, $"key {key.KeyId} was revoked in this workspace and stays refused", publicKeyFile,
                "use another key; a revocation is permanent");
        }

        name ??= Path.GetFileNameWithoutExtension(publicKeyFile);
        TrustStore.WriteTrustedKey(workspace.Trust, name, key);
        return new KeyListing(name, key.KeyId, false, true, false, false);
    }

    /// <summary>Revokes a key by key_id or name. Returns the key_id revoked.</summary>
    public string Revoke(string keyIdOrName, string reason, DateTimeOffset now, string kind = Revocation.Compromised)
    {
        var trust = workspace.LoadTrustStore();
        var keyId = trust.Find(keyIdOrName)?.Key.KeyId
            ?? List().FirstOrDefault(k => k.Name == keyIdOrName || k.KeyId == keyIdOrName)?.KeyId
            ?? throw new SigningException(ErrorCodes.KeyUnknown, $"no key \"{keyIdOrName}\" in this workspace", workspace.TrustKeys,
                "see the keys with `rtt keys list`");
        TrustStore.Revoke(workspace.Trust, keyId, reason, now, kind);
        return keyId;
    }
}

/// <summary>One row of <c>rtt keys list</c>.</summary>
public sealed record KeyListing(string Name, string KeyId, bool HasPrivateKey, bool Trusted, bool Revoked, bool Signing);
