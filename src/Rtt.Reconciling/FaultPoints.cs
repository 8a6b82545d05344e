namespace Rtt.Reconciling;

/// <summary>
/// Where a test may stop a transaction: the coordinator and the node grain call <see cref="HitAsync"/> at each
/// point (<see cref="FaultPoints"/> names them). Production wires <see cref="NoFaultPoints"/>; crash tests wire
/// their own (in process) or enable the silo's kill switch (a child process, <see cref="FaultPoints.Variable"/>).
/// </summary>
public interface IFaultPoints
{
    /// <summary>Called with the point and its detail (the plan id at the coordinator's points, the node id at mid-apply).</summary>
    Task HitAsync(string point, string detail);
}

/// <summary>The production wiring: no fault point does anything.</summary>
public sealed class NoFaultPoints : IFaultPoints
{
    public static readonly NoFaultPoints Instance = new();

    private NoFaultPoints()
    {
    }

    public Task HitAsync(string point, string detail) => Task.CompletedTask;
}

/// <summary>The fault points and the silo's test-only kill switch settings.</summary>
public static class FaultPoints
{
    /// <summary>
    /// Environment variable read once when a silo starts: when it names a point, the silo registers a kill switch
    /// that kills the process (SIGKILL, no clean-up) the first time it reaches that point. Unset in production.
    /// </summary>
    public const string Variable = "RTT_FAULT_KILL_AT";

    /// <summary>With <see cref="Variable"/>: only when the point's detail equals this (a cluster test arms every silo for one plan).</summary>
    public const string WhenVariable = "RTT_FAULT_KILL_WHEN";

    public const string AfterPrepareLogged = "after-prepare-logged";
    public const string AfterVotes = "after-votes";
    public const string AfterCommitDecision = "after-commit-decision";
    public const string MidApply = "mid-apply";
    public const string DuringVerify = "during-verify";
}
