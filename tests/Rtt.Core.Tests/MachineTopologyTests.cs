using Rtt.Core.Nodes;

namespace Rtt.Core.Tests;

public sealed class MachineTopologyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("rtt-topo-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string relative, string text)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public void Reads_two_numa_nodes_in_id_order()
    {
        Write("proc/cpuinfo", "processor\t: 0\nmodel name\t: Test Xeon 9000\nprocessor\t: 1\nmodel name\t: Test Xeon 9000\n");
        Write("proc/meminfo", "MemTotal:       16384000 kB\nMemFree: 1 kB\n");
        Write("sys/devices/system/cpu/online", "0-7\n");
        // node10 before node2 in ordinal directory order: the result must still be sorted by id.
        Write("sys/devices/system/node/node10/cpulist", "4-7\n");
        Write("sys/devices/system/node/node10/meminfo", "Node 10 MemTotal:       8192000 kB\n");
        Write("sys/devices/system/node/node2/cpulist", "0-3\n");
        Write("sys/devices/system/node/node2/meminfo", "Node 2 MemTotal:       8192000 kB\n");
        Write("sys/devices/system/node/possible", "0-1\n"); // a file, not a node folder

        var topo = MachineTopology.Read(Path.Combine(_root, "proc"), Path.Combine(_root, "sys"), "host-a");
        Assert.Equal("Test Xeon 9000", topo.CpuModel);
        Assert.Equal(8, topo.LogicalCores);
        Assert.Equal(16384000L * 1024, topo.MemoryBytes);
        Assert.Equal([2, 10], topo.NumaNodes.Select(n => n.Id));
        Assert.Equal([0, 1, 2, 3], topo.NumaNodes[0].Cpus);
        Assert.Equal(8192000L * 1024, topo.NumaNodes[1].MemoryBytes);
    }

    [Fact]
    public void Without_numa_information_the_machine_is_node_0()
    {
        Write("proc/cpuinfo", "processor\t: 0\nprocessor\t: 1\n");
        Write("proc/meminfo", "MemTotal:       2048 kB\n");
        var topo = MachineTopology.Read(Path.Combine(_root, "proc"), Path.Combine(_root, "sys"), "h");
        Assert.Equal("unknown", topo.CpuModel);
        Assert.Equal(2, topo.LogicalCores);
        var node = Assert.Single(topo.NumaNodes);
        Assert.Equal((0, 2, 2048L * 1024), (node.Id, node.Cpus.Count, node.MemoryBytes));
    }

    [Theory]
    [InlineData("0-3,8,10-11", new[] { 0, 1, 2, 3, 8, 10, 11 }, "0-3,8,10-11")]
    [InlineData("5", new[] { 5 }, "5")]
    [InlineData("1,0", new[] { 0, 1 }, "0-1")]
    [InlineData("", new int[0], "")]
    public void Cpu_lists_parse_and_format(string text, int[] cpus, string formatted)
    {
        Assert.Equal(cpus, MachineTopology.ParseCpuList(text));
        Assert.Equal(formatted, MachineTopology.FormatCpuList(cpus));
    }

    [Fact]
    public void This_machine_reads_sensibly()
    {
        var topo = MachineTopology.ReadLocal();
        Assert.True(topo.LogicalCores >= 1);
        Assert.True(topo.MemoryBytes > 0);
        Assert.Equal(topo.LogicalCores, topo.NumaNodes.Sum(n => n.Cpus.Count));
    }
}
