using System.Collections.Immutable;

namespace Rtt.Grains.Planning;

/// <summary>Computes plans for client apps from the silo's workspace (stateless: any silo can serve it).</summary>
[Alias("rtt.IPlannerGrain")]
public interface IPlannerGrain : IGrainWithIntegerKey
{
    /// <summary>Computes, signs and stores a plan against the applied plan (or none); registers it as proposed.</summary>
    [Alias("Compute")]
    Task<PlanInfo> Compute();
}

/// <summary>A signed plan (key: its <c>plan_id</c>) and its status: proposed, applying, applied, rolled-back, superseded.</summary>
[Alias("rtt.IPlanGrain")]
public interface IPlanGrain : IGrainWithStringKey
{
    /// <summary>Stores the plan as proposed, after checking its id and signature. Idempotent for the same plan.</summary>
    [Alias("Propose")]
    Task<PlanInfo> Propose(string planJson);

    [Alias("Get")]
    Task<PlanInfo?> Get();

    /// <summary>Moves the plan to another status (allowed moves only), with the reason recorded.</summary>
    [Alias("SetStatus")]
    Task<PlanInfo> SetStatus(string status, string reason);
}

[GenerateSerializer, Immutable, Alias("rtt.PlanInfo")]
public sealed record PlanInfo(
    [property: Id(0)] string PlanId,
    [property: Id(1)] string Json,
    [property: Id(2)] string Status,
    [property: Id(3)] ImmutableArray<PlanStatusChange> History);

[GenerateSerializer, Immutable, Alias("rtt.PlanStatusChange")]
public sealed record PlanStatusChange([property: Id(0)] string Status, [property: Id(1)] string Reason, [property: Id(2)] DateTimeOffset At);
