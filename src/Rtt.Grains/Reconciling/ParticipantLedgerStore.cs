namespace Rtt.Grains.Reconciling;

/// <summary>
/// Where route participants keep their ledgers. A plan touches many routes at once, each of which must persist its
/// vote before answering; a store that group-commits concurrent writes makes that one transaction per burst
/// instead of one per route. Provided by the silo.
/// </summary>
public interface IParticipantLedgerStore
{
    Task<LedgerState?> ReadAsync(string key);

    /// <summary>Durable (against a crash of the process) when the task completes.</summary>
    Task WriteAsync(string key, LedgerState state);
}
