using System.CommandLine;
using System.Globalization;
using System.Net;
using Rtt.Cli.Mcp;
using Rtt.Core.Errors;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt mcp serve</c>: the tools the applied plan routes from a caller, as one MCP server (docs/gateway.md).</summary>
public static class McpServeCommand
{
    public static Command Create()
    {
        var caller = new Option<string>("--as") { Description = "The caller symbol (rtt://…): the tools the applied plan routes from it are served", Required = true };
        var stdio = new Option<bool>("--stdio") { Description = "Serve MCP on stdin/stdout (for clients that start a command)" };
        var http = new Option<bool>("--http") { Description = "Serve MCP over Streamable HTTP (a bearer credential is required)" };
        var port = new Option<int>("--port") { Description = "With --http: the TCP port (0: any free one, printed)", DefaultValueFactory = _ => 8931 };
        var bind = new Option<string>("--bind") { Description = "With --http: the address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var path = new Option<string>("--path") { Description = "With --http: the endpoint's path", DefaultValueFactory = _ => "/mcp" };
        var tokenFile = new Option<string?>("--token-file") { Description = "With --http: a file holding the bearer token (default: .rtt/keys/mcp-gateway.token, made on first use)" };
        var origins = new Option<string[]>("--allow-origin") { Description = "With --http: an Origin allowed besides loopback ones (repeatable)", Arity = ArgumentArity.ZeroOrMore };
        var timeout = new Option<double>("--call-timeout") { Description = "Seconds a tools/call may take through the fabric", DefaultValueFactory = _ => 300 };
        var command = new Command("serve", "Serve the MCP tools the applied plan routes from a caller as one MCP server (stdio or Streamable HTTP)")
        {
            caller, stdio, http, port, bind, path, tokenFile, origins, timeout,
        };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var symbol = parse.GetValue(caller)!;
            if (!symbol.StartsWith("rtt://", StringComparison.Ordinal))
            {
                throw new RttException(ErrorCodes.GatewayOptionInvalid, $"--as \"{symbol}\" is not a symbol", "--as", "name the caller symbol, e.g. --as rtt://ui/chat/tools");
            }

            if (parse.GetValue(stdio) == parse.GetValue(http))
            {
                throw new RttException(ErrorCodes.GatewayOptionInvalid, "give one transport: --stdio or --http", "rtt mcp serve", "e.g. rtt mcp serve --as rtt://ui/chat/tools --stdio");
            }

            var seconds = parse.GetValue(timeout);
            if (!(seconds > 0) || seconds > 86_400)
            {
                throw new RttException(ErrorCodes.GatewayOptionInvalid, $"--call-timeout {seconds.ToString(CultureInfo.InvariantCulture)} is not a number of seconds from above 0 to 86400", "--call-timeout", "e.g. --call-timeout 60");
            }

            await using var gateway = new McpGateway(ws, symbol, TimeSpan.FromSeconds(seconds));
            gateway.StartWatching(TimeSpan.FromMilliseconds(500));
            if (parse.GetValue(stdio))
            {
                await GatewayHost.RunStdioAsync(gateway, cancellationToken);
                return RttCommands.Ok;
            }

            if (!IPAddress.TryParse(parse.GetValue(bind), out var address))
            {
                throw new RttException(ErrorCodes.GatewayOptionInvalid, $"--bind \"{parse.GetValue(bind)}\" is not an IP address", "--bind", "e.g. --bind 127.0.0.1 (the default) or --bind 0.0.0.0");
            }

            var p = parse.GetValue(port);
            if (p is < 0 or > 65535)
            {
                throw new RttException(ErrorCodes.GatewayOptionInvalid, $"--port {p} is not a TCP port", "--port", "use 0-65535 (0: any free port)");
            }

            var endpointPath = parse.GetValue(path)!;
            if (!endpointPath.StartsWith('/'))
            {
                throw new RttException(ErrorCodes.GatewayOptionInvalid, $"--path \"{endpointPath}\" does not start with /", "--path", "e.g. --path /mcp");
            }

            // SIGTERM and Ctrl-C stop the server cleanly (the CLI leaves signals to each command).
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            using var interrupt = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
            var token = GatewayHost.Token(ws, parse.GetValue(tokenFile) is { } f ? Path.GetFullPath(f) : null);
            var options = new GatewayHttpOptions(address, p, endpointPath, token, parse.GetValue(origins) ?? []) { Tokens = Rtt.Core.Tokens.TokenVerifier.ForWorkspace(ws) };
            await GatewayHost.RunHttpAsync(gateway, options, url =>
            {
                Console.Out.WriteLine($"rtt mcp serve: {gateway.Tools.Count} tool(s) for {symbol} at {url} (bearer: the token in {parse.GetValue(tokenFile) ?? ".rtt/keys/mcp-gateway.token"}, or a capability token)");
                Console.Out.Flush();
            }, stop.Token);
            return RttCommands.Ok;
        }));
        return command;
    }
}
