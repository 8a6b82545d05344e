namespace Rtt.Core.Reconciling;

/// <summary>
/// A test-only fault switch: when the environment variable <c>RTT_FAULT_KILL_AT</c> names a point, the process
/// kills itself (SIGKILL, no clean-up) the first time it reaches that point. Read once; unset in production.
/// Points: after-prepare-logged, after-votes, after-commit-decision, mid-apply, during-verify.
/// In-process tests (several silos in one process) set <see cref="InProcess"/> instead, to stop a silo at a point.
/// </summary>
public static class FaultPoints
{
    public const string Variable = "RTT_FAULT_KILL_AT";
    private static readonly string? Armed = Environment.GetEnvironmentVariable(Variable);

    /// <summary>Test hook: called with (point, detail) at each point; null in production.</summary>
    public static Func<string, string, Task>? InProcess { get; set; }

    public static Task HitAsync(string point, string detail = "")
    {
        if (Armed is not null && string.Equals(Armed, point, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"{Variable}={point}: killing process {Environment.ProcessId}");
            Console.Error.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }

        return InProcess?.Invoke(point, detail) ?? Task.CompletedTask;
    }
}
