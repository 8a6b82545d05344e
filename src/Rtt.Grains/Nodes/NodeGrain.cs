using System.Collections.Immutable;
using Orleans.Runtime;
using Rtt.Core.Telemetry;

namespace Rtt.Grains.Nodes;

/// <summary>Grain storage provider name used by every RTT grain.</summary>
public static class RttStorage
{
    public const string Name = "rtt";
}

/// <summary>Persisted state of a node grain.</summary>
[GenerateSerializer, Alias("rtt.NodeState")]
public sealed class NodeState
{
    [Id(0)]
    public NodeRecord? Record { get; set; }

    /// <summary>
    /// Where the node's part in plans (applied lanes and symbols, any reservation) was kept before it moved to the
    /// participant ledger store: read once, when the store has no ledger for the node yet, and never written again.
    /// </summary>
    [Id(1)]
    public Reconciling.LedgerState Ledger { get; set; } = new();
}

/// <summary>
/// Thin shell: validates, folds the registration into the record, persists. As a 2PC participant it reserves the
/// lanes a plan puts on this node and, on commit, makes its silo's lane host serve them; at silo start-up
/// (<see cref="ServeLanes"/>) it restores the applied lanes, so a restarted silo serves exactly what the last committed plan says.
/// Its ledger lives in the participant ledger store (key <c>node:&lt;id&gt;</c>) with the route grains' ledgers, so a
/// transaction's votes and commits go out in one group commit instead of two writers racing for the SQLite file.
/// </summary>
[NodeSiloPlacement]
public sealed class NodeGrain(
    [PersistentState("node", RttStorage.Name)] IPersistentState<NodeState> state,
    TimeProvider time,
    Reconciling.IParticipantLedgerStore ledgers,
    IServiceProvider services) : Grain, INodeGrain
{
    /// <summary>
    /// The verify probe's budget: well inside the coordinator's 10 s participant timeout, so a slow probe fails with its
    /// own reason ("no answer within 5000 ms" for the lane) instead of the participant's generic silence.
    /// </summary>
    internal static readonly TimeSpan ProbeBudget = TimeSpan.FromSeconds(5);

    /// <summary>Request context key the reconciler sets when it verifies a rollback: the SLO gates are skipped.</summary>
    public const string SkipSloGates = "rtt.verify.skip-slo";

    private Reconciling.LedgerState _ledger = new();

    private INodeLaneHost? Lanes { get; } = services.GetService(typeof(INodeLaneHost)) as INodeLaneHost; // resolved once per activation

    private string LedgerKey => Rtt.Core.Reconciling.PlanTargets.NodePrefix + this.GetPrimaryKeyString();

    public override async Task OnActivateAsync(CancellationToken cancellationToken) =>
        _ledger = await ledgers.ReadAsync(LedgerKey) ?? state.State.Ledger; // a node that applied plans before the move keeps them

    private Task PersistLedger() => ledgers.WriteAsync(LedgerKey, _ledger);

    public async Task<NodeRecord> Register(NodeFacts facts)
    {
        var key = this.GetPrimaryKeyString();
        if (!string.Equals(facts.NodeId, key, StringComparison.Ordinal))
        {
            throw new ArgumentException($"facts for node \"{facts.NodeId}\" sent to node grain \"{key}\"", nameof(facts));
        }

        state.State.Record = NodeRegistration.Apply(state.State.Record, facts, time.GetUtcNow());
        await state.WriteStateAsync();
        await GrainFactory.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey).Add(key);
        RttMetrics.NodeRegistrations.Add(1);
        return state.State.Record; // the silo then calls ServeLanes, which restores the applied lanes
    }

    public async Task<bool> ServeLanes()
    {
        if (Lanes is not { } lanes)
        {
            return true; // silos without lanes: nothing to serve
        }

        if (lanes.NodeId != this.GetPrimaryKeyString())
        {
            DeactivateOnIdle(); // placed while the node's silo was down: move back to it on the next call
            return false;
        }

        if (lanes.Running)
        {
            await lanes.ServeAsync(LaneTarget.Of(_ledger.AppliedTarget));
        }

        return true;
    }

    public Task<NodeRecord?> Get() => Task.FromResult(state.State.Record);

    public async Task<Reconciling.TxVote> Prepare(long tx, string planId, string? target)
    {
        var (vote, changed) = Reconciling.TxLedger.Prepare(_ledger, tx, planId, target, CanServe);
        if (changed)
        {
            await PersistLedger();
        }

        return vote;
    }

    /// <summary>A node can take lanes when it is registered and this activation runs on its silo, next to a running lane host.</summary>
    private string? CanServe(string? target)
    {
        var key = this.GetPrimaryKeyString();
        if (target is null || LaneTarget.Of(target).Count == 0)
        {
            return null; // releasing, or nothing to serve
        }

        if (state.State.Record is null)
        {
            return $"node {key} has never registered: no silo serves it";
        }

        return Lanes switch
        {
            null => $"the silo hosting node {key}'s grain has no lane host",
            { Running: false } => $"the lane host of node {key} is not running (Lanes:Enabled is false)",
            var l when l.NodeId != key => $"node {key}'s silo is not up (its grain runs on the silo of {l.NodeId})",
            { Strict: true } => LaneTarget.SandboxRefusal(LaneTarget.Of(target)) is { } why ? $"{Rtt.Core.Errors.ErrorCodes.SandboxRequired}: {why}" : null,
            _ => null,
        };
    }

    public async Task Commit(long tx, string planId, string? target)
    {
        if (Reconciling.TxLedger.Commit(_ledger, tx, planId, target))
        {
            await PersistLedger();
        }

        await Rtt.Core.Reconciling.FaultPoints.HitAsync("mid-apply", this.GetPrimaryKeyString());
        if (Lanes is { Running: true } lanes && lanes.NodeId == this.GetPrimaryKeyString())
        {
            await lanes.ServeAsync(LaneTarget.Of(_ledger.AppliedTarget)); // idempotent: a repeated commit swaps to the same table
        }
    }

    public async Task Abort(long tx)
    {
        if (Reconciling.TxLedger.Abort(_ledger, tx))
        {
            await PersistLedger();
        }
    }

    /// <summary>Every lane of the applied target is in the host's table and answers a probe frame end to end; the host serves nothing else.</summary>
    public async Task<Reconciling.TxCheck> Verify(long tx)
    {
        var ledger = _ledger;
        if (ledger.AppliedTx < tx)
        {
            return new Reconciling.TxCheck(false, $"transaction {tx} is not applied on node {this.GetPrimaryKeyString()}");
        }

        var lanes = LaneTarget.Of(ledger.AppliedTarget);
        if (lanes.Count == 0)
        {
            return new Reconciling.TxCheck(true, "no lanes");
        }

        if (Lanes is not { Running: true } host || host.NodeId != this.GetPrimaryKeyString())
        {
            return new Reconciling.TxCheck(false, "no running lane host for this node");
        }

        var served = host.RouteIds;
        var missing = lanes.Where(l => !served.Contains(l.RouteId)).Select(l => l.Name).ToList();
        var extra = served.Except(lanes.Select(l => l.RouteId)).ToList();
        if (missing.Count > 0 || extra.Count > 0)
        {
            return new Reconciling.TxCheck(false, $"the lane host's table differs from the plan: missing [{string.Join(", ", missing)}], extra route ids [{string.Join(", ", extra)}]");
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = (await host.ProbeAsync(lanes, ProbeBudget)).Select(f => $"{f.Lane.Name} ({f.Lane.Kind}): {f.Why}").ToList();
        if (failures.Count > 0)
        {
            return new Reconciling.TxCheck(false, string.Join("; ", failures));
        }

        var probed = $"{lanes.Count} lane(s) answered a probe frame ({clock.Elapsed.TotalMilliseconds:0.0} ms)";
        if (RequestContext.Get(SkipSloGates) is true)
        {
            return new Reconciling.TxCheck(true, $"{probed}; SLO gates skipped (a rollback)");
        }

        // SLO gates (observability.md): after the probes, under live traffic, on the lanes this transaction changed.
        var (breaches, note) = await host.GateAsync(LaneTarget.Changed(lanes, ledger.PreviousTarget));
        return breaches.Count == 0
            ? new Reconciling.TxCheck(true, note.Length == 0 ? probed : $"{probed}; {note}")
            : new Reconciling.TxCheck(false, $"SLO breached: {string.Join("; ", breaches)}");
    }

    public Task<Reconciling.ParticipantLedgerView> Ledger() => Task.FromResult(_ledger.View());
}

/// <summary>The registration rule, outside the grain so tests call it directly.</summary>
public static class NodeRegistration
{
    public static NodeRecord Apply(NodeRecord? previous, NodeFacts facts, DateTimeOffset now) =>
        previous is null
            ? new NodeRecord(facts, now, now, 1)
            : previous with { Facts = facts, LastRegistered = now, Registrations = previous.Registrations + 1 };
}

/// <summary>Persisted state of the node directory.</summary>
[GenerateSerializer, Alias("rtt.NodeDirectoryState")]
public sealed class NodeDirectoryState
{
    [Id(0)]
    public List<string> NodeIds { get; set; } = [];
}

public sealed class NodeDirectoryGrain(
    [PersistentState("node-directory", RttStorage.Name)] IPersistentState<NodeDirectoryState> state) : Grain, INodeDirectoryGrain
{
    public async Task Add(string nodeId)
    {
        var index = state.State.NodeIds.BinarySearch(nodeId, StringComparer.Ordinal);
        if (index >= 0)
        {
            return; // already listed: no write
        }

        state.State.NodeIds.Insert(~index, nodeId); // kept sorted so listings are deterministic
        await state.WriteStateAsync();
    }

    public Task<ImmutableArray<string>> List() => Task.FromResult(state.State.NodeIds.ToImmutableArray());

    public async Task<ImmutableArray<NodeRecord>> Records()
    {
        // The node grains are asked together, inside the cluster (grain to grain), not one client round trip each.
        var records = await Task.WhenAll(state.State.NodeIds.Select(id => GrainFactory.GetGrain<INodeGrain>(id).Get()));
        return [.. records.OfType<NodeRecord>()];
    }
}
