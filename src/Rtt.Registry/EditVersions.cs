using System.Text.Json.Nodes;
using NuGet.Versioning;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Registry;

/// <summary>
/// Versions that follow a file's edits, for sources without a version of their own (a Claude Code subagent without
/// <c>version:</c>): the same content as a published version of the agent keeps that version; new content gets the
/// next patch version after the highest one published (1.0.0 first). Earlier versions stay in the registry, so an
/// edit is never refused and the previous definition stays there for rollback.
/// </summary>
public static class EditVersions
{
    public static SourceObject Follow(RegistryStore store, SourceObject parsed, string source)
    {
        var version = For(store, parsed.Id, parsed.Object, source);
        return version == parsed.Version ? parsed : parsed with
        {
            Object = WithVersion(parsed.Object, version),
            Version = version,
            Symbols = [.. parsed.Symbols.Select(s => s with { Version = version })],
        };
    }

    /// <summary>The version <paramref name="definition"/> (its own version ignored) gets as agent <paramref name="id"/>.</summary>
    public static string For(RegistryStore store, string id, JsonObject definition, string source)
    {
        var prefix = id + "@";
        var published = new List<(SemanticVersion Version, string Hash)>();
        foreach (var (key, hash) in store.Index.StartingWith(prefix))
        {
            if (SemanticVersion.TryParse(key[prefix.Length..], out var v))
            {
                published.Add((v, hash));
            }
        }

        if (published.Count == 0)
        {
            return "1.0.0";
        }

        var content = Comparable(definition);
        foreach (var (version, hash) in published.OrderByDescending(p => p.Version))
        {
            if (Comparable(store.ReadObject(hash, $"{source} ({id}@{version})")).AsSpan().SequenceEqual(content))
            {
                return version.ToNormalizedString();
            }
        }

        var top = published.Max(p => p.Version)!;
        return new SemanticVersion(top.Major, top.Minor, top.Patch + 1).ToNormalizedString();
    }

    private static byte[] Comparable(JsonObject obj)
    {
        var copy = WithVersion(obj, "0.0.0");
        copy.Remove(ObjectSigner.SignMember);
        return CanonicalJson.Serialize(copy);
    }

    private static JsonObject WithVersion(JsonObject obj, string version)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy["version"] = version;
        return copy;
    }
}
