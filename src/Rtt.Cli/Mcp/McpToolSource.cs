using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Cli.Mcp;

/// <summary>What an MCP server says about itself and its tools.</summary>
public sealed record McpListing(string ServerName, string ServerVersion, JsonObject ToolsList)
{
    /// <summary>The server's prompts, resources and resource templates (<c>{"prompts": […], "resources": […], "resourceTemplates": […]}</c>,
    /// each present when the server declares the capability), pinned with the tools (docs/gateway.md).</summary>
    public JsonObject? Others { get; init; }
}

/// <summary>Gets a tools/list result from a real MCP server over stdio (ModelContextProtocol SDK), or from a saved file.</summary>
public static class McpToolSource
{
    public static async Task<McpListing> FromServerAsync(string name, IReadOnlyList<string> command, string workingDirectory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var stderr = new List<string>();
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = name,
            Command = command[0],
            Arguments = [.. command.Skip(1)],
            WorkingDirectory = workingDirectory,
            ShutdownTimeout = TimeSpan.FromSeconds(1), // a server that does not exit when stdin closes is killed after 1 s, so --timeout N ends near N s
            StandardErrorLines = line =>
            {
                lock (stderr)
                {
                    if (stderr.Count < 20)
                    {
                        stderr.Add(line);
                    }
                }
            },
        });

        return await ListAsync(transport, name, string.Join(' ', command), command[0], stderr, timeout, cancellationToken);
    }

    /// <summary>Lists the tools of an MCP server over Streamable HTTP.</summary>
    public static Task<McpListing> FromUrlAsync(string name, Uri url, IReadOnlyDictionary<string, string> headers, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Name = name,
            Endpoint = url,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = headers.ToDictionary(h => h.Key, h => h.Value, StringComparer.Ordinal),
            ConnectionTimeout = timeout,
        });
        return ListAsync(transport, name, url.ToString(), url.ToString(), [], timeout, cancellationToken);
    }

    private static async Task<McpListing> ListAsync(IClientTransport transport, string name, string label, string location, List<string> stderr, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await using var client = await McpClient.CreateAsync(transport, FullClient(), cancellationToken: cts.Token);
            var tools = await client.ListToolsAsync(cancellationToken: cts.Token);
            var list = new JsonArray();
            foreach (var tool in tools)
            {
                var json = JsonSerializer.SerializeToNode(tool.ProtocolTool, McpJsonUtilities.DefaultOptions)!.AsObject();
                var kept = new JsonObject();
                foreach (var member in new[] { "name", "title", "description", "inputSchema", "outputSchema", "annotations" })
                {
                    if (json[member] is { } value)
                    {
                        kept[member] = value.DeepClone();
                    }
                }

                list.Add(kept);
            }

            return new McpListing(client.ServerInfo?.Name ?? name, client.ServerInfo?.Version ?? "0.0.0", new JsonObject { ["tools"] = list })
            {
                Others = await OthersAsync(client, cts.Token),
            };
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            string[] lines;
            lock (stderr)
            {
                lines = [.. stderr];
            }

            var why = ex is OperationCanceledException ? $"no answer within {timeout.TotalSeconds:0} s" : ex.Message;
            var tail = lines.Length > 0 ? $"; its stderr: {string.Join(" | ", lines.TakeLast(3))}" : "";
            throw new RttException(ErrorCodes.McpServerFailed, $"MCP server \"{label}\" failed: {why}{tail}", location,
                transport is HttpClientTransport ? "check that the URL serves MCP over Streamable HTTP (and the headers it needs)"
                    : "check that the command starts an MCP server on stdio (try running it by hand)", ex);
        }
    }

    /// <summary>prompts/list, resources/list and resources/templates/list (every page) as their protocol JSON, for what the server declares.</summary>
    public static async Task<JsonObject> OthersAsync(McpClient client, CancellationToken cancellationToken)
    {
        static JsonArray Json<T>(IEnumerable<T> items) =>
            [.. items.Select(i => JsonSerializer.SerializeToNode(i, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(T))))];
        var others = new JsonObject();
        var capabilities = client.ServerCapabilities;
        // A server that declares a capability but fails its list still has its tools pinned: that kind is left out (a warning).
        async Task Try(string member, Func<Task<JsonArray>> list)
        {
            try
            {
                others[member] = await list();
            }
            catch (McpException ex)
            {
                Console.Error.WriteLine($"warning: the server's {member} could not be listed, none are pinned: {ex.Message}");
            }
        }

        if (capabilities?.Prompts is not null)
        {
            await Try("prompts", async () => Json((await client.ListPromptsAsync(cancellationToken: cancellationToken)).Select(p => p.ProtocolPrompt)));
        }

        if (capabilities?.Resources is not null)
        {
            await Try("resources", async () => Json((await client.ListResourcesAsync(cancellationToken: cancellationToken)).Select(r => r.ProtocolResource)));
            await Try("resourceTemplates", async () => Json((await client.ListResourceTemplatesAsync(cancellationToken: cancellationToken)).Select(r => r.ProtocolResourceTemplate)));
        }

        return others;
    }

    /// <summary>
    /// The client rtt presents: it declares roots, sampling and elicitation, so a server that offers some tools only
    /// to such clients lists them all. Ingest never needs them: roots are empty, sampling is refused, elicitation declined.
    /// </summary>
#pragma warning disable MCP9005 // roots and sampling are deprecated in the 2026-07-28 spec, but servers still gate tools on them
    private static McpClientOptions FullClient() => new()
    {
        Capabilities = new ClientCapabilities
        {
            Roots = new RootsCapability(),
            Sampling = new SamplingCapability(),
            Elicitation = new ElicitationCapability { Form = new() },
        },
        Handlers = new McpClientHandlers
        {
            RootsHandler = (_, _) => ValueTask.FromResult(new ListRootsResult { Roots = [] }),
            SamplingHandler = (_, _, _) => throw new McpException("rtt mcp ingest only lists tools; it does not sample"),
            ElicitationHandler = (_, _) => ValueTask.FromResult(new ElicitResult { Action = "decline" }),
        },
    };
#pragma warning restore MCP9005

    /// <summary>
    /// A saved tools/list result: <c>{"tools": [...]}</c>, optionally with <c>serverInfo</c> {name, version} and the
    /// server's <c>prompts</c>, <c>resources</c> and <c>resourceTemplates</c> (as their list methods return them).
    /// </summary>
    public static McpListing FromFile(string path, string name)
    {
        if (!File.Exists(path))
        {
            throw new RttException(ErrorCodes.WorkspaceFileMissing, "tools file not found", path, "give the path of a saved tools/list result");
        }

        var root = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path), path) as JsonObject
            ?? throw new RttException(ErrorCodes.McpToolInvalid, "expected {\"tools\": [...]}", path, "save the result object of tools/list");
        var saved = McpCatalog.SavedListing(root, name);
        return new McpListing(saved.ServerName, saved.ServerVersion, saved.ToolsList) { Others = saved.Others };
    }
}
