using System.Globalization;
using System.Runtime.InteropServices;
using Rtt.Core.Errors;
using Rtt.Core.Nodes;

namespace Rtt.Silo.Hosting;

/// <summary>
/// One silo per NUMA node (<c>Silo:Numa</c>, `rtt up --numa N`): the node's CPUs from the machine's topology
/// (<c>/sys/devices/system/node</c>, or a stand-in tree at <c>Silo:SysRoot</c> for tests), and the process bound to
/// them: every thread that exists now gets that CPU mask, and threads started later inherit it from their creator,
/// so the runtime's pools, Orleans' schedulers and the lane workers (pinned within the set) all stay on the node.
/// Memory follows through the kernel's first-touch policy on the node the threads run on.
/// </summary>
public static partial class NumaPlacement
{
    /// <summary>The CPUs of NUMA node <paramref name="numa"/>, or RTT-SILO-005 naming the nodes there are.</summary>
    public static NumaNode Resolve(int numa, string sysRoot)
    {
        var machine = MachineTopology.Read("/proc", sysRoot, Environment.MachineName);
        return machine.NumaNodes.FirstOrDefault(n => n.Id == numa) is { Cpus.Count: > 0 } node
            ? node
            : throw new HostingException(ErrorCodes.ConfigInvalid,
                $"NUMA node {numa} is not on this machine (nodes: {string.Join(", ", machine.NumaNodes.Select(n => $"{n.Id} (CPUs {MachineTopology.FormatCpuList(n.Cpus)})"))})",
                "Silo:Numa", $"give one of the node ids above (read from {Path.Combine(sysRoot, "devices/system/node")})");
    }

    /// <summary>Binds every thread of this process to <paramref name="cpus"/> (sched_setaffinity per thread).</summary>
    public static void Bind(IReadOnlyList<int> cpus)
    {
        var mask = new ulong[Math.Max(1, (cpus.Max() / 64) + 1)];
        foreach (var cpu in cpus)
        {
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }

        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            if (!int.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out var tid))
            {
                continue;
            }

            if (SchedSetAffinity(tid, (nuint)(mask.Length * sizeof(ulong)), mask) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == 3)
                {
                    continue; // ESRCH: the thread ended meanwhile
                }

                throw new HostingException(ErrorCodes.ConfigInvalid, $"cannot bind the silo to CPUs {MachineTopology.FormatCpuList(cpus)} (sched_setaffinity errno {errno})",
                    "Silo:Numa", "check that these CPUs are online and allowed to this process (cgroup cpuset, taskset)");
            }
        }
    }

    /// <summary>The CPUs the calling thread may run on.</summary>
    public static IReadOnlyList<int> CurrentAffinity()
    {
        var mask = new ulong[16];
        if (SchedGetAffinity(0, (nuint)(mask.Length * sizeof(ulong)), mask) != 0)
        {
            return [];
        }

        var cpus = new List<int>();
        for (var i = 0; i < mask.Length * 64; i++)
        {
            if ((mask[i / 64] & (1UL << (i % 64))) != 0)
            {
                cpus.Add(i);
            }
        }

        return cpus;
    }

    [LibraryImport("libc", EntryPoint = "sched_setaffinity", SetLastError = true)]
    private static partial int SchedSetAffinity(int pid, nuint size, ulong[] mask);

    [LibraryImport("libc", EntryPoint = "sched_getaffinity", SetLastError = true)]
    private static partial int SchedGetAffinity(int pid, nuint size, [Out] ulong[] mask);
}
