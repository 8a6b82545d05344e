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

    private async Task<long> AppendAndSign(IReadOnlyList<WalEntry> entries)
    {
        _signed = null;
        var (first, head) = await log.AppendAndSignAsync(entries);
        _signed = head;
        return first;
    }

    private string Now() => WalEntry.Timestamp(time.GetUtcNow());
}
