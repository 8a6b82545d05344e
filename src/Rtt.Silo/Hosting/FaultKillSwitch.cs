using Microsoft.Extensions.Configuration;
using Rtt.Reconciling;

namespace Rtt.Silo.Hosting;

/// <summary>
/// The crash tests' kill switch (docs/reconciler.md, "Fault injection"): registered as the silo's
/// <see cref="IFaultPoints"/> only when <c>RTT_FAULT_KILL_AT</c> names a point at start-up (read once, through the
/// silo's configuration); it kills the process (SIGKILL, no clean-up) the first time it reaches that point, with
/// <c>RTT_FAULT_KILL_WHEN</c> only when the point's detail equals it. Otherwise the silo has no fault points.
/// </summary>
public sealed class FaultKillSwitch(string point, string? when) : IFaultPoints
{
    /// <summary>The kill switch when the configuration arms one, else null (production).</summary>
    public static FaultKillSwitch? FromConfiguration(IConfiguration configuration) =>
        configuration[Key(FaultPoints.Variable)] is { Length: > 0 } point ? new FaultKillSwitch(point, configuration[Key(FaultPoints.WhenVariable)]) : null;

    // RTT_-prefixed environment variables reach the configuration without the prefix.
    private static string Key(string variable) => variable["RTT_".Length..];

    public Task HitAsync(string reached, string detail)
    {
        if (string.Equals(point, reached, StringComparison.Ordinal) && (when is null || string.Equals(when, detail, StringComparison.Ordinal)))
        {
            Console.Error.WriteLine($"{FaultPoints.Variable}={point}: killing process {Environment.ProcessId}");
            Console.Error.Flush();
            System.Diagnostics.Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }

        return Task.CompletedTask;
    }
}
