using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Runtime;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Planning;
using Rtt.Reconciling;
using Rtt.Reconciling.Resilience;
using Rtt.Reconciling.Wal;

namespace Rtt.Grains.Reconciling;

/// <summary>
/// The transaction coordinator: a thin shell over <see cref="Coordinator"/>, with the WAL grain as its log and
/// route and node grains as participants. Reentrant so that a second Apply during a first one gets a clear
/// "plan X is being applied" answer instead of waiting in the queue. Recovery runs on activation.
/// </summary>
[Reentrant]
public sealed class ReconcilerGrain(RttWorkspace workspace, TimeProvider time, IFaultPoints faults, RttRetryOptions retry, ILogger<ReconcilerGrain> logger, IServiceProvider services) : Grain, IReconcilerGrain
{
    private Coordinator? _coordinator;
    private string? _recovery;
    private string? _appliedOnDisk; // the plan id applied.json holds ("" for none) as this activation wrote or checked it; null: not checked yet

    private Coordinator Coordinator => _coordinator ?? throw new InvalidOperationException("the reconciler is not active");

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var wal = GrainFactory.GetGrain<IWalGrain>(IWalGrain.ClusterKey);
        var verifier = services.GetService(typeof(Rtt.Core.Tokens.TokenVerifier)) as Rtt.Core.Tokens.TokenVerifier;
        var policy = File.Exists(workspace.PolicyPath) ? RttWorkspace.ReadObject(workspace.PolicyPath) : [];
        var options = new ReconcilerOptions
        {
            Strict = policy["strict"] is not JsonValue s || s.GetValue<bool>(),
            // The trust the call's token was admitted with (the silo's management filter, a moment ago), else the silo's token
            // verifier's, which keeps the trust store and reads it again when its files change (RttSiloHost registers it).
            VerifySignature = (plan, payload) => Verify(plan, payload, Rtt.Core.Tokens.TokenVerifier.TrustOfCall ?? verifier?.Trust ?? workspace.LoadTrustStore()),
            CommitRetry = retry.Commit,
        };
        var walRetry = new RetryPolicy("Retry:Wal", retry.Wal, ex => ex is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException, logger);
        _coordinator = new Coordinator(new WalAdapter(wal, walRetry), Participant, options, time, faults, logger);

        var size = (await wal.Root()).Size;
        var entries = new List<(long, byte[])>((int)Math.Min(size, 1 << 20));
        for (long from = 0; from < size; from += 4096)
        {
            var chunk = await wal.Read(from, Math.Min(size, from + 4096));
            for (var i = 0; i < chunk.Length; i++)
            {
                entries.Add((from + i, System.Text.Encoding.UTF8.GetBytes(chunk[i])));
            }
        }

        _recovery = await _coordinator.RecoverAsync(entries);
        if (_recovery is not null)
        {
            logger.LogWarning("Reconciler recovery: {Recovery}", _recovery);
        }

        WriteApplied();
        logger.LogInformation("Reconciler active: applied plan {Plan}, {Count} transaction(s) in the WAL", _coordinator.AppliedPlanId ?? "none", _coordinator.History.Count);
    }

    private IParticipant Participant(string name) =>
        name.StartsWith(PlanTargets.RoutePrefix, StringComparison.Ordinal)
            ? new GrainParticipant(GrainFactory.GetGrain<IRouteGrain>(name[PlanTargets.RoutePrefix.Length..]), IsRollback)
            : name.StartsWith(PlanTargets.NodePrefix, StringComparison.Ordinal)
                ? new GrainParticipant(GrainFactory.GetGrain<INodeGrain>(name[PlanTargets.NodePrefix.Length..]), IsRollback)
                : throw new ArgumentException($"unknown participant \"{name}\"", nameof(name));

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // The applied plan as it last came whole (applied, or answered unchanged): its UTF-8, the string it came as (when it came
    // as one), the coordinator's tree of it and its content. The same text sent again (`rtt apply` with nothing to change, a
    // reconcile loop applying what it holds) is then neither decoded, parsed nor hashed again; the tree is never changed (the
    // coordinator and PlanDelta only read a plan).
    private SentPlan? _sent;

    private sealed record SentPlan(byte[] Utf8, string? Text, JsonObject Plan, PlanContent Content);

    // The last plan tree whose signature verified, and the trust store it verified against. A trust store is immutable (the
    // token verifier loads a new one when the trust folder changes), so the same tree under the same store verifies the same
    // way; a changed trust folder (a revocation) means another store and the signature is checked again.
    private (JsonObject Plan, Rtt.Core.Signing.TrustStore Trust, string Signer)? _verified;

    private string Verify(JsonObject plan, byte[] payload, Rtt.Core.Signing.TrustStore trust)
    {
        if (_verified is { } v && ReferenceEquals(v.Plan, plan) && ReferenceEquals(v.Trust, trust))
        {
            return v.Signer;
        }

        var signer = trust.Verify(plan, payload, (string?)plan["plan_id"]);
        _verified = (plan, trust, signer);
        return signer;
    }

    /// <summary>What was kept of the applied plan's text, when it is still the applied plan's.</summary>
    private SentPlan? Sent => _sent is { } sent && _coordinator?.AppliedPlanId is { } applied && sent.Content.PlanId == applied ? sent : null;

    public Task<ApplyReport> ApplyUtf8(byte[] planUtf8)
    {
        ArgumentNullException.ThrowIfNull(planUtf8);
        if (Sent is { } sent && planUtf8.AsSpan().SequenceEqual(sent.Utf8))
        {
            return ApplyParsed(sent.Plan, sent.Content, sent.Utf8, whole: true, sent.Text);
        }

        if (System.Text.Unicode.Utf8.IsValid(planUtf8) is false)
        {
            throw new RttException(ErrorCodes.PlanInputInvalid, "the plan's bytes are not valid UTF-8", null, "send the plan's canonical text as UTF-8 (IReconcilerGrain.PlanUtf8)");
        }

        // A copy to parse and keep: the call does not copy its array ([Immutable]), and a caller in this process could change it.
        var text = planUtf8.ToArray();
        return ApplyText(text, null, whole: true);
    }

    // The token forms: the silo's filter checked and spent the token, and cleared the argument (it is null here).
    public Task<ApplyReport> ApplyUtf8(byte[] planUtf8, ManagementToken token) => ApplyUtf8(planUtf8);

    public Task<ApplyReport> ApplyChange(PlanChange change, ManagementToken token) => ApplyChange(change);

    public Task<ApplyReport> Rollback(string reason, ManagementToken token) => Rollback(reason);

    public Task<ApplyReport> Apply(string planJson)
    {
        if (Sent is { Text: { } kept } sent && string.Equals(kept, planJson, StringComparison.Ordinal))
        {
            return ApplyParsed(sent.Plan, sent.Content, sent.Utf8, whole: true, kept);
        }

        byte[] text;
        try
        {
            text = StrictUtf8.GetBytes(planJson);
        }
        catch (System.Text.EncoderFallbackException ex)
        {
            throw new RttException(ErrorCodes.PlanInputInvalid, $"the plan text is not valid Unicode: {ex.Message}", null, "pass a plan made by `rtt plan`");
        }

        return ApplyText(text, null, whole: true, planJson);
    }

    // The applied plan's canonical text, kept for plans sent as changes: the text it came as (when that was plain canonical)
    // or, after a start or a rollback, its serialization, made when the first change needs it.
    private byte[]? _appliedText;
    private string? _appliedTextId;

    public Task<ApplyReport> ApplyChange(PlanChange change)
    {
        var c = Coordinator;
        if (c.Applied is null || change.Base != c.AppliedPlanId)
        {
            throw new RttException(ErrorCodes.ApplyChangeBase, $"plan {change.PlanId} was sent as a change to {change.Base}, but the applied plan is {c.AppliedPlanId ?? "none"}",
                change.PlanId, "send the whole plan (`rtt apply` does so by itself), or compute the change against the applied plan");
        }

        byte[] text;
        try
        {
            var delta = JsonNode.Parse(change.Delta) as JsonObject ?? throw new RttException(ErrorCodes.PlanInputInvalid, "a plan's change must be a JSON object", change.PlanId, "send PlanDelta.Diff(base, plan)");
            if (_appliedTextId != c.AppliedPlanId || _appliedText is null)
            {
                (_appliedText, _appliedTextId) = (CanonicalJson.Serialize(c.Applied), c.AppliedPlanId);
            }

            // From the applied plan's text, or through a tree for a delta that path does not take (PlanDelta.Apply's own checks).
            text = PlanDelta.ApplyToText(_appliedText, delta) ?? CanonicalJson.Serialize(PlanDelta.Apply(c.Applied, delta));
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or RttException or InvalidOperationException or FormatException or InvalidCastException or ArgumentException)
        {
            throw new RttException(ErrorCodes.PlanInputInvalid, $"the change to {change.Base} does not apply to it: {ex.Message}", change.PlanId,
                "send the whole plan, or the change PlanDelta.Diff(applied plan, plan) gives");
        }

        return ApplyText(text, change.PlanId);
    }

    /// <param name="text">The plan's UTF-8 text (any JSON; canonical text is checked as it is).</param>
    /// <param name="expectedPlanId">For a plan rebuilt from a change: the plan_id the sender named, which the rebuilt plan must carry.</param>
    /// <param name="whole">The plan came whole (not rebuilt from a change): its text is kept with its tree when it is the
    /// applied plan, with <paramref name="sentText"/>, the string it came as, if it came as one.</param>
    private Task<ApplyReport> ApplyText(byte[] text, string? expectedPlanId, bool whole = false, string? sentText = null)
    {
        var plan = JsonNode.Parse(text) as JsonObject ?? throw new RttException(ErrorCodes.PlanInputInvalid, "a plan must be a JSON object", null, "pass a plan made by `rtt plan`");
        if (expectedPlanId is not null && (string?)plan["plan_id"] != expectedPlanId)
        {
            throw new RttException(ErrorCodes.PlanMismatch, $"the change rebuilds plan {(string?)plan["plan_id"] ?? "(no plan_id)"}, not {expectedPlanId}", expectedPlanId,
                "compute the change from the applied plan to the plan named (PlanDelta.Diff), or send the whole plan");
        }

        var content = plan["plan_id"] is null ? null : Planner.Content(plan, text); // from the text itself when it is canonical (a compact plan is)
        return ApplyParsed(plan, content, text, whole, sentText);
    }

    /// <param name="text">The plan's UTF-8 text (for a kept plan, the kept one).</param>
    private async Task<ApplyReport> ApplyParsed(JsonObject plan, PlanContent? content, byte[] text, bool whole, string? sentText)
    {
        using var changing = Changing();
        Task<AtomicFile.Pending>? files = null;
        Task? placed = null;
        ApplyOutcome outcome;
        try
        {
            // The files are written from the moment the plan passed its checks; applied.json goes in place once every
            // participant committed it, while verify runs (a verify that fails rolls it back: applied.json is then
            // written again for the plan in force, below).
            outcome = await Coordinator.ApplyAsync(plan, content, () => files = WriteFiles(plan, content!), () => placed = Place(files));
        }
        catch
        {
            await Settle(placed, files);
            throw;
        }

        if (placed is not null)
        {
            if (outcome.Outcome == ApplyOutcome.Applied)
            {
                await placed; // applied.json holds the plan in force before the answer (its failure is the caller's to see)
                _appliedOnDisk = outcome.PlanId;
            }
            else
            {
                await Settle(placed, files); // rolled back: WriteApplied below writes the plan in force
            }
        }
        else
        {
            await Discard(files);
        }

        if (outcome.Outcome is ApplyOutcome.Applied or ApplyOutcome.Unchanged && content is { Plain: true } && _appliedTextId != outcome.PlanId)
        {
            (_appliedText, _appliedTextId) = (text, outcome.PlanId); // plain canonical: the applied plan's canonical text
        }

        if (outcome.Outcome is ApplyOutcome.Applied or ApplyOutcome.Unchanged && whole && content is not null && !ReferenceEquals(_sent?.Utf8, text))
        {
            // Kept with the coordinator's own tree, so a large plan is held as a tree once: the same plan_id is the same content,
            // and the sign block, which is outside it, must be the same too (a plan signed again by another key is not kept).
            var applied = Coordinator.Applied;
            _sent = applied is not null && JsonNode.DeepEquals(applied["sign"], plan["sign"]) ? new SentPlan(text, sentText, applied, content) : null;
        }

        await AfterPlacing();
        WriteApplied();
        return ToReport(outcome);
    }

    /// <summary>
    /// The accepted plan's own file and applied.json, written while its transaction runs (on the thread pool; the fsyncs of the
    /// transaction leave the processor free): formatted once from the canonical bytes the plan_id check made, written twice,
    /// not flushed (the WAL holds the plan; activation rewrites both when they are missing, old or torn). The plan's file is
    /// put in place at once (it is a valid signed plan whatever the outcome, as `rtt plan` writes them); applied.json is
    /// left beside its target until the outcome is known.
    /// </summary>
    private Task<AtomicFile.Pending> WriteFiles(JsonObject plan, PlanContent content)
    {
        var sign = plan["sign"] is { } s ? CanonicalJson.Serialize(s) : null; // on this turn: the background reads no tree
        var store = new PlanStore(workspace);
        var planPath = store.PathOf(content.PlanId);
        var appliedPath = store.AppliedPath;
        return Task.Run(() =>
        {
            var bytes = content.Pretty(sign);
            AtomicFile.WriteAllBytes(planPath, bytes, durable: false);
            return AtomicFile.WriteBeside(appliedPath, bytes, durable: false);
        });
    }

    /// <summary>
    /// Renames the applied.json that <see cref="WriteFiles"/> wrote over the old one, on the thread pool, after every rename
    /// started before it: the grain is reentrant, so the next operation can start while this apply waits for its rename, and
    /// applied.json must end with the latest.
    /// </summary>
    private Task? Place(Task<AtomicFile.Pending>? files)
    {
        if (files is null)
        {
            return null;
        }

        var before = _placing;
        var placed = Task.Run(async () =>
        {
            await Quietly(before);
            (await files).Commit();
        });
        _placing = placed;
        return placed;
    }

    /// <summary>The last rename of applied.json started by <see cref="Place"/>.</summary>
    private Task _placing = Task.CompletedTask;

    /// <summary>Waits for every rename of applied.json started so far (their failures are their own applies' to report), before applied.json is written on this turn.</summary>
    private Task AfterPlacing() => _placing.IsCompleted ? Task.CompletedTask : Quietly(_placing);

    private static async Task Quietly(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or WorkspaceException)
        {
        }
    }

    /// <summary>
    /// After an apply that ended otherwise than applied: waits for <paramref name="placed"/> (a failure logged), deletes what
    /// is left beside applied.json, and marks applied.json as unknown, so that <see cref="WriteApplied"/> reads it back and
    /// writes the plan in force when it holds another.
    /// </summary>
    private async Task Settle(Task? placed, Task<AtomicFile.Pending>? files)
    {
        if (placed is not null)
        {
            try
            {
                await placed;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or WorkspaceException)
            {
                logger.LogWarning(ex, "Putting applied.json in place for a plan that did not stay in force failed");
            }

            _appliedOnDisk = null;
        }

        await Discard(files);
    }

    /// <summary>Deletes what <see cref="WriteFiles"/> left beside applied.json for a plan that is not in force; its failure is logged, not thrown.</summary>
    private async Task Discard(Task<AtomicFile.Pending>? files)
    {
        if (files is null)
        {
            return;
        }

        try
        {
            (await files).Discard();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or WorkspaceException)
        {
            logger.LogWarning(ex, "Writing the files of a plan that did not come into force failed");
        }
    }

    public async Task<ApplyReport> Rollback(string reason)
    {
        using var changing = Changing();
        var outcome = await Coordinator.RollbackAsync(reason);
        await AfterPlacing();
        WriteApplied();
        return ToReport(outcome);
    }

    public Task<AppliedRoutes> AppliedRoutes() => Task.FromResult(new AppliedRoutes(Coordinator.AppliedPlanId,
        [.. Rtt.Core.Calls.CallRoutes.Of(Coordinator.Applied).Select(r => new AppliedRouteView(r.From, r.To, r.RouteId, r.Node, r.Lane, r.Endpoint, r.EndpointKind, r.Tool))]));

    // History kept between calls. Only this grain changes what it shows: the transactions are the coordinator's, the WAL
    // has no other writer, and a participant's ledger changes only on this grain's prepare, commit and abort. So the
    // view built after the last operation stays exact until the next one starts (or membership changes: a participant
    // reactivated on another silo reads its ledger from the store again). While an operation runs, every call builds it anew.
    private ReconcilerHistory? _history;
    private long _historyChanges = -1;
    private MembershipVersion? _historyMembership;
    private long _changes; // bumped when an apply or rollback starts and when it ends
    private int _operations; // applies and rollbacks in flight (the grain is reentrant)

    private IClusterMembershipService? Membership { get; } = services.GetService(typeof(IClusterMembershipService)) as IClusterMembershipService;

    private MembershipVersion? MembershipSeen => Membership?.CurrentSnapshot.Version;

    /// <summary>Marks an operation that may change the history (transactions, WAL, ledgers), for its whole duration.</summary>
    private Operation Changing()
    {
        _changes++;
        _operations++;
        return new Operation(this);
    }

    private readonly struct Operation(ReconcilerGrain grain) : IDisposable
    {
        public void Dispose()
        {
            grain._changes++;
            grain._operations--;
        }
    }

    public Task<ReconcilerHistory> History() =>
        _operations == 0 && _history is { } kept && _historyChanges == _changes && Equals(_historyMembership, MembershipSeen)
            ? Task.FromResult(kept)
            : BuildHistory();

    private async Task<ReconcilerHistory> BuildHistory()
    {
        var changes = _changes;
        var membership = MembershipSeen;
        var c = Coordinator;
        var names = c.History.SelectMany(t => t.Participants).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        // Each participant's ledger without its applied target (a node's is the JSON of all its lanes): the history shows
        // what each participant applied and reserved; the target itself is the participant's Ledger().
        var ledgers = await Task.WhenAll(names.Select(async n => new ParticipantView(n, await ((GrainParticipant)Participant(n)).Grain.Ledger() with { AppliedTarget = null })));
        var root = await GrainFactory.GetGrain<IWalGrain>(IWalGrain.ClusterKey).Root();
        var history = new ReconcilerHistory(
            c.AppliedPlanId,
            [.. c.History.Select(t => new TxView(t.Tx, t.Transition, t.PlanId, t.Base, t.Decision, t.DecisionIndex, t.AppliedIndex, t.VerifiedIndex, t.VerifyFailedIndex, t.Reason, t.At, [.. t.Participants]))],
            [.. ledgers],
            root.Size,
            root.Root,
            _recovery);
        if (_operations == 0 && changes == _changes)
        {
            (_history, _historyChanges, _historyMembership) = (history, changes, membership);
        }

        return history;
    }

    /// <summary>
    /// Keeps <c>.rtt/plans/applied.json</c> (the planner's base) equal to the plan in force. Both it and the plan's
    /// own file are copies of what the WAL holds, so they are written atomically but not flushed: after a crash the
    /// activation finds them missing, old or torn, and writes them again.
    /// </summary>
    private void WriteApplied()
    {
        var store = new PlanStore(workspace);
        var id = Coordinator.AppliedPlanId;
        if (_appliedOnDisk == (id ?? ""))
        {
            return;
        }

        if (id is null)
        {
            if (File.Exists(store.AppliedPath))
            {
                File.Delete(store.AppliedPath);
            }

            _appliedOnDisk = "";
            return;
        }

        var checking = _appliedOnDisk is null; // first call of this activation: trust nothing on disk
        if (checking ? PlanStore.IdIn(store.PathOf(id)) != id : !File.Exists(store.PathOf(id)))
        {
            store.Save(Coordinator.Applied!, durable: false); // a rollback target saved by an earlier run, or a plan applied before this workspace kept plans
        }

        if (!checking || PlanStore.IdIn(store.AppliedPath) != id)
        {
            AtomicFile.WriteAllBytes(store.AppliedPath, PrettyJson.ToUtf8(Coordinator.Applied!), durable: false);
        }

        _appliedOnDisk = id;
    }

    private static ApplyReport ToReport(ApplyOutcome o) =>
        new(o.Outcome, o.PlanId, o.Tx, o.Reason, [.. o.Phases.Select(p => new PhaseView(p.Phase, p.Milliseconds, p.Detail))], o.WalSize, o.WalRoot);

    /// <summary>
    /// The WAL grain as the coordinator's log. When the WAL grain's silo goes away mid-call, the call is retried: the
    /// grain comes back on a live silo, replays the durable log, and recognises a repeated append (same bytes as its
    /// last entry) and a repeated head (same size), so a retry never writes an entry twice. The WAL has no writer but this
    /// grain's coordinator (the grain's history relies on the same), so the root after its last write is kept and answers
    /// <see cref="RootAsync"/> (an apply of the applied plan) without a call; every write forgets or replaces it.
    /// </summary>
    private sealed class WalAdapter(IWalGrain wal, RetryPolicy retry) : ICoordinatorLog
    {
        // The grain's turns interleave only at awaits: a root read while a write is in flight, or one that a write overtook
        // (the version moved), is not kept.
        private (long Size, string Root)? _root;
        private long _version;
        private int _writing;

        public Task<long> AppendAsync(WalEntry entry) => Write(() => retry.ExecuteAsync("a WAL append", _ => new ValueTask<long>(wal.Append(entry))), _ => null);

        public Task<long> AppendUnflushedAsync(WalEntry entry) =>
            Write(() => retry.ExecuteAsync("a WAL append", _ => new ValueTask<long>(wal.AppendUnflushed(entry))), _ => null);

        public async Task<SignedTreeHead> SignHeadAsync()
        {
            var head = await retry.ExecuteAsync("signing a WAL tree head", _ => new ValueTask<WalHeadView>(wal.SignHead()));
            return new SignedTreeHead(head.Size, head.Root, "", "", head.SignedJson ?? "");
        }

        public Task<(long First, SignedTreeHead Head)> AppendAndSignAsync(IReadOnlyList<WalEntry> entries) => AppendAndSign(entries, durable: true);

        public Task<(long First, SignedTreeHead Head)> AppendAndSignUnflushedAsync(IReadOnlyList<WalEntry> entries) => AppendAndSign(entries, durable: false);

        private async Task<(long First, SignedTreeHead Head)> AppendAndSign(IReadOnlyList<WalEntry> entries, bool durable)
        {
            var batch = entries.ToImmutableArray();
            var head = await Write(() => retry.ExecuteAsync("appending to the WAL with a signed tree head",
                _ => new ValueTask<WalHeadView>(durable ? wal.AppendAndSign(batch) : wal.AppendAndSignUnflushed(batch))), h => (h.Size, h.Root));
            return (head.Size - batch.Length, new SignedTreeHead(head.Size, head.Root, "", "", head.SignedJson ?? ""));
        }

        public async Task<(long Size, string Root)> RootAsync()
        {
            if (_writing == 0 && _root is { } kept)
            {
                return kept;
            }

            var version = _version;
            var head = await retry.ExecuteAsync("reading the WAL root", _ => new ValueTask<WalHeadView>(wal.Root()));
            if (_writing == 0 && version == _version)
            {
                _root = (head.Size, head.Root);
            }

            return (head.Size, head.Root);
        }

        /// <summary>Runs a write with the kept root forgotten; afterwards the root it reports (when it does and no other write ran meanwhile) is kept.</summary>
        private async Task<T> Write<T>(Func<Task<T>> write, Func<T, (long, string)?> rootAfter)
        {
            _root = null;
            _writing++;
            var version = ++_version;
            try
            {
                var result = await write();
                if (_writing == 1 && version == _version)
                {
                    _root = rootAfter(result);
                }

                return result;
            }
            finally
            {
                _writing--;
                _version++;
            }
        }

        public async Task<WalEntry?> ReadAsync(long index) =>
            WalEntry.Parse(System.Text.Encoding.UTF8.GetBytes((await retry.ExecuteAsync($"reading WAL entry {index}", _ => new ValueTask<ImmutableArray<string>>(wal.Read(index, index + 1))))[0]));
    }

    /// <summary>Whether transaction <paramref name="tx"/> is a rollback (its verify skips the SLO gates: going back must not wait on the traffic that failed).</summary>
    private bool IsRollback(long tx) => _coordinator?.History.LastOrDefault(t => t.Tx == tx)?.Transition == Coordinator.TransitionRollback;

    private sealed class GrainParticipant(ITxParticipant grain, Func<long, bool> isRollback) : IParticipant
    {
        public ITxParticipant Grain => grain;

        public Task<TxVote> PrepareAsync(long tx, string planId, ParticipantTarget? target) => grain.Prepare(tx, planId, target);

        public Task CommitAsync(long tx, string planId, ParticipantTarget? target) => grain.Commit(tx, planId, target);

        public Task AbortAsync(long tx) => grain.Abort(tx);

        public Task<TxCheck> VerifyAsync(long tx)
        {
            if (isRollback(tx))
            {
                RequestContext.Set(NodeGrain.SkipSloGates, true); // flows to this call only (async-local)
            }

            return grain.Verify(tx);
        }
    }
}
