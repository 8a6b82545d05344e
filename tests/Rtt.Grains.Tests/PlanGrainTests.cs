using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Planning;
using Rtt.Grains.Planning;

namespace Rtt.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class PlanGrainTests(ClusterFixture fixture)
{
    private JsonObject SignedPlan(string marker)
    {
        using var key = fixture.Workspace.LoadSigningKey();
        var body = new JsonObject
        {
            ["base"] = null,
            ["inputs"] = "sha256:" + new string('0', 64),
            ["lanes"] = new JsonArray(),
            ["moves"] = new JsonArray(),
            ["placement"] = new JsonObject { [$"rtt://t/x/{marker}"] = "node0" },
            ["rejected"] = new JsonArray(),
            ["routes_add"] = new JsonArray(),
            ["routes_remove"] = new JsonArray(),
        };
        return Planner.Seal(body, key);
    }

    [Fact]
    public async Task A_plan_goes_through_its_lifecycle_and_refuses_illegal_moves()
    {
        var plan = SignedPlan(Guid.NewGuid().ToString("N"));
        var id = (string)plan["plan_id"]!;
        var grain = fixture.Cluster.Client.GetGrain<IPlanGrain>(id);
        Assert.Null(await grain.Get());
        var proposed = await grain.Propose(plan.ToJsonString());
        Assert.Equal(PlanLifecycle.Proposed, proposed.Status);
        Assert.Equal(proposed, await grain.Propose(plan.ToJsonString()) with { History = proposed.History });

        Assert.Equal(PlanLifecycle.Applying, (await grain.SetStatus(PlanLifecycle.Applying, "2pc prepare")).Status);
        var applied = await grain.SetStatus(PlanLifecycle.Applied, "committed");
        Assert.Equal([PlanLifecycle.Proposed, PlanLifecycle.Applying, PlanLifecycle.Applied], applied.History.Select(h => h.Status));

        var ex = await Assert.ThrowsAsync<RttGrainException>(() => grain.SetStatus(PlanLifecycle.Proposed, "oops"));
        Assert.Equal(ErrorCodes.PlanStatusInvalid, ex.Code);

        await fixture.Cluster.Client.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);
        Assert.Equal(PlanLifecycle.Applied, (await grain.Get())!.Status); // persisted
    }

    [Fact]
    public async Task Tampered_or_misfiled_plans_are_refused()
    {
        var plan = SignedPlan(Guid.NewGuid().ToString("N"));
        var id = (string)plan["plan_id"]!;
        var tampered = (JsonObject)plan.DeepClone();
        tampered["placement"]!.AsObject().Add("rtt://t/x/extra", "node1");
        var ex = await Assert.ThrowsAsync<RttGrainException>(() => fixture.Cluster.Client.GetGrain<IPlanGrain>(id).Propose(tampered.ToJsonString()));
        Assert.Equal(ErrorCodes.PlanMismatch, ex.Code);

        var other = SignedPlan(Guid.NewGuid().ToString("N"));
        var misfiled = await Assert.ThrowsAsync<RttGrainException>(() => fixture.Cluster.Client.GetGrain<IPlanGrain>(id).Propose(other.ToJsonString()));
        Assert.Equal(ErrorCodes.PlanMismatch, misfiled.Code);
    }

    [Fact]
    public async Task The_planner_grain_computes_a_signed_plan_for_the_workspace()
    {
        var info = await fixture.Cluster.Client.GetGrain<IPlannerGrain>(0).Compute();
        Assert.Equal(PlanLifecycle.Proposed, info.Status);
        var plan = JsonNode.Parse(info.Json)!.AsObject();
        Assert.Equal(info.PlanId, Planner.PlanId(plan));
        Assert.True(File.Exists(new PlanStore(fixture.Workspace).PathOf(info.PlanId)));
        Assert.Equal(info.PlanId, (await fixture.Cluster.Client.GetGrain<IPlannerGrain>(0).Compute()).PlanId); // deterministic
    }
}
