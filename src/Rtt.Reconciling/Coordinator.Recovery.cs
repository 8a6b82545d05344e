using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Reconciling.Wal;

namespace Rtt.Reconciling;

/// <summary>Recovery: the state rebuilt from the WAL alone, an in-doubt transaction finished or aborted, plans rebuilt from their deltas.</summary>
public sealed partial class Coordinator
{
    /// <summary>Rebuilds the state from the WAL's entries and resolves an in-doubt transaction.</summary>
    public async Task<string?> RecoverAsync(IEnumerable<(long Index, byte[] Leaf)> entries)
    {
        TxRecord? lastCommitted = null;
        foreach (var (index, leaf) in entries)
        {
            switch (WalEntry.Parse(leaf, plans: false))
            {
                case PrepareEntry prepare:
                    _history.Add(new TxRecord
                    {
                        Depth = prepare.IsDelta ? (lastCommitted?.Depth ?? 0) + 1 : 0,
                        Tx = index,
                        Transition = prepare.Transition,
                        PlanId = prepare.PlanId,
                        Base = prepare.Base,
                        Reason = prepare.Reason,
                        At = prepare.At,
                        Participants = prepare.Participants,
                    });
                    break;
                case DecisionEntry decision when Find(decision.Tx) is { } tx:
                    tx.Decision = decision.Kind;
                    tx.DecisionIndex = index;
                    if (decision.Commit)
                    {
                        lastCommitted = tx;
                    }
                    else
                    {
                        tx.Reason = decision.Reason;
                    }

                    break;
                case AppliedEntry applied when Find(applied.Tx) is { } tx:
                    tx.AppliedIndex = index;
                    break;
                case VerifiedEntry verified when Find(verified.Tx) is { } tx:
                    tx.VerifiedIndex = index;
                    break;
                case VerifyFailedEntry failed when Find(failed.Tx) is { } tx:
                    tx.VerifyFailedIndex = index;
                    tx.Reason = failed.Reason;
                    break;
            }
        }

        Applied = lastCommitted is null ? null : await PlanOf(lastCommitted);
        var last = _history.Count > 0 ? _history[^1] : null;
        if (last is null)
        {
            return null;
        }

        if (last.Decision is null)
        {
            var reason = "the coordinator stopped before deciding; aborted on recovery";
            await Decide(last, commit: false, reason, []);
            await AbortAll(last);
            return $"aborted in-doubt transaction {last.Tx} (plan {last.PlanId ?? "none"})";
        }

        if (last.Decision == WalEntryKind.Commit && last.AppliedIndex is null)
        {
            await CommitAll(last, PlanTargets.Changes(await BaseOf(last), Applied));
            last.AppliedIndex = await Append(new AppliedEntry(Now(), last.Tx));
        }

        if (last.Decision == WalEntryKind.Commit && last.VerifiedIndex is null && last.VerifyFailedIndex is null)
        {
            var phases = new List<PhaseReport>();
            if (!await VerifyPhase(last, phases) && last.Transition == TransitionApply)
            {
                await RunTransaction(await BaseOf(last), TransitionRollback, $"verification after recovery failed: {last.Reason}", phases);
                return $"finished transaction {last.Tx} and rolled it back: {last.Reason}";
            }

            return $"finished committed transaction {last.Tx} (plan {last.PlanId ?? "none"})";
        }

        if (last.Decision == WalEntryKind.Abort)
        {
            await AbortAll(last); // participants may not have heard the abort before the crash
        }

        return null;
    }

    private TxRecord? Find(long tx)
    {
        for (var i = _history.Count - 1; i >= 0; i--)
        {
            if (_history[i].Tx == tx)
            {
                return _history[i];
            }
        }

        return null;
    }

    /// <summary>
    /// The plan of <paramref name="tx"/>, read back from the WAL: the whole plan its prepare entry carries, or the one
    /// its delta makes of the plan committed before it (rebuilt from the WAL in turn; the result's hash is checked).
    /// </summary>
    private async Task<JsonObject?> PlanOf(TxRecord tx)
    {
        if (await log.ReadAsync(tx.Tx) is not PrepareEntry entry)
        {
            return null;
        }

        if (entry.Plan is { } plan)
        {
            return (JsonObject)plan.DeepClone();
        }

        if (entry.Delta is not { } delta)
        {
            return null;
        }

        TxRecord? baseTx = null;
        for (var i = _history.Count - 1; i >= 0 && baseTx is null; i--)
        {
            baseTx = _history[i].Tx < tx.Tx && _history[i].Decision == WalEntryKind.Commit ? _history[i] : null;
        }

        var basePlan = (baseTx is null ? null : await PlanOf(baseTx)) ?? throw new RttException(ErrorCodes.WalTampered,
            $"transaction {tx.Tx} carries its plan as a delta on {(string?)delta["base"]}, but no plan was applied before it", tx.PlanId,
            "the log is inconsistent: check it with `rtt wal verify`");
        return PlanDelta.Rebuild(basePlan, delta, tx.PlanId);
    }

    /// <summary>The plan that was in force before <paramref name="tx"/> (its base), read back from the WAL.</summary>
    private async Task<JsonObject?> BaseOf(TxRecord tx)
    {
        if (tx.Base is null)
        {
            return null;
        }

        for (var i = _history.Count - 1; i >= 0; i--)
        {
            if (_history[i].PlanId == tx.Base && _history[i].Decision == WalEntryKind.Commit)
            {
                return await PlanOf(_history[i]);
            }
        }

        throw new RttException(ErrorCodes.WalTampered, $"plan {tx.Base} (the base of transaction {tx.Tx}) was never committed in this WAL", null,
            "the log is inconsistent: check it with `rtt wal verify`");
    }
}
