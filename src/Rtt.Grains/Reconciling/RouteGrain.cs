using Rtt.Reconciling;

namespace Rtt.Grains.Reconciling;

/// <summary>
/// A route participant: validates its lane spec, reserves it, applies it on commit. Its ledger is persisted through
/// the silo's <see cref="IParticipantLedgerStore"/> at commit and abort (group-committed: a plan's routes commit in a
/// few transactions); a prepare is answered from memory (<see cref="TxLedger"/>).
/// </summary>
public sealed class RouteGrain(IParticipantLedgerStore store) : Grain, IRouteGrain
{
    private LedgerState _ledger = new();

    public override async Task OnActivateAsync(CancellationToken cancellationToken) =>
        _ledger = await store.ReadAsync(this.GetPrimaryKeyString()) ?? new LedgerState();

    private Task Persist() => store.WriteAsync(this.GetPrimaryKeyString(), _ledger);

    /// <summary>The vote and the reservation are kept in memory and persisted with the commit or abort (<see cref="TxLedger"/>).</summary>
    public Task<TxVote> Prepare(long tx, string planId, ParticipantTarget? target) =>
        Task.FromResult(TxLedger.Prepare(_ledger, tx, planId, target, Validate).Vote);

    /// <summary>A route's target must be a route target naming this route and a known lane kind.</summary>
    private string? Validate(ParticipantTarget? target)
    {
        switch (target)
        {
            case null:
                return null;
            case not RouteTarget:
                return $"a route takes a route target, not a {target.GetType().Name}";
        }

        var route = (RouteTarget)target;
        var key = PlanTargets.RouteKey(route.From, route.To);
        if (key != this.GetPrimaryKeyString())
        {
            return $"the target is for route {key}";
        }

        return route.Kind is "shm" or "uds" or "tcp" ? null : $"unknown lane kind \"{route.Kind}\"";
    }

    public async Task Commit(long tx, string planId, ParticipantTarget? target)
    {
        if (TxLedger.Commit(_ledger, tx, planId, target))
        {
            await Persist();
        }
    }

    public async Task Abort(long tx)
    {
        if (TxLedger.Abort(_ledger, tx))
        {
            await Persist();
        }
    }

    public Task<TxCheck> Verify(long tx) => Task.FromResult(_ledger.AppliedTx >= tx
        ? new TxCheck(true, "applied")
        : new TxCheck(false, $"transaction {tx} is not applied here"));

    public Task<ParticipantLedgerView> Ledger() => Task.FromResult(_ledger.View());
}
