using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Planning;

namespace Rtt.Silo.Nodes;

/// <summary>A cluster member as the down-node tracker sees it.</summary>
/// <param name="Generation">The silo's generation (from its start time): a restarted silo has a newer one.</param>
public sealed record MemberView(string Silo, bool Active, bool Dead, string? Node, int Generation = 0);

/// <summary>
/// Which nodes are down: a node is down once a silo that served it (seen active, with that <c>node</c> metadata) is
/// declared dead and no active silo serves it; it is up again as soon as an active silo serves it. Only silos this
/// process saw active count, so dead entries left in the membership table by earlier runs change nothing.
/// Plain and deterministic: the service below feeds it membership snapshots.
/// </summary>
public sealed class DownNodeTracker
{
    private readonly Dictionary<string, string> _nodeOf = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _down = new(StringComparer.Ordinal);

    /// <summary>The nodes down now, in ordinal order.</summary>
    public IReadOnlyList<string> Down => [.. _down];

    /// <summary>Takes a snapshot in; true when the set of down nodes changed.</summary>
    public bool Observe(IEnumerable<MemberView> members)
    {
        var list = members.ToList();
        string[] before = [.. _down];
        foreach (var m in list.Where(m => m.Active && !string.IsNullOrEmpty(m.Node)))
        {
            _nodeOf[m.Silo] = m.Node!;
        }

        var live = list.Where(m => m.Active && _nodeOf.ContainsKey(m.Silo)).Select(m => _nodeOf[m.Silo]).ToHashSet(StringComparer.Ordinal);
        foreach (var m in list.Where(m => m.Dead))
        {
            if (_nodeOf.TryGetValue(m.Silo, out var node) && !live.Contains(node))
            {
                _down.Add(node);
            }
        }

        _down.RemoveWhere(live.Contains);
        return !_down.SetEquals(before);
    }

    /// <summary>
    /// The one silo that re-plans: the oldest active member (lowest generation, then address; every silo computes the
    /// same). Never a silo that just (re)joined while older ones run: it has not seen the nodes go down.
    /// </summary>
    public static bool Leads(string self, IEnumerable<MemberView> members) =>
        members.Where(m => m.Active).OrderBy(m => m.Generation).ThenBy(m => m.Silo, StringComparer.Ordinal).Select(m => m.Silo).FirstOrDefault() == self;
}

/// <summary>
/// policy.json <c>auto_replan</c> (docs/operations.md, "Losing a silo"): watches cluster membership; when a silo is
/// declared dead (or comes back), the leading survivor computes a plan without the down nodes (their pinned symbols'
/// routes rejected as <c>node-down</c>, the rest placed on the nodes left), signs it with the workspace key and applies
/// it through the reconciler's 2PC like <c>rtt apply</c>. Runs beside the silo, never on a grain turn; a failure is
/// logged and the next membership change tries again.
/// </summary>
public sealed class AutoReplanService(
    IClusterMembershipService membership,
    ILocalSiloDetails local,
    IGrainFactory grains,
    RttWorkspace workspace,
    IServiceProvider services,
    Rtt.Reconciling.Resilience.RttRetryOptions retryOptions,
    ILogger<AutoReplanService> logger) : BackgroundService
{
    private readonly DownNodeTracker _tracker = new();
    private readonly Rtt.Reconciling.Resilience.RetryPolicy retry = new("Retry:AutoReplan", retryOptions.AutoReplan, ex => ex is not Core.Errors.RttException, logger);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var metadata = services.GetService(typeof(ISiloMetadataCache)) as ISiloMetadataCache;
        var self = local.SiloAddress.ToParsableString();
        try
        {
            // Polled once a second rather than on each membership update: a silo's metadata (its node) can reach the
            // metadata cache after the update that made it active, and no further update would come to look again.
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var snapshot = membership.CurrentSnapshot;
                var members = snapshot.Members.Values.Select(m => new MemberView(m.SiloAddress.ToParsableString(), m.Status == SiloStatus.Active,
                    m.Status == SiloStatus.Dead, NodeSilos.Metadata(m.SiloAddress, metadata, NodeSilos.NodeKey) is { Length: > 0 } n ? n : null, m.SiloAddress.Generation)).ToList();
                if (!_tracker.Observe(members) || !DownNodeTracker.Leads(self, members))
                {
                    continue;
                }

                // Right after a silo is declared dead, calls may still be routed to its activations until the grain
                // directory forgets them, and a returning node's grain may not be home yet (the apply aborts in prepare):
                // both are tried again (Retry:AutoReplan). A planning error (RttException) is not: it needs the operator.
                var down = _tracker.Down;
                try
                {
                    await retry.ExecuteAsync($"auto_replan without [{string.Join(", ", down)}]", _ => new ValueTask<string?>(ReplanAsync(down)),
                        again: outcome => outcome == Rtt.Reconciling.ApplyOutcome.Aborted, cancellationToken: stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    logger.LogError("auto_replan: planning without [{Down}] failed: {Error}; the next membership change tries again",
                        string.Join(", ", down), ex is Core.Errors.RttException rtt ? $"{rtt.Code}: {rtt.Message}" : ex.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <returns>The apply's outcome (applied, aborted, rolled-back), or null when nothing was applied.</returns>
    private async Task<string?> ReplanAsync(IReadOnlyList<string> down)
    {
        var reconciler = grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        var history = await reconciler.History();
        var store = new PlanStore(workspace);
        var basePlan = history.AppliedPlanId is { } id ? store.Find(id) ?? store.Applied() : store.Applied();
        var inputs = PlanInputs.Load(workspace, basePlan, down);
        if (!inputs.AutoReplan)
        {
            logger.LogInformation("auto_replan is off (policy.json): nodes down [{Down}] are reported, no plan is made", string.Join(", ", down));
            return null;
        }

        var outcome = Planner.Compute(inputs);
        System.Text.Json.Nodes.JsonObject signed;
        PlanContent? content;
        using (var key = workspace.LoadSigningKey())
        {
            signed = Planner.Seal(outcome, key, out content); // the outcome's body, sealed in place
        }

        var planId = (string)signed["plan_id"]!;
        if (planId == history.AppliedPlanId)
        {
            return null;
        }

        store.Save(signed, PlanStore.FileForm(signed, content));
        logger.LogWarning("auto_replan: nodes down [{Down}]: applying {PlanId} ({Admitted} route(s) placed, {Rejected} rejected)",
            string.Join(", ", down), planId, outcome.Admitted, outcome.Rejected.Count);
        // Canonical bytes with the token as the argument, as rtt apply sends them (this silo takes it so: its own version).
        var report = await reconciler.ApplyUtf8(IReconcilerGrain.PlanUtf8(signed), Grains.ManagementCalls.Token(workspace, Core.Tokens.ManagementTokens.Apply));
        logger.LogWarning("auto_replan: {PlanId} {Outcome}{Reason}", planId, report.Outcome, report.Reason.Length > 0 ? $": {report.Reason}" : "");
        return report.Outcome;
    }
}
