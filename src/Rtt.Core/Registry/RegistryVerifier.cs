using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Workspace;

namespace Rtt.Core.Registry;

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
                        faults.Add($"{file}: not an object name (sha256 hex + .json)");
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
                    faults.Add($"{store.Index.Path}: {key} names {hash}, which is not in the registry");
                }
            }

            var symbolsPath = Path.Combine(workspace.Registry, "symbols.json");
            if (File.Exists(symbolsPath))
            {
                try
                {
                    var symbols = RttWorkspace.ReadObject(symbolsPath);
                    foreach (var (symbol, versions) in symbols)
                    {
                        foreach (var v in versions!.AsArray())
                        {
                            var hash = (string?)v!["object"];
                            if (hash is null || (!store.Cas.Contains(hash) && !(pack is not null && InPack(pack, hash))))
                            {
                                faults.Add($"{symbolsPath}: {symbol}@{v["version"]} names {hash}, which is not in the registry");
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
                foreach (var manifest in Directory.GetFiles(workspace.Manifests, "mcp.*.json").Order(StringComparer.Ordinal))
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

    private static bool InPack(PackReader pack, string hash)
    {
        Span<byte> raw = stackalloc byte[32];
        return Convert.FromHexString(hash.AsSpan(ContentHash.Prefix.Length), raw, out _, out _) == System.Buffers.OperationStatus.Done
            && pack.TryGet(raw, out ReadOnlySpan<byte> _);
    }

    private static void CheckObject(RegistryStore store, string hash, string where, List<string> faults)
    {
        try
        {
            var bytes = store.ReadBytes(hash, where);
            if (!CanonicalJson.Canonicalize(bytes, where).AsSpan().SequenceEqual(bytes))
            {
                faults.Add($"{where}: bytes are not in canonical form");
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
