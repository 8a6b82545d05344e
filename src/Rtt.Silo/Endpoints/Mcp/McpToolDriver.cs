using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Registry;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// One routed MCP tool: a call frame's payload is the tool's arguments (a UTF-8 JSON object), checked against the
/// pinned <c>inputSchema</c> (RTT-CALL-007 with the JSON Pointer; nothing is sent), then sent as <c>tools/call</c>
/// on the server's shared session; the answer is the <c>CallToolResult</c> as JSON (content, structuredContent,
/// isError kept). A JSON-RPC error is RTT-CALL-008 with its code and message; a tool whose live definition no
/// longer has the pinned hash is refused with RTT-MCP-003 (and the verify probe fails).
/// </summary>
public sealed class McpToolDriver : IInterimLaneDriver
{
    private static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo ResultInfo = McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(CallToolResult));

    private readonly McpSessionLease _lease;
    private readonly Lazy<JsonSchema>? _schema;
    private readonly int _pinFormat;

    internal McpToolDriver(McpSessionLease lease, string tool, string? pin, int pinFormat, JsonSchema? schema, string symbol)
    {
        _pinFormat = pinFormat;
        _lease = lease;
        Tool = tool;
        Pin = pin;
        _schema = schema is null ? null : new Lazy<JsonSchema>(schema);
        Name = symbol;
    }

    public string Name { get; }

    /// <summary>The tool's name on its server.</summary>
    public string Tool { get; }

    /// <summary>The pin the plan carries (null: a hand-written serve block without one, no drift check).</summary>
    public string? Pin { get; }

    public McpServerSession Session => _lease.Session;

    public string? NotReady => Session.Down is { } down ? down : Drift();

    /// <summary>The tool's pin as its server lists it now, in the plan's pin format (null: not listed now).</summary>
    public string? LivePin => Session.LivePin(Tool, _pinFormat);

    /// <summary>Why the tool is refused as drifted (RTT-MCP-003), or null when its live pin is the pinned one.</summary>
    public string? Drift()
    {
        var live = LivePin;
        if (Pin is null || live == Pin)
        {
            return null;
        }

        return live is null
            ? $"{ErrorCodes.McpDrift} tool \"{Tool}\" is no longer listed by MCP server \"{Session.Label}\" (pinned {Pin}); re-run `rtt mcp ingest` and re-plan"
            : $"{ErrorCodes.McpDrift} tool \"{Tool}\" of MCP server \"{Session.Label}\" drifted from its pin ({Pin} -> {live}); review it, run `rtt mcp ingest --accept-drift` and re-plan";
    }

    public ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken) => CallAsync(request, null, cancellationToken);

    ValueTask<ReadOnlyMemory<byte>> IInterimLaneDriver.CallAsync(ReadOnlyMemory<byte> request, ICallChannel channel, CancellationToken cancellationToken) =>
        CallAsync(request, channel, cancellationToken);

    /// <summary>
    /// tools/call upstream; with an open <paramref name="channel"/> (a caller that takes interim frames: rtt mcp serve) the
    /// server's progress, log messages and sampling/elicitation requests during the call are relayed to it (McpRelays).
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, ICallChannel? channel, CancellationToken cancellationToken)
    {
        var arguments = Arguments(request);
        if (Drift() is { } drift)
        {
            throw new RttException(ErrorCodes.McpDrift, drift[(ErrorCodes.McpDrift.Length + 1)..]);
        }

        var client = Session.Client ?? throw new RttException(ErrorCodes.EndpointUnavailable, Session.Down ?? $"MCP server \"{Session.Label}\" is not connected");
        CallToolResult result;
        var relay = channel is { Open: true } ? Session.Relays.Begin(channel) : null;
        try
        {
            var parameters = new CallToolRequestParams { Name = Tool, Arguments = arguments };
            if (relay is not null)
            {
                parameters.Meta = new JsonObject { ["progressToken"] = relay.Token };
            }

            if (Rtt.Fabric.Frames.TraceParent.From(System.Diagnostics.Activity.Current) is { Present: true } trace)
            {
                (parameters.Meta ??= [])["traceparent"] = trace.ToString(); // the silo's span of this call (observability.md, "Traces")
            }

            result = await client.CallToolAsync(parameters, cancellationToken).ConfigureAwait(false);
        }
        catch (McpProtocolException ex)
        {
            throw new RttException(ErrorCodes.CallProtocolError, $"MCP server \"{Session.Label}\" answered tools/call {Tool} with JSON-RPC error {(int)ex.ErrorCode}: {ex.Message}");
        }
        catch (Exception ex) when (ex is not OperationCanceledException && client.Completion.IsCompleted)
        {
            throw new RttException(ErrorCodes.EndpointUnavailable, $"MCP server \"{Session.Label}\" went away during the call: {ex.Message}");
        }
        finally
        {
            if (relay is not null)
            {
                Session.Relays.End(relay);
            }
        }

        return JsonSerializer.SerializeToUtf8Bytes(result, ResultInfo);
    }

    /// <summary>The payload as tool arguments: a JSON object (empty payload: {}), valid against the pinned input schema.</summary>
    private Dictionary<string, JsonElement> Arguments(ReadOnlyMemory<byte> request)
    {
        if (request.IsEmpty)
        {
            request = "{}"u8.ToArray();
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(request);
        }
        catch (JsonException ex)
        {
            throw new RttException(ErrorCodes.CallArgsInvalid, $"the arguments of {Name} are not JSON: {ex.Message}", "/", "send the tool arguments as a UTF-8 JSON object");
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new RttException(ErrorCodes.CallArgsInvalid, $"the arguments of {Name} must be a JSON object, not {root.ValueKind}", "/", "send the tool arguments as a UTF-8 JSON object");
            }

            if (_schema is not null)
            {
                try
                {
                    SchemaValidator.Validate(_schema, root, Name);
                }
                catch (RttException ex) when (ex.Code == ErrorCodes.SchemaViolation)
                {
                    var pointer = ex.Location is { } at && at.LastIndexOf(": ", StringComparison.Ordinal) is var colon and >= 0 ? at[(colon + 2)..] : "/";
                    throw new RttException(ErrorCodes.CallArgsInvalid, $"arguments of {Name} fail its pinned inputSchema at {pointer}: {ex.Message}", pointer,
                        "fix the argument at that JSON Pointer (`rtt cat` shows the tool's input_schema)");
                }
            }

            var arguments = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                arguments[property.Name] = property.Value.Clone();
            }

            return arguments;
        }
    }

    public ValueTask DisposeAsync() => _lease.DisposeAsync();
}
