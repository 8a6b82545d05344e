using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Reconciling.Wal;
using Rtt.Registry;

namespace Rtt.Reconciling;

/// <summary>What <c>rtt keys rotate</c> did.</summary>
public sealed record RotationReport(string OldKeyId, string NewKeyId, string Kind, long? WalSize, int Resigned, IReadOnlyList<string> Notes);

/// <summary>
/// <c>rtt keys rotate NEW [--compromised]</c>: a new signing key takes over from the current one, which is revoked as
/// <see cref="Revocation.Retired"/> (what it signed up to now stays valid) or <see cref="Revocation.Compromised"/> (what it
/// signed is refused, so the registry's objects it signed are re-signed with the new key: same content, new signature,
/// index and symbol entries moved to the new hashes). With the silo stopped, a <c>key-rotation</c> entry is appended to
/// the WAL and a head over it is signed by the new key: it vouches for the log as it stands, so older heads by the
/// revoked key no longer fail `rtt wal verify`. With the silo running (retired only), its next head is signed by the new key.
/// </summary>
public static class KeyRotation
{
    public static RotationReport Rotate(RttWorkspace workspace, string newName, bool compromised, string reason, DateTimeOffset now)
    {
        KeyNames.Validate(newName);
        var settings = workspace.LoadSettings();
        string oldKeyId;
        using (var old = SigningKey.Load(workspace.PrivateKeyPath(settings.SigningKey)))
        {
            oldKeyId = old.KeyId;
        }

        var silo = SiloInfo.ReadLive(workspace.SiloInfoPath);
        if (compromised && silo is not null)
        {
            throw new SigningException(ErrorCodes.KeyRotationBlocked, $"a silo is running (pid {silo.ProcessId}); a compromised key is rotated with the silo stopped",
                workspace.SiloInfoPath, "stop it (Ctrl-C or SIGTERM), run `rtt keys rotate` again, then start it");
        }

        var kind = compromised ? Revocation.Compromised : Revocation.Retired;
        var made = new WorkspaceKeys(workspace).New(newName, use: true);
        TrustStore.Revoke(workspace.Trust, oldKeyId, reason.Length > 0 ? reason : $"rotated to {newName}", now, kind);
        var notes = new List<string>();
        var resigned = 0;
        using var key = workspace.LoadSigningKey();
        if (compromised)
        {
            // Everything signed by a compromised key is re-signed: this one, and any revoked as compromised before.
            var bad = workspace.LoadTrustStore().Revoked.Where(r => r.Kind == Revocation.Compromised).Select(r => r.KeyId).ToHashSet(StringComparer.Ordinal);
            resigned = Resign(workspace, bad, key, notes);
        }

        long? walSize = null;
        if (silo is null && File.Exists(workspace.StateDatabasePath))
        {
            using var log = WalLog.Open(SqliteWalStore.Open(workspace.StateDatabasePath, create: false), null, WalAnchor.Of(workspace));
            log.Append(new KeyRotationEntry(WalEntry.Timestamp(now), oldKeyId, kind, key.KeyId).ToJson());
            walSize = log.SignHead(key, now).Size;
        }
        else if (silo is not null)
        {
            notes.Add($"the running silo (pid {silo.ProcessId}) signs its next WAL head with the new key");
        }

        return new RotationReport(oldKeyId, made.KeyId, kind, walSize, resigned, notes);
    }

    /// <summary>Re-signs every registry object (and MCP manifest file) signed by one of <paramref name="compromised"/>. Returns how many.</summary>
    private static int Resign(RttWorkspace workspace, HashSet<string> compromised, SigningKey key, List<string> notes)
    {
        using var store = RegistryStore.Open(workspace);
        var moved = new Dictionary<string, string>(StringComparer.Ordinal); // old hash -> new hash
        var count = 0;

        string Remap(string hash)
        {
            if (moved.TryGetValue(hash, out var to))
            {
                return to;
            }

            var obj = Unverified(store, hash);
            if (obj is null || SignerOf(obj) is not { } signer || !compromised.Contains(signer))
            {
                return hash;
            }

            Rewrite(obj, Remap);
            var resigned = ObjectSigner.Sign(WithoutSign(obj), key);
            var newHash = store.Cas.Put(CanonicalJson.Serialize(resigned));
            moved[hash] = newHash;
            count++;
            return newHash;
        }

        foreach (var (entry, hash) in store.Index.Entries.ToList())
        {
            var newHash = Remap(hash);
            if (newHash == hash)
            {
                continue;
            }

            // An MCP manifest's or a view's version is taken from its content, which names the re-signed objects.
            var obj = CanonicalJson.ParseNode(store.ReadBytes(newHash)).AsObject();
            store.Index.Replace(entry, ObjectIdentity.Of(obj) ?? entry, newHash);
        }

        store.Cas.Sync();
        store.Index.Save();

        // The copies signed by the compromised key go: loose files, and the pack is written again without them.
        var replaced = moved.Keys.ToHashSet(StringComparer.Ordinal);
        if (store.Pack is not null)
        {
            store.WritePack(replaced);
        }

        foreach (var hash in replaced)
        {
            File.Delete(store.Cas.PathOf(hash));
        }

        var symbolsPath = Path.Combine(workspace.Registry, "symbols.json");
        if (WorkspaceFiles.Exists(symbolsPath))
        {
            var symbols = RttWorkspace.ReadObject(symbolsPath);
            foreach (var (_, versions) in symbols)
            {
                foreach (var v in versions as JsonArray ?? [])
                {
                    if (v is JsonObject o && o["object"] is JsonValue h && h.TryGetValue<string>(out var hash) && moved.TryGetValue(hash, out var to))
                    {
                        o["object"] = to;
                    }
                }
            }

            AtomicFile.WriteAllBytes(symbolsPath, PrettyJson.ToUtf8(symbols));
        }

        if (Directory.Exists(workspace.Manifests))
        {
            foreach (var file in WorkspaceFiles.Entries(workspace.Manifests, "mcp.*.json"))
            {
                var manifest = RttWorkspace.ReadObject(file);
                if (SignerOf(manifest) is { } signer && compromised.Contains(signer))
                {
                    Rewrite(manifest, h => moved.GetValueOrDefault(h, h));
                    AtomicFile.WriteAllBytes(file, PrettyJson.ToUtf8(ObjectSigner.Sign(WithoutSign(manifest), key)));
                    count++;
                }
            }
        }

        var cache = Path.Combine(workspace.State, "scan-cache.json");
        if (File.Exists(cache))
        {
            File.Delete(cache); // the next scan reads every source again
        }

        notes.Add("plans signed by the old key (proposed.json) are refused: compute a new one with `rtt plan`");
        return count;
    }

    /// <summary>Points the hashes an object names (MCP tool objects, a view's base and overlays) at their re-signed copies.</summary>
    private static void Rewrite(JsonObject obj, Func<string, string> remap)
    {
        foreach (var tool in obj["tools"] as JsonArray ?? [])
        {
            if (tool is JsonObject t && t["object"] is JsonValue v && v.TryGetValue<string>(out var h))
            {
                t["object"] = remap(h);
            }
        }

        if (obj["base"] is JsonValue b && b.TryGetValue<string>(out var baseHash) && baseHash.StartsWith("sha256:", StringComparison.Ordinal))
        {
            obj["base"] = remap(baseHash);
        }

        foreach (var overlay in obj["overlays"] as JsonArray ?? [])
        {
            if (overlay is JsonObject o && o["hash"] is JsonValue v && v.TryGetValue<string>(out var h))
            {
                o["hash"] = remap(h);
            }
        }
    }

    private static JsonObject? Unverified(RegistryStore store, string hash)
    {
        try
        {
            return CanonicalJson.ParseNode(store.ReadBytes(hash)) as JsonObject; // hash checked; the signature is what is being replaced
        }
        catch (RttException)
        {
            return null;
        }
    }

    private static string? SignerOf(JsonObject obj) => obj[ObjectSigner.SignMember] is JsonObject s && s["key_id"] is JsonValue v && v.TryGetValue<string>(out var id) ? id : null;

    private static JsonObject WithoutSign(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy.Remove(ObjectSigner.SignMember);
        return copy;
    }
}
