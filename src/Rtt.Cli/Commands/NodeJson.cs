using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Client;
using Rtt.Grains.Nodes;

namespace Rtt.Cli.Commands;

/// <summary>The JSON shapes of nodes and members, shared by <c>rtt status</c> and <c>rtt up --once</c>.</summary>
internal static class NodeJson
{
    public static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    public static JsonObject Node(NodeRecord r) => new()
    {
        ["node_id"] = r.Facts.NodeId,
        ["host"] = r.Facts.HostName,
        ["cpu_model"] = r.Facts.CpuModel,
        ["logical_cores"] = r.Facts.LogicalCores,
        ["memory_bytes"] = r.Facts.MemoryBytes,
        ["numa_nodes"] = new JsonArray([.. r.Facts.NumaNodes.Select(n => (JsonNode)new JsonObject
        {
            ["id"] = n.Id,
            ["cpus"] = n.Cpus,
            ["cpu_count"] = n.CpuCount,
            ["memory_bytes"] = n.MemoryBytes,
        })]),
        ["silo"] = r.Facts.SiloAddress,
        ["first_registered"] = Time(r.FirstRegistered),
        ["last_registered"] = Time(r.LastRegistered),
        ["registrations"] = r.Registrations,
    };

    public static JsonObject Member(Rtt.Client.ClusterMember m) => new()
    {
        ["name"] = m.Name,
        ["address"] = m.Address,
        ["status"] = m.Status,
        ["host"] = m.HostName,
        ["numa"] = m.Numa,
        ["node"] = m.Node,
        ["gateway_port"] = m.GatewayPort,
        ["started"] = Time(new DateTimeOffset(DateTime.SpecifyKind(m.Started, DateTimeKind.Utc))),
    };

    /// <summary>Where a node's grain runs and its lanes (`rtt status --json` "placements").</summary>
    public static JsonObject Placement(NodePlacement p) => new()
    {
        ["node_id"] = p.NodeId,
        ["silo"] = p.Silo,
        ["silo_node"] = p.SiloNode,
        ["on_own_silo"] = p.OnOwnSilo,
        ["applied_plan"] = p.AppliedPlan,
        ["lanes"] = new JsonArray([.. p.Lanes.Select(l => (JsonNode)l)]),
        ["serving"] = p.Serving,
    };

    public static string Memory(long bytes) => bytes >= 1L << 30
        ? $"{bytes / (double)(1L << 30):0.0} GiB".Replace(',', '.')
        : $"{bytes / (double)(1L << 20):0} MiB";
}
