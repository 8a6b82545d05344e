using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Reconciling.Wal;

/// <summary>A signed tree head: the log's size and root at a point, signed by the workspace key.</summary>
public sealed record SignedTreeHead(long Size, string Root, string Timestamp, string KeyId, string Json);

/// <summary>
/// A Merkle write-ahead log over an <see cref="IWalStore"/>: entries are canonical JSON objects, each stored as
/// the exact leaf bytes that are hashed. The leaf hashes stay in memory (32 bytes per entry) and the tree's right
/// edge is kept as a <see cref="MerkleFrontier"/>, so an append costs one small transaction and O(log n) hashes.
/// Concurrent <see cref="AppendAsync"/> calls are group-committed: whatever queued while the previous batch was
/// being fsynced goes out in the next single transaction.
/// </summary>
public sealed class WalLog : IDisposable
{
    private readonly IWalStore _store;
    private readonly List<byte[]> _leafHashes;
    private readonly MerkleFrontier _frontier;
    private readonly List<SignedTreeHead> _heads;
    private readonly Lock _gate = new();
    private readonly GroupCommit<(byte[] Leaf, bool Durable), long> _group;

    private readonly WalAnchor? _anchor;

    private WalLog(IWalStore store, List<byte[]> leafHashes, MerkleFrontier frontier, List<SignedTreeHead> heads, WalAnchor? anchor)
    {
        _anchor = anchor;
        _store = store;
        _leafHashes = leafHashes;
        _frontier = frontier;
        _heads = heads;
        _group = new GroupCommit<(byte[] Leaf, bool Durable), long>(batch =>
        {
            // A batch is durable when any of its appends asked to be (one fsync covers them all).
            var first = Write([.. batch.Select(b => b.Leaf)], batch.Any(b => b.Durable));
            return [.. Enumerable.Range(0, batch.Count).Select(i => first + i)];
        });
    }

    public IWalStore Store => _store;

    public long Size
    {
        get
        {
            lock (_gate)
            {
                return _leafHashes.Count;
            }
        }
    }

    /// <summary>Batches written so far (each one transaction); with <see cref="Size"/> it shows how well group commit works.</summary>
    public long Batches { get; private set; }

    public IReadOnlyList<SignedTreeHead> Heads
    {
        get
        {
            lock (_gate)
            {
                return [.. _heads];
            }
        }
    }

    /// <summary>
    /// Replays the stored log: every leaf is re-hashed and compared with its stored hash, the tree is rebuilt,
    /// and every signed head's root is compared with the recomputed root at its size; the latest head's signature
    /// is checked against <paramref name="trust"/> when given. The first fault throws RTT-WAL-002 naming it.
    /// Every entry must be canonical JSON (as `rtt wal verify` checks). With an <paramref name="anchor"/>, the log must
    /// hold the anchored head (not shorter, same root at its size); an anchor missing while the log has heads is written
    /// from the latest one. (`rtt wal verify` checks every head's signature too.)
    /// </summary>
    public static WalLog Open(IWalStore store, TrustStore? trust = null, WalAnchor? anchor = null)
    {
        // The anchor first: a silo writes it after the database holds the head it names, so an anchor read before the
        // replay never covers more than the replay sees, even while the silo goes on appending (a reader of a live log).
        var anchored = anchor?.Read();
        var log = Replay(store, trust);
        if (anchor is null)
        {
            return log;
        }

        if (anchored is null)
        {
            if (log._heads.Count > 0)
            {
                anchor.Write(log._heads[^1]);
            }
        }
        else
        {
            if (WalAnchor.Check(anchored, log._leafHashes.Count, size => size <= log._leafHashes.Count ? Merkle.Root(log._leafHashes, 0, size) : []) is { } fault)
            {
                log.Dispose();
                throw new RttException(ErrorCodes.WalTampered, fault, $"{store.Location} (anchor {anchor.Path})",
                    "the log was changed outside RTT: restore the state database from a backup (docs/operations.md, recovering from a damaged workspace); `rtt wal verify` lists every fault");
            }

            if (trust is not null)
            {
                try
                {
                    VerifySignature(anchored, trust, store);
                }
                catch
                {
                    log.Dispose();
                    throw;
                }
            }
        }

        return new WalLog(log._store, log._leafHashes, log._frontier, log._heads, anchor);
    }

    private static WalLog Replay(IWalStore store, TrustStore? trust)
    {
        // Heads before the count: a head is stored with or after the entries it covers, so every head read here covers
        // no more than the count read next, however many entries a writer adds meanwhile (one consistent prefix).
        var storedHeads = store.Heads();
        var count = store.Count();
        var leafHashes = new List<byte[]>((int)Math.Min(count + 1024, int.MaxValue));
        var frontier = new MerkleFrontier();
        var heads = new List<SignedTreeHead>(storedHeads.Count);
        var nextHead = 0;
        var entries = ScanEntries(store, 0, count);

        // The tree and the heads are built in order; the first fault by index is the one reported, as a sequential replay would.
        for (var i = 0; i < entries.Count; i++)
        {
            var index = entries.Indexes[i];
            if (index != leafHashes.Count)
            {
                throw Tampered($"entry {leafHashes.Count} is missing (the next stored entry is {index})", store);
            }

            if (entries.Faults[i] is { } fault)
            {
                throw Tampered($"entry {index}: {fault}", store);
            }

            var hash = entries.Hashes[i];
            leafHashes.Add(hash);
            frontier.Add(hash);
            while (nextHead < storedHeads.Count && storedHeads[nextHead].Size == frontier.Size)
            {
                heads.Add(CheckHead(storedHeads[nextHead], frontier.Root(), store));
                nextHead++;
            }
        }

        while (nextHead < storedHeads.Count && storedHeads[nextHead].Size == 0)
        {
            heads.Add(CheckHead(storedHeads[nextHead], frontier.Root(), store));
            nextHead++;
        }

        if (nextHead < storedHeads.Count)
        {
            throw Tampered($"a signed tree head covers {storedHeads[nextHead].Size} entries but the log has {count}: entries were removed", store);
        }

        if (trust is not null && heads.Count > 0)
        {
            VerifySignature(heads[^1], trust, store);
        }

        return new WalLog(store, leafHashes, frontier, heads, null);
    }

    /// <summary>
    /// Each stored entry in [<paramref name="from"/>, <paramref name="to"/>): its index, its leaf hash, and what is wrong
    /// with it on its own (its bytes do not match its stored hash, or it is not canonical JSON), or null. The per-entry
    /// work is independent, so it runs beside the read: the entries are copied into blocks of about 1 MiB as the store
    /// hands them out, each full block is checked on the thread pool while the next one is read, and the last one on the
    /// calling thread (a short log never leaves it). Replay of 100,000 entries at a silo's start, `rtt wal verify`.
    /// </summary>
    internal static EntryChecks ScanEntries(IWalStore store, long from, long to)
    {
        var blocks = new List<EntryBlock>();
        var block = new EntryBlock(EntryBlock.Bytes);
        store.Scan(from, to, (index, leaf, leafHash) =>
        {
            if (!block.TryAdd(index, leaf, leafHash))
            {
                block.Start();
                blocks.Add(block);
                block = new EntryBlock(Math.Max(EntryBlock.Bytes, leaf.Length + leafHash.Length));
                block.TryAdd(index, leaf, leafHash);
            }
        });
        block.Check();
        blocks.Add(block);

        var count = 0;
        foreach (var b in blocks)
        {
            b.Wait();
            count += b.Count;
        }

        var checks = new EntryChecks(new long[count], new byte[count][], new string?[count]);
        var at = 0;
        foreach (var b in blocks)
        {
            b.CopyTo(checks, at);
            at += b.Count;
        }

        return checks;
    }

    /// <summary>What <see cref="ScanEntries"/> found, by position in the stored order.</summary>
    internal sealed record EntryChecks(long[] Indexes, byte[][] Hashes, string?[] Faults)
    {
        public int Count => Indexes.Length;
    }

    /// <summary>Entries copied out of the store into one pooled buffer, checked as a unit.</summary>
    private sealed class EntryBlock(int capacity)
    {
        public const int Bytes = 1 << 20;
        private const int MaxEntries = 4096;

        private byte[]? _data = System.Buffers.ArrayPool<byte>.Shared.Rent(capacity);
        private readonly long[] _indexes = new long[MaxEntries];
        private readonly int[] _ends = new int[2 * MaxEntries]; // per entry: the end of its leaf, then of its stored hash
        private int _used;
        private byte[][]? _hashes;
        private string?[]? _faults;
        private Task? _checking;

        public int Count { get; private set; }

        public bool TryAdd(long index, ReadOnlySpan<byte> leaf, ReadOnlySpan<byte> leafHash)
        {
            var data = _data!;
            if (Count == MaxEntries || _used + leaf.Length + leafHash.Length > data.Length)
            {
                return false;
            }

            leaf.CopyTo(data.AsSpan(_used));
            _used += leaf.Length;
            _ends[2 * Count] = _used;
            leafHash.CopyTo(data.AsSpan(_used));
            _used += leafHash.Length;
            _ends[(2 * Count) + 1] = _used;
            _indexes[Count++] = index;
            return true;
        }

        /// <summary>Checks the block on the thread pool.</summary>
        public void Start() => _checking = Task.Run(Check);

        /// <summary>Hashes and checks every entry, then gives the buffer back.</summary>
        public void Check()
        {
            var data = _data!;
            var hashes = new byte[Count][];
            var faults = new string?[Count];
            var start = 0;
            for (var i = 0; i < Count; i++)
            {
                var leaf = data.AsSpan(start, _ends[2 * i] - start);
                var stored = data.AsSpan(_ends[2 * i], _ends[(2 * i) + 1] - _ends[2 * i]);
                hashes[i] = Merkle.LeafHash(leaf);
                faults[i] = !hashes[i].AsSpan().SequenceEqual(stored) ? "its bytes do not match its stored leaf hash" : CanonicalFault(leaf);
                start = _ends[(2 * i) + 1];
            }

            (_hashes, _faults, _data) = (hashes, faults, null);
            System.Buffers.ArrayPool<byte>.Shared.Return(data);
        }

        public void Wait() => _checking?.GetAwaiter().GetResult();

        public void CopyTo(EntryChecks checks, int at)
        {
            _indexes.AsSpan(0, Count).CopyTo(checks.Indexes.AsSpan(at));
            _hashes!.CopyTo(checks.Hashes, at);
            _faults!.CopyTo(checks.Faults, at);
        }
    }

    /// <summary>Null when a leaf is a canonical JSON object (RFC 8785); otherwise what it is instead.</summary>
    public static string? CanonicalFault(ReadOnlySpan<byte> leaf)
    {
        try
        {
            if (leaf.Length == 0 || leaf[0] != (byte)'{')
            {
                return "not a JSON object";
            }

            if (CanonicalJson.IsPlainCanonical(leaf))
            {
                return null; // what the silo writes, shown without parsing and re-writing it (replay: 100,000 entries)
            }

            return CanonicalJson.Canonicalize(leaf).AsSpan().SequenceEqual(leaf) ? null : "not in canonical JSON form (RFC 8785)";
        }
        catch (RttException ex)
        {
            return $"not valid JSON: {ex.Message}";
        }
    }

    internal static SignedTreeHead CheckHead(WalHeadRecord stored, byte[] recomputedRoot, IWalStore store)
    {
        var head = ParseHead(stored, store);
        if (!string.Equals(head.Root, Convert.ToHexStringLower(recomputedRoot), StringComparison.Ordinal))
        {
            throw Tampered($"the signed tree head at size {stored.Size} has root {head.Root}, but the entries give {Convert.ToHexStringLower(recomputedRoot)}", store);
        }

        return head;
    }

    internal static SignedTreeHead ParseHead(WalHeadRecord stored, IWalStore store)
    {
        try
        {
            var obj = JsonNode.Parse(stored.Json) as JsonObject ?? throw new JsonException("not an object");
            var size = (long?)obj["size"] ?? throw new JsonException("no size");
            if (size != stored.Size)
            {
                throw new JsonException($"its size member says {size}");
            }

            return new SignedTreeHead(size, (string?)obj["root"] ?? throw new JsonException("no root"), (string?)obj["timestamp"] ?? "",
                (string?)obj["sign"]?["key_id"] ?? "", stored.Json);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw Tampered($"the signed tree head at size {stored.Size} is not readable: {ex.Message}", store);
        }
    }

    internal static void VerifySignature(SignedTreeHead head, TrustStore trust, IWalStore store)
    {
        try
        {
            trust.Verify((JsonObject)JsonNode.Parse(head.Json)!, $"signed tree head at size {head.Size} in {store.Location}", SignedAt(head));
        }
        catch (RttException ex)
        {
            throw new RttException(ErrorCodes.WalTampered, $"the signed tree head at size {head.Size} does not verify: {ex.Message}", store.Location,
                ex.Code == ErrorCodes.SignerRevoked
                    ? "its key was revoked: after a key rotation, `rtt keys rotate` countersigns the log with the new key (docs/operations.md, key rotation)"
                    : "the log or its heads were changed outside RTT, or the signing key is no longer trusted", ex);
        }
    }

    /// <summary>A head's own timestamp (a retired key's heads stay valid up to its retirement); null when unreadable.</summary>
    public static DateTimeOffset? SignedAt(SignedTreeHead head) =>
        DateTimeOffset.TryParse(head.Timestamp, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : DateTimeOffset.MaxValue;

    private static RttException Tampered(string what, IWalStore store) =>
        new(ErrorCodes.WalTampered, what, store.Location, "the log was changed outside RTT: restore the state database from a backup; `rtt wal verify` lists every fault");

    /// <summary>The canonical leaf bytes of an entry.</summary>
    public static byte[] LeafOf(JsonObject entry) => CanonicalJson.Serialize(entry);

    /// <summary>Appends one entry durably and returns its index (group-committed with concurrent appends).</summary>
    public Task<long> AppendAsync(JsonObject entry) => _group.Enqueue((LeafOf(entry), true));

    /// <summary>The same, for an entry's leaf bytes already made (<see cref="WalEntry.ToLeaf"/>).</summary>
    public Task<long> AppendLeafAsync(byte[] leaf) => _group.Enqueue((leaf, true));

    /// <summary>
    /// The same, committed in order but not flushed on its own (<see cref="IWalStore.Append(IReadOnlyList{WalRecord}, bool)"/>):
    /// durable with the next durable write. For an entry nothing outside the store depends on until a later durable
    /// entry (the coordinator's prepare: its decision is fsynced before any participant acts on it).
    /// </summary>
    public Task<long> AppendLeafUnflushedAsync(byte[] leaf) => _group.Enqueue((leaf, false));

    /// <summary>Appends one entry durably on the calling thread (no batching).</summary>
    public long Append(JsonObject entry)
    {
        return Write([LeafOf(entry)], durable: true);
    }

    /// <summary>Stores leaves as one durable transaction and adds them to the tree; returns the first index.</summary>
    private long Write(IReadOnlyList<byte[]> leaves, bool durable)
    {
        lock (_gate)
        {
            long first = _leafHashes.Count;
            var records = new WalRecord[leaves.Count];
            for (var i = 0; i < leaves.Count; i++)
            {
                records[i] = new WalRecord(first + i, leaves[i], Merkle.LeafHash(leaves[i]));
            }

            _store.Append(records, durable); // one transaction, one fsync for the whole batch (when durable)
            foreach (var r in records)
            {
                _leafHashes.Add(r.LeafHash);
                _frontier.Add(r.LeafHash);
            }

            Batches++;
            return first;
        }
    }

    /// <summary>The current root (hex) and size.</summary>
    public (long Size, string Root) Current()
    {
        lock (_gate)
        {
            return (_leafHashes.Count, Convert.ToHexStringLower(_frontier.Root()));
        }
    }

    /// <summary>The root of the first <paramref name="size"/> entries.</summary>
    public byte[] RootAt(long size)
    {
        lock (_gate)
        {
            CheckSize(size);
            return size == _leafHashes.Count ? _frontier.Root() : Merkle.Root(_leafHashes, 0, size);
        }
    }

    public byte[] LeafHashAt(long index)
    {
        lock (_gate)
        {
            if (index < 0 || index >= _leafHashes.Count)
            {
                throw new RttException(ErrorCodes.WalProofRange, $"entry {index} is not in the log ({_leafHashes.Count} entries)", _store.Location,
                    $"give an index from 0 to {_leafHashes.Count - 1}");
            }

            return _leafHashes[(int)index];
        }
    }

    public List<byte[]> InclusionProof(long index, long size)
    {
        lock (_gate)
        {
            CheckSize(size);
            if (index < 0 || index >= size)
            {
                throw new RttException(ErrorCodes.WalProofRange, $"entry {index} is not in a tree of {size} entries", _store.Location,
                    size == 0 ? "the tree is empty" : $"give an index from 0 to {size - 1}");
            }

            return Merkle.InclusionProof(_leafHashes, index, size);
        }
    }

    public List<byte[]> ConsistencyProof(long first, long second)
    {
        lock (_gate)
        {
            CheckSize(second);
            if (first < 0 || first > second)
            {
                throw new RttException(ErrorCodes.WalProofRange, $"no consistency proof from size {first} to size {second}", _store.Location,
                    "the first size must be between 0 and the second");
            }

            return Merkle.ConsistencyProof(_leafHashes, first, second);
        }
    }

    private void CheckSize(long size)
    {
        if (size < 0 || size > _leafHashes.Count)
        {
            throw new RttException(ErrorCodes.WalProofRange, $"the log has {_leafHashes.Count} entries, not {size}", _store.Location,
                $"give a size from 0 to {_leafHashes.Count}");
        }
    }

    /// <summary>
    /// Appends entries and a signed head over the log they end, as one durable transaction of the store (one fsync
    /// where the store can: SQLite; two otherwise). Waits for nothing queued by <see cref="AppendAsync"/>: its
    /// indices are assigned under the same lock, so the log's order is the order of the writes.
    /// </summary>
    public (long First, SignedTreeHead Head) AppendAndSign(IReadOnlyList<JsonObject> entries, SigningKey key, DateTimeOffset now) =>
        AppendAndSign([.. entries.Select(LeafOf)], key, now);

    /// <summary>
    /// The same for leaves already in canonical form. Without <paramref name="durable"/> the entries and the head are
    /// committed in order but not flushed on their own (<see cref="IWalStore.AppendWithHead(IReadOnlyList{WalRecord}, long, string, bool)"/>):
    /// durable with the next durable write, and such a head is not written to the anchor, which must never run ahead of
    /// what a power loss keeps.
    /// </summary>
    public (long First, SignedTreeHead Head) AppendAndSign(IReadOnlyList<byte[]> leaves, SigningKey key, DateTimeOffset now, bool durable = true)
    {
        lock (_gate)
        {
            long first = _leafHashes.Count;
            var records = new WalRecord[leaves.Count];
            var frontier = _frontier.Clone();
            for (var i = 0; i < leaves.Count; i++)
            {
                records[i] = new WalRecord(first + i, leaves[i], Merkle.LeafHash(leaves[i]));
                frontier.Add(records[i].LeafHash);
            }

            var size = first + leaves.Count;
            if (_heads.Count > 0 && _heads[^1].Size == size)
            {
                return (first, _heads[^1]); // nothing to append and a head at this size already
            }

            var root = Convert.ToHexStringLower(frontier.Root());
            var timestamp = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
            var signed = ObjectSigner.Sign(new JsonObject { ["root"] = root, ["size"] = size, ["timestamp"] = timestamp }, key);
            var json = System.Text.Encoding.UTF8.GetString(CanonicalJson.Serialize(signed));

            _store.AppendWithHead(records, size, json, durable); // the store refuses a batch that does not continue the log
            foreach (var r in records)
            {
                _leafHashes.Add(r.LeafHash);
                _frontier.Add(r.LeafHash);
            }

            Batches++;
            var head = new SignedTreeHead(size, root, timestamp, key.KeyId, json);
            _heads.Add(head);
            if (durable)
            {
                _anchor?.WriteLater(head); // after the database holds it durably: the anchor never runs ahead of the log
                _unanchored = null;
            }
            else
            {
                _unanchored = head; // anchored by Dispose after a sync, unless a durable head comes first
            }

            return (first, head);
        }
    }

    /// <summary>Signs and stores a head for the log as it is now (idempotent per size).</summary>
    public SignedTreeHead SignHead(SigningKey key, DateTimeOffset now)
    {
        lock (_gate)
        {
            var size = (long)_leafHashes.Count;
            if (_heads.Count > 0 && _heads[^1].Size == size)
            {
                return _heads[^1];
            }

            var root = Convert.ToHexStringLower(_frontier.Root());
            var timestamp = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
            var signed = ObjectSigner.Sign(new JsonObject { ["root"] = root, ["size"] = size, ["timestamp"] = timestamp }, key);
            var json = System.Text.Encoding.UTF8.GetString(CanonicalJson.Serialize(signed));
            _store.AddHead(size, json);
            var head = new SignedTreeHead(size, root, timestamp, key.KeyId, json);
            _heads.Add(head);
            _anchor?.WriteLater(head); // after the database holds it: the anchor never runs ahead of the log
            _unanchored = null;
            return head;
        }
    }

    /// <summary>Stored entries with index in [from, to), decoded.</summary>
    public IEnumerable<(long Index, byte[] Leaf)> Read(long from, long to) => _store.Read(from, to).Select(r => (r.Index, r.Leaf));

    public void Dispose()
    {
        try
        {
            lock (_gate)
            {
                if (_anchor is not null && _unanchored is { } last)
                {
                    // A clean close: the last head was stored without a flush (a transaction's verified entry); flushed now,
                    // it is anchored too, so after a clean stop the anchor names the whole log (a crash leaves it a head behind).
                    _store.Sync();
                    _anchor.WriteLater(last);
                    _unanchored = null;
                }
            }

            _anchor?.Flush(); // the last heads' anchor written before the log closes
        }
        catch (Exception ex) when (ex is RttException or Microsoft.Data.Sqlite.SqliteException or IOException or ObjectDisposedException)
        {
            // Not flushed or not written (the disk failed, the state folder became unwritable, the database closed first):
            // the anchor stays a lower bound, the log itself is whole.
        }
        finally
        {
            _store.Dispose();
        }
    }

    private SignedTreeHead? _unanchored; // the newest head, when it was stored without a flush (so not anchored yet)
}
