using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Workspace;

namespace Rtt.Registry;

/// <summary>
/// <c>rtt verify</c>: every loose object (hash, canonical form, signature), index.json, the pack and its
/// index, every packed object's signature, the symbol table and the MCP manifests. Returns each fault found.
/// </summary>
public static class RegistryVerifier
{
    public static VerifyReport Run(RttWorkspace workspace)
    {
        var faults = new List<string>();
        var checkedObjects = 0;
        RegistryStore store;
        try
        {
            store = RegistryStore.Open(workspace);
        }
        catch (RttException ex)
        {
            return new VerifyReport([$"{ex.Headline}"], 0);
        }

        using (store)
        {
            var loose = store.Cas.List();
            foreach (var hash in loose)
            {
                checkedObjects++;
                CheckObject(store, hash, store.Cas.PathOf(hash), faults);
            }

            // Files in the CAS folder that are not named by a hash (temp files of an interrupted write are fine to skip).
            if (Directory.Exists(store.Cas.Directory))
            {
                foreach (var file in Directory.EnumerateFiles(store.Cas.Directory).Order(StringComparer.Ordinal))
                {
                    var name = Path.GetFileName(file);
                    if (!name.StartsWith('.') && !ContentHash.IsValid(ContentHash.Prefix + Path.GetFileNameWithoutExtension(name)))
                    {
                        faults.Add($"{ErrorCodes.CasHashMismatch}: not an object name (sha256 hex + .json) ({file})");
                    }
                }
            }

            PackReader? pack = null;
            try
            {
                pack = store.Pack;
            }
            catch (RttException ex)
            {
                faults.Add(ex.Headline);
            }

            if (pack is not null)
            {
                faults.AddRange(pack.Verify());
                foreach (var hash in pack.Hashes())
                {
                    if (!store.Cas.Contains(hash))
                    {
                        checkedObjects++;
                        CheckObject(store, hash, $"{pack.PackPath} ({hash})", faults);
                    }
                }
            }

            foreach (var (key, hash) in store.Index.Entries)
            {
                if (!store.Cas.Contains(hash) && !(pack is not null && InPack(pack, hash)))
                {
                    faults.Add($"{ErrorCodes.CasMissing}: {key} names {hash}, which is not in the registry ({store.Index.Path})");
                }
                else if (TryRead(store, hash, key) is { } obj && ObjectIdentity.Mismatch(key, obj) is { } mismatch)
                {
                    faults.Add($"{ErrorCodes.IdentityMismatch}: {mismatch} ({store.Index.Path}: {key})");
                }
            }

            var symbolsPath = Path.Combine(workspace.Registry, "symbols.json");
            if (WorkspaceFiles.Exists(symbolsPath))
            {
                try
                {
                    var symbols = RttWorkspace.ReadObject(symbolsPath);
                    foreach (var (symbol, versions) in symbols)
                    {
                        if (versions is not JsonArray list)
                        {
                            faults.Add($"{ErrorCodes.IndexCorrupt}: {symbol} is not a list of versions ({symbolsPath})");
                            continue;
                        }

                        foreach (var v in list)
                        {
                            var hash = v is JsonObject entry && entry["object"] is JsonValue h && h.TryGetValue<string>(out var text) ? text : null;
                            var version = v is JsonObject e2 && e2["version"] is JsonValue vv && vv.TryGetValue<string>(out var vt) ? vt : null;
                            if (hash is null || version is null || !ContentHash.IsValid(hash))
                            {
                                faults.Add($"{ErrorCodes.IndexCorrupt}: {symbol} has an entry without a valid object hash and version ({symbolsPath})");
                            }
                            else if (!store.Cas.Contains(hash) && !(pack is not null && InPack(pack, hash)))
                            {
                                faults.Add($"{ErrorCodes.CasMissing}: {symbol}@{version} names {hash}, which is not in the registry ({symbolsPath})");
                            }
                            else if (TryRead(store, hash, $"{symbol}@{version}") is { } obj && ObjectIdentity.SymbolMismatch(symbol, version, obj) is { } mismatch)
                            {
                                faults.Add($"{ErrorCodes.IdentityMismatch}: {mismatch} ({symbolsPath}: {symbol})");
                            }
                        }
                    }
                }
                catch (RttException ex)
                {
                    faults.Add(ex.Headline);
                }
            }

            if (Directory.Exists(workspace.Manifests))
            {
                foreach (var manifest in WorkspaceFiles.Entries(workspace.Manifests, "mcp.*.json"))
                {
                    try
                    {
                        store.VerifySignature(RttWorkspace.ReadObject(manifest), manifest);
                    }
                    catch (RttException ex)
                    {
                        faults.Add(ex.Headline);
                    }
                }
            }
        }

        return new VerifyReport(faults, checkedObjects);
    }

    private static bool InPack(PackReader pack, string hash) => RegistryStore.InPack(pack, hash);

    /// <summary>The object, or null when it cannot be read (that fault is reported where the object itself is checked).</summary>
    private static JsonObject? TryRead(RegistryStore store, string hash, string where)
    {
        try
        {
            return store.ReadObject(hash, where);
        }
        catch (RttException)
        {
            return null;
        }
    }

    private static void CheckObject(RegistryStore store, string hash, string where, List<string> faults)
    {
        try
        {
            var bytes = store.ReadBytes(hash, where);
            if (!CanonicalJson.Canonicalize(bytes, where).AsSpan().SequenceEqual(bytes))
            {
                faults.Add($"{ErrorCodes.CasHashMismatch}: bytes are not in canonical form ({where})");
            }

            store.ReadObject(hash, where);
        }
        catch (RttException ex)
        {
            faults.Add(ex.Headline);
        }
    }
}

public sealed record VerifyReport(IReadOnlyList<string> Faults, int Objects)
{
    public bool Ok => Faults.Count == 0;

    public JsonObject ToJson() => new()
    {
        ["ok"] = Ok,
        ["objects"] = Objects,
        ["faults"] = new JsonArray([.. Faults.Select(f => (JsonNode)JsonValue.Create(f))]),
    };
}
