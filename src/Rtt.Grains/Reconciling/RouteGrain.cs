using System.Text.Json.Nodes;
using Orleans.Runtime;
using Rtt.Core.Reconciling;
using Rtt.Grains.Nodes;

namespace Rtt.Grains.Reconciling;

[GenerateSerializer, Alias("rtt.RouteState")]
public sealed class RouteState
{
    [Id(0)] public LedgerState Ledger { get; set; } = new();
}

/// <summary>A route participant: validates its lane spec, reserves it, applies it on commit.</summary>
public sealed class RouteGrain([PersistentState("route", RttStorage.Name)] IPersistentState<RouteState> state) : Grain, IRouteGrain
{
    public async Task<TxVote> Prepare(long tx, string planId, string? target)
    {
        var (vote, changed) = TxLedger.Prepare(state.State.Ledger, tx, planId, target, Validate);
        if (changed)
        {
            await state.WriteStateAsync();
        }

        return vote;
    }

    /// <summary>A route's target must name this route and a known lane kind.</summary>
    private string? Validate(string? target)
    {
        if (target is null)
        {
            return null;
        }

        var spec = JsonNode.Parse(target) as JsonObject;
        var key = PlanTargets.RouteKey((string?)spec?["from"] ?? "", (string?)spec?["to"] ?? "");
        if (key != this.GetPrimaryKeyString())
        {
            return $"the target is for route {key}";
        }

        return (string?)spec!["kind"] is "shm" or "uds" or "tcp" ? null : $"unknown lane kind \"{spec["kind"]}\"";
    }

    public async Task Commit(long tx, string planId, string? target)
    {
        if (TxLedger.Commit(state.State.Ledger, tx, planId, target))
        {
            await state.WriteStateAsync();
        }
    }

    public async Task Abort(long tx)
    {
        if (TxLedger.Abort(state.State.Ledger, tx))
        {
            await state.WriteStateAsync();
        }
    }

    public Task<TxCheck> Verify(long tx) => Task.FromResult(state.State.Ledger.AppliedTx >= tx
        ? new TxCheck(true, "applied")
        : new TxCheck(false, $"transaction {tx} is not applied here"));

    public Task<ParticipantLedgerView> Ledger() => Task.FromResult(state.State.Ledger.View());
}
