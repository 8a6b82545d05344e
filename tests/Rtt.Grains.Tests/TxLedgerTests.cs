using Rtt.Grains.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>
/// The participant side of the two-phase commit (<see cref="TxLedger"/>, what route and node grains run): votes,
/// reservations, commits and aborts, each idempotent by (transaction, phase), and "changed" true exactly when the
/// grain must persist before it answers.
/// </summary>
public sealed class TxLedgerTests
{
    private const string T1 = "{\"lanes\":[1]}";
    private const string T2 = "{\"lanes\":[2]}";

    private static string Snapshot(LedgerState s) =>
        $"{s.AppliedTx}|{s.AppliedPlan}|{s.AppliedTarget}|{s.ReservedTx}|{s.ReservedPlan}|{s.ReservedTarget}|{s.LastAbortedTx}|{s.VoteTx}|{s.VoteYes}|{s.VoteReason}|{s.PreviousTarget}";

    private static LedgerState Applied(long tx, string plan, string target)
    {
        var s = new LedgerState();
        Assert.True(TxLedger.Prepare(s, tx, plan, target, _ => null).Vote.Yes);
        Assert.True(TxLedger.Commit(s, tx, plan, target));
        return s;
    }

    [Fact]
    public void A_yes_vote_reserves_the_target_and_the_commit_applies_the_reservation()
    {
        var s = new LedgerState();
        var (vote, changed) = TxLedger.Prepare(s, 1, "p1", T1, _ => null);
        Assert.True(changed);
        Assert.Equal(new TxVote(true, "reserved"), vote);
        Assert.Equal((1L, "p1", T1), (s.ReservedTx!.Value, s.ReservedPlan!, s.ReservedTarget!));
        Assert.Null(s.AppliedTx);

        // The commit applies what was reserved, not what the message carries.
        Assert.True(TxLedger.Commit(s, 1, "other", T2));
        Assert.Equal((1L, "p1", T1), (s.AppliedTx!.Value, s.AppliedPlan!, s.AppliedTarget!));
        Assert.Null(s.ReservedTx);
        Assert.Null(s.ReservedPlan);
        Assert.Null(s.ReservedTarget);
        Assert.Equal(new ParticipantLedgerView(1, "p1", T1, -1, null), s.View());
    }

    [Fact]
    public void A_no_vote_reserves_nothing_and_a_repeated_prepare_gets_the_same_answer_without_a_write()
    {
        var s = new LedgerState();
        var asked = 0;
        var (vote, changed) = TxLedger.Prepare(s, 3, "p3", T1, _ => { asked++; return "no lane host"; });
        Assert.True(changed); // the vote itself is persisted
        Assert.Equal(new TxVote(false, "no lane host"), vote);
        Assert.Null(s.ReservedTx);

        var before = Snapshot(s);
        var again = TxLedger.Prepare(s, 3, "p3", T1, _ => null); // would say yes now: the recorded answer stands
        Assert.Equal((new TxVote(false, "no lane host"), false), again);
        Assert.Equal(1, asked);
        Assert.Equal(before, Snapshot(s));
    }

    [Fact]
    public void A_repeated_commit_or_a_prepare_of_an_applied_transaction_changes_nothing()
    {
        var s = Applied(2, "p2", T1);
        var before = Snapshot(s);
        Assert.False(TxLedger.Commit(s, 2, "p2", T1));
        Assert.False(TxLedger.Commit(s, 1, "p1", T2)); // an older commit arriving late
        Assert.Equal((new TxVote(true, "already applied"), false), TxLedger.Prepare(s, 2, "p2", T1, _ => "never asked"));
        Assert.Equal((new TxVote(true, "already applied"), false), TxLedger.Prepare(s, 1, "p1", T2, _ => "never asked"));
        Assert.Equal(before, Snapshot(s));
    }

    [Fact]
    public void A_commit_without_a_reservation_applies_the_target_the_decision_carries()
    {
        // The participant's state lost the reservation (a power cut under synchronous=NORMAL): the durable decision wins.
        var s = Applied(1, "p1", T1);
        Assert.True(TxLedger.Commit(s, 2, "p2", T2));
        Assert.Equal((2L, "p2", T2, T1), (s.AppliedTx!.Value, s.AppliedPlan!, s.AppliedTarget!, s.PreviousTarget!));
    }

    [Fact]
    public void An_abort_releases_its_reservation_and_a_late_prepare_of_the_aborted_transaction_is_refused()
    {
        var s = Applied(1, "p1", T1);
        Assert.True(TxLedger.Prepare(s, 2, "p2", T2, _ => null).Vote.Yes);
        Assert.True(TxLedger.Abort(s, 2));
        Assert.Null(s.ReservedTx);
        Assert.Equal(2, s.LastAbortedTx);
        Assert.Equal((1L, "p1", T1), (s.AppliedTx!.Value, s.AppliedPlan!, s.AppliedTarget!)); // the applied plan stays

        Assert.False(TxLedger.Abort(s, 2)); // repeated: no write
        Assert.False(TxLedger.Abort(s, 1)); // older: no write

        // A prepare of transaction 2 that was delayed past its abort: the vote recorded for tx 2 is repeated, and a
        // participant that never voted on it refuses it.
        Assert.True(TxLedger.Prepare(s, 2, "p2", T2, _ => null).Vote.Yes);
        Assert.Null(s.ReservedTx);
        var fresh = new LedgerState();
        Assert.True(TxLedger.Abort(fresh, 5)); // an abort for a transaction it never prepared is still recorded
        Assert.Equal((new TxVote(false, "transaction 5 was aborted"), false), TxLedger.Prepare(fresh, 5, "p5", T1, _ => null));
        Assert.Equal((new TxVote(false, "transaction 4 was aborted"), false), TxLedger.Prepare(fresh, 4, "p4", T1, _ => null));
    }

    [Fact]
    public void A_newer_prepare_replaces_an_unresolved_older_reservation_and_an_older_one_is_refused()
    {
        var s = new LedgerState();
        Assert.True(TxLedger.Prepare(s, 3, "p3", T1, _ => null).Vote.Yes);

        // Transaction 3's decision never arrived: the coordinator runs one transaction at a time, so 3 was aborted.
        var (vote, changed) = TxLedger.Prepare(s, 4, "p4", T2, _ => null);
        Assert.True(changed);
        Assert.True(vote.Yes);
        Assert.Equal((4L, "p4", T2, 3L), (s.ReservedTx!.Value, s.ReservedPlan!, s.ReservedTarget!, s.LastAbortedTx!.Value));

        var t = new LedgerState();
        Assert.True(TxLedger.Prepare(t, 7, "p7", T1, _ => null).Vote.Yes);
        var before = Snapshot(t);
        Assert.Equal((new TxVote(false, "reserved by a newer transaction 7"), false), TxLedger.Prepare(t, 6, "p6", T2, _ => null));
        Assert.Equal(before, Snapshot(t));
    }

    [Fact]
    public void Releasing_a_participant_is_a_prepare_with_no_target_and_the_commit_leaves_it_empty()
    {
        var s = Applied(1, "p1", T1);
        string? seen = "unset";
        Assert.True(TxLedger.Prepare(s, 2, "p2", (string?)null, t => { seen = t; return null; }).Vote.Yes);
        Assert.Null(seen); // the validator is asked about the release too
        Assert.True(TxLedger.Commit(s, 2, "p2", (string?)null));
        Assert.Equal(2, s.AppliedTx);
        Assert.Equal("p2", s.AppliedPlan);
        Assert.Null(s.AppliedTarget);
        Assert.Equal(T1, s.PreviousTarget);
    }
}
