using ModelContextProtocol.Client;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Rtt.Fabric.Drivers;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// What an MCP server sends its client while a tool call runs, relayed to the caller of that call over the lane's
/// interim frames (docs/gateway.md, "Relays"): progress (matched by the progress token the endpoint gives each relayed
/// call), log messages, and sampling/elicitation requests whose answers come back the same way. The upstream session
/// is shared, and a log message or a server-to-client request does not say which call it belongs to (MCP over stdio has
/// no such link), so those go to the oldest call in progress whose caller takes interim messages. Thread-safe.
/// </summary>
internal sealed class McpRelays
{
    private readonly Lock _gate = new();
    private readonly List<RelayedCall> _calls = []; // oldest first
    private long _next;

    public RelayedCall Begin(ICallChannel channel)
    {
        var call = new RelayedCall(channel, "rtt-" + Interlocked.Increment(ref _next).ToString(System.Globalization.CultureInfo.InvariantCulture));
        lock (_gate)
        {
            _calls.Add(call);
        }

        return call;
    }

    public void End(RelayedCall call)
    {
        lock (_gate)
        {
            _calls.Remove(call);
        }

        call.End();
    }

    private RelayedCall? Oldest()
    {
        lock (_gate)
        {
            return _calls.FirstOrDefault(c => c.Channel.Open);
        }
    }

    /// <summary>notifications/progress for a relayed call's token: to its caller, without the token (the caller's own goes on it).</summary>
    public void Progress(JsonNode? parameters)
    {
        var token = parameters?["progressToken"]?.ToString();
        RelayedCall? call;
        lock (_gate)
        {
            call = _calls.FirstOrDefault(c => c.Token == token);
        }

        if (call is not null && parameters is JsonObject p)
        {
            var copy = (JsonObject)p.DeepClone();
            copy.Remove("progressToken");
            call.Send(new JsonObject { ["jsonrpc"] = "2.0", ["method"] = NotificationMethods.ProgressNotification, ["params"] = copy });
        }
    }

    /// <summary>A notification of the session (a log message): to the oldest relayed call in progress, if any.</summary>
    public void Notify(string method, JsonNode? parameters) =>
        Oldest()?.Send(new JsonObject { ["jsonrpc"] = "2.0", ["method"] = method, ["params"] = parameters?.DeepClone() });

    /// <summary>A request of the server to its client (sampling, elicitation): asked of the oldest relayed call's caller.</summary>
    public Task<JsonNode?> AskAsync(string method, JsonNode? parameters, CancellationToken cancellationToken)
    {
        var call = Oldest() ?? throw new McpProtocolException(
            $"no caller in a call to this server can answer {method} (rtt mcp serve relays it to its client; rtt call does not)", McpErrorCode.InvalidRequest);
        return call.AskAsync(method, parameters, cancellationToken);
    }
}

/// <summary>One relayed call: its channel, the progress token the endpoint gave it upstream, and its open requests to the caller.</summary>
internal sealed class RelayedCall
{
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonNode?>> _asks = new();
    private long _nextAsk;

    public RelayedCall(ICallChannel channel, string token)
    {
        Channel = channel;
        Token = token;
        channel.OnReply = OnReply;
    }

    public ICallChannel Channel { get; }

    public string Token { get; }

    public bool Send(JsonObject message) => Channel.Send(Encoding.UTF8.GetBytes(message.ToJsonString()));

    public async Task<JsonNode?> AskAsync(string method, JsonNode? parameters, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _nextAsk);
        var answer = new TaskCompletionSource<JsonNode?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _asks[id] = answer;
        try
        {
            if (!Send(new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["method"] = method, ["params"] = parameters?.DeepClone() }))
            {
                throw new McpProtocolException($"the call that would relay {method} is over", McpErrorCode.InternalError);
            }

            using var registration = cancellationToken.Register(() => answer.TrySetCanceled(cancellationToken));
            return await answer.Task.ConfigureAwait(false);
        }
        finally
        {
            _asks.TryRemove(id, out _);
        }
    }

    /// <summary>The caller's JSON-RPC response to one of our requests.</summary>
    private void OnReply(ReadOnlyMemory<byte> reply)
    {
        JsonNode? message;
        try
        {
            message = JsonNode.Parse(reply.Span);
        }
        catch (System.Text.Json.JsonException)
        {
            return; // not JSON: nothing to match it with
        }

        if (message?["id"] is not JsonValue idValue || !idValue.TryGetValue<long>(out var id) || !_asks.TryRemove(id, out var answer))
        {
            return;
        }

        if (message["error"] is JsonObject error)
        {
            var code = error["code"] is JsonValue c && c.TryGetValue<int>(out var n) ? (McpErrorCode)n : McpErrorCode.InternalError;
            answer.TrySetException(new McpProtocolException((string?)error["message"] ?? "the caller answered with an error", code));
        }
        else
        {
            answer.TrySetResult(message["result"]?.DeepClone());
        }
    }

    public void End()
    {
        foreach (var id in _asks.Keys)
        {
            if (_asks.TryRemove(id, out var answer))
            {
                answer.TrySetException(new McpProtocolException("the tool call ended before its caller answered", McpErrorCode.InternalError));
            }
        }
    }
}

/// <summary>
/// A client transport that relays progress and log notifications as they are read, in the server's order, before the
/// SDK sees them: the SDK handles incoming messages concurrently, so its notification handlers could run after the
/// call's response was handled (a relayed 100/100 arriving after the result). Everything is passed on unchanged,
/// including the inner transport's end (with its completion details: the exit code of an mcp-stdio server).
/// </summary>
internal sealed class RelayingClientTransport(IClientTransport inner, McpRelays relays, McpSubscriptions subscriptions) : IClientTransport
{
    public string Name => inner.Name;

    public async Task<ITransport> ConnectAsync(CancellationToken cancellationToken) =>
        new RelayingTransport(await inner.ConnectAsync(cancellationToken).ConfigureAwait(false), relays, subscriptions);

    private sealed class RelayingTransport : ITransport
    {
        private readonly ITransport _inner;
        private readonly McpRelays _relays;
        private readonly McpSubscriptions _subscriptions;

        public RelayingTransport(ITransport inner, McpRelays relays, McpSubscriptions subscriptions)
        {
            _inner = inner;
            _relays = relays;
            _subscriptions = subscriptions;
            MessageReader = new RelayingReader(inner.MessageReader, Seen);
        }

        public string? SessionId => _inner.SessionId;

        /// <summary>
        /// The inner transport's reader, looked through as the SDK reads it (no pump of our own: a tool call's answer takes
        /// no extra thread hop on its way to the SDK). Its end, with the inner transport's exception, is passed on as is.
        /// </summary>
        public System.Threading.Channels.ChannelReader<JsonRpcMessage> MessageReader { get; }

        public Task SendMessageAsync(JsonRpcMessage message, CancellationToken cancellationToken = default) => _inner.SendMessageAsync(message, cancellationToken);

        /// <summary>Each message as the SDK takes it, in the server's order: the relayed notifications go to their callers first.</summary>
        private void Seen(JsonRpcMessage message)
        {
            if (message is not JsonRpcNotification notification)
            {
                return;
            }

            if (notification.Method == NotificationMethods.ProgressNotification)
            {
                _relays.Progress(notification.Params);
            }
#pragma warning disable MCP9005 // log messages are deprecated as of 2026-07-28; 2025-11-25 servers send them
            else if (notification.Method == NotificationMethods.LoggingMessageNotification)
#pragma warning restore MCP9005
            {
                _relays.Notify(notification.Method, notification.Params);
            }
            else if (notification.Method == NotificationMethods.ResourceUpdatedNotification)
            {
                _subscriptions.Updated(notification.Params);
            }
            else if (notification.Method == NotificationMethods.SubscriptionsAcknowledgedNotification)
            {
                _subscriptions.Acknowledged(notification.Params);
            }
        }

        public ValueTask DisposeAsync() => _inner.DisposeAsync();
    }

    /// <summary>A reader over another that shows each message it hands out to <paramref name="seen"/> first (on the reading thread).</summary>
    private sealed class RelayingReader(System.Threading.Channels.ChannelReader<JsonRpcMessage> inner, Action<JsonRpcMessage> seen) : System.Threading.Channels.ChannelReader<JsonRpcMessage>
    {
        public override Task Completion => inner.Completion;

        public override bool TryRead([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out JsonRpcMessage item)
        {
            if (!inner.TryRead(out item))
            {
                return false;
            }

            seen(item);
            return true;
        }

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => inner.WaitToReadAsync(cancellationToken);
    }
}
