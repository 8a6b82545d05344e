using System.Collections.Immutable;
using System.Text;
using System.Text.Json.Nodes;
using Orleans.Concurrency;
using Orleans.Runtime;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Planning;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;

namespace Rtt.Grains.Planning;

[StatelessWorker]
public sealed class PlannerGrain(RttWorkspace workspace) : Grain, IPlannerGrain
{
    public async Task<PlanInfo> Compute()
    {
        var store = new PlanStore(workspace);
        var inputs = PlanInputs.Load(workspace, store.Applied());
        using var key = workspace.LoadSigningKey();
        var plan = Planner.Seal(Planner.Compute(inputs).Body, key);
        store.Save(plan);
        return await GrainFactory.GetGrain<IPlanGrain>((string)plan["plan_id"]!).Propose(plan.ToJsonString());
    }
}

[GenerateSerializer, Alias("rtt.PlanState")]
public sealed class PlanState
{
    [Id(0)]
    public string? Json { get; set; }

    [Id(1)]
    public string Status { get; set; } = PlanLifecycle.Proposed;

    [Id(2)]
    public List<PlanStatusChange> History { get; set; } = [];
}

public sealed class PlanGrain(
    [PersistentState("plan", RttStorage.Name)] IPersistentState<PlanState> state,
    RttWorkspace workspace,
    TimeProvider time) : Grain, IPlanGrain
{
    public async Task<PlanInfo> Propose(string planJson)
    {
        var key = this.GetPrimaryKeyString();
        var plan = CanonicalJson.ParseNode(Encoding.UTF8.GetBytes(planJson), key) as JsonObject
            ?? throw new RttException(ErrorCodes.PlanMismatch, "a plan must be a JSON object", key, "send the plan file's content");
        var id = Planner.PlanId(plan);
        if (id != key || (string?)plan["plan_id"] != key)
        {
            throw new RttException(ErrorCodes.PlanMismatch, $"plan hashes to {id}, not {key}", key, "the plan was changed after it was made");
        }

        workspace.LoadTrustStore().Verify(plan, key); // only signed plans from trusted keys are kept
        var canonical = Encoding.UTF8.GetString(CanonicalJson.Serialize(plan));
        if (state.State.Json is null)
        {
            state.State.Json = canonical;
            state.State.History.Add(new PlanStatusChange(PlanLifecycle.Proposed, "computed", time.GetUtcNow()));
            await state.WriteStateAsync();
        }

        return Info();
    }

    public Task<PlanInfo?> Get() => Task.FromResult(state.State.Json is null ? null : Info());

    public async Task<PlanInfo> SetStatus(string status, string reason)
    {
        var key = this.GetPrimaryKeyString();
        if (state.State.Json is null)
        {
            throw new RttException(ErrorCodes.NotFound, "no such plan", key, "propose it first");
        }

        if (state.State.Status == status)
        {
            return Info(); // idempotent: the same move twice is one move
        }

        PlanLifecycle.Check(key, state.State.Status, status);
        state.State.Status = status;
        state.State.History.Add(new PlanStatusChange(status, reason, time.GetUtcNow()));
        await state.WriteStateAsync();
        return Info();
    }

    private PlanInfo Info() => new(this.GetPrimaryKeyString(), state.State.Json!, state.State.Status, [.. state.State.History]);
}
