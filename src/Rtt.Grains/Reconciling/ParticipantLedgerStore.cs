namespace Rtt.Grains.Reconciling;

/// <summary>
/// Where participants keep their ledgers: route grains under their route key, node grains under <c>node:&lt;id&gt;</c>.
/// A plan touches many participants at once, each of which must persist its vote before answering; a store that
/// group-commits concurrent writes makes that one transaction per burst instead of one per participant (and one
/// writer instead of several contending for the database). Provided by the silo.
/// </summary>
public interface IParticipantLedgerStore
{
    Task<LedgerState?> ReadAsync(string key);

    /// <summary>Durable (against a crash of the process) when the task completes.</summary>
    Task WriteAsync(string key, LedgerState state);
}
