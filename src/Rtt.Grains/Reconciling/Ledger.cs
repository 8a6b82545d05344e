namespace Rtt.Grains.Reconciling;

/// <summary>
/// A participant's persisted 2PC state: what it applied, what it reserved, its last vote. Transaction ids are
/// nullable (null: none) rather than -1, because grain storage may drop members holding a type's default value.
/// </summary>
[GenerateSerializer, Alias("rtt.LedgerState")]
public sealed class LedgerState
{
    [Id(0)] public long? AppliedTx { get; set; }
    [Id(1)] public string? AppliedPlan { get; set; }
    [Id(2)] public string? AppliedTarget { get; set; }
    [Id(3)] public long? ReservedTx { get; set; }
    [Id(4)] public string? ReservedPlan { get; set; }
    [Id(5)] public string? ReservedTarget { get; set; }
    [Id(6)] public long? LastAbortedTx { get; set; }
    [Id(7)] public long? VoteTx { get; set; }
    [Id(8)] public bool VoteYes { get; set; }
    [Id(9)] public string? VoteReason { get; set; }

    /// <summary>The target applied before <see cref="AppliedTarget"/> (null: none, or a ledger older than this field): the SLO gates judge only what changed.</summary>
    [Id(10)] public string? PreviousTarget { get; set; }

    public ParticipantLedgerView View() => new(AppliedTx ?? -1, AppliedPlan, AppliedTarget, ReservedTx ?? -1, ReservedPlan);
}

/// <summary>
/// The participant side of the protocol, outside any grain so tests call it directly. Every method says whether
/// the state changed (the grain then persists it before answering). Messages are idempotent by (tx, phase); the
/// coordinator runs one transaction at a time, so a reservation older than an incoming prepare belongs to a
/// transaction that was aborted (a decided commit always reaches every participant before the next prepare).
/// </summary>
public static class TxLedger
{
    /// <summary>Prepare with a target as its ledger JSON (what the ledger stores).</summary>
    public static (TxVote Vote, bool Changed) Prepare(LedgerState s, long tx, string planId, string? target, Func<string?, string?> validate) =>
        Prepare(s, tx, planId, () => target, () => validate(target));

    /// <summary>Prepare with a typed target: validated as it is, written as its JSON (<see cref="ParticipantTarget.ToJson"/>) only when reserved.</summary>
    public static (TxVote Vote, bool Changed) Prepare(LedgerState s, long tx, string planId, ParticipantTarget? target, Func<ParticipantTarget?, string?> validate) =>
        Prepare(s, tx, planId, () => target?.ToJson(), () => validate(target));

    private static (TxVote Vote, bool Changed) Prepare(LedgerState s, long tx, string planId, Func<string?> target, Func<string?> validate)
    {
        if (tx <= s.AppliedTx)
        {
            return (new TxVote(true, "already applied"), false);
        }

        if (tx == s.VoteTx)
        {
            return (new TxVote(s.VoteYes, s.VoteReason ?? ""), false); // a repeated prepare gets the same answer
        }

        if (tx <= s.LastAbortedTx)
        {
            return (new TxVote(false, $"transaction {tx} was aborted"), false);
        }

        if (s.ReservedTx > tx)
        {
            return (new TxVote(false, $"reserved by a newer transaction {s.ReservedTx}"), false);
        }

        if (s.ReservedTx is { } older)
        {
            s.LastAbortedTx = Math.Max(s.LastAbortedTx ?? -1, older); // an older, unresolved reservation: its transaction was aborted
            Release(s);
        }

        var problem = validate();
        s.VoteTx = tx;
        s.VoteYes = problem is null;
        s.VoteReason = problem ?? "reserved";
        if (problem is null)
        {
            s.ReservedTx = tx;
            s.ReservedPlan = planId;
            s.ReservedTarget = target();
        }

        return (new TxVote(s.VoteYes, s.VoteReason), true);
    }

    /// <summary>
    /// Applies the decided transaction. Normally it applies the reservation; a participant that has none for this
    /// transaction (its state was written with synchronous=NORMAL and a power cut took it) applies the target the
    /// decision carries: the decision is durable in the WAL, so the participant must follow it.
    /// </summary>
    public static bool Commit(LedgerState s, long tx, string planId, string? target) => Commit(s, tx, planId, () => target);

    /// <summary>Commit with a typed target, written as its JSON only when there is no reservation to apply.</summary>
    public static bool Commit(LedgerState s, long tx, string planId, ParticipantTarget? target) => Commit(s, tx, planId, () => target?.ToJson());

    private static bool Commit(LedgerState s, long tx, string planId, Func<string?> target)
    {
        if (s.AppliedTx >= tx)
        {
            return false; // already applied: a repeated commit changes nothing
        }

        var reserved = s.ReservedTx == tx;
        s.PreviousTarget = s.AppliedTarget;
        s.AppliedTx = tx;
        s.AppliedPlan = reserved ? s.ReservedPlan : planId;
        s.AppliedTarget = reserved ? s.ReservedTarget : target();
        Release(s);
        return true;
    }

    public static bool Abort(LedgerState s, long tx)
    {
        if (s.LastAbortedTx >= tx && s.ReservedTx != tx)
        {
            return false;
        }

        s.LastAbortedTx = Math.Max(s.LastAbortedTx ?? -1, tx);
        if (s.ReservedTx == tx)
        {
            Release(s);
        }

        return true;
    }

    private static void Release(LedgerState s)
    {
        s.ReservedTx = null;
        s.ReservedPlan = null;
        s.ReservedTarget = null;
    }
}
