using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Registry;

/// <summary>
/// <c>registry/index.json</c>: <c>{"ID@version": "sha256:…"}</c>, members in ordinal order so the file is
/// byte-identical for the same content on any machine. An entry, once written, never changes.
/// </summary>
public sealed class RegistryIndex
{
    private readonly SortedDictionary<string, string> _entries = new(StringComparer.Ordinal);

    private RegistryIndex(string path) => Path = path;

    public string Path { get; }

    public IReadOnlyDictionary<string, string> Entries => _entries;

    public int Count => _entries.Count;

    public static RegistryIndex Load(string path)
    {
        var index = new RegistryIndex(path);
        if (!WorkspaceFiles.Exists(path))
        {
            return index;
        }

        var root = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path), path) as JsonObject
            ?? throw new RttException(ErrorCodes.IndexCorrupt, "index.json must be a JSON object", path, "restore it; `rtt verify` lists what is wrong");
        foreach (var (key, value) in root)
        {
            var hash = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            if (!ContentHash.IsValid(hash) || !key.Contains('@', StringComparison.Ordinal))
            {
                throw new RttException(ErrorCodes.IndexCorrupt, $"entry \"{key}\" is not \"ID@version\": \"sha256:…\"", path, "restore index.json from a backup");
            }

            index._entries[key] = hash!;
        }

        return index;
    }

    public static string Key(string id, string version) => $"{id}@{version}";

    public bool TryGet(string key, out string hash) => _entries.TryGetValue(key, out hash!);

    /// <summary>Adds an entry; the same key with another hash is refused.</summary>
    public bool Add(string key, string hash, string? source)
    {
        if (_entries.TryGetValue(key, out var existing))
        {
            if (existing == hash)
            {
                return false;
            }

            throw new RttException(ErrorCodes.Immutable, $"{key} is already {existing}; the new content hashes to {hash}", source,
                "a published ID@version never changes: bump the version");
        }

        _entries[key] = hash;
        return true;
    }

    /// <summary>
    /// Moves an entry to a re-signed copy of its object (key rotation: the same content under a new signature; an
    /// ID@version derived from content may change with it). The only change an entry ever gets.
    /// </summary>
    public void Replace(string oldKey, string newKey, string hash)
    {
        _entries.Remove(oldKey);
        _entries[newKey] = hash;
    }

    /// <summary>Writes the index (atomically, members in ordinal order), streamed: no copy of it is built in memory.</summary>
    public void Save() => AtomicFile.Write(Path, stream =>
    {
        using var writer = PrettyJson.Writer(stream);
        writer.WriteStartObject();
        foreach (var (key, hash) in _entries)
        {
            writer.WriteString(key, hash); // keys are ordinal-sorted (the canonical order), values plain hashes
        }

        writer.WriteEndObject();
        PrettyJson.End(writer, stream);
    });
}
