using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Cli.Mcp;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Registry;

namespace Rtt.Cli.Commands;

public static class McpCommand
{
    public static Command Create()
    {
        var mcp = new Command("mcp", "MCP integration: ingest a server's tools as registry symbols");
        var name = new Option<string>("--name") { Description = "Name of the server in RTT (rtt://mcp/<name>/<tool>)", Required = true };
        var from = new Option<string?>("--from") { Description = "A saved tools/list result (tools.json) instead of starting a server" };
        var acceptDrift = new Option<bool>("--accept-drift") { Description = "Pin changed tools under new versions instead of refusing" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the server", DefaultValueFactory = _ => 60 };
        var json = RttCommands.JsonOption();
        var command = new Argument<string[]>("COMMAND") { Description = "After --: the command that starts the server on stdio", Arity = ArgumentArity.ZeroOrMore };
        var ingest = new Command("ingest", "Start an MCP server over stdio (or read tools.json), list its tools, pin and ingest them") { name, from, acceptDrift, timeout, json, command };
        ingest.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var serverName = parse.GetValue(name)!;
            McpCatalog.ValidateName(serverName);
            var argv = parse.GetValue(command) ?? [];
            var file = parse.GetValue(from);
            if ((file is null) == (argv.Length == 0))
            {
                throw new RttException(ErrorCodes.McpServerFailed, "give either --from tools.json or a server command after --", null,
                    "e.g. rtt mcp ingest --name everything -- npx -y @modelcontextprotocol/server-everything");
            }

            var listing = file is not null
                ? McpToolSource.FromFile(Path.GetFullPath(file), serverName)
                : await McpToolSource.FromServerAsync(serverName, argv, ws.Root, TimeSpan.FromSeconds(parse.GetValue(timeout)), cancellationToken);
            using var store = RegistryStore.Open(ws);
            var report = McpCatalog.Ingest(ws, store, serverName, listing.ServerName, listing.ServerVersion, file is null ? argv : ["--from", file],
                listing.ToolsList, file ?? string.Join(' ', argv), parse.GetValue(acceptDrift));
            // The new symbols are usable at once: symbols.json is brought up to date from the manifest just written.
            var scan = new Scanner(ws, store).Run([report.ManifestPath]);
            foreach (var note in report.Notes.Concat(scan.Errors.Select(e => e.Error.Headline)))
            {
                Console.Error.WriteLine($"warning: {note}");
            }

            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(new JsonObject
                {
                    ["name"] = report.Name,
                    ["manifest"] = report.ManifestPath,
                    ["server"] = new JsonObject { ["name"] = listing.ServerName, ["version"] = listing.ServerVersion },
                    ["tools"] = report.Tools,
                    ["added"] = new JsonArray([.. report.Added.Select(a => (JsonNode)JsonValue.Create(a))]),
                    ["drift"] = new JsonArray([.. report.Drift.Select(a => (JsonNode)JsonValue.Create(a))]),
                    ["notes"] = new JsonArray([.. report.Notes.Select(a => (JsonNode)JsonValue.Create(a))]),
                }));
            }
            else
            {
                Console.WriteLine($"{report.Tools} tool(s) from {listing.ServerName} {listing.ServerVersion} pinned in {report.ManifestPath}");
                foreach (var added in report.Added)
                {
                    Console.WriteLine($"  added rtt://mcp/{serverName}/{added}");
                }

                foreach (var drift in report.Drift)
                {
                    Console.WriteLine($"  accepted drift: {drift}");
                }
            }

            return RttCommands.Ok;
        }));
        mcp.Subcommands.Add(ingest);
        return mcp;
    }
}
