using System.Collections;
using System.Text.Json;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Registry;

/// <summary>
/// <c>registry/index.json</c>: <c>{"ID@version": "sha256:…"}</c>, members in ordinal order so the file is
/// byte-identical for the same content on any machine. An entry, once written, never changes.
/// </summary>
/// <remarks>
/// Kept compact (the index is what a scan holds per object): a sorted base of keys as UTF-8 in one byte block and
/// hashes as 32 raw bytes each (about 4 + key length + 32 bytes an entry), and a small ordinal-sorted table of recent
/// changes, merged into the base when it reaches 1/16 of it (at least 4,096 entries). Strings are made when read.
/// </remarks>
public sealed class RegistryIndex
{
    private const int HashSize = 32;
    private const int MinDelta = 4096;

    // The base, sorted in ordinal (UTF-16) order of the keys: key i is _keys[_starts[i].._starts[i + 1]], hash i is
    // _hashes[i * 32 ..]. Replaced whole by a merge, never changed in place (an enumeration may still read the old one).
    private byte[] _keys = [];
    private int[] _starts = [0];
    private byte[] _hashes = [];
    private int _baseCount;

    // Changes since the last merge: a new or moved entry, or null for a base entry removed (Replace).
    private readonly SortedDictionary<string, string?> _delta = new(StringComparer.Ordinal);
    private int _count;
    private int _version;
    private byte[] _scratch = new byte[256];

    private RegistryIndex(string path)
    {
        Path = path;
        Entries = new EntryView(this);
    }

    public string Path { get; }

    /// <summary>The entries in ordinal key order (strings made as they are read; enumerating while the index changes throws).</summary>
    public IReadOnlyDictionary<string, string> Entries { get; }

    public int Count => _count;

    public static RegistryIndex Load(string path)
    {
        var index = new RegistryIndex(path);
        if (!WorkspaceFiles.Exists(path))
        {
            return index;
        }

        // One validated document (duplicate names, lone surrogates, UTF-8 refused with RTT's codes), no node tree.
        using var doc = CanonicalJson.Parse(WorkspaceFiles.ReadBytes(path), path);
        var root = doc.RootElement;
        if (root.ValueKind == JsonValueKind.Null)
        {
            throw new DocumentException(ErrorCodes.DocumentShape, "the document is the JSON literal null", path, "write a JSON object");
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new RttException(ErrorCodes.IndexCorrupt, "index.json must be a JSON object", path, "restore it; `rtt verify` lists what is wrong");
        }

        var table = new Table(root.GetPropertyCount(), root.GetPropertyCount() * 32);
        foreach (var member in root.EnumerateObject())
        {
            var key = member.Name;
            var hash = member.Value.ValueKind == JsonValueKind.String ? member.Value.GetString() : null;
            if (!ContentHash.IsValid(hash) || !key.Contains('@', StringComparison.Ordinal))
            {
                throw new RttException(ErrorCodes.IndexCorrupt, $"entry \"{key}\" is not \"ID@version\": \"sha256:…\"", path, "restore index.json from a backup");
            }

            Utf8Ordinal.TryEncode(key, ref index._scratch, out var length); // the document was checked: no lone surrogates
            table.Append(index._scratch.AsSpan(0, length), hash!);
        }

        index.SetBase(table.Sorted());
        return index;
    }

    public static string Key(string id, string version) => $"{id}@{version}";

    public bool TryGet(string key, out string hash)
    {
        if (_delta.TryGetValue(key, out var changed))
        {
            hash = changed!;
            return changed is not null;
        }

        if (FindBase(key) is var at and >= 0)
        {
            hash = HashAt(_hashes, at);
            return true;
        }

        hash = null!;
        return false;
    }

    /// <summary>True when <paramref name="key"/> is indexed as <paramref name="hash"/> (no string made).</summary>
    public bool Has(string key, string hash)
    {
        if (_delta.TryGetValue(key, out var changed))
        {
            return changed == hash;
        }

        if (FindBase(key) is not (var at and >= 0) || !ContentHash.IsValid(hash))
        {
            return false;
        }

        Span<byte> raw = stackalloc byte[HashSize];
        Convert.FromHexString(hash.AsSpan(ContentHash.Prefix.Length), raw, out _, out _);
        return raw.SequenceEqual(_hashes.AsSpan(at * HashSize, HashSize));
    }

    /// <summary>The entries whose key starts with <paramref name="prefix"/>, in ordinal key order.</summary>
    public IEnumerable<KeyValuePair<string, string>> StartingWith(string prefix)
    {
        // Keys with a prefix are contiguous in ordinal order; a UTF-16 prefix is a UTF-8 prefix of the same strings.
        var delta = _delta.Where(d => d.Key.StartsWith(prefix, StringComparison.Ordinal));
        return Utf8Ordinal.TryEncode(prefix, out var utf8)
            ? Merged(LowerBound(utf8), utf8, delta)
            : Merged(_baseCount, null, delta); // no UTF-8 form: no base key starts with it
    }

    /// <summary>Adds an entry; the same key with another hash is refused.</summary>
    public bool Add(string key, string hash, string? source)
    {
        if (TryGet(key, out var existing))
        {
            if (existing == hash)
            {
                return false;
            }

            throw new RttException(ErrorCodes.Immutable, $"{key} is already {existing}; the new content hashes to {hash}", source,
                "a published ID@version never changes: bump the version");
        }

        Set(key, hash);
        return true;
    }

    /// <summary>
    /// Moves an entry to a re-signed copy of its object (key rotation: the same content under a new signature; an
    /// ID@version derived from content may change with it). The only change an entry ever gets.
    /// </summary>
    public void Replace(string oldKey, string newKey, string hash)
    {
        if (TryGet(oldKey, out _))
        {
            _count--;
            _version++;
            if (FindBase(oldKey) >= 0)
            {
                _delta[oldKey] = null;
            }
            else
            {
                _delta.Remove(oldKey);
            }
        }

        Set(newKey, hash);
    }

    private void Set(string key, string hash)
    {
        if (!ContentHash.IsValid(hash))
        {
            throw new ArgumentException($"\"{hash}\" is not a sha256 content hash", nameof(hash));
        }

        if (!Utf8Ordinal.TryEncode(key, ref _scratch, out _))
        {
            throw new ArgumentException("an index key with a lone surrogate has no UTF-8 form (index.json could not hold it)", nameof(key));
        }

        if (!TryGet(key, out _))
        {
            _count++;
        }

        _delta[key] = hash;
        _version++;
        if (_delta.Count >= Math.Max(MinDelta, _baseCount / 16))
        {
            Merge();
        }
    }

    /// <summary>Folds the changes into a new base.</summary>
    private void Merge()
    {
        var table = new Table(_count, _starts[_baseCount] + _delta.Keys.Sum(k => System.Text.Encoding.UTF8.GetByteCount(k))); // exact when only added to (a scan): no trimming copy
        using IEnumerator<KeyValuePair<string, string?>> delta = _delta.GetEnumerator();
        var more = delta.MoveNext();
        var utf8 = more ? Encode(delta.Current.Key) : default;
        for (var i = 0; i < _baseCount; i++)
        {
            var key = KeyAt(i);
            for (; more && Utf8Ordinal.Compare(utf8, key) < 0; more = Next(delta, ref utf8))
            {
                if (delta.Current.Value is { } added)
                {
                    table.Append(utf8, added);
                }
            }

            if (more && key.SequenceEqual(utf8))
            {
                if (delta.Current.Value is { } moved)
                {
                    table.Append(utf8, moved);
                }

                more = Next(delta, ref utf8);
                continue;
            }

            table.Append(key, _hashes.AsSpan(i * HashSize, HashSize));
        }

        for (; more; more = Next(delta, ref utf8))
        {
            if (delta.Current.Value is { } added)
            {
                table.Append(utf8, added);
            }
        }

        if (table.Count != _count)
        {
            throw new InvalidOperationException($"index merge made {table.Count} entries, expected {_count}");
        }

        SetBase(table);
        _delta.Clear();

        ReadOnlySpan<byte> Encode(string key)
        {
            Utf8Ordinal.TryEncode(key, ref _scratch, out var length); // checked when set
            return _scratch.AsSpan(0, length);
        }

        bool Next(IEnumerator<KeyValuePair<string, string?>> e, ref ReadOnlySpan<byte> current)
        {
            var next = e.MoveNext();
            current = next ? Encode(e.Current.Key) : default;
            return next;
        }
    }

    private void SetBase(Table table)
    {
        (_keys, _starts, _hashes, _baseCount) = table.Finish();
        _count = _baseCount;
    }

    /// <summary>A base being built: entries appended in order (or sorted once at the end, for a hand-edited file).</summary>
    private sealed class Table(int capacity, int keyBytes)
    {
        private byte[] _keys = new byte[Math.Max(keyBytes, 16)];
        private int[] _starts = new int[capacity + 1];
        private byte[] _hashes = new byte[capacity * HashSize];

        public int Count { get; private set; }

        public void Append(ReadOnlySpan<byte> key, string hash)
        {
            Span<byte> raw = stackalloc byte[HashSize];
            Convert.FromHexString(hash.AsSpan(ContentHash.Prefix.Length), raw, out _, out _);
            Append(key, raw);
        }

        public void Append(ReadOnlySpan<byte> key, ReadOnlySpan<byte> hash)
        {
            var at = _starts[Count];
            if (at + key.Length > _keys.Length)
            {
                Array.Resize(ref _keys, Math.Max(at + key.Length, _keys.Length * 2));
            }

            if (Count + 1 >= _starts.Length)
            {
                Array.Resize(ref _starts, Math.Max(16, _starts.Length * 2));
                Array.Resize(ref _hashes, (_starts.Length - 1) * HashSize);
            }

            key.CopyTo(_keys.AsSpan(at));
            hash.CopyTo(_hashes.AsSpan(Count * HashSize));
            _starts[++Count] = at + key.Length;
        }

        private ReadOnlySpan<byte> Key(int i) => _keys.AsSpan(_starts[i], _starts[i + 1] - _starts[i]);

        /// <summary>This table in ordinal key order (a copy when it was not; keys are distinct).</summary>
        public Table Sorted()
        {
            var sorted = true;
            for (var i = 1; i < Count && sorted; i++)
            {
                sorted = Utf8Ordinal.Compare(Key(i - 1), Key(i)) < 0;
            }

            if (sorted)
            {
                return this;
            }

            var order = Enumerable.Range(0, Count).ToArray();
            Array.Sort(order, (a, b) => Utf8Ordinal.Compare(Key(a), Key(b)));
            var copy = new Table(Count, _starts[Count]);
            foreach (var i in order)
            {
                copy.Append(Key(i), _hashes.AsSpan(i * HashSize, HashSize));
            }

            return copy;
        }

        public (byte[] Keys, int[] Starts, byte[] Hashes, int Count) Finish()
        {
            var length = _starts[Count];
            return (length == _keys.Length ? _keys : _keys[..length], _starts.Length == Count + 1 ? _starts : _starts[..(Count + 1)],
                _hashes.Length == Count * HashSize ? _hashes : _hashes[..(Count * HashSize)], Count);
        }
    }

    /// <summary>The base index of <paramref name="key"/>, or -1. Reads no shared buffer: lookups may run side by side, as on the dictionary before.</summary>
    private int FindBase(string key)
    {
        if (_baseCount == 0)
        {
            return -1;
        }

        var max = key.Length * 3;
        Span<byte> utf8 = max <= 512 ? stackalloc byte[512] : new byte[max];
        if (System.Text.Unicode.Utf8.FromUtf16(key, utf8, out _, out var length, replaceInvalidSequences: false) != System.Buffers.OperationStatus.Done)
        {
            return -1; // a lone surrogate: no UTF-8 form, so not in the base
        }

        var at = LowerBound(utf8[..length]);
        return at < _baseCount && KeyAt(at).SequenceEqual(utf8[..length]) ? at : -1;
    }

    /// <summary>The first base index whose key is not below <paramref name="utf8"/>.</summary>
    private int LowerBound(ReadOnlySpan<byte> utf8)
    {
        int lo = 0, hi = _baseCount;
        while (lo < hi)
        {
            var mid = (int)((uint)(lo + hi) >> 1);
            if (Utf8Ordinal.Compare(KeyAt(mid), utf8) < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private ReadOnlySpan<byte> KeyAt(int i) => _keys.AsSpan(_starts[i], _starts[i + 1] - _starts[i]);

    private static string HashAt(byte[] hashes, int i) => ContentHash.Format(hashes.AsSpan(i * HashSize, HashSize));

    private void Check(int version)
    {
        if (version != _version)
        {
            throw new InvalidOperationException("the index changed while it was enumerated");
        }
    }

    /// <summary>All entries in ordinal key order: the base and the changes merged as they are read.</summary>
    private IEnumerable<KeyValuePair<string, string>> Enumerate() => Merged(0, null, _delta);

    /// <summary>
    /// The base from index <paramref name="from"/> on (while its keys start with <paramref name="prefix"/>, when given)
    /// merged with <paramref name="delta"/> (ordinal-sorted changes: a hash, or null for a base entry removed).
    /// </summary>
    private IEnumerable<KeyValuePair<string, string>> Merged(int from, byte[]? prefix, IEnumerable<KeyValuePair<string, string?>> delta)
    {
        var version = _version;
        var keys = _keys;
        var starts = _starts;
        var hashes = _hashes;
        var baseCount = _baseCount;
        using var changes = delta.GetEnumerator();
        var more = changes.MoveNext();
        for (var i = from; i < baseCount && (prefix is null || keys.AsSpan(starts[i], starts[i + 1] - starts[i]).StartsWith(prefix)); i++)
        {
            var key = Utf8Ordinal.Decode(keys.AsSpan(starts[i], starts[i + 1] - starts[i]));
            for (; more && string.CompareOrdinal(changes.Current.Key, key) < 0; more = changes.MoveNext())
            {
                if (changes.Current.Value is { } added)
                {
                    yield return new(changes.Current.Key, added);
                }
            }

            if (more && changes.Current.Key == key)
            {
                if (changes.Current.Value is { } moved)
                {
                    yield return new(key, moved);
                }

                more = changes.MoveNext();
            }
            else
            {
                yield return new(key, HashAt(hashes, i));
            }

            Check(version);
        }

        for (; more; more = changes.MoveNext())
        {
            if (changes.Current.Value is { } added)
            {
                yield return new(changes.Current.Key, added);
            }
        }
    }

    /// <summary>Writes the index (atomically, members in ordinal order), streamed: no copy of it is built in memory (nor held by the writer).</summary>
    public void Save() => AtomicFile.Write(Path, stream =>
    {
        using var writer = PrettyJson.Writer(stream);
        writer.WriteStartObject();
        foreach (var (key, hash) in Enumerate())
        {
            writer.WriteString(key, hash); // keys are ordinal-sorted (the canonical order), values plain hashes
            PrettyJson.Spill(writer);
        }

        writer.WriteEndObject();
        PrettyJson.End(writer, stream);
    });

    /// <summary><see cref="Entries"/>: a read-only dictionary over the compact index.</summary>
    private sealed class EntryView(RegistryIndex index) : IReadOnlyDictionary<string, string>
    {
        public string this[string key] => index.TryGet(key, out var hash) ? hash
            : throw new KeyNotFoundException($"The given key '{key}' was not present in the dictionary.");

        public IEnumerable<string> Keys => index.Enumerate().Select(e => e.Key);

        public IEnumerable<string> Values => index.Enumerate().Select(e => e.Value);

        public int Count => index.Count;

        public bool ContainsKey(string key) => index.TryGet(key, out _);

        public bool TryGetValue(string key, out string value) => index.TryGet(key, out value!);

        public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => index.Enumerate().GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
