using System.Buffers;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Numerics;
using System.Security.Cryptography;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;

namespace Rtt.Registry;

/// <summary>
/// The packfile pair, written by <c>rtt pack</c>.
/// <para><c>agents.pack</c>: "RTTPACK1", u32 format (1), u32 count, the objects' canonical bytes back to back
/// in hash order, then a 32-byte SHA-256 trailer over everything before it.</para>
/// <para><c>index.lut</c>: "RTTLUT01", u32 format (1), u32 count, a 256-entry u32 fanout table (entry b = number
/// of objects whose hash starts with a byte ≤ b), count entries of {hash[32], offset u64, length u32},
/// the pack's trailer (binding the index to its pack), then a SHA-256 over the index before it.
/// All integers little-endian.</para>
/// </summary>
public static class Packfile
{
    public const string PackName = "agents.pack";
    public const string IndexName = "index.lut";
    internal const int HashSize = 32;
    internal const int PackHeader = 16;
    internal const int IndexHeader = 16;
    internal const int Fanout = 256 * 4;
    internal const int EntrySize = HashSize + 8 + 4;
    internal static ReadOnlySpan<byte> PackMagic => "RTTPACK1"u8;
    internal static ReadOnlySpan<byte> IndexMagic => "RTTLUT01"u8;

    /// <summary>Writes the pack and its index from every loose object of the store. Returns the object count.</summary>
    public static int Write(CasStore cas, string packDirectory) =>
        Write(cas.List(), cas.Read, packDirectory); // verified: a damaged loose object never enters a pack

    /// <summary>
    /// Writes the pack and its index from <paramref name="hashes"/> (any order; each read, hash checked, through
    /// <paramref name="read"/>, which may read the pack being replaced). Returns the object count.
    /// </summary>
    public static int Write(IEnumerable<string> hashes, Func<string, byte[]> read, string packDirectory) =>
        Write([.. hashes.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)], read, packDirectory); // ordinal order of hex = byte order

    private static int Write(List<string> hashes, Func<string, byte[]> read, string packDirectory)
    {
        try
        {
            return WriteFiles(hashes, read, packDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceUnwritable, $"cannot write the pack: {ex.Message}", packDirectory,
                "make the folder writable (and free some space), then run `rtt pack` again; the old pack is unchanged");
        }
    }

    private static int WriteFiles(List<string> hashes, Func<string, byte[]> read, string packDirectory)
    {
        Directory.CreateDirectory(packDirectory);
        var packTemp = Path.Combine(packDirectory, $".{PackName}.{Guid.NewGuid():N}.tmp");
        var indexTemp = Path.Combine(packDirectory, $".{IndexName}.{Guid.NewGuid():N}.tmp");
        try
        {
            var entries = new (byte[] Hash, long Offset, int Length)[hashes.Count];
            byte[] trailer;
            using (var pack = new FileStream(packTemp, FileMode.CreateNew, FileAccess.Write))
            using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                Span<byte> header = stackalloc byte[PackHeader];
                PackMagic.CopyTo(header);
                BinaryPrimitives.WriteUInt32LittleEndian(header[8..], 1);
                BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)hashes.Count);
                pack.Write(header);
                sha.AppendData(header);
                long offset = PackHeader;
                for (var i = 0; i < hashes.Count; i++)
                {
                    var bytes = read(hashes[i]);
                    CasStore.Check(hashes[i], bytes, hashes[i]);
                    pack.Write(bytes);
                    sha.AppendData(bytes);
                    entries[i] = (Convert.FromHexString(hashes[i].AsSpan(ContentHash.Prefix.Length)), offset, bytes.Length);
                    offset += bytes.Length;
                }

                trailer = sha.GetHashAndReset();
                pack.Write(trailer);
                pack.Flush(flushToDisk: true);
            }

            var index = new byte[IndexHeader + Fanout + (entries.Length * EntrySize) + HashSize + HashSize];
            IndexMagic.CopyTo(index);
            BinaryPrimitives.WriteUInt32LittleEndian(index.AsSpan(8), 1);
            BinaryPrimitives.WriteUInt32LittleEndian(index.AsSpan(12), (uint)entries.Length);
            var counts = new int[256];
            foreach (var e in entries)
            {
                counts[e.Hash[0]]++;
            }

            var running = 0;
            for (var b = 0; b < 256; b++)
            {
                running += counts[b];
                BinaryPrimitives.WriteUInt32LittleEndian(index.AsSpan(IndexHeader + (b * 4)), (uint)running);
            }

            var at = IndexHeader + Fanout;
            foreach (var e in entries)
            {
                e.Hash.CopyTo(index, at);
                BinaryPrimitives.WriteUInt64LittleEndian(index.AsSpan(at + HashSize), (ulong)e.Offset);
                BinaryPrimitives.WriteUInt32LittleEndian(index.AsSpan(at + HashSize + 8), (uint)e.Length);
                at += EntrySize;
            }

            trailer.CopyTo(index, at);
            SHA256.HashData(index.AsSpan(0, at + HashSize), index.AsSpan(at + HashSize));
            using (var stream = new FileStream(indexTemp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(index);
                stream.Flush(flushToDisk: true);
            }

            // Pack first, index last: a reader that sees the new index always finds its pack.
            File.Move(packTemp, Path.Combine(packDirectory, PackName), overwrite: true);
            File.Move(indexTemp, Path.Combine(packDirectory, IndexName), overwrite: true);
            return entries.Length;
        }
        finally
        {
            File.Delete(packTemp);
            File.Delete(indexTemp);
        }
    }
}

/// <summary>
/// Reads a pack through a memory mapping. <see cref="TryGet(ReadOnlySpan{byte}, out ReadOnlySpan{byte})"/> is a
/// table of buckets by the hash's first bits (built at open) over the mapped index and returns a span over the mapped pack: no copy, no allocation.
/// </summary>
public sealed unsafe class PackReader : IDisposable
{
    private readonly MemoryMappedFile _packFile;
    private readonly MemoryMappedViewAccessor _packView;
    private readonly MemoryMappedFile _indexFile;
    private readonly MemoryMappedViewAccessor _indexView;
    private readonly byte* _pack;
    private readonly long _packLength;
    private readonly byte* _index;
    private readonly long _indexLength;
    private readonly MappedMemory _packMemory;
    private readonly int _bucketBits;
    private readonly int[] _buckets = [];
    private bool _disposed;

    private PackReader(string packPath, string indexPath)
    {
        PackPath = packPath;
        IndexPath = indexPath;
        _packLength = new FileInfo(packPath).Length;
        _indexLength = new FileInfo(indexPath).Length;
        if (_packLength < Packfile.PackHeader + Packfile.HashSize)
        {
            throw Corrupt(ErrorCodes.PackCorrupt, packPath, "file is too short to be a pack");
        }

        if (_indexLength < Packfile.IndexHeader + Packfile.Fanout + (2 * Packfile.HashSize))
        {
            throw Corrupt(ErrorCodes.IndexCorrupt, indexPath, "file is too short to be a pack index");
        }

        _packFile = MemoryMappedFile.CreateFromFile(packPath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _packView = _packFile.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        _indexFile = MemoryMappedFile.CreateFromFile(indexPath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _indexView = _indexFile.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _packView.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pack = p + _packView.PointerOffset;
        byte* q = null;
        _indexView.SafeMemoryMappedViewHandle.AcquirePointer(ref q);
        _index = q + _indexView.PointerOffset;
        _packMemory = new MappedMemory(_pack, checked((int)Math.Min(_packLength, int.MaxValue)));

        try
        {
            if (!IndexSpan(0, 8).SequenceEqual(Packfile.IndexMagic) || BinaryPrimitives.ReadUInt32LittleEndian(IndexSpan(8, 4)) != 1)
            {
                throw Corrupt(ErrorCodes.IndexCorrupt, indexPath, "bad magic or format version");
            }

            if (!PackSpan(0, 8).SequenceEqual(Packfile.PackMagic) || BinaryPrimitives.ReadUInt32LittleEndian(PackSpan(8, 4)) != 1)
            {
                throw Corrupt(ErrorCodes.PackCorrupt, packPath, "bad magic or format version");
            }

            Count = (int)BinaryPrimitives.ReadUInt32LittleEndian(IndexSpan(12, 4));
            if (_indexLength != Packfile.IndexHeader + Packfile.Fanout + ((long)Count * Packfile.EntrySize) + (2 * Packfile.HashSize))
            {
                throw Corrupt(ErrorCodes.IndexCorrupt, indexPath, $"length {_indexLength} does not fit {Count} entries");
            }

            if (!BoundPackTrailer.SequenceEqual(PackSpan(_packLength - Packfile.HashSize, Packfile.HashSize)))
            {
                throw Corrupt(ErrorCodes.IndexCorrupt, indexPath, "the index belongs to another pack (trailer mismatch)");
            }

            if (BinaryPrimitives.ReadUInt32LittleEndian(PackSpan(12, 4)) != Count)
            {
                throw Corrupt(ErrorCodes.PackCorrupt, packPath, "object count differs from the index's");
            }

            if (BinaryPrimitives.ReadUInt32LittleEndian(IndexSpan(Packfile.IndexHeader + (255 * 4), 4)) != Count)
            {
                throw Corrupt(ErrorCodes.IndexCorrupt, indexPath, "fanout table does not end at the object count");
            }

            // About one object per bucket (at least the fanout's 256, at most 2^22 buckets: 16 MiB for 4 M objects and up).
            _bucketBits = Math.Clamp(64 - BitOperations.LeadingZeroCount((ulong)Math.Max(Count - 1, 1)), 8, 22);
            _buckets = BuildBuckets(_bucketBits);
        }
        catch
        {
            Dispose(); // a refused file must not stay mapped (and locked)
            throw;
        }
    }

    public string PackPath { get; }
    public string IndexPath { get; }
    public int Count { get; }

    private ReadOnlySpan<byte> BoundPackTrailer => IndexSpan(_indexLength - (2 * Packfile.HashSize), Packfile.HashSize);

    /// <summary>Opens the pack of a folder, or returns null when none was written.</summary>
    public static PackReader? OpenIfPresent(string packDirectory)
    {
        var pack = Path.Combine(packDirectory, Packfile.PackName);
        var index = Path.Combine(packDirectory, Packfile.IndexName);
        return File.Exists(pack) && File.Exists(index) ? new PackReader(pack, index) : null;
    }

    public static PackReader Open(string packDirectory) =>
        OpenIfPresent(packDirectory) ?? throw new RttException(ErrorCodes.NotFound, "no pack in this registry", packDirectory, "write one with `rtt pack`");

    /// <summary>Looks an object up by its 32-byte hash. Zero copies, zero allocations.</summary>
    public bool TryGet(ReadOnlySpan<byte> hash, out ReadOnlySpan<byte> bytes)
    {
        if (TryLocate(hash, out var offset, out var length))
        {
            bytes = new ReadOnlySpan<byte>(_pack + offset, length);
            return true;
        }

        bytes = default;
        return false;
    }

    /// <summary>As <see cref="TryGet(ReadOnlySpan{byte}, out ReadOnlySpan{byte})"/>, as memory over the mapping (valid until disposal).</summary>
    public bool TryGet(ReadOnlySpan<byte> hash, out ReadOnlyMemory<byte> bytes)
    {
        if (TryLocate(hash, out var offset, out var length))
        {
            bytes = _packMemory.Memory.Slice((int)offset, length);
            return true;
        }

        bytes = default;
        return false;
    }

    /// <remarks>
    /// Hashes are uniform, so the first bits of a hash say where it sits: <see cref="_buckets"/> (built once at open)
    /// holds, for each value of the first <see cref="_bucketBits"/> bits (about one bucket per object), the index of the
    /// first entry in it. A lookup reads one pair of that table and scans its bucket (about one entry) in the mapped
    /// index: two cache lines, where a binary search over 100,000 objects reads about 9 after the fanout, each on
    /// another page.
    /// </remarks>
    private bool TryLocate(ReadOnlySpan<byte> hash, out long offset, out int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        offset = 0;
        length = 0;
        if (hash.Length != Packfile.HashSize)
        {
            return false;
        }

        var key = BinaryPrimitives.ReadUInt64BigEndian(hash);
        var bucket = (int)(key >> (64 - _bucketBits));
        var buckets = _buckets;
        var end = buckets[bucket + 1];
        var entries = _index + Packfile.IndexHeader + Packfile.Fanout;
        for (var at = buckets[bucket]; at < end; at++)
        {
            var entry = entries + ((long)at * Packfile.EntrySize);
            var cmp = Compare(entry, key, hash);
            if (cmp == 0)
            {
                return Found(entry, out offset, out length);
            }

            if (cmp > 0)
            {
                break;
            }
        }

        return false;
    }

    /// <summary>
    /// The bucket table: entry b is the number of objects whose first <paramref name="bits"/> bits are below b (a
    /// counting pass, so a damaged order cannot make a bucket point outside the index; it only misses).
    /// </summary>
    private int[] BuildBuckets(int bits)
    {
        var table = new int[(1 << bits) + 1];
        var entries = _index + Packfile.IndexHeader + Packfile.Fanout;
        for (var i = 0; i < Count; i++)
        {
            var prefix = BinaryPrimitives.ReadUInt64BigEndian(new ReadOnlySpan<byte>(entries + ((long)i * Packfile.EntrySize), 8));
            table[(int)(prefix >> (64 - bits)) + 1]++;
        }

        for (var b = 1; b < table.Length; b++)
        {
            table[b] += table[b - 1];
        }

        return table;
    }

    /// <summary>An index entry's hash against the one looked up: the first 8 bytes as one big-endian number, then the rest.</summary>
    private static int Compare(byte* entry, ulong key, ReadOnlySpan<byte> hash)
    {
        var prefix = BinaryPrimitives.ReadUInt64BigEndian(new ReadOnlySpan<byte>(entry, 8));
        return prefix != key ? (prefix < key ? -1 : 1) : new ReadOnlySpan<byte>(entry + 8, Packfile.HashSize - 8).SequenceCompareTo(hash[8..]);
    }

    private bool Found(byte* entry, out long offset, out int length)
    {
        offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(entry + Packfile.HashSize, 8));
        length = (int)BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(entry + Packfile.HashSize + 8, 4));
        // Bounds come from the file: check them so a damaged index cannot point outside the mapping.
        return offset >= Packfile.PackHeader && length >= 0 && offset + length <= _packLength - Packfile.HashSize;
    }

    /// <summary>Every hash in the index, in order.</summary>
    public IEnumerable<string> Hashes()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return ContentHash.Format(IndexSpan(Packfile.IndexHeader + Packfile.Fanout + ((long)i * Packfile.EntrySize), Packfile.HashSize));
        }
    }

    /// <summary>Full check: both trailers, fanout, order, bounds and every object's hash. Returns the faults found.</summary>
    public IReadOnlyList<string> Verify()
    {
        var faults = new List<string>();
        var indexBody = _indexLength - Packfile.HashSize;
        if (!SHA256.HashData(IndexSpan(0, indexBody)).AsSpan().SequenceEqual(IndexSpan(indexBody, Packfile.HashSize)))
        {
            faults.Add($"{ErrorCodes.IndexCorrupt}: index checksum does not match its content ({IndexPath})");
        }

        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            for (long at = 0; at < _packLength - Packfile.HashSize; at += 1 << 20)
            {
                sha.AppendData(PackSpan(at, (int)Math.Min(1 << 20, _packLength - Packfile.HashSize - at)));
            }

            if (!sha.GetHashAndReset().AsSpan().SequenceEqual(PackSpan(_packLength - Packfile.HashSize, Packfile.HashSize)))
            {
                faults.Add($"{ErrorCodes.PackCorrupt}: pack trailer does not match its content ({PackPath})");
            }
        }

        var counts = new int[256];
        ReadOnlySpan<byte> previous = default;
        for (var i = 0; i < Count; i++)
        {
            var entry = IndexSpan(Packfile.IndexHeader + Packfile.Fanout + ((long)i * Packfile.EntrySize), Packfile.EntrySize);
            var hash = entry[..Packfile.HashSize];
            counts[hash[0]]++;
            if (i > 0 && previous.SequenceCompareTo(hash) >= 0)
            {
                faults.Add($"{ErrorCodes.IndexCorrupt}: entry {i} is out of order ({IndexPath})");
            }

            previous = hash;
            var offset = (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[Packfile.HashSize..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(entry[(Packfile.HashSize + 8)..]);
            if (offset < Packfile.PackHeader || offset + length > _packLength - Packfile.HashSize)
            {
                faults.Add($"{ErrorCodes.IndexCorrupt}: entry {i} points outside the pack ({IndexPath})");
                continue;
            }

            if (!SHA256.HashData(PackSpan(offset, (int)length)).AsSpan().SequenceEqual(hash))
            {
                faults.Add($"{ErrorCodes.PackCorrupt}: object {ContentHash.Format(hash)} at offset {offset} does not match its hash ({PackPath})");
            }
        }

        var running = 0;
        for (var b = 0; b < 256; b++)
        {
            running += counts[b];
            if (BinaryPrimitives.ReadUInt32LittleEndian(IndexSpan(Packfile.IndexHeader + (b * 4), 4)) != running)
            {
                faults.Add($"{ErrorCodes.IndexCorrupt}: fanout entry {b} is wrong ({IndexPath})");
                break;
            }
        }

        return faults;
    }

    private ReadOnlySpan<byte> PackSpan(long offset, int length) => new(_pack + offset, length);

    private ReadOnlySpan<byte> IndexSpan(long offset, long length) => new(_index + offset, checked((int)length));

    private static RttException Corrupt(string code, string path, string why) =>
        new(code, $"damaged: {why}", path, "rewrite it with `rtt pack` (loose objects are the source of truth)");

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _packView.SafeMemoryMappedViewHandle.ReleasePointer();
        _indexView.SafeMemoryMappedViewHandle.ReleasePointer();
        _packView.Dispose();
        _packFile.Dispose();
        _indexView.Dispose();
        _indexFile.Dispose();
    }

    /// <summary>A Memory&lt;byte&gt; over the mapped pack; made once, so slicing it allocates nothing.</summary>
    private sealed class MappedMemory(byte* pointer, int length) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
