using System.Globalization;

namespace Rtt.Cli.Tests;

/// <summary>
/// `rtt up --numa N` as a real process on a stand-in topology (Silo:SysRoot: two NUMA nodes of one CPU each, the
/// machine's first and last CPU): every thread of the silo is bound to the node's CPU, and a node that is not there
/// is refused naming the ones that are.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class NumaProcessTests
{
    [Fact]
    public void A_silo_on_a_numa_node_runs_every_thread_on_that_nodes_cpus()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var last = Environment.ProcessorCount - 1;
        var sys = dir["sys"];
        foreach (var (node, cpu) in new[] { (0, 0), (1, last) })
        {
            var folder = Directory.CreateDirectory(Path.Combine(sys, "devices", "system", "node", $"node{node}")).FullName;
            File.WriteAllText(Path.Combine(folder, "cpulist"), cpu.ToString(CultureInfo.InvariantCulture) + "\n");
        }

        var env = new Dictionary<string, string> { ["RTT_Silo__SysRoot"] = sys };
        var missing = RttProcess.RunWith(ws, env, "up", "--numa", "7", "--silo-port", Port(RttProcess.FreePort()), "--gateway-port", Port(RttProcess.FreePort()));
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("RTT-SILO-005", missing.Stderr, StringComparison.Ordinal);
        Assert.Contains($"nodes: 0 (CPUs 0), 1 (CPUs {last})", missing.Stderr, StringComparison.Ordinal);

        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), env, TimeSpan.FromSeconds(90), "--numa", "1");
        var tasks = Directory.GetDirectories($"/proc/{silo.Id}/task");
        Assert.True(tasks.Length > 5, $"{tasks.Length} threads");
        foreach (var task in tasks)
        {
            var allowed = File.ReadLines(Path.Combine(task, "status")).Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
            Assert.Equal(last.ToString(CultureInfo.InvariantCulture), allowed["Cpus_allowed_list:".Length..].Trim());
        }

        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
    }

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
