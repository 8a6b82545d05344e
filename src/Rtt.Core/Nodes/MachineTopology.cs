using System.Globalization;

namespace Rtt.Core.Nodes;

/// <summary>
/// What a node is made of, read from Linux's /proc and /sys: CPU model, logical cores, memory and NUMA
/// nodes. The readers take the roots as arguments so tests can feed them a fake tree.
/// </summary>
public sealed record MachineTopology(string HostName, string CpuModel, int LogicalCores, long MemoryBytes, IReadOnlyList<NumaNode> NumaNodes)
{
    /// <summary>Reads this machine.</summary>
    public static MachineTopology ReadLocal() => Read("/proc", "/sys", Environment.MachineName);

    /// <summary>Reads a machine whose /proc and /sys are at the given roots.</summary>
    public static MachineTopology Read(string procRoot, string sysRoot, string hostName)
    {
        var cpuinfo = ReadOrEmpty(Path.Combine(procRoot, "cpuinfo"));
        var model = cpuinfo.Split('\n')
            .Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2 && p[0].Trim() is "model name" or "Model" or "cpu model")
            .Select(p => p[1].Trim())
            .FirstOrDefault() ?? "unknown";

        var online = ReadOrEmpty(Path.Combine(sysRoot, "devices/system/cpu/online")).Trim();
        var cores = online.Length > 0 ? ParseCpuList(online).Count
            : Math.Max(1, cpuinfo.Split('\n').Count(l => l.StartsWith("processor", StringComparison.Ordinal)));

        var memory = ParseMeminfoTotal(ReadOrEmpty(Path.Combine(procRoot, "meminfo")));

        var nodes = new List<NumaNode>();
        var nodeRoot = Path.Combine(sysRoot, "devices/system/node");
        if (Directory.Exists(nodeRoot))
        {
            foreach (var dir in Directory.GetDirectories(nodeRoot, "node*"))
            {
                if (!int.TryParse(Path.GetFileName(dir)["node".Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                {
                    continue;
                }

                var cpus = ParseCpuList(ReadOrEmpty(Path.Combine(dir, "cpulist")).Trim());
                var nodeMemory = ParseMeminfoTotal(ReadOrEmpty(Path.Combine(dir, "meminfo")));
                nodes.Add(new NumaNode(id, cpus, nodeMemory));
            }
        }

        if (nodes.Count == 0)
        {
            // No NUMA information (containers often hide it): the whole machine is node 0.
            nodes.Add(new NumaNode(0, online.Length > 0 ? ParseCpuList(online) : [.. Enumerable.Range(0, cores)], memory));
        }

        nodes.Sort((a, b) => a.Id.CompareTo(b.Id)); // directory order is not guaranteed
        return new MachineTopology(hostName, model, cores, memory, nodes);
    }

    /// <summary>Parses a Linux CPU list such as <c>0-3,8,10-11</c>.</summary>
    public static IReadOnlyList<int> ParseCpuList(string list)
    {
        var cpus = new SortedSet<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-');
            if (dash < 0)
            {
                cpus.Add(int.Parse(part, CultureInfo.InvariantCulture));
                continue;
            }

            var from = int.Parse(part[..dash], CultureInfo.InvariantCulture);
            var to = int.Parse(part[(dash + 1)..], CultureInfo.InvariantCulture);
            for (var c = from; c <= to; c++)
            {
                cpus.Add(c);
            }
        }

        return [.. cpus];
    }

    /// <summary>Formats CPUs as a Linux CPU list (the inverse of <see cref="ParseCpuList"/>).</summary>
    public static string FormatCpuList(IReadOnlyList<int> cpus)
    {
        var parts = new List<string>();
        for (var i = 0; i < cpus.Count;)
        {
            var j = i;
            while (j + 1 < cpus.Count && cpus[j + 1] == cpus[j] + 1)
            {
                j++;
            }

            parts.Add(i == j ? cpus[i].ToString(CultureInfo.InvariantCulture) : $"{cpus[i]}-{cpus[j]}");
            i = j + 1;
        }

        return string.Join(',', parts);
    }

    // "MemTotal:  24567890 kB" in /proc/meminfo, "Node 0 MemTotal:  123 kB" in a node's meminfo.
    private static long ParseMeminfoTotal(string meminfo)
    {
        foreach (var line in meminfo.Split('\n'))
        {
            var at = line.IndexOf("MemTotal:", StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }

            var fields = line[(at + "MemTotal:".Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 1 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb))
            {
                return kb * 1024;
            }
        }

        return 0;
    }

    private static string ReadOrEmpty(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : "";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}

/// <summary>One NUMA node: its CPUs and memory.</summary>
public sealed record NumaNode(int Id, IReadOnlyList<int> Cpus, long MemoryBytes);
