using System.Text.Json.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Reconciling.Resilience;
using Rtt.Reconciling.Wal;

namespace Rtt.Reconciling;

/// <summary>One participant of a transaction, as the coordinator sees it (route and node grains in the silo); its vote and check are the grains' own wire records (<see cref="TxVote"/>, <see cref="TxCheck"/>).</summary>
public interface IParticipant
{
    /// <summary>Validates and reserves <paramref name="target"/> (null: release what it holds); persists vote and reservation before answering.</summary>
    Task<TxVote> PrepareAsync(long tx, string planId, ParticipantTarget? target);

    /// <summary>Applies the reservation of <paramref name="tx"/> (or, when it has none, the target the decision carries); idempotent.</summary>
    Task CommitAsync(long tx, string planId, ParticipantTarget? target);

    /// <summary>Drops the reservation of <paramref name="tx"/>; idempotent.</summary>
    Task AbortAsync(long tx);

    /// <summary>Checks the applied state (node participants probe their lanes).</summary>
    Task<TxCheck> VerifyAsync(long tx);
}

/// <summary>What the coordinator needs of the WAL: typed entries in, typed entries out (<see cref="WalEntry"/>).</summary>
public interface ICoordinatorLog
{
    Task<long> AppendAsync(WalEntry entry);

    /// <summary>Appends an entry in order without flushing it on its own; durable with the next durable append (by default: durable now).</summary>
    Task<long> AppendUnflushedAsync(WalEntry entry) => AppendAsync(entry);

    /// <summary>Signs a tree head over the log as it is now.</summary>
    Task<SignedTreeHead> SignHeadAsync();

    Task<(long Size, string Root)> RootAsync();

    /// <summary>The entry at <paramref name="index"/> (<see cref="WalEntry.Parse(ReadOnlySpan{byte}, bool)"/>; null for a kind the coordinator does not write).</summary>
    Task<WalEntry?> ReadAsync(long index);

    /// <summary>
    /// Appends entries and signs a head over the log they end, as one durable write where the log can (the WAL
    /// grain: one SQLite transaction); returns the first entry's index and the head. By default: the appends, then the head.
    /// </summary>
    async Task<(long First, SignedTreeHead Head)> AppendAndSignAsync(IReadOnlyList<WalEntry> entries)
    {
        long first = -1;
        foreach (var e in entries)
        {
            var i = await AppendAsync(e);
            first = first < 0 ? i : first;
        }

        var head = await SignHeadAsync();
        return (first < 0 ? head.Size : first, head);
    }

    /// <summary>
    /// The same, committed in order but not flushed on its own where the log can: durable with the next durable write
    /// (the transaction's applied and verified entries; the next decision flushes them). By default: durable now.
    /// </summary>
    Task<(long First, SignedTreeHead Head)> AppendAndSignUnflushedAsync(IReadOnlyList<WalEntry> entries) => AppendAndSignAsync(entries);
}

public sealed record ReconcilerOptions
{
    /// <summary>How long a participant may take to answer prepare, commit, abort or verify.</summary>
    public TimeSpan ParticipantTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How a decided commit is re-sent to a participant that did not acknowledge it (configuration <c>Retry:Commit</c>).</summary>
    public RetryOptions CommitRetry { get; init; } = new RttRetryOptions().Commit;

    /// <summary>Refuse unsigned plans (policy.json "strict").</summary>
    public bool Strict { get; init; } = true;

    /// <summary>
    /// Checks a plan's signature and returns the signer's key id; throws when it does not verify. Its second argument is
    /// the bytes the signature covers (<see cref="Rtt.Planning.PlanContent.SigningPayload"/>), already made for the plan_id check.
    /// </summary>
    public Func<JsonObject, byte[], string>? VerifySignature { get; init; }
}

/// <summary>A phase of a transaction as it ran.</summary>
public sealed record PhaseReport(string Phase, double Milliseconds, string Detail);

/// <summary>The result of an apply or rollback.</summary>
public sealed record ApplyOutcome(string Outcome, string? PlanId, long Tx, string Reason, IReadOnlyList<PhaseReport> Phases, long WalSize, string WalRoot)
{
    public const string Applied = "applied";
    public const string Unchanged = "unchanged";
    public const string Aborted = "aborted";
    public const string RolledBack = "rolled-back";

    /// <summary>Committed, failed verification, and the rollback could not run (a participant refused it): the plan stays applied.</summary>
    public const string VerifyFailed = "verify-failed";
}

/// <summary>A transaction as the WAL records it.</summary>
public sealed class TxRecord
{
    public required long Tx { get; init; }
    public required string Transition { get; init; }
    public required string? PlanId { get; init; }
    public required string? Base { get; init; }
    public required IReadOnlyList<string> Participants { get; init; }
    public string? Reason { get; set; }
    public string? Decision { get; set; }
    public long? DecisionIndex { get; set; }
    public long? AppliedIndex { get; set; }
    public long? VerifiedIndex { get; set; }
    public long? VerifyFailedIndex { get; set; }
    public string At { get; init; } = "";

    /// <summary>How many plan deltas lead back from this transaction's prepare entry to one with the whole plan (0: it has it, or no plan).</summary>
    public int Depth { get; init; }
}
