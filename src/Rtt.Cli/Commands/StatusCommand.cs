using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Client;
using Rtt.Core.Json;
using Spectre.Console;

namespace Rtt.Cli.Commands;

public static class StatusCommand
{
    public static Command Create()
    {
        var json = RttCommands.JsonOption();
        var gateway = new Option<int?>("--gateway-port") { Description = "Gateway port (default: the silo running on the workspace, else 30000)" };
        var command = new Command("status", "Show cluster members and registered nodes") { json, gateway };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var options = RttClientOptions.FromWorkspace(ws) ?? new RttClientOptions();
            if (parse.GetValue(gateway) is { } port)
            {
                options = options with { GatewayPort = port };
            }

            await using var client = await RttClient.ConnectAsync(options, cancellationToken);
            var status = await client.GetStatusAsync();
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(Json(ws.Root, options.GatewayPort, status)));
                return RttCommands.Ok;
            }

            var members = new Table().Title("cluster members").AddColumns("name", "address", "status", "host", "numa", "node", "gateway", "started (UTC)");
            foreach (var m in status.Members)
            {
                members.AddRow(Markup.Escape(m.Name), Markup.Escape(m.Address), m.Status, Markup.Escape(m.HostName), Markup.Escape(m.Numa), Markup.Escape(m.Node),
                    m.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture), NodeJson.Time(new DateTimeOffset(DateTime.SpecifyKind(m.Started, DateTimeKind.Utc))));
            }

            var placed = new Table().Title("node grains and lanes").AddColumns("node", "grain on silo", "its silo", "applied plan", "lanes", "serving");
            foreach (var p in status.Placements.IsDefault ? [] : status.Placements)
            {
                placed.AddRow(Markup.Escape(p.NodeId), Markup.Escape(p.Silo), p.OnOwnSilo ? "yes" : $"[yellow]no: on {Markup.Escape(p.SiloNode)}'s[/]",
                    Markup.Escape(p.AppliedPlan ?? "none"), Markup.Escape(string.Join(", ", p.Lanes)),
                    p.Serving < 0 ? "-" : p.Serving.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            var nodes = new Table().Title("nodes").AddColumns("node", "host", "cpu", "cores", "memory", "numa", "registrations", "first registered (UTC)");
            foreach (var n in status.Nodes)
            {
                nodes.AddRow(Markup.Escape(n.Facts.NodeId), Markup.Escape(n.Facts.HostName), Markup.Escape(n.Facts.CpuModel),
                    n.Facts.LogicalCores.ToString(System.Globalization.CultureInfo.InvariantCulture), NodeJson.Memory(n.Facts.MemoryBytes),
                    string.Join(" ", n.Facts.NumaNodes.Select(x => $"{x.Id}:{x.Cpus}")),
                    n.Registrations.ToString(System.Globalization.CultureInfo.InvariantCulture), NodeJson.Time(n.FirstRegistered));
            }

            AnsiConsole.Write(members);
            AnsiConsole.Write(nodes);
            AnsiConsole.Write(placed);
            return RttCommands.Ok;
        }));
        return command;
    }

    /// <summary>`rtt status --json` (also the panel's /api/status).</summary>
    public static JsonObject Json(string workspace, int gatewayPort, Rtt.Client.ClusterStatus status) => new()
    {
        ["workspace"] = workspace,
        ["gateway_port"] = gatewayPort,
        ["members"] = new JsonArray([.. status.Members.Select(m => (JsonNode)NodeJson.Member(m))]),
        ["nodes"] = new JsonArray([.. status.Nodes.Select(n => (JsonNode)NodeJson.Node(n))]),
        ["placements"] = new JsonArray([.. (status.Placements.IsDefault ? [] : status.Placements).Select(p => (JsonNode)NodeJson.Placement(p))]),
    };
}
