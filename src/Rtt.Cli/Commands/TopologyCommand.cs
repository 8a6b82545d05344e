using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Client;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt topology --from-cluster</c>: fills .rtt/topology.json from the nodes the running cluster registered.</summary>
public static class TopologyCommand
{
    public static Command Create()
    {
        var fromCluster = new Option<bool>("--from-cluster") { Description = "Read the registered nodes from the running silo (required for now)" };
        var gateway = new Option<int?>("--gateway-port") { Description = "Gateway port (default: the silo running on the workspace)" };
        var command = new Command("topology", "Write .rtt/topology.json from the cluster's node registry (lane latencies are kept)") { fromCluster, gateway };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            if (!parse.GetValue(fromCluster))
            {
                throw new RttException(ErrorCodes.ConfigInvalid, "say where the topology comes from", "--from-cluster", "run `rtt topology --from-cluster` with a silo up");
            }

            var ws = RttCommands.FindWorkspace(parse);
            var options = RttClientOptions.FromWorkspace(ws) ?? new RttClientOptions();
            if (parse.GetValue(gateway) is { } port)
            {
                options = options with { GatewayPort = port };
            }

            await using var client = await RttClient.ConnectAsync(options, cancellationToken);
            var status = await client.GetStatusAsync();
            var existing = File.Exists(ws.TopologyPath) ? RttWorkspace.ReadObject(ws.TopologyPath) : [];
            var topology = Build(status.Nodes, existing["lanes"]?.DeepClone());
            AtomicFile.WriteAllBytes(ws.TopologyPath, PrettyJson.ToUtf8(topology));
            Console.WriteLine($"wrote {ws.TopologyPath}: {status.Nodes.Length} node(s) on {topology["hosts"]!.AsArray().Count} host(s)");
            return RttCommands.Ok;
        }));
        return command;
    }

    /// <summary>
    /// One topology node per registered node, grouped by host. A node named <c>nodeN</c> whose machine has NUMA node N
    /// gets that NUMA node's CPUs and memory (one silo per NUMA node); otherwise the whole machine's.
    /// </summary>
    public static JsonObject Build(IEnumerable<NodeRecord> nodes, JsonNode? lanes)
    {
        var hosts = new JsonArray();
        foreach (var host in nodes.GroupBy(n => n.Facts.HostName, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var list = new JsonArray();
            foreach (var node in host.OrderBy(n => n.Facts.NodeId, StringComparer.Ordinal))
            {
                var f = node.Facts;
                var suffix = new string([.. f.NodeId.Reverse().TakeWhile(char.IsAsciiDigit).Reverse()]);
                var numa = suffix.Length > 0 && f.NumaNodes.Length > 1 ? f.NumaNodes.FirstOrDefault(n => n.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) == suffix) : null;
                var cpus = numa?.CpuCount ?? f.LogicalCores;
                var memory = numa is { MemoryBytes: > 0 } ? numa.MemoryBytes : f.MemoryBytes;
                list.Add(new JsonObject
                {
                    ["id"] = f.NodeId,
                    ["cpu_millis"] = Math.Max(1, cpus) * 1000,
                    ["memory_mb"] = Math.Max(1, memory / (1024 * 1024)),
                });
            }

            hosts.Add(new JsonObject { ["name"] = host.Key, ["numa_nodes"] = list });
        }

        var topology = new JsonObject { ["hosts"] = hosts };
        if (lanes is not null)
        {
            topology["lanes"] = lanes;
        }

        return topology;
    }
}
