using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Registry;
using Rtt.Silo.Hosting;

namespace Rtt.Cli.Commands;

public static class UpCommand
{
    public static Command Create()
    {
        var example = new Option<string?>("--example") { Description = "Create a new workspace from a bundled example first (e.g. quickstart), then run on it" };
        var into = new Option<string?>("--into") { Description = "With --example: the folder to create (default: a new folder under the temp directory)" };
        var once = new Option<bool>("--once") { Description = "Run the data flow once, print a summary and exit (for tests and CI)" };
        var json = RttCommands.JsonOption();
        json.Description = "With --once: write the summary as JSON";
        var nodeId = new Option<string?>("--node-id") { Description = "Node id (config Silo:NodeId, default node0)" };
        var siloPort = new Option<int?>("--silo-port") { Description = "Silo-to-silo port (config Silo:SiloPort, default 11111)" };
        var gatewayPort = new Option<int?>("--gateway-port") { Description = "Client gateway port (config Silo:GatewayPort, default 30000)" };
        var metricsPort = new Option<int?>("--metrics-port") { Description = "Serve Prometheus metrics on 127.0.0.1:PORT/metrics (config Metrics:PrometheusPort)" };
        var mountViews = new Option<string?>("--mount-views") { Description = "Keep every provider's views mounted read-only at this empty folder while the silo runs (rtt view mount --all --watch; docs/views.md)" };
        var cluster = new Option<string?>("--cluster") { Description = "Join a cluster on PostgreSQL: an Npgsql connection string (config Cluster:Provider=postgres + Cluster:ConnectionString; prepare the database with `rtt db init`)" };
        var numa = new Option<int?>("--numa") { Description = "Run on this NUMA node: threads and lane workers bound to its CPUs (config Silo:Numa; one silo per NUMA node)" };
        var panel = new Option<bool>("--panel") { Description = "Serve the RTT panel on the silo's web host (config Panel:Enabled; docs/panel.md); prints its URL and a one-time login" };
        var panelPort = new Option<int?>("--panel-port") { Description = "The web host's port (config Web:Port, default 7411; 0: any free port); loopback unless Web:Bind says otherwise" };
        var dashboard = new Option<bool>("--dashboard") { Description = "Serve the Orleans Dashboard at /dashboard/ on the web host (config Dashboard:Enabled; same credentials as the panel)" };
        var mcp = new Option<string?>("--mcp") { Description = "Serve the MCP gateway at /mcp on the web host for this caller symbol (config McpGateway:Enabled and McpGateway:Caller; docs/gateway.md)" };
        var command = new Command("up", "Run the embedded silo on the workspace in the foreground (Ctrl-C stops it cleanly)")
        {
            example, into, once, json, nodeId, siloPort, gatewayPort, metricsPort, mountViews, cluster, numa, panel, panelPort, dashboard, mcp,
        };

        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            RttWorkspace workspace;
            if (parse.GetValue(example) is { } exampleName)
            {
                var target = parse.GetValue(into) is { } dir
                    ? Path.GetFullPath(dir)
                    : Path.Combine(Path.GetTempPath(), $"rtt-{exampleName}-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Guid.NewGuid().ToString("N")[..6]}");
                var created = WorkspaceInitializer.Create(target, Examples.Find(exampleName));
                InitCommand.Print(created, exampleName, parse.GetValue(json) ? Console.Error : Console.Out); // keep stdout pure JSON
                workspace = created.Workspace;
            }
            else
            {
                workspace = RttCommands.FindWorkspace(parse);
            }

            var overrides = new Dictionary<string, string?>();
            Put(overrides, "Silo:NodeId", parse.GetValue(nodeId));
            Put(overrides, "Silo:SiloPort", parse.GetValue(siloPort)?.ToString(CultureInfo.InvariantCulture));
            Put(overrides, "Silo:GatewayPort", parse.GetValue(gatewayPort)?.ToString(CultureInfo.InvariantCulture));
            Put(overrides, "Metrics:PrometheusPort", parse.GetValue(metricsPort)?.ToString(CultureInfo.InvariantCulture));
            Put(overrides, "Silo:Numa", parse.GetValue(numa)?.ToString(CultureInfo.InvariantCulture));
            Put(overrides, "Panel:Enabled", parse.GetValue(panel) ? "true" : null);
            Put(overrides, "Dashboard:Enabled", parse.GetValue(dashboard) ? "true" : null);
            Put(overrides, "Web:Port", parse.GetValue(panelPort)?.ToString(CultureInfo.InvariantCulture));
            if (parse.GetValue(mcp) is { } mcpCaller)
            {
                Put(overrides, $"{Mcp.GatewayModule.Section}:Enabled", "true");
                Put(overrides, $"{Mcp.GatewayModule.Section}:Caller", mcpCaller);
            }
            if (parse.GetValue(cluster) is { } connection)
            {
                Put(overrides, "Cluster:Provider", "postgres");
                Put(overrides, "Cluster:ConnectionString", connection);
            }

            await using var silo = RttSiloHost.Build(workspace, overrides, web: [new Panel.PanelModule(), new Mcp.GatewayModule(workspace, RttSiloHost.LoadConfiguration(overrides))]);
            await silo.StartAsync(cancellationToken);
            var node = silo.Node!;
            var o = silo.Options;
            if (parse.GetValue(once))
            {
                var summary = await Summary(silo);
                await silo.StopAsync(CancellationToken.None);
                if (parse.GetValue(json))
                {
                    Console.Out.Write(PrettyJson.ToText(summary));
                }
                else
                {
                    PrintSummary(summary);
                }

                // A step that failed (an apply the 2PC aborted, a lane or call that did not answer) fails the run.
                return (summary["steps"] as JsonArray ?? []).Any(s => (string?)s?["status"] == "fail") ? RttCommands.UserError : RttCommands.Ok;
            }

            Console.WriteLine($"RTT silo {o.NodeId} up in {silo.StartupTime.TotalMilliseconds:0} ms: silo 127.0.0.1:{o.SiloPort}, gateway 127.0.0.1:{o.GatewayPort}");
            Console.WriteLine($"  workspace {workspace.Root}");
            var clusterDb = RttClusterOptions.PostgresConnection(RttSiloHost.LoadConfiguration(overrides));
            Console.WriteLine($"  state     {(clusterDb is null ? workspace.StateDatabasePath : $"cluster database {Rtt.Silo.Storage.Postgres.ClusterDatabase.Location(clusterDb)}")} (node registered {node.Registrations} time(s))");
            using var views = ViewMountCommands.StartWithSilo(workspace, parse.GetValue(mountViews));
            if (views is not null)
            {
                Console.WriteLine($"  views     mounted at {views.Mount.MountPoint} ({string.Join(", ", views.Mount.Tree.Sets.Select(s => s.Key))})");
            }

            if (silo.WebAddress is { } web)
            {
                foreach (var module in silo.WebModules)
                {
                    if (module.StartLine(web) is { } line)
                    {
                        Console.WriteLine($"  {line}");
                    }
                }

                if (silo.WebModules.Any(m => m is Panel.PanelModule))
                {
                    Console.WriteLine($"  login     {PanelCommand.LoginUrl(workspace, web, PanelCommand.DefaultLoginTtl, readOnly: false)}  (one-time, {PanelCommand.DefaultLoginTtl.TotalMinutes:0} min; `rtt panel` prints a new one)");
                }
            }

            Console.WriteLine("  Ctrl-C or SIGTERM stops it cleanly.");
            await silo.WaitForShutdownAsync(CancellationToken.None);
            views?.Dispose(); // unmounted before the stop is reported
            Console.WriteLine($"RTT silo {o.NodeId} stopped.");
            return RttCommands.Ok;
        }));
        return command;
    }

    private static void Put(Dictionary<string, string?> overrides, string key, string? value)
    {
        if (value is not null)
        {
            overrides[key] = value;
        }
    }

    /// <summary>What one pass of the data flow did. Later layers (planning, apply) add their steps here.</summary>
    private static async Task<JsonObject> Summary(RttSilo silo)
    {
        var ws = silo.Workspace;
        var routes = RttWorkspace.ReadObject(ws.RoutesPath)["routes"] as JsonArray;
        var manifests = Directory.Exists(ws.Manifests) ? Directory.GetFiles(ws.Manifests, "*.json").Length : 0;
        ScanReport scan;
        using (var store = RegistryStore.Open(ws))
        {
            scan = new Scanner(ws, store).Run();
        }

        if (scan.Errors.Count > 0)
        {
            // Discovery must be clean before later steps run: its first error, once (the silo is then stopped cleanly).
            var first = scan.Errors[0].Error;
            throw scan.Errors.Count == 1 ? first
                : new Rtt.Core.Errors.RttException(first.Code, $"{first.Message} (and {scan.Errors.Count - 1} more discovery error(s): `rtt scan` lists them)", first.Location, first.Remedy);
        }

        using var key = ws.LoadSigningKey();
        return new JsonObject
        {
            ["workspace"] = ws.Root,
            ["signing_key"] = key.KeyId,
            ["startup_ms"] = Math.Round(silo.StartupTime.TotalMilliseconds, 1),
            ["node"] = NodeJson.Node(silo.Node!),
            ["steps"] = new JsonArray(
                new JsonObject { ["step"] = "workspace", ["status"] = "ok", ["detail"] = $"documents valid, signing key loaded; {routes?.Count ?? 0} route(s), {manifests} manifest(s)" },
                new JsonObject { ["step"] = "node", ["status"] = "ok", ["detail"] = $"{silo.Node!.Facts.NodeId} registered ({silo.Node.Registrations} registration(s))" },
                new JsonObject { ["step"] = "discovery", ["status"] = "ok", ["detail"] = scan.Summary },
                ViewCommand.Step(ws),
                PlanCommand.Step(ws),
                await ApplyStep.RunAsync(silo),
                BenchCommand.LaneStep(silo),
                await CallCommand.Step(ws)),
        };
    }

    private static void PrintSummary(JsonObject summary)
    {
        Console.WriteLine($"RTT run on {summary["workspace"]} (start-up {summary["startup_ms"]} ms)");
        foreach (var step in summary["steps"]!.AsArray())
        {
            Console.WriteLine($"  {step!["step"],-10} {step["status"],-4} {step["detail"]}");
        }

        var node = summary["node"]!;
        Console.WriteLine($"  node {node["node_id"]}: {node["cpu_model"]}, {node["logical_cores"]} cores, {NodeJson.Memory((long)node["memory_bytes"]!)}, NUMA {node["numa_nodes"]!.AsArray().Count}");
    }
}
