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
    Rtt.Reconciling.IFaultPoints faults,
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

    private string LedgerKey => Rtt.Reconciling.PlanTargets.NodePrefix + this.GetPrimaryKeyString();

    /// <summary>How often an activation off its node's silo looks whether that silo is up again (and then moves there).</summary>
    internal static readonly TimeSpan PlacementCheckPeriod = TimeSpan.FromSeconds(2);

    private IClusterMembershipService? Membership { get; } = services.GetService(typeof(IClusterMembershipService)) as IClusterMembershipService;

    private Orleans.Runtime.MembershipService.SiloMetadata.ISiloMetadataCache? SiloMetadata { get; } =
        services.GetService(typeof(Orleans.Runtime.MembershipService.SiloMetadata.ISiloMetadataCache)) as Orleans.Runtime.MembershipService.SiloMetadata.ISiloMetadataCache;

    private SiloAddress? LocalSilo { get; } = (services.GetService(typeof(ILocalSiloDetails)) as ILocalSiloDetails)?.SiloAddress;

    /// <summary>This activation runs next to its node's lane host (on the silo of its node).</summary>
    private bool OnOwnSilo => Lanes is { } l && l.NodeId == this.GetPrimaryKeyString();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _ledger = await ledgers.ReadAsync(LedgerKey) ?? state.State.Ledger; // a node that applied plans before the move keeps them
        if (OnOwnSilo && Lanes is { Running: true } host && _ledger.AppliedTarget is not null)
        {
            await host.ServeAsync(await Resolve(Parsed(_ledger.AppliedTarget))); // moved back to its silo: the applied lanes (idempotent)
        }

        if (state.State.Record is not null)
        {
            await Pushed(); // where it runs now (a registered node: the directory lists only those)
        }

        if (Lanes is not null && !OnOwnSilo)
        {
            // Placed here while the node's silo was down (or not yet known here): move to it as soon as it is up, so plans
            // that change this node do not abort for want of its lane host. A timer that does not keep the grain alive.
            this.RegisterGrainTimer(_ => { MoveIfOwnSiloIsUp(); return Task.CompletedTask; }, (object?)null,
                new GrainTimerCreationOptions { DueTime = PlacementCheckPeriod, Period = PlacementCheckPeriod, KeepAlive = false, Interleave = true });
        }
    }

    /// <summary>
    /// The silo serving this node, when it is up and is not this one: the activation then migrates (Orleans' live
    /// migration, placed again by <see cref="NodeSiloPlacementDirector"/>, which picks that silo). True when it asked to move.
    /// </summary>
    private bool MoveIfOwnSiloIsUp()
    {
        if (Membership is not { } membership || LocalSilo is not { } local)
        {
            return false;
        }

        var snapshot = membership.CurrentSnapshot;
        var own = NodeSilos.Find(this.GetPrimaryKeyString(), snapshot.Members.Keys, snapshot, SiloMetadata);
        if (own is null || own.Equals(local))
        {
            return false;
        }

        this.MigrateOnIdle();
        return true;
    }

    /// <summary>
    /// Fills in where each forwarded lane goes (<see cref="LaneTarget.ForwardTo"/>), from what the target node registered:
    /// its lane control socket when it runs on this host and the plan gave the route a <c>uds</c> lane; its TCP lane address
    /// (<c>tcp://host:port</c>) for a <c>tcp</c> lane (the planner's lane across hosts) or a node on another host. A node
    /// that never registered, or has neither, is left unresolved: the lane host then answers that route's calls and
    /// probes with the reason.
    /// </summary>
    private async Task<IReadOnlyList<LaneTarget>> Resolve(IReadOnlyList<LaneTarget> lanes)
    {
        if (!lanes.Any(l => l.Forward is not null))
        {
            return lanes;
        }

        var here = state.State.Record?.Facts.HostName;
        var resolved = new List<LaneTarget>(lanes.Count);
        foreach (var lane in lanes)
        {
            if (lane.Forward is not { } node)
            {
                resolved.Add(lane);
                continue;
            }

            var facts = (await GrainFactory.GetGrain<INodeGrain>(node).Get())?.Facts;
            resolved.Add(lane with { ForwardTo = ForwardAddress(lane.Kind, facts, here) });
        }

        return resolved;
    }

    /// <summary>Where a forwarded lane of this kind reaches the target node (see <see cref="Resolve"/>); null when nowhere.</summary>
    public static string? ForwardAddress(string kind, NodeFacts? facts, string? here)
    {
        var local = facts is { LaneSocket: { Length: > 0 } } && string.Equals(facts.HostName, here, StringComparison.Ordinal);
        var tcp = facts is { LaneTcp: { Length: > 0 } address } ? $"tcp://{address}" : null;
        return kind == "tcp" ? tcp ?? (local ? facts!.LaneSocket : null) : local ? facts!.LaneSocket : tcp;
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // Not when the silo stops: the directory goes with it when it is on this silo, and one on another silo reads every
        // node again when the membership changes. (Telling it then only logged placement retries for a grain that is gone.)
        if (state.State.Record is not null && reason.ReasonCode != DeactivationReasonCode.ShuttingDown)
        {
            // The directory drops this node's snapshot, so the next status call asks the node (activating it where it is placed now).
            await Tell(d => d.Gone(this.GetPrimaryKeyString()));
        }
    }

    /// <summary>Pushes this node's snapshot to the directory (what status shows), after anything that changes it.</summary>
    private Task Pushed() => Tell(d => d.Changed(new NodeSnapshot(state.State.Record, CurrentPlacement())));

    /// <summary>
    /// A call to the directory that cannot fail the caller's operation: when it does not get through (the directory's silo
    /// is going away), the directory reads every node again on its next status call anyway (membership changed, or its
    /// snapshots are older than <see cref="NodeDirectoryGrain.HostsTtl"/>).
    /// </summary>
    private async Task Tell(Func<INodeDirectoryGrain, Task> call)
    {
        try
        {
            await call(GrainFactory.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey)).WaitAsync(DirectoryBudget);
        }
        catch (Exception ex) when (ex is TimeoutException or OrleansException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    /// <summary>How long a node grain waits for the directory to take its snapshot.</summary>
    internal static readonly TimeSpan DirectoryBudget = TimeSpan.FromSeconds(2);

    public Task<NodePlacement> Placement() => Task.FromResult(CurrentPlacement());

    public Task<NodeSnapshot> Snapshot() => Task.FromResult(new NodeSnapshot(state.State.Record, CurrentPlacement()));

    // The lane list of the applied target, kept until the target changes: status asks for it on every call.
    private (string? Target, ImmutableArray<string> Lanes) _laneView;

    private NodePlacement CurrentPlacement()
    {
        var local = LocalSilo;
        var siloNode = local is null ? "" : NodeSilos.NodeOf(local, Lanes?.NodeId, SiloMetadata);
        var target = _ledger.AppliedTarget;
        if (_laneView.Lanes.IsDefault || !string.Equals(_laneView.Target, target, StringComparison.Ordinal))
        {
            _laneView = (target, Parsed(target).OrderBy(l => l.RouteId).Select(l => l.Forward is { } to ? $"{l.To} {l.Kind} -> {to}" : $"{l.To} {l.Kind}").ToImmutableArray());
        }

        return new NodePlacement(this.GetPrimaryKeyString(), local?.ToString() ?? "", siloNode, OnOwnSilo, _ledger.AppliedPlan, _laneView.Lanes,
            OnOwnSilo && Lanes is { Running: true } host ? host.RouteIds.Count : -1);
    }

    /// <summary>
    /// The lanes of a node target, parsed once per target text: a transaction reads the same target in prepare,
    /// commit and verify (and the previous one in verify), which at 1,000 lanes is 180 KiB of JSON each time.
    /// </summary>
    private IReadOnlyList<LaneTarget> Parsed(string? target)
    {
        if (target is null)
        {
            return [];
        }

        foreach (var (text, lanes) in _parsed)
        {
            if (string.Equals(text, target, StringComparison.Ordinal))
            {
                return lanes;
            }
        }

        var parsed = LaneTarget.Of(target);
        _parsed.Insert(0, (target, parsed));
        if (_parsed.Count > 3)
        {
            _parsed.RemoveAt(3);
        }

        return parsed;
    }

    private readonly List<(string Text, IReadOnlyList<LaneTarget> Lanes)> _parsed = new(4);

    /// <summary>
    /// Puts the lanes of a target this grain received (typed, over the wire) in the cache under its ledger text, so that
    /// what the ledger now holds is not parsed again. The text is the target's own: a prepare reserves the target it
    /// carries, and a commit of transaction t applies t's reservation, made from the same decided target it carries.
    /// </summary>
    private void Remember(Reconciling.NodeTarget? target, string? text, IReadOnlyList<LaneTarget>? lanes = null)
    {
        if (target is null || text is null || _parsed.Exists(p => string.Equals(p.Text, text, StringComparison.Ordinal)))
        {
            return;
        }

        _parsed.Insert(0, (text, lanes ?? LaneTarget.Of(target)));
        if (_parsed.Count > 3)
        {
            _parsed.RemoveAt(3);
        }
    }

    private Task PersistLedger() => ledgers.WriteAsync(LedgerKey, _ledger);

    public async Task<NodeRecord> Register(NodeFacts facts)
    {
        var key = this.GetPrimaryKeyString();
        if (!string.Equals(facts.NodeId, key, StringComparison.Ordinal))
        {
            throw new ArgumentException($"facts for node \"{facts.NodeId}\" sent to node grain \"{key}\"", nameof(facts));
        }

        if (state.State.Record is { } old && TakenBy(old.Facts.SiloAddress, facts.SiloAddress) is { } active)
        {
            throw new Rtt.Core.Errors.RttException(Rtt.Core.Errors.ErrorCodes.ClusterNodeTaken,
                $"node {key} is already registered by silo {active}, which is active: two silos cannot serve one node", key,
                "give this silo another --node-id (one silo per node), or stop the other silo first");
        }

        state.State.Record = NodeRegistration.Apply(state.State.Record, facts, time.GetUtcNow());
        await state.WriteStateAsync();
        await GrainFactory.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey).Add(key);
        await Pushed();
        RttMetrics.NodeRegistrations.Add(1);
        return state.State.Record; // the silo then calls ServeLanes, which restores the applied lanes
    }

    /// <summary>
    /// The registered silo's address when it is another silo (another endpoint; a restart at the same endpoint is the same
    /// silo, whatever its generation) that membership still lists as active; null when the registration may proceed.
    /// </summary>
    private string? TakenBy(string registered, string registering)
    {
        if (string.Equals(Endpoint(registered), Endpoint(registering), StringComparison.Ordinal)
            || services.GetService(typeof(IClusterMembershipService)) is not IClusterMembershipService membership)
        {
            return null;
        }

        return membership.CurrentSnapshot.Members.Values.Any(m => m.Status == SiloStatus.Active && m.SiloAddress.ToString() == registered) ? registered : null;
    }

    /// <summary>"S127.0.0.1:11111:123456" (address, port, generation) to "S127.0.0.1:11111".</summary>
    internal static string Endpoint(string siloAddress) => siloAddress.LastIndexOf(':') is var at and > 0 ? siloAddress[..at] : siloAddress;

    public async Task<bool> ServeLanes()
    {
        if (Lanes is not { } lanes)
        {
            return true; // silos without lanes: nothing to serve
        }

        if (lanes.NodeId != this.GetPrimaryKeyString())
        {
            // Placed while the node's silo was down: migrate to it when this silo sees it up; until then the caller asks again.
            MoveIfOwnSiloIsUp();
            return false;
        }

        if (lanes.Running)
        {
            await lanes.ServeAsync(await Resolve(Parsed(_ledger.AppliedTarget)));
            await Pushed(); // how many lanes it serves
        }

        return true;
    }

    public Task<NodeRecord?> Get() => Task.FromResult(state.State.Record);

    /// <summary>The vote and the reservation are kept in memory and persisted with the commit or abort (<see cref="Reconciling.TxLedger"/>).</summary>
    public Task<Reconciling.TxVote> Prepare(long tx, string planId, Reconciling.ParticipantTarget? target)
    {
        IReadOnlyList<LaneTarget>? lanes = null; // made by the check, kept for the cache: not made twice
        var (vote, changed) = Reconciling.TxLedger.Prepare(_ledger, tx, planId, target, t => CanServe(t, out lanes));
        if (changed)
        {
            Remember(target as Reconciling.NodeTarget, _ledger.ReservedTarget, lanes);
        }

        return Task.FromResult(vote);
    }

    /// <summary>A node can take lanes when it is registered and this activation runs on its silo, next to a running lane host.</summary>
    private string? CanServe(Reconciling.ParticipantTarget? target, out IReadOnlyList<LaneTarget>? lanes)
    {
        lanes = null;
        var key = this.GetPrimaryKeyString();
        if (target is null)
        {
            return null; // releasing
        }

        if (target is not Reconciling.NodeTarget node)
        {
            return $"a node takes a node target, not a {target.GetType().Name}";
        }

        if (node.Node != key)
        {
            return $"the target is for node {node.Node}";
        }

        lanes = LaneTarget.Of(node);
        if (lanes.Count == 0)
        {
            return null; // nothing to serve
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
            { Strict: true } => LaneTarget.SandboxRefusal(lanes) is { } why ? $"{Rtt.Core.Errors.ErrorCodes.SandboxRequired}: {why}" : null,
            _ => null,
        };
    }

    public async Task Commit(long tx, string planId, Reconciling.ParticipantTarget? target)
    {
        var changed = Reconciling.TxLedger.Commit(_ledger, tx, planId, target);
        var serving = false;
        try
        {
            if (changed)
            {
                Remember(target as Reconciling.NodeTarget, _ledger.AppliedTarget);
                await PersistLedger();
            }

            await faults.HitAsync(Rtt.Reconciling.FaultPoints.MidApply, this.GetPrimaryKeyString());
            if (Lanes is { Running: true } lanes && lanes.NodeId == this.GetPrimaryKeyString())
            {
                serving = true;
                await lanes.ServeAsync(await Resolve(Parsed(_ledger.AppliedTarget))); // idempotent: a repeated commit swaps to the same table
            }
        }
        finally
        {
            if ((changed || serving) && state.State.Record is not null)
            {
                await Pushed(); // the applied plan and its lanes, as status shows them (also when the commit failed half-way)
            }
        }
    }

    public async Task Abort(long tx)
    {
        if (Reconciling.TxLedger.Abort(_ledger, tx))
        {
            await PersistLedger();
        }
    }

    /// <summary>Every lane of the applied target is in the host's table, the host serves nothing else, and every lane the transaction changed answers a probe frame end to end.</summary>
    public async Task<Reconciling.TxCheck> Verify(long tx)
    {
        var ledger = _ledger;
        if (ledger.AppliedTx < tx)
        {
            return new Reconciling.TxCheck(false, $"transaction {tx} is not applied on node {this.GetPrimaryKeyString()}");
        }

        var lanes = Parsed(ledger.AppliedTarget);
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

        // Probes and SLO gates judge what this transaction changed (new lanes and lanes whose spec changed): the
        // others answered the probe of the transaction that brought them in, and the table check above covers them
        // all. A single-route change on a node with 1,000 lanes probes one lane, not 1,000.
        var changed = ledger.PreviousTarget is null ? lanes : LaneTarget.Changed(lanes, Parsed(ledger.PreviousTarget)); // as LaneTarget.Changed, on the parsed targets

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = (await host.ProbeAsync(changed, ProbeBudget)).Select(f => $"{f.Lane.Name} ({f.Lane.Kind}): {f.Why}").ToList();
        if (failures.Count > 0)
        {
            return new Reconciling.TxCheck(false, string.Join("; ", failures));
        }

        var probed = $"{changed.Count} changed lane(s) of {lanes.Count} answered a probe frame ({clock.Elapsed.TotalMilliseconds:0.0} ms)";
        if (RequestContext.Get(SkipSloGates) is true)
        {
            return new Reconciling.TxCheck(true, $"{probed}; SLO gates skipped (a rollback)");
        }

        // SLO gates (observability.md): after the probes, under live traffic, on the lanes this transaction changed.
        var (breaches, note) = await host.GateAsync(changed);
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
    [PersistentState("node-directory", RttStorage.Name)] IPersistentState<NodeDirectoryState> state, IServiceProvider services) : Grain, INodeDirectoryGrain
{
    public async Task Add(string nodeId)
    {
        var index = state.State.NodeIds.BinarySearch(nodeId, StringComparer.Ordinal);
        if (index >= 0)
        {
            return; // already listed: no write
        }

        state.State.NodeIds.Insert(~index, nodeId); // kept sorted so listings are deterministic
        _status = null;
        await state.WriteStateAsync();
    }

    public Task<ImmutableArray<string>> List() => Task.FromResult(state.State.NodeIds.ToImmutableArray());

    /// <summary>
    /// How long what <see cref="Status"/> shows is kept at most while this silo's membership version stays the same: the
    /// membership entries, and the node snapshots (which the node grains also push here when they change).
    /// </summary>
    internal static readonly TimeSpan HostsTtl = TimeSpan.FromSeconds(1);

    private IClusterMembershipService? Membership { get; } = services.GetService(typeof(IClusterMembershipService)) as IClusterMembershipService;

    private Orleans.Runtime.MembershipService.SiloMetadata.ISiloMetadataCache? SiloMetadata { get; } =
        services.GetService(typeof(Orleans.Runtime.MembershipService.SiloMetadata.ISiloMetadataCache)) as Orleans.Runtime.MembershipService.SiloMetadata.ISiloMetadataCache;

    // What Status shows, kept between calls: the membership entries and every node's snapshot, read together at most every
    // HostsTtl and again whenever this silo's membership version changes; in between, a node grain pushes its snapshot here
    // when it changes (registration, activation, commit, serving its lanes) and says when it deactivates, so a status call
    // is answered from memory with what a fan-out would have returned. The silos' metadata is read on every call (it may
    // arrive after the membership change that brought a silo).
    private (MembershipVersion Version, long At, ImmutableArray<MembershipEntry> Entries)? _hosts;
    private readonly Dictionary<string, NodeSnapshot> _snapshots = new(StringComparer.Ordinal);
    private long _pushes; // snapshots pushed or dropped: a fan-out that raced one of them is not kept
    private (ImmutableArray<SiloView> Silos, ClusterStatusView Status)? _status; // the answer built from the above, until any of it changes

    /// <summary>A membership entry as the management grain reports it.</summary>
    private sealed record MembershipEntry(string Name, string Address, string Status, string HostName, DateTime Started, int ProxyPort);

    public Task<ClusterStatusView> Status()
    {
        var version = Membership?.CurrentSnapshot.Version;
        if (_status is not { } kept || _hosts is not { } hosts || version is not { } v || hosts.Version != v || System.Diagnostics.Stopwatch.GetElapsedTime(hosts.At) >= HostsTtl
            || !state.State.NodeIds.TrueForAll(_snapshots.ContainsKey))
        {
            return BuildStatus(version);
        }

        var silos = Silos();
        if (silos != kept.Silos && !silos.SequenceEqual(kept.Silos)) // the same kept list, or one made again with the same silos
        {
            kept = (silos, kept.Status with { Members = Members(hosts.Entries, silos) });
            _status = kept;
        }

        return Task.FromResult(kept.Status);
    }

    private async Task<ClusterStatusView> BuildStatus(MembershipVersion? version)
    {
        var fresh = _hosts is not { } cached || version is not { } v || cached.Version != v || System.Diagnostics.Stopwatch.GetElapsedTime(cached.At) >= HostsTtl;
        if (fresh)
        {
            _snapshots.Clear(); // membership changed or the entries are old: ask every node again, not only those not heard of
            _pushes++;
        }

        var hosts = Hosts(version, fresh);
        var missing = state.State.NodeIds.Where(id => !_snapshots.ContainsKey(id)).ToList();
        var pushes = _pushes;
        var asked = await Task.WhenAll(missing.Select(id => GrainFactory.GetGrain<INodeGrain>(id).Snapshot()));
        var all = new Dictionary<string, NodeSnapshot>(_snapshots, StringComparer.Ordinal);
        for (var i = 0; i < missing.Count; i++)
        {
            all[missing[i]] = asked[i];
        }

        var snapshots = state.State.NodeIds.Where(all.ContainsKey).Select(id => all[id]).ToList(); // node id order
        var entries = await hosts;
        var silos = Silos();
        var status = new ClusterStatusView(Members(entries, silos), [.. snapshots.Select(s => s.Record).OfType<NodeRecord>()], [.. snapshots.Select(s => s.Placement)]);
        if (pushes == _pushes && version is not null)
        {
            // Nothing was pushed while the nodes answered: what they said is current.
            for (var i = 0; i < missing.Count; i++)
            {
                _snapshots[missing[i]] = asked[i];
            }

            _status = (silos, status);
        }

        return status;
    }

    /// <summary>The membership entries with the silos' metadata, by name then address (what <c>rtt status</c> lists).</summary>
    private static ImmutableArray<MemberView> Members(ImmutableArray<MembershipEntry> entries, ImmutableArray<SiloView> silos) =>
        [.. entries
            .Select(h => silos.FirstOrDefault(s => string.Equals(s.Address, h.Address, StringComparison.Ordinal)) is { } s
                ? new MemberView(h.Name, h.Address, h.Status, s.Host.Length > 0 ? s.Host : h.HostName, h.Started, h.ProxyPort, s.Numa, s.Node)
                : new MemberView(h.Name, h.Address, h.Status, h.HostName, h.Started, h.ProxyPort, "", ""))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ThenBy(m => m.Address, StringComparer.Ordinal)];

    public Task Changed(NodeSnapshot snapshot)
    {
        _snapshots[snapshot.Placement.NodeId] = snapshot;
        _pushes++;
        _status = null;
        return Task.CompletedTask;
    }

    public Task Gone(string nodeId)
    {
        _snapshots.Remove(nodeId);
        _pushes++;
        _status = null;
        return Task.CompletedTask;
    }

    private async Task<ImmutableArray<MembershipEntry>> Hosts(MembershipVersion? version, bool fresh)
    {
        if (!fresh && _hosts is { } cached)
        {
            return cached.Entries;
        }

        var at = System.Diagnostics.Stopwatch.GetTimestamp();
        var entries = await GrainFactory.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: true);
        ImmutableArray<MembershipEntry> hosts = [.. entries.Select(h => new MembershipEntry(h.SiloName, h.SiloAddress.ToString(), h.Status.ToString(), h.HostName, h.StartTime, h.ProxyPort))];
        _hosts = version is { } seen ? (seen, at, hosts) : null;
        return hosts;
    }

    public async Task<ClusterView> View()
    {
        // One call per node for both its record and its placement, all in flight together.
        var snapshots = await Task.WhenAll(state.State.NodeIds.Select(id => GrainFactory.GetGrain<INodeGrain>(id).Snapshot()));
        return ViewOf(snapshots);
    }

    /// <summary>The active silos with their metadata, and the nodes' records and placements, from snapshots in node id order.</summary>
    private ClusterView ViewOf(IReadOnlyList<NodeSnapshot> snapshots)
    {
        ImmutableArray<NodeRecord> records = [.. snapshots.Select(s => s.Record).OfType<NodeRecord>()];
        return new ClusterView(Silos(), records, [.. snapshots.Select(s => s.Placement).OrderBy(p => p.NodeId, StringComparer.Ordinal)]);
    }

    /// <summary>The active silos this silo knows of, with their metadata, by address.</summary>
    /// <summary>
    /// The active silos with their metadata, kept while the membership version stays the same once every one of them has
    /// published its metadata (a silo publishes it once, when it starts, and it never changes; until it has arrived here,
    /// the list is made again at every call, so a silo's host, NUMA node and node show from the call after it arrived).
    /// </summary>
    private ImmutableArray<SiloView> Silos()
    {
        if (Membership is not { } membership)
        {
            return [];
        }

        var snapshot = membership.CurrentSnapshot;
        if (_silos is { } kept && kept.Version == snapshot.Version)
        {
            return kept.Silos;
        }

        var metadata = SiloMetadata;
        var active = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).ToList();
        ImmutableArray<SiloView> silos = [.. active
            .Select(m => new SiloView(m.SiloAddress.ToString(), m.Name, NodeSilos.Metadata(m.SiloAddress, metadata, NodeSilos.HostKey),
                NodeSilos.Metadata(m.SiloAddress, metadata, NodeSilos.NumaKey), NodeSilos.NodeOf(m.SiloAddress, m.Name, metadata)))
            .OrderBy(s => s.Address, StringComparer.Ordinal)];
        _silos = metadata is not null && active.TrueForAll(m => metadata.GetSiloMetadata(m.SiloAddress)?.Metadata is { Count: > 0 }) ? (snapshot.Version, silos) : null;
        return silos;
    }

    private (MembershipVersion Version, ImmutableArray<SiloView> Silos)? _silos;

    public async Task<ImmutableArray<NodeRecord>> Records()
    {
        // The node grains are asked together, inside the cluster (grain to grain), not one client round trip each.
        var records = await Task.WhenAll(state.State.NodeIds.Select(id => GrainFactory.GetGrain<INodeGrain>(id).Get()));
        return [.. records.OfType<NodeRecord>()];
    }
}
