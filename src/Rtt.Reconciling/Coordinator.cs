using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Rtt.Grains.Reconciling;
using Rtt.Core.Errors;
using Rtt.Planning;
using Rtt.Reconciling.Resilience;
using Rtt.Reconciling.Wal;

namespace Rtt.Reconciling;

/// <summary>
/// The two-phase-commit coordinator behind the reconciler grain: prepare → decision (logged and signed before any
/// participant hears it) → commit → verify → rollback on failure, every step written to the Merkle WAL before it
/// acts. One transaction at a time. Its state is nothing but the WAL: <see cref="RecoverAsync"/> rebuilds it and
/// finishes or aborts an in-doubt transaction.
/// </summary>
public sealed partial class Coordinator(ICoordinatorLog log, Func<string, IParticipant> participants, ReconcilerOptions options, TimeProvider time, IFaultPoints? faults = null, ILogger? logger = null)
{
    public const string TransitionApply = "apply";
    public const string TransitionRollback = "rollback";

    /// <summary>
    /// A prepare entry carries its plan as a delta on the applied plan (<see cref="PlanDelta"/>), except every
    /// (this + 1)-th in a row, which carries the whole plan: rebuilding a plan reads at most this many deltas.
    /// </summary>
    public const int MaxDeltaChain = 16;

    private readonly List<TxRecord> _history = [];

    /// <summary>Where a crash test stops a transaction; nothing in production.</summary>
    private IFaultPoints Faults { get; } = faults ?? NoFaultPoints.Instance;

    /// <summary>Any failure of a commit is tried again (participants are idempotent); giving up is logged.</summary>
    private readonly RetryPolicy _commitRetry = new("Retry:Commit", options.CommitRetry, _ => true, logger ?? NullLogger.Instance);
    private readonly SemaphoreSlim _one = new(1, 1);
    private string? _busyPlan;

    private SortedDictionary<string, ParticipantTarget> _appliedTargets = new(StringComparer.Ordinal);
    private readonly PlanTargets.RouteTargetMemo _routeTargets = new();
    private JsonObject? _applied;

    /// <summary>The applied plan's canonical text without <c>sign</c> when it came as plain canonical text (the next change is found from the texts), or null.</summary>
    private System.Text.Json.JsonElement? _appliedPayload;

    /// <summary>The plan in force (the latest committed transaction's plan), or null.</summary>
    public JsonObject? Applied
    {
        get => _applied;
        private set
        {
            _applied = value;
            _appliedPayload = null;
            _appliedTargets = PlanTargets.Of(value, _routeTargets); // computed once per plan, not once per transaction
        }
    }

    public string? AppliedPlanId => (string?)Applied?["plan_id"];

    /// <summary>Every transaction, oldest first.</summary>
    public IReadOnlyList<TxRecord> History => _history;

    /// <summary>Applies a signed plan through prepare, commit and verify; rolls back when verify fails.</summary>
    public Task<ApplyOutcome> ApplyAsync(JsonObject plan, CancellationToken cancellationToken = default) => ApplyAsync(plan, null, cancellationToken);

    /// <summary>The same, with the plan's <see cref="Planner.Content"/> when the caller made it already (it writes the plan's files from it).</summary>
    public Task<ApplyOutcome> ApplyAsync(JsonObject plan, PlanContent? content, CancellationToken cancellationToken = default) => ApplyAsync(plan, content, null, null, cancellationToken);

    /// <summary>
    /// The same, calling <paramref name="accepted"/> when the plan has passed every check and its transaction starts (its
    /// plan_id and signature hold, it is not the applied plan, it was not rolled back, its base is the applied plan), before
    /// anything is logged: the caller starts there what it does with an accepted plan beside the transaction (the reconciler
    /// grain writes the plan's files); and <paramref name="committed"/> when every participant has committed it, before
    /// verify (the plan is in force unless verify fails and rolls it back). Each is called at most once, on the caller's
    /// turn; neither for a plan refused or unchanged, <paramref name="committed"/> not for one aborted.
    /// </summary>
    public async Task<ApplyOutcome> ApplyAsync(JsonObject plan, PlanContent? content, Action? accepted, Action? committed, CancellationToken cancellationToken = default)
    {
        var planId = (string?)plan["plan_id"] ?? throw new RttException(ErrorCodes.PlanIdMissing, "the plan has no plan_id", null,
            "apply a plan made by `rtt plan` (it writes plan_id, the hash of the plan's content)");
        content ??= Planner.Content(plan); // plan_id and the signed bytes from one serialization
        var actual = content.PlanId;
        if (planId != actual)
        {
            throw new RttException(ErrorCodes.PlanMismatch, $"plan_id is {planId} but the content hashes to {actual}", planId,
                "the plan was changed after it was made: recompute it with `rtt plan`");
        }

        if (plan["sign"] is not null || options.Strict)
        {
            if (plan["sign"] is null)
            {
                throw new RttException(ErrorCodes.Unsigned, $"plan {planId} is not signed and the policy is strict", planId,
                    "sign it with `rtt plan` (plans from the planner are signed), or set \"strict\": false in .rtt/policy.json");
            }

            options.VerifySignature?.Invoke(plan, content.SigningPayload);
        }

        return await Exclusive(planId!, async () =>
        {
            if (planId == AppliedPlanId)
            {
                var (size, root) = await log.RootAsync();
                return new ApplyOutcome(ApplyOutcome.Unchanged, planId, _history.LastOrDefault(t => t.Decision == WalEntryKind.Commit)?.Tx ?? -1, "this plan is already applied", [], size, root);
            }

            if (RolledBackIn(planId!) is { } rollbackTx)
            {
                // docs/planner.md: rolled-back is final. A plan that was rolled back is not applied again by accident
                // (a stale proposed.json); going forward again means a new plan.
                throw new RttException(ErrorCodes.PlanStatusInvalid, $"plan {planId} was rolled back (transaction {rollbackTx}); a rolled-back plan cannot be applied again", planId,
                    "change what made it wrong (routes, policy, topology, manifests), compute a new plan with `rtt plan`, and apply that; `rtt history` lists what ran");
            }

            var baseId = (string?)plan["base"];
            if (baseId != AppliedPlanId)
            {
                throw new RttException(ErrorCodes.ApplyStale,
                    $"plan {planId} was computed against {baseId ?? "no plan"}, but the applied plan is {AppliedPlanId ?? "none"}", planId,
                    "compute a new plan against the applied one with `rtt plan`, then apply that");
            }

            // A plan that came as its canonical text is compared with the applied one by its bytes (PlanDelta.Diff on texts).
            var payload = content.Plain ? System.Text.Json.JsonDocument.Parse(content.SigningPayload.AsMemory()).RootElement : (System.Text.Json.JsonElement?)null;
            accepted?.Invoke();
            return await RunTransaction(plan, TransitionApply, null, [], payload, committed);
        });
    }

    // The rolled-back plans (plan id -> the first rollback transaction that moved away from it), folded from the decided
    // transactions of the history in order: a decided transaction never changes, and only the newest can be undecided (one
    // transaction at a time), so each is folded once instead of the whole history being walked at every apply.
    private readonly Dictionary<string, long> _rolledBack = new(StringComparer.Ordinal);
    private int _folded;
    private string? _foldedCurrent;

    /// <summary>The rollback transaction that moved away from <paramref name="planId"/>, or null when it was never rolled back.</summary>
    private long? RolledBackIn(string planId)
    {
        while (_folded < _history.Count && _history[_folded].Decision is not null)
        {
            var t = _history[_folded++];
            if (t.Decision != WalEntryKind.Commit)
            {
                continue;
            }

            if (t.Transition == TransitionRollback && _foldedCurrent is { } movedFrom)
            {
                _rolledBack.TryAdd(movedFrom, t.Tx);
            }

            _foldedCurrent = t.PlanId;
        }

        return _folded >= _history.Count - 1
            ? (_rolledBack.TryGetValue(planId, out var tx) ? tx : null)
            : RolledBackInWhole(planId); // an undecided transaction before the newest (not seen in practice): the whole history
    }

    private long? RolledBackInWhole(string planId)
    {
        string? current = null;
        foreach (var t in _history)
        {
            if (t.Decision != WalEntryKind.Commit)
            {
                continue;
            }

            if (t.Transition == TransitionRollback && current == planId)
            {
                return t.Tx;
            }

            current = t.PlanId;
        }

        return null;
    }

    /// <summary>Restores the plan the applied one replaced (its base), as a logged transaction of its own.</summary>
    public async Task<ApplyOutcome> RollbackAsync(string reason)
    {
        return await Exclusive("rollback", async () =>
        {
            var current = _history.LastOrDefault(t => t.Decision == WalEntryKind.Commit);
            if (current is null || current.PlanId is null)
            {
                throw new RttException(ErrorCodes.ApplyNothingToRollBack, "no plan is applied, so there is nothing to roll back", null,
                    "apply a plan first with `rtt apply`");
            }

            // The plan in force goes back to what it replaced when it was applied: after a rollback that is the base of
            // the apply that first brought it in, never the plan just rolled back (rolled-back is final).
            var origin = current.Transition == TransitionApply ? current
                : _history.LastOrDefault(t => t.Decision == WalEntryKind.Commit && t.Transition == TransitionApply && t.PlanId == current.PlanId) ?? current;
            var target = await BaseOf(origin);
            var outcome = await RunTransaction(target, TransitionRollback, reason, []);
            return outcome.Outcome == ApplyOutcome.Applied ? outcome with { Outcome = ApplyOutcome.RolledBack } : outcome;
        });
    }

    private async Task<ApplyOutcome> Exclusive(string what, Func<Task<ApplyOutcome>> run)
    {
        if (!await _one.WaitAsync(0))
        {
            throw new RttException(ErrorCodes.ApplyBusy, $"plan {_busyPlan} is being applied; one plan at a time", what,
                "wait for it to finish (see `rtt history`), then try again");
        }

        _busyPlan = what;
        try
        {
            return await run();
        }
        finally
        {
            _busyPlan = null;
            _one.Release();
        }
    }

    /// <param name="payload">The target's canonical text without <c>sign</c> (plain), when known: the delta is then found from the texts.</param>
    /// <param name="committed">Called when every participant has committed, before verify.</param>
    private async Task<ApplyOutcome> RunTransaction(JsonObject? target, string transition, string? reason, List<PhaseReport> phases, System.Text.Json.JsonElement? payload = null, Action? committed = null)
    {
        var planId = (string?)target?["plan_id"];
        var clock = Stopwatch.StartNew();
        // The change from the applied plan, checked to rebuild the target exactly: what the participants' changes are
        // found from when it is small (PlanTargets.ChangesFromDelta), and how the plan goes into the log (its cost
        // follows the change), unless there is no applied plan or MaxDeltaChain deltas came in a row.
        var baseTx = _history.LastOrDefault(t => t.Decision == WalEntryKind.Commit);
        JsonObject? change = null;
        JsonObject? rebuilt = null; // the target as the delta rebuilds it: a copy of its own, kept as the applied plan at commit
        if (target is not null && Applied is { } applied)
        {
            // From the texts when both are known (nothing unchanged is decoded; the target's tree is never walked), else from
            // the trees. The rebuilt plan is checked against the target where the delta changed it: the rest is the applied
            // plan's, equal to its text (_applied is always a plan checked against _appliedPayload, or the payload's own tree).
            var texts = payload is not null && _appliedPayload is not null;
            var d = texts ? PlanDelta.Diff(applied, _appliedPayload!.Value, target, payload!.Value) : PlanDelta.Diff(applied, target);
            rebuilt = PlanDelta.Apply(applied, d);
            (change, rebuilt) = (texts ? PlanDelta.SameWhereChanged(rebuilt, target, payload!.Value, d) : PlanDelta.Same(rebuilt, target)) ? (d, rebuilt) : (null, null);
        }

        var delta = change is not null && baseTx is not null && baseTx.PlanId == AppliedPlanId && baseTx.Depth < MaxDeltaChain ? change : null;
        SortedDictionary<string, ParticipantTarget>? targets = null; // the target's whole targets, when computed
        var changes = (change is not null ? PlanTargets.ChangesFromDelta(Applied!, _appliedTargets, rebuilt!, change) : null) // the rebuilt plan is the target (checked), already in nodes
            ?? PlanTargets.Changes(_appliedTargets, targets = PlanTargets.Of(target, _routeTargets)); // the route targets of unchanged lanes are the applied plan's

        var prepare = new PrepareEntry(Now(), AppliedPlanId, [.. changes.Keys], delta is null ? target : null, delta, planId, transition, reason);
        var txIndex = await AppendUnflushed(prepare); // durable with the decision (one fsync fewer per transaction)
        var tx = new TxRecord
        {
            Tx = txIndex,
            Transition = transition,
            PlanId = planId,
            Base = AppliedPlanId,
            Reason = reason,
            At = prepare.At,
            Participants = [.. changes.Keys],
            Depth = delta is null ? 0 : baseTx!.Depth + 1,
        };
        _history.Add(tx);
        await Faults.HitAsync(FaultPoints.AfterPrepareLogged, planId ?? "none");

        // Prepare: every participant validates and reserves, in parallel; silence counts as no.
        var votes = await Task.WhenAll(changes.Select(async c =>
        {
            try
            {
                return (Name: c.Key, Vote: await participants(c.Key).PrepareAsync(txIndex, planId ?? "none", c.Value).WaitAsync(options.ParticipantTimeout));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                return (Name: c.Key, Vote: new TxVote(false, Why(ex)));
            }
        }));
        await Faults.HitAsync(FaultPoints.AfterVotes, planId ?? "none");
        var no = votes.Where(v => !v.Vote.Yes).ToList();
        phases.Add(new PhaseReport("prepare", Lap(clock), $"{votes.Length} participant(s), {votes.Length - no.Count} yes, {no.Count} no"));

        if (no.Count > 0)
        {
            var why = string.Join("; ", no.Select(v => $"{v.Name}: {v.Vote.Reason}"));
            await Decide(tx, commit: false, why, votes.Select(v => (v.Name, v.Vote)).ToList());
            await AbortAll(tx);
            phases.Add(new PhaseReport("abort", Lap(clock), why));
            return await Outcome(ApplyOutcome.Aborted, tx, $"aborted in prepare: {why}", phases);
        }

        // Commit: the decision is durable (and signed) before any participant hears it. (Not the head while they
        // commit: they write their state to the same SQLite file, and two writers there make one wait in SQLite's
        // busy handler: 100-200 ms stalls, measured.)
        await Decide(tx, commit: true, null, votes.Select(v => (v.Name, v.Vote)).ToList());
        _applied = target is null ? null : rebuilt ?? (JsonObject)target.DeepClone();
        _appliedPayload = target is null ? null : payload;
        if (targets is not null)
        {
            _appliedTargets = targets; // computed above: not a second time for the same plan
        }
        else
        {
            PlanTargets.Apply(_appliedTargets, changes); // the applied plan's, brought to the target by the changes found from the delta
        }
        await Faults.HitAsync(FaultPoints.AfterCommitDecision, planId ?? "none");
        await CommitAll(tx, changes);

        // The "applied" entry rides with verify's own (one write with the head that ends the transaction):
        // recovery re-commits and re-verifies a committed transaction without it, idempotently, and verify writes
        // nothing but probe frames.
        phases.Add(new PhaseReport("commit", Lap(clock), $"{changes.Count} participant(s) applied"));
        committed?.Invoke();

        // Verify: post-conditions; a failure rolls back to the plan this one replaced.
        if (!await VerifyPhase(tx, phases))
        {
            if (transition == TransitionRollback)
            {
                return await Outcome(ApplyOutcome.RolledBack, tx, $"the rollback itself failed verification: {tx.Reason}", phases);
            }

            var failure = tx.Reason!;
            var back = await RunTransaction(await BaseOf(tx), TransitionRollback, $"plan {planId} failed verification: {failure}", phases);
            return back.Outcome == ApplyOutcome.Applied
                ? back with { Outcome = ApplyOutcome.RolledBack, PlanId = planId, Reason = $"verification failed ({failure}); rolled back to {back.PlanId ?? "no plan"}" }
                : back with
                {
                    Outcome = ApplyOutcome.VerifyFailed,
                    PlanId = planId,
                    Reason = $"verification failed ({failure}) and the rollback could not run ({back.Reason}); plan {planId} stays applied: fix the cause, then apply again or run `rtt rollback`",
                };
        }

        return await Outcome(ApplyOutcome.Applied, tx, transition == TransitionRollback ? reason ?? "" : "", phases);
    }

    /// <summary>
    /// Runs verify and logs its outcome, after the transaction's "applied" entry when it has none yet, with a signed head
    /// in one write: unflushed when verify passed (the next decision makes it durable), durable when it failed (a rollback follows).
    /// </summary>
    private async Task<bool> VerifyPhase(TxRecord tx, List<PhaseReport> phases)
    {
        var clock = Stopwatch.StartNew();
        await Faults.HitAsync(FaultPoints.DuringVerify, tx.PlanId ?? "none");
        var nodes = tx.Participants.Where(p => p.StartsWith(PlanTargets.NodePrefix, StringComparison.Ordinal)).ToList();
        var checks = await Task.WhenAll(nodes.Select(async n =>
        {
            try
            {
                return (Name: n, Check: await participants(n).VerifyAsync(tx.Tx).WaitAsync(options.ParticipantTimeout));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                return (Name: n, Check: new TxCheck(false, Why(ex)));
            }
        }));
        var failed = checks.Where(c => !c.Check.Ok).ToList();
        var detail = checks.Length == 0 ? "no node changed" : string.Join("; ", checks.Select(c => $"{c.Name}: {c.Check.Detail}"));
        var entries = new List<WalEntry>(2);
        var writeApplied = tx.AppliedIndex is null;
        if (writeApplied)
        {
            entries.Add(new AppliedEntry(Now(), tx.Tx));
        }

        if (failed.Count == 0)
        {
            // Not flushed on its own: the decision is durable already, and a power loss that takes applied and verified
            // (never anything before them) leaves a commit without applied, which recovery commits again and verifies
            // (docs/reconciler.md, "Recovery"); the next transaction's decision flushes them. One fsync per transaction.
            entries.Add(new VerifiedEntry(Now(), tx.Tx, detail));
            var first = await AppendAndSign(entries, durable: false);
            tx.AppliedIndex = writeApplied ? first : tx.AppliedIndex;
            tx.VerifiedIndex = first + entries.Count - 1;
            phases.Add(new PhaseReport("verify", Lap(clock), detail));
            return true;
        }

        tx.Reason = string.Join("; ", failed.Select(c => $"{c.Name}: {c.Check.Detail}"));
        entries.Add(new VerifyFailedEntry(Now(), tx.Tx, tx.Reason));
        var at = await AppendAndSign(entries);
        tx.AppliedIndex = writeApplied ? at : tx.AppliedIndex;
        tx.VerifyFailedIndex = at + entries.Count - 1;
        phases.Add(new PhaseReport("verify", Lap(clock), $"failed: {tx.Reason}"));
        return false;
    }

    /// <summary>Why a participant's answer is missing: silence past the timeout, or its error.</summary>
    private string Why(Exception ex) => ex is TimeoutException ? $"no answer within {options.ParticipantTimeout.TotalSeconds:0.#} s" : ex.Message;

    private async Task Decide(TxRecord tx, bool commit, string? reason, IReadOnlyList<(string Name, TxVote Vote)> votes)
    {
        var entry = new DecisionEntry(Now(), tx.Tx, commit, tx.PlanId, [.. votes.Select(v => new WalVote(v.Name, v.Vote.Reason, v.Vote.Yes))], reason);

        // The decision and a signed tree head over it in one durable write (one fsync).
        tx.DecisionIndex = await AppendAndSign([entry]);
        tx.Decision = entry.Kind;
        tx.Reason = reason ?? tx.Reason;
    }

    /// <summary>Sends the decided commit until every participant acknowledges it (they are idempotent).</summary>
    private async Task CommitAll(TxRecord tx, IReadOnlyDictionary<string, ParticipantTarget?> targets)
    {
        await Task.WhenAll(tx.Participants.Select(name => _commitRetry.ExecuteAsync($"the commit of transaction {tx.Tx} to {name}",
            _ => participants(name).CommitAsync(tx.Tx, tx.PlanId ?? "none", targets.GetValueOrDefault(name)).WaitAsync(options.ParticipantTimeout))));
    }

    private async Task AbortAll(TxRecord tx)
    {
        await Task.WhenAll(tx.Participants.Select(async name =>
        {
            try
            {
                await participants(name).AbortAsync(tx.Tx).WaitAsync(options.ParticipantTimeout);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A participant that misses the abort drops the reservation when the next transaction prepares it.
            }
        }));
    }

    private async Task<ApplyOutcome> Outcome(string outcome, TxRecord tx, string reason, List<PhaseReport> phases)
    {
        // Every transaction ends under a signed head (and so the anchor): entries after the decision (applied,
        // verified) cannot be rewritten later without it showing.
        var head = _signed ?? await log.SignHeadAsync(); // the head written with the last entries, when nothing came after them
        return new ApplyOutcome(outcome, tx.PlanId, tx.Tx, reason, phases, head.Size, head.Root);
    }

    /// <summary>The head written with the log's last entries; null once an entry is appended without one.</summary>
    private SignedTreeHead? _signed;

    private static double Lap(Stopwatch clock)
    {
        var ms = clock.Elapsed.TotalMilliseconds;
        clock.Restart();
        return Math.Round(ms, 2);
    }
}
