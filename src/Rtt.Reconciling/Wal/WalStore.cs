namespace Rtt.Reconciling.Wal;

/// <summary>One stored entry: its index, the exact leaf bytes that were hashed, and the leaf hash stored beside them.</summary>
public readonly record struct WalRecord(long Index, byte[] Leaf, byte[] LeafHash);

/// <summary>A stored signed tree head: the tree size it covers and the signed JSON object as written.</summary>
public readonly record struct WalHeadRecord(long Size, string Json);

/// <summary>
/// Where a Merkle WAL keeps its entries: an append-only table (SQLite embedded, PostgreSQL in a cluster).
/// Appends cost O(batch) I/O and are durable when <see cref="Append"/> returns; nothing is ever rewritten.
/// </summary>
public interface IWalStore : IDisposable
{
    /// <summary>Where the log lives, for messages (a file path or a server/database name).</summary>
    string Location { get; }

    /// <summary>Number of entries stored.</summary>
    long Count();

    /// <summary>
    /// Appends a batch in one durable transaction. <paramref name="records"/> must continue the log exactly
    /// (first index == <see cref="Count"/>); a store that finds otherwise refuses the whole batch.
    /// </summary>
    void Append(IReadOnlyList<WalRecord> records);

    /// <summary>
    /// The same, <paramref name="durable"/> or not: a store may commit a write that is not durable without flushing it,
    /// when its writes become durable in order (SQLite: one write-ahead file, a later fsynced commit covers every commit
    /// before it; a power loss keeps a prefix). A process crash loses nothing either way. By default every append is durable.
    /// </summary>
    void Append(IReadOnlyList<WalRecord> records, bool durable) => Append(records);

    /// <summary>Entries with index in [from, to), in order.</summary>
    IEnumerable<WalRecord> Read(long from, long to);

    /// <summary>
    /// The same entries handed one by one to <paramref name="visit"/>, in order, as spans that are valid only during the
    /// call: a store that can hands out its own buffers (SQLite: the row as the library holds it), so a replay of a long
    /// log copies and allocates nothing per entry. By default, each entry of <see cref="Read"/>.
    /// </summary>
    void Scan(long from, long to, WalEntryVisitor visit)
    {
        foreach (var record in Read(from, to))
        {
            visit(record.Index, record.Leaf, record.LeafHash);
        }
    }

    /// <summary>Stores a signed tree head (durably).</summary>
    void AddHead(long size, string json);

    /// <summary>
    /// Stores entries and the signed head over the log they end as one durable transaction where the store can
    /// (a coordinator's decision and its head: one fsync instead of two); otherwise as two, entries first.
    /// </summary>
    void AppendWithHead(IReadOnlyList<WalRecord> records, long headSize, string headJson)
    {
        Append(records);
        AddHead(headSize, headJson);
    }

    /// <summary>
    /// The same, without <paramref name="durable"/>: committed in order but not flushed on its own where the store can
    /// (SQLite: <c>synchronous=NORMAL</c>), durable with the next durable write; a power loss keeps a prefix, a process
    /// crash loses nothing. By default (a store that flushes every commit, PostgreSQL here): durable.
    /// </summary>
    void AppendWithHead(IReadOnlyList<WalRecord> records, long headSize, string headJson, bool durable) => AppendWithHead(records, headSize, headJson);

    /// <summary>
    /// Makes every write committed so far durable (SQLite: one <c>synchronous=FULL</c> commit, which flushes the commits
    /// before it). A store that flushes every commit (PostgreSQL here) has nothing to do.
    /// </summary>
    void Sync()
    {
    }

    /// <summary>Every signed tree head, by size.</summary>
    IReadOnlyList<WalHeadRecord> Heads();
}

/// <summary>One stored entry as <see cref="IWalStore.Scan"/> hands it out: spans valid only during the call.</summary>
public delegate void WalEntryVisitor(long index, ReadOnlySpan<byte> leaf, ReadOnlySpan<byte> leafHash);

/// <summary>Opens the silo's WAL store (registered by the silo: SQLite embedded, PostgreSQL in a cluster).</summary>
public delegate IWalStore WalStoreFactory();
