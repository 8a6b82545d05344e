using Rtt.Reconciling.Wal;

namespace Rtt.Reconciling;

/// <summary>Writing the WAL: the entries are the typed schema of <see cref="WalEntry"/> (docs/reconciler.md lists their kinds and members).</summary>
public sealed partial class Coordinator
{
    private async Task<long> Append(WalEntry entry)
    {
        _signed = null;
        return await log.AppendAsync(entry);
    }

    /// <summary>
    /// An entry that need not be durable on its own (the prepare): what depends on it (the participants' votes, the
    /// decision) is written after it to the same ordered store, and the decision's fsync makes it durable before any
    /// participant commits. A crash of the process loses nothing; a power loss loses it only with everything after it.
    /// </summary>
    private async Task<long> AppendUnflushed(WalEntry entry)
    {
        _signed = null;
        return await log.AppendUnflushedAsync(entry);
    }

    /// <summary>
    /// Entries and a signed head over the log they end, in one write: durable (one fsync), or, without
    /// <paramref name="durable"/>, committed in order and made durable by the next durable write (see the verify phase).
    /// </summary>
    private async Task<long> AppendAndSign(IReadOnlyList<WalEntry> entries, bool durable = true)
    {
        _signed = null;
        var (first, head) = await (durable ? log.AppendAndSignAsync(entries) : log.AppendAndSignUnflushedAsync(entries));
        _signed = head;
        return first;
    }

    private string Now() => WalEntry.Timestamp(time.GetUtcNow());
}
