using System.Collections.Immutable;

namespace Rtt.Grains.Reconciling;

/// <summary>A participant of the reconciler's two-phase commit (route grains and node grains). Messages are idempotent by (tx, phase).</summary>
[Alias("rtt.ITxParticipant")]
public interface ITxParticipant : IGrainWithStringKey
{
    /// <summary>Validates and reserves the target (a <see cref="NodeTarget"/> or <see cref="RouteTarget"/>; null: release); the vote and reservation are persisted before the answer.</summary>
    [Alias("Prepare")]
    Task<TxVote> Prepare(long tx, string planId, ParticipantTarget? target);

    /// <summary>Applies the reservation of <paramref name="tx"/>; carries the target again so a participant that lost its reservation (power cut) still applies the decided state.</summary>
    [Alias("Commit")]
    Task Commit(long tx, string planId, ParticipantTarget? target);

    [Alias("Abort")]
    Task Abort(long tx);

    /// <summary>Post-conditions of the applied state (a node probes its lanes end to end).</summary>
    [Alias("Verify")]
    Task<TxCheck> Verify(long tx);

    /// <summary>What the participant holds: applied target (its ledger JSON, <see cref="ParticipantTarget.ToJson"/>) and any reservation.</summary>
    [Alias("Ledger")]
    Task<ParticipantLedgerView> Ledger();
}

/// <summary>A route of the fabric (key: <c>&lt;from&gt; -&gt; &lt;to&gt;</c>): its applied lane and any reservation.</summary>
[Alias("rtt.IRouteGrain")]
public interface IRouteGrain : ITxParticipant
{
}

[GenerateSerializer, Immutable, Alias("rtt.TxVote")]
public sealed record TxVote([property: Id(0)] bool Yes, [property: Id(1)] string Reason);

[GenerateSerializer, Immutable, Alias("rtt.TxCheck")]
public sealed record TxCheck([property: Id(0)] bool Ok, [property: Id(1)] string Detail);

[GenerateSerializer, Immutable, Alias("rtt.ParticipantLedgerView")]
public sealed record ParticipantLedgerView(
    [property: Id(0)] long AppliedTx,
    [property: Id(1)] string? AppliedPlan,
    [property: Id(2)] string? AppliedTarget,
    [property: Id(3)] long ReservedTx,
    [property: Id(4)] string? ReservedPlan);

/// <summary>The Merkle write-ahead log (a single grain, key <see cref="ClusterKey"/>), over the silo's WAL store.</summary>
[Alias("rtt.IWalGrain")]
public interface IWalGrain : IGrainWithStringKey
{
    public const string ClusterKey = "cluster";

    /// <summary>Appends one entry (stored as its canonical JSON, <see cref="Rtt.Reconciling.Wal.WalEntry.ToLeaf"/>), durably; concurrent appends are group-committed.</summary>
    [Alias("Append")]
    Task<long> Append(Rtt.Reconciling.Wal.WalEntry entry);

    /// <summary>
    /// Appends one entry committed in order but not flushed on its own: it is durable with the next durable write
    /// (the coordinator's prepare entry, made durable by its decision's fsync). A process crash loses nothing.
    /// </summary>
    [Alias("AppendUnflushed")]
    Task<long> AppendUnflushed(Rtt.Reconciling.Wal.WalEntry entry);

    [Alias("SignHead")]
    Task<WalHeadView> SignHead();

    /// <summary>
    /// Appends entries and a signed head over the log they end as one durable transaction (a decision and its head:
    /// one fsync). A retry of a batch whose last entry is already the log's last is not appended again.
    /// </summary>
    [Alias("AppendAndSign")]
    Task<WalHeadView> AppendAndSign(ImmutableArray<Rtt.Reconciling.Wal.WalEntry> entries);

    /// <summary>
    /// The same, committed in order but not flushed on its own: durable with the next durable write (the coordinator's
    /// applied and verified entries, made durable by the next transaction's decision). A process crash loses nothing; a
    /// power loss may lose them, never anything before them, and recovery then verifies the committed plan again.
    /// </summary>
    [Alias("AppendAndSignUnflushed")]
    Task<WalHeadView> AppendAndSignUnflushed(ImmutableArray<Rtt.Reconciling.Wal.WalEntry> entries);

    [Alias("Root")]
    Task<WalHeadView> Root();

    /// <summary>Entries in [from, to) as their canonical JSON text.</summary>
    [Alias("Read")]
    Task<ImmutableArray<string>> Read(long from, long to);
}

[GenerateSerializer, Immutable, Alias("rtt.WalHeadView")]
public sealed record WalHeadView([property: Id(0)] long Size, [property: Id(1)] string Root, [property: Id(2)] string? SignedJson);

/// <summary>The transaction coordinator (a single grain, key <see cref="ClusterKey"/>): applies signed plans by 2PC.</summary>
[Alias("rtt.IReconcilerGrain")]
public interface IReconcilerGrain : IGrainWithStringKey
{
    public const string ClusterKey = "cluster";

    /// <summary>
    /// Applies the signed plan <paramref name="planJson"/>. Any JSON text of the plan is taken; its canonical form
    /// (<see cref="PlanText"/>) is checked without serializing the plan again (docs/reconciler.md), so clients send that.
    /// </summary>
    [Alias("Apply")]
    Task<ApplyReport> Apply(string planJson);

    /// <summary>The text to send a plan as: its canonical form (RFC 8785), whose bytes the silo hashes and checks as they are.</summary>
    public static string PlanText(System.Text.Json.Nodes.JsonObject plan) => Rtt.Core.Json.CanonicalJson.ToCanonicalString(plan);

    /// <summary>
    /// <see cref="Apply"/> with the plan's UTF-8 bytes (<see cref="PlanUtf8"/>): what `rtt apply` and the silo's auto-replan
    /// send. A signed document is bytes; as a string it crosses the wire as UTF-8 anyway and is decoded to UTF-16 in the
    /// silo only to be encoded back (twice its size in garbage per apply). Needs the apply token, as Apply. The array is
    /// not copied by the call (<c>[Immutable]</c>): do not change it afterwards.
    /// </summary>
    [Alias("ApplyUtf8")]
    Task<ApplyReport> ApplyUtf8([Immutable] byte[] planUtf8);

    /// <summary>
    /// <see cref="ApplyUtf8(byte[])"/> with its apply token as an argument (<see cref="ManagementCalls.Token(Rtt.Core.Workspace.RttWorkspace, string)"/>)
    /// instead of in the request context: what `rtt apply`, the panel, autotune and the auto-replan send. The filter checks and
    /// spends the token and clears the argument; the grain never sees it.
    /// </summary>
    [Alias("ApplyUtf8/token")]
    Task<ApplyReport> ApplyUtf8([Immutable] byte[] planUtf8, ManagementToken token);

    /// <summary>The bytes to send a plan as: the UTF-8 of <see cref="PlanText"/>.</summary>
    public static byte[] PlanUtf8(System.Text.Json.Nodes.JsonObject plan) => Rtt.Core.Json.CanonicalJson.Serialize(plan);

    /// <summary>
    /// Applies the signed plan <see cref="PlanChange.PlanId"/> sent as its changes from the applied plan
    /// (docs/reconciler.md, "Plans sent as changes"): the silo rebuilds the plan from the plan it applied and the delta, checks
    /// that it is the plan named (plan_id, signature), and applies it as <see cref="Apply"/> does. What crosses the wire
    /// follows the change, not the plan's size. Refused with RTT-APPLY-007 when the change is based on another plan than
    /// the applied one: send the whole plan then (<c>rtt apply</c> does so by itself). Needs the apply token, as Apply.
    /// </summary>
    [Alias("ApplyChange")]
    Task<ApplyReport> ApplyChange(PlanChange change);

    /// <summary><see cref="ApplyChange(PlanChange)"/> with its apply token as an argument (see <see cref="ApplyUtf8(byte[], ManagementToken)"/>).</summary>
    [Alias("ApplyChange/token")]
    Task<ApplyReport> ApplyChange(PlanChange change, ManagementToken token);

    /// <summary>Rolls back to the plan applied before the applied one. Needs the rollback token, in the request context.</summary>
    [Alias("Rollback")]
    Task<ApplyReport> Rollback(string reason);

    /// <summary><see cref="Rollback(string)"/> with its rollback token as an argument (see <see cref="ApplyUtf8(byte[], ManagementToken)"/>).</summary>
    [Alias("Rollback/token")]
    Task<ApplyReport> Rollback(string reason, ManagementToken token);

    [Alias("History")]
    Task<ReconcilerHistory> History();

    /// <summary>The applied plan's routes as callers need them (where to attach, what answers); empty when none is applied.</summary>
    [Alias("AppliedRoutes")]
    Task<AppliedRoutes> AppliedRoutes();
}

/// <summary>One route of the applied plan (see <c>Rtt.Core.Calls.CallRoute</c>).</summary>
[GenerateSerializer, Immutable, Alias("rtt.AppliedRouteView")]
public sealed record AppliedRouteView(
    [property: Id(0)] string From,
    [property: Id(1)] string To,
    [property: Id(2)] uint RouteId,
    [property: Id(3)] string Node,
    [property: Id(4)] string Lane,
    [property: Id(5)] string? Endpoint,
    [property: Id(6)] string EndpointKind,
    [property: Id(7)] string? Tool);

[GenerateSerializer, Immutable, Alias("rtt.AppliedRoutes")]
public sealed record AppliedRoutes([property: Id(0)] string? PlanId, [property: Id(1)] ImmutableArray<AppliedRouteView> Routes);

/// <summary>
/// A signed plan as its changes from the plan it was computed against: <paramref name="Base"/> (that plan's plan_id, the
/// one applied), <paramref name="PlanId"/> (the plan's), <paramref name="Delta"/> (the canonical text of
/// <c>PlanDelta.Diff(base, plan)</c>, the WAL's delta format: docs/reconciler.md, "Plan deltas").
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.PlanChange")]
public sealed record PlanChange([property: Id(0)] string Base, [property: Id(1)] string PlanId, [property: Id(2)] string Delta);

[GenerateSerializer, Immutable, Alias("rtt.ApplyReport")]
public sealed record ApplyReport(
    [property: Id(0)] string Outcome,
    [property: Id(1)] string? PlanId,
    [property: Id(2)] long Tx,
    [property: Id(3)] string Reason,
    [property: Id(4)] ImmutableArray<PhaseView> Phases,
    [property: Id(5)] long WalSize,
    [property: Id(6)] string WalRoot);

[GenerateSerializer, Immutable, Alias("rtt.PhaseView")]
public sealed record PhaseView([property: Id(0)] string Phase, [property: Id(1)] double Milliseconds, [property: Id(2)] string Detail);

[GenerateSerializer, Immutable, Alias("rtt.TxView")]
public sealed record TxView(
    [property: Id(0)] long Tx,
    [property: Id(1)] string Transition,
    [property: Id(2)] string? PlanId,
    [property: Id(3)] string? Base,
    [property: Id(4)] string? Decision,
    [property: Id(5)] long? DecisionIndex,
    [property: Id(6)] long? AppliedIndex,
    [property: Id(7)] long? VerifiedIndex,
    [property: Id(8)] long? VerifyFailedIndex,
    [property: Id(9)] string? Reason,
    [property: Id(10)] string At,
    [property: Id(11)] ImmutableArray<string> Participants);

[GenerateSerializer, Immutable, Alias("rtt.ParticipantView")]
public sealed record ParticipantView([property: Id(0)] string Name, [property: Id(1)] ParticipantLedgerView Ledger);

[GenerateSerializer, Immutable, Alias("rtt.ReconcilerHistory")]
public sealed record ReconcilerHistory(
    [property: Id(0)] string? AppliedPlanId,
    [property: Id(1)] ImmutableArray<TxView> Transactions,
    [property: Id(2)] ImmutableArray<ParticipantView> Participants,
    [property: Id(3)] long WalSize,
    [property: Id(4)] string WalRoot,
    [property: Id(5)] string? Recovery);
