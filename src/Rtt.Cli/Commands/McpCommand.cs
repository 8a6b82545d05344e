using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Cli.Mcp;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Cli.Commands;

public static class McpCommand
{
    public static Command Create()
    {
        var mcp = new Command("mcp", "MCP integration: ingest a server's tools as registry symbols, serve the routed tools as one MCP server");
        var name = new Option<string>("--name") { Description = "Name of the server in RTT (rtt://mcp/<name>/<tool>)", Required = true };
        var from = new Option<string?>("--from") { Description = "A saved tools/list result (tools.json) instead of starting a server" };
        var acceptDrift = new Option<bool>("--accept-drift") { Description = "Pin changed tools under new versions instead of refusing" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the server", DefaultValueFactory = _ => 60 };
        var url = new Option<string?>("--url") { Description = "A Streamable HTTP MCP server's URL instead of a command (recorded as an mcp-http serve block)" };
        var header = new Option<string[]>("--header") { Description = "With --url: an HTTP header NAME=VALUE sent to the server (repeatable)", Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false };
        var json = RttCommands.JsonOption();
        var command = new Argument<string[]>("COMMAND") { Description = "After --: the command that starts the server on stdio", Arity = ArgumentArity.ZeroOrMore };
        var ingest = new Command("ingest", "Start an MCP server over stdio (or read tools.json), list its tools, pin and ingest them") { name, from, url, header, acceptDrift, timeout, json, command };
        ingest.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var serverName = parse.GetValue(name)!;
            McpCatalog.ValidateName(serverName);
            var argv = parse.GetValue(command) ?? [];
            var file = parse.GetValue(from);
            var address = parse.GetValue(url);
            if ((file is null ? 0 : 1) + (address is null ? 0 : 1) + (argv.Length == 0 ? 0 : 1) != 1)
            {
                throw new RttException(ErrorCodes.McpServerFailed, "give one of --from tools.json, --url URL, or a server command after --", null,
                    "e.g. rtt mcp ingest --name everything -- npx -y @modelcontextprotocol/server-everything");
            }

            var headers = Headers(parse.GetValue(header) ?? []);
            if (headers.Count > 0 && address is null)
            {
                throw new RttException(ErrorCodes.McpServerFailed, "--header goes with --url", "--header", "drop --header, or give the server's --url");
            }

            // How the silo reaches the server when a route ends at one of its tools (docs/calls.md); none for a saved list.
            JsonObject? serve = null;
            McpListing listing;
            var wait = TimeSpan.FromSeconds(parse.GetValue(timeout));
            if (file is not null)
            {
                listing = McpToolSource.FromFile(Path.GetFullPath(file), serverName);
            }
            else if (address is not null)
            {
                serve = McpCatalog.ServeOfServer(new JsonObject
                {
                    ["kind"] = "mcp-http",
                    ["url"] = address,
                    ["headers"] = new JsonObject([.. headers.Select(h => KeyValuePair.Create(h.Key, (JsonNode?)h.Value))]),
                }, "--url", "");
                listing = await McpToolSource.FromUrlAsync(serverName, new Uri(address), headers, wait, cancellationToken);
            }
            else
            {
                serve = McpCatalog.ServeOfServer(new JsonObject
                {
                    ["kind"] = "mcp-stdio",
                    ["command"] = argv[0],
                    ["args"] = new JsonArray([.. argv.Skip(1).Select(a => (JsonNode)JsonValue.Create(a))]),
                }, "COMMAND", "");
                listing = await McpToolSource.FromServerAsync(serverName, argv, ws.Root, wait, cancellationToken);
            }

            using var store = RegistryStore.Open(ws);
            var report = McpCatalog.Ingest(ws, store, serverName, listing.ServerName, listing.ServerVersion,
                file is not null ? ["--from", file] : address is not null ? ["--url", address] : argv,
                listing.ToolsList, file ?? address ?? string.Join(' ', argv), parse.GetValue(acceptDrift), serve, listing.Others);
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
        mcp.Subcommands.Add(McpServeCommand.Create());
        return mcp;
    }

    private static SortedDictionary<string, string> Headers(string[] values)
    {
        var headers = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            var eq = value.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new RttException(ErrorCodes.McpServerFailed, $"--header \"{value}\" is not NAME=VALUE", "--header", "e.g. --header Authorization=\"Bearer …\"");
            }

            headers[value[..eq].Trim()] = value[(eq + 1)..];
        }

        return headers;
    }
}
