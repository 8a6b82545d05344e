using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Registry;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// One routed MCP prompt, resource or resource template (docs/gateway.md, "Prompts and resources"). A call frame's
/// payload is <c>{"method": M, "params": {…}}</c> with a method the primitive serves: a prompt <c>prompts/get</c> and
/// <c>completion/complete</c> (ref/prompt); a resource <c>resources/read</c>, <c>resources/subscribe</c> and
/// <c>resources/unsubscribe</c>; a template <c>resources/read</c> of a URI it can produce and <c>completion/complete</c>
/// (ref/resource). The name, URI or reference is set to this primitive's own (a route never reaches another), the
/// request is sent on the server's shared session, and the answer is the server's result as JSON. A JSON-RPC error is
/// RTT-CALL-008 with its code and message; a primitive whose live definition no longer has the pinned hash is refused
/// with RTT-MCP-003 (and the verify probe fails).
/// </summary>
public sealed class McpPrimitiveDriver : IInterimLaneDriver
{
    private readonly McpSessionLease _lease;

    internal McpPrimitiveDriver(McpSessionLease lease, McpPrimitive primitive, string key, string? pin, string symbol)
    {
        _lease = lease;
        Primitive = primitive;
        Key = key;
        Pin = pin;
        Name = symbol;
    }

    public string Name { get; }

    public McpPrimitive Primitive { get; }

    /// <summary>The prompt's name, resource's URI or template's URI template on its server.</summary>
    public string Key { get; }

    public string? Pin { get; }

    public McpServerSession Session => _lease.Session;

    public string? NotReady => Session.Down is { } down ? down : Drift();

    public string? Drift()
    {
        var live = Session.LivePin(Primitive, Key);
        if (Pin is null || live == Pin)
        {
            return null;
        }

        return live is null
            ? $"{ErrorCodes.McpDrift} {Primitive.Kind} \"{Key}\" is no longer listed by MCP server \"{Session.Label}\" (pinned {Pin}); re-run `rtt mcp ingest` and re-plan"
            : $"{ErrorCodes.McpDrift} {Primitive.Kind} \"{Key}\" of MCP server \"{Session.Label}\" drifted from its pin ({Pin} -> {live}); review it, run `rtt mcp ingest --accept-drift` and re-plan";
    }

    public ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken) => CallAsync(request, null, cancellationToken);

    ValueTask<ReadOnlyMemory<byte>> IInterimLaneDriver.CallAsync(ReadOnlyMemory<byte> request, ICallChannel channel, CancellationToken cancellationToken) =>
        CallAsync(request, channel, cancellationToken);

    /// <summary>
    /// One request; <c>resources/subscribe</c> from a caller that takes interim frames (<paramref name="channel"/> open:
    /// rtt mcp serve) is a long-lived call instead (docs/gateway.md, "Subscriptions"): once the server holds the
    /// subscription the caller gets <c>notifications/subscriptions/acknowledged</c>, then every
    /// <c>notifications/resources/updated</c> of the resource, until it withdraws the call (its unsubscribe); the answer is {}.
    /// </summary>
    public async ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, ICallChannel? channel, CancellationToken cancellationToken)
    {
        var (method, parameters) = Parse(request);
        if (Drift() is { } drift)
        {
            throw new RttException(ErrorCodes.McpDrift, drift[(ErrorCodes.McpDrift.Length + 1)..]);
        }

        var client = Session.Client ?? throw new RttException(ErrorCodes.EndpointUnavailable, Session.Down ?? $"MCP server \"{Session.Label}\" is not connected");
        if (channel is { Open: true } && method == RequestMethods.ResourcesSubscribe)
        {
            return await SubscribeAsync(client, channel, cancellationToken).ConfigureAwait(false);
        }

        JsonRpcResponse response;
        try
        {
            response = await client.SendRequestAsync(new JsonRpcRequest { Method = method, Params = parameters }, cancellationToken).ConfigureAwait(false);
        }
        catch (McpProtocolException ex)
        {
            throw new RttException(ErrorCodes.CallProtocolError, $"MCP server \"{Session.Label}\" answered {method} {Key} with JSON-RPC error {(int)ex.ErrorCode}: {ex.Message}");
        }
        catch (Exception ex) when (ex is not OperationCanceledException && client.Completion.IsCompleted)
        {
            throw new RttException(ErrorCodes.EndpointUnavailable, $"MCP server \"{Session.Label}\" went away during the call: {ex.Message}");
        }

        return JsonSerializer.SerializeToUtf8Bytes(response.Result ?? new JsonObject(), McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(JsonNode)));
    }

    private async Task<ReadOnlyMemory<byte>> SubscribeAsync(ModelContextProtocol.Client.McpClient client, ICallChannel channel, CancellationToken cancellationToken)
    {
        try
        {
            await Session.Subscriptions.AddAsync(client, Key, channel, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!channel.Withdrawal.IsCancellationRequested && cancellationToken.IsCancellationRequested)
        {
            throw new RttException(ErrorCodes.CallTimeout, $"MCP server \"{Session.Label}\" did not take the subscription to {Key} in time");
        }

        try
        {
            channel.Send(Encoding.UTF8.GetBytes(new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["method"] = NotificationMethods.SubscriptionsAcknowledgedNotification,
                ["params"] = new JsonObject { ["notifications"] = new JsonObject { ["resourceSubscriptions"] = new JsonArray(Key) } },
            }.ToJsonString()));
            // Held until the caller withdraws it (its unsubscribe, or its lane gone); the endpoint's call timeout does not end it.
            await Task.Delay(Timeout.Infinite, channel.Withdrawal).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            await Session.Subscriptions.RemoveAsync(Session.Client, Key, channel).ConfigureAwait(false);
        }

        return "{}"u8.ToArray();
    }

    /// <summary>The method and its params, bound to this primitive; RTT-CALL-007 for anything else.</summary>
    private (string Method, JsonObject Params) Parse(ReadOnlyMemory<byte> request)
    {
        JsonObject message;
        try
        {
            message = JsonNode.Parse(request.Span) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException ex)
        {
            throw Invalid($"the request to {Name} is not a JSON object: {ex.Message}", "/");
        }

        var method = (string?)(message["method"] as JsonValue) ?? throw Invalid($"the request to {Name} has no method", "/method");
        var parameters = message["params"] as JsonObject ?? [];
        parameters = (JsonObject)parameters.DeepClone();
        if (Primitive == McpPrimitive.Prompt && method == RequestMethods.PromptsGet)
        {
            parameters["name"] = Key;
        }
        else if (Primitive == McpPrimitive.Resource && method is RequestMethods.ResourcesRead or RequestMethods.ResourcesSubscribe or RequestMethods.ResourcesUnsubscribe)
        {
            parameters["uri"] = Key;
        }
        else if (Primitive == McpPrimitive.Template && method == RequestMethods.ResourcesRead)
        {
            if ((string?)(parameters["uri"] as JsonValue) is not { } uri || !McpPrimitive.TemplateMatches(Key, uri))
            {
                throw Invalid($"resources/read through {Name} needs a URI its template {Key} produces", "/params/uri");
            }
        }
        else if (method == RequestMethods.CompletionComplete && Primitive != McpPrimitive.Resource)
        {
            parameters["ref"] = Primitive == McpPrimitive.Prompt
                ? new JsonObject { ["type"] = "ref/prompt", ["name"] = Key }
                : new JsonObject { ["type"] = "ref/resource", ["uri"] = Key };
        }
        else
        {
            throw Invalid($"{Name} ({Primitive.Kind}) does not serve {method}", "/method");
        }

        return (method, parameters);
    }

    private static RttException Invalid(string what, string pointer) =>
        new(ErrorCodes.CallArgsInvalid, what, pointer, "send {\"method\": …, \"params\": {…}} with a method this prompt, resource or template serves (docs/gateway.md)");

    public ValueTask DisposeAsync() => _lease.DisposeAsync();
}
