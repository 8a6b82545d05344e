namespace Rtt.Core.Reconciling;

/// <summary>
/// A test-only fault switch: when the environment variable <c>RTT_FAULT_KILL_AT</c> names a point, the process
/// kills itself (SIGKILL, no clean-up) the first time it reaches that point. Read once; unset in production.
/// Points: after-prepare-logged, after-votes, after-commit-decision, mid-apply, during-verify.
/// With <c>RTT_FAULT_KILL_WHEN</c> also set, only when the point's detail (the plan id at the coordinator's points, the
/// node id at mid-apply) equals it: a cluster test arms every silo for one plan, and only the silo that reaches the
/// point for that plan dies.
/// In-process tests (several silos in one process) set <see cref="InProcess"/> instead, to stop a silo at a point.
/// </summary>
public static class FaultPoints
{
    public const string Variable = "RTT_FAULT_KILL_AT";
    public const string WhenVariable = "RTT_FAULT_KILL_WHEN";
    private static readonly string? Armed = Environment.GetEnvironmentVariable(Variable);
    private static readonly string? When = Environment.GetEnvironmentVariable(WhenVariable);

    /// <summary>Test hook: called with (point, detail) at each point; null in production.</summary>
    public static Func<string, string, Task>? InProcess { get; set; }

    public static Task HitAsync(string point, string detail = "")
    {
        if (Armed is not null && string.Equals(Armed, point, StringComparison.Ordinal) && (When is null || string.Equals(When, detail, StringComparison.Ordinal)))
        {
            Console.Error.WriteLine($"{Variable}={point}: killing process {Environment.ProcessId}");
            Console.Error.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }

        return InProcess?.Invoke(point, detail) ?? Task.CompletedTask;
    }
}
