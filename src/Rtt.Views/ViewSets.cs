using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>One file of a view set: its path under <c>providers/&lt;provider&gt;/</c>, the hash and size of its bytes, and
/// the agents whose views it is rendered from (one agent; every agent for the shared OpenAI <c>AGENTS.md</c>).</summary>
public sealed record ViewSetFile(string Path, string Hash, long Size, IReadOnlyList<string> Agents);

/// <summary>
/// A recorded view set: which view object every agent of one provider and environment had at one build, and the files
/// those views render to. Signed, in the CAS, indexed as <c>view-set:&lt;provider&gt;/&lt;env or -&gt;@&lt;n&gt;</c> with n counting
/// up from 1; the highest n is the current set. What a view mount serves.
/// </summary>
public sealed record ViewSet(string Key, string Hash, string Provider, string? Env, long Number, DateTimeOffset RecordedAt,
    IReadOnlyDictionary<string, string> Views, IReadOnlyList<ViewSetFile> Files)
{
    /// <summary>The bytes of <c>.rtt-owned.json</c> that <c>rtt view build</c> writes beside these files (none without files).</summary>
    public byte[]? ManifestBytes()
    {
        if (Files.Count == 0)
        {
            return null;
        }

        var owned = OwnedFiles.Empty(Provider);
        foreach (var file in Files)
        {
            owned.Files[file.Path] = file.Hash;
        }

        return owned.ToBytes();
    }
}

/// <summary>Records and reads view sets (<see cref="ViewSet"/>).</summary>
public static class ViewSets
{
    public const string Kind = "rtt.view-set";
    public const string IdPrefix = "view-set:";

    public static string Id(string provider, string? env) => $"{IdPrefix}{provider}/{env ?? "-"}";

    /// <summary>
    /// Records the set of one provider and environment unless the current set already names the same views and files.
    /// Returns the new set, or null when nothing changed (an unchanged build records nothing).
    /// </summary>
    /// <param name="views">Agent name -> hash of its recorded <c>rtt.view</c> object.</param>
    /// <param name="files">The provider folder's files as <c>rtt view build</c> writes them (path -> bytes).</param>
    public static ViewSet? Record(RegistryStore store, string provider, string? env, IReadOnlyDictionary<string, string> views,
        IReadOnlyDictionary<string, byte[]> files, DateTimeOffset now)
    {
        var viewsJson = new JsonObject();
        foreach (var (agent, hash) in views.OrderBy(v => v.Key, StringComparer.Ordinal))
        {
            viewsJson[agent] = hash;
        }

        var filesJson = new JsonObject();
        foreach (var (path, bytes) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var agents = new JsonArray();
            foreach (var agent in ProviderFormats.AgentsOf(provider, path, views.Keys).Order(StringComparer.Ordinal))
            {
                agents.Add(agent);
            }

            filesJson[path] = new JsonObject { ["hash"] = ContentHash.Of(bytes), ["size"] = bytes.LongLength, ["agents"] = agents };
        }

        var current = Latest(store, provider, env);
        if (current is not null)
        {
            var currentObj = store.ReadObject(current.Hash, current.Key);
            if (JsonMergePatch.SameJson(currentObj["views"], viewsJson) && JsonMergePatch.SameJson(currentObj["files"], filesJson))
            {
                return null;
            }
        }
        else if (views.Count == 0)
        {
            return null; // nothing was ever recorded and there is nothing to record
        }

        var number = (current?.Number ?? 0) + 1;
        var obj = new JsonObject
        {
            ["kind"] = Kind,
            ["id"] = Id(provider, env),
            ["version"] = number.ToString(CultureInfo.InvariantCulture),
            ["provider"] = provider,
            ["env"] = env,
            ["recorded_at"] = now.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            ["views"] = viewsJson,
            ["files"] = filesJson,
        };
        var id = Id(provider, env);
        var result = store.Ingest(obj, id, number.ToString(CultureInfo.InvariantCulture), id, signIfUnsigned: true);
        return Parse(result.Key, result.Hash, store.ReadObject(result.Hash, result.Key));
    }

    /// <summary>The current (highest numbered) set of a provider and environment, or null when none was recorded.</summary>
    public static ViewSet? Latest(RegistryStore store, string provider, string? env)
    {
        var prefix = Id(provider, env) + "@";
        string? bestKey = null;
        var best = 0L;
        foreach (var key in store.Index.Entries.Keys)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal)
                && long.TryParse(key.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > best)
            {
                best = n;
                bestKey = key;
            }
        }

        return bestKey is null ? null : Read(store, bestKey);
    }

    /// <summary>Every provider with a recorded set for <paramref name="env"/>, in ordinal order.</summary>
    public static IReadOnlyList<string> Providers(RegistryStore store, string? env)
    {
        var suffix = "/" + (env ?? "-") + "@";
        return [.. store.Index.Entries.Keys
            .Where(k => k.StartsWith(IdPrefix, StringComparison.Ordinal) && k.Contains(suffix, StringComparison.Ordinal))
            .Select(k => k[IdPrefix.Length..k.IndexOf(suffix, StringComparison.Ordinal)])
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)];
    }

    /// <summary>Reads a set by its index key: hash, signature and identity checked.</summary>
    public static ViewSet Read(RegistryStore store, string key) => Parse(key, store.Resolve(key), store.ReadEntry(key));

    /// <summary>The set a signed <c>rtt.view-set</c> object describes; a malformed one is refused with what is wrong.</summary>
    public static ViewSet Parse(string key, string hash, JsonObject obj)
    {
        if ((string?)obj["kind"] != Kind || obj["provider"] is not JsonValue p || !p.TryGetValue<string>(out var provider)
            || obj["views"] is not JsonObject views || obj["files"] is not JsonObject files
            || obj["recorded_at"] is not JsonValue r || !r.TryGetValue<string>(out var recordedText)
            || !DateTimeOffset.TryParseExact(recordedText, "yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var recordedAt)
            || !long.TryParse((string?)obj["version"], NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            throw Malformed(key, "expected kind rtt.view-set with provider, version, recorded_at, views and files");
        }

        ViewNames.Provider(provider, key);
        var env = obj["env"] is JsonValue e && e.TryGetValue<string>(out var envName) ? ViewNames.Env(envName, key) : null;
        var viewMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (agent, value) in views)
        {
            var viewHash = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            if (!ContentHash.IsValid(viewHash))
            {
                throw Malformed(key, $"views/{agent} is not a sha256 hash");
            }

            viewMap[ViewNames.Agent(agent, key)] = viewHash!;
        }

        var fileList = new List<ViewSetFile>();
        foreach (var (path, value) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            OwnedFiles.CheckRelative(path, $"{key}: files/{path}");
            if (value is not JsonObject f || (string?)f["hash"] is not { } fileHash || !ContentHash.IsValid(fileHash)
                || f["size"] is not JsonValue sz || !sz.TryGetValue<long>(out var size) || size < 0 || f["agents"] is not JsonArray agents)
            {
                throw Malformed(key, $"files/{path} needs hash, size and agents");
            }

            var names = agents.Select(a => a is JsonValue av && av.TryGetValue<string>(out var an) && viewMap.ContainsKey(an) ? an
                : throw Malformed(key, $"files/{path} names an agent the set has no view for")).ToList();
            if (names.Count == 0)
            {
                throw Malformed(key, $"files/{path} names no agent");
            }

            fileList.Add(new ViewSetFile(path, fileHash, size, names));
        }

        return new ViewSet(key, hash, provider, env, number, recordedAt, viewMap, fileList);
    }

    private static RttException Malformed(string key, string why) =>
        new(ErrorCodes.ViewSetMissing, $"view set {key} is malformed: {why}", key, "record a new set with `rtt view build --record-only`");

    /// <summary>The canonical signed view object's content, for rendering: kind, provider and agent checked.</summary>
    public static JsonObject ViewContent(byte[] canonicalBytes, string hash, string provider, string agent)
    {
        var obj = CanonicalJson.ParseNode(canonicalBytes, hash) as JsonObject;
        if (obj is null || (string?)obj["kind"] != ObjectIdentity.ViewKind || (string?)obj["provider"] != provider || (string?)obj["agent"] != agent
            || obj["content"] is not JsonObject content || obj[ObjectSigner.SignMember] is null)
        {
            throw new RttException(ErrorCodes.ViewMountVerify, $"object {hash} is not the signed view of {provider}/{agent}", hash,
                "run `rtt view verify`; record the views again with `rtt view build --record-only`");
        }

        return content;
    }
}
