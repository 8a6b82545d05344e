using System.Security.Cryptography;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Registry;

/// <summary>
/// Loose objects: <c>cas/sha256/&lt;hex&gt;.json</c> holds the canonical bytes of one object, written once
/// (temp file, fsync, rename) and never changed. Reads recompute the hash and refuse a mismatch.
/// </summary>
public sealed class CasStore(string directory)
{
    public string Directory { get; } = directory;

    public string PathOf(string hash) => Path.Combine(Directory, Hex(hash) + ".json");

    public bool Contains(string hash) => File.Exists(PathOf(hash));

    /// <summary>
    /// Stores canonical bytes and returns their hash. An object already present is left as it is. The write is
    /// atomic (temp + rename); durability comes from <see cref="Sync"/>, called once before the index names it.
    /// </summary>
    public string Put(ReadOnlySpan<byte> canonicalBytes)
    {
        var hash = ContentHash.Of(canonicalBytes);
        var path = PathOf(hash);
        if (!File.Exists(path))
        {
            AtomicFile.WriteAllBytes(path, canonicalBytes, durable: false);
        }

        return hash;
    }

    /// <summary>Makes every object written so far durable (one file-system barrier for a whole batch).</summary>
    public void Sync()
    {
        if (System.IO.Directory.Exists(Directory))
        {
            AtomicFile.SyncFileSystem(Directory);
        }
    }

    /// <summary>Reads an object and checks that its bytes hash to its name.</summary>
    public byte[] Read(string hash)
    {
        var path = PathOf(hash);
        if (!File.Exists(path))
        {
            throw new RttException(ErrorCodes.CasMissing, $"object {hash} is not in the registry", path, "run `rtt scan` to ingest it, or restore the file");
        }

        var bytes = WorkspaceFiles.ReadBytes(path);
        Check(hash, bytes, path);
        return bytes;
    }

    /// <summary>True when a loose object with this hash exists and is intact (for the combined reader).</summary>
    public bool TryRead(string hash, out byte[] bytes)
    {
        var path = PathOf(hash);
        if (!File.Exists(path))
        {
            bytes = [];
            return false;
        }

        bytes = WorkspaceFiles.ReadBytes(path);
        Check(hash, bytes, path);
        return true;
    }

    /// <summary>Every loose object's hash, in ordinal order.</summary>
    public IReadOnlyList<string> List()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return [];
        }

        return [.. System.IO.Directory.EnumerateFiles(Directory, "*.json")
            .Select(f => ContentHash.Prefix + Path.GetFileNameWithoutExtension(f))
            .Where(ContentHash.IsValid)
            .Order(StringComparer.Ordinal)];
    }

    internal static void Check(string hash, ReadOnlySpan<byte> bytes, string where)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes, digest);
        var actual = ContentHash.Format(digest);
        if (!string.Equals(actual, hash, StringComparison.Ordinal))
        {
            throw new RttException(ErrorCodes.CasHashMismatch, $"object bytes hash to {actual}, not {hash}: the file was changed or damaged", where,
                "restore the object from a backup or re-ingest its source with `rtt scan`");
        }
    }

    private static string Hex(string hash)
    {
        if (!ContentHash.IsValid(hash))
        {
            throw new RttException(ErrorCodes.NotFound, $"\"{hash}\" is not a sha256:<64 lowercase hex> hash", null, "give a full sha256: hash or an ID@version");
        }

        return hash[ContentHash.Prefix.Length..];
    }
}
