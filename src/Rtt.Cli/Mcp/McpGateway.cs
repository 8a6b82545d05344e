using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using Rtt.Client.Calls;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Planning;
using Rtt.Registry;

namespace Rtt.Cli.Mcp;

/// <summary>
/// The heart of <c>rtt mcp serve</c> (docs/gateway.md), shared by both transports: the tool collection every session
/// serves (the applied plan's tools for one caller, minus those whose endpoint refuses them as drifted), and the watch
/// that re-reads the plan and probes the tools. Changing the collection makes the SDK send
/// <c>notifications/tools/list_changed</c> to every session (and to 2026-07-28 clients listening for it).
/// </summary>
public sealed class McpGateway : IAsyncDisposable
{
    private static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo ResultInfo = McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(CallToolResult));

    private readonly RttWorkspace _workspace;
    private readonly string _appliedPath;
    private readonly LaneCaller _caller;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Table _table = new(null, [], [], "");
    private DateTime _appliedWritten = DateTime.MinValue;
    private bool _read;
    private Task? _watch;

    /// <param name="syncNow">
    /// Read the plan and probe the tools before returning (<c>rtt mcp serve</c>, so its first list is complete); false when
    /// the silo it attaches to is not up yet (the silo's <see cref="GatewayModule"/>): the watch's first tick does it.
    /// </param>
    public McpGateway(RttWorkspace workspace, string caller, TimeSpan callTimeout, bool syncNow = true)
    {
        _workspace = workspace;
        Caller = caller;
        CallTimeout = callTimeout;
        _appliedPath = new PlanStore(workspace).AppliedPath;
        _caller = new LaneCaller(LaneClient.ControlSocketOf(workspace), Rtt.Fabric.Lanes.LaneKind.Shm, Commands.CallCommand.LaneTokens(workspace)); // a lane token per attach (a strict-mode silo needs one; docs/security.md)
        if (!syncNow)
        {
            return;
        }

        SyncAsync(CancellationToken.None).GetAwaiter().GetResult();
        if (_table.Tools.Count == 0)
        {
            // Not an error: the plan may route tools later (list_changed then), but say so once.
            Console.Error.WriteLine($"rtt mcp serve: the applied plan routes no MCP tool from {caller} (yet)");
        }
    }

    /// <summary>The symbol the gateway's clients call as: only routes from it are served.</summary>
    public string Caller { get; }

    public TimeSpan CallTimeout { get; }

    /// <summary>The tools the applied plan routes from the caller, by name (drifted ones included).</summary>
    public IReadOnlyList<GatewayTool> Tools => _table.Tools;

    /// <summary>What every session lists and calls: the plan's tools minus the drifted ones.</summary>
    public McpServerPrimitiveCollection<McpServerTool> Collection { get; } = new();

    /// <summary>The prompts, resources and resource templates the applied plan routes from the caller (drifted ones included).</summary>
    public IReadOnlyList<GatewayPrimitive> Others => _table.Others;

    /// <summary>The prompts every session lists and gets (the drifted ones left out).</summary>
    public McpServerPrimitiveCollection<McpServerPrompt> Prompts { get; } = new();

    /// <summary>The resources and resource templates every session lists and reads (the drifted ones left out).</summary>
    public McpServerResourceCollection Resources { get; } = new();

    private IReadOnlyList<GatewayPrimitive> _servedOthers = [];

    /// <summary>Re-reads the plan and probes the tools every <paramref name="every"/>.</summary>
    public void StartWatching(TimeSpan every)
    {
        _watch = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(every);
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await SyncAsync(_stop.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RttException or IOException or JsonException)
                {
                    Console.Error.WriteLine($"rtt mcp serve: the applied plan could not be read, the last tools stay: {ex.Message}");
                }
            }
        });
    }

    /// <summary>
    /// Reads the applied plan when its file changed, probes every tool's endpoint (a lane-host probe the endpoint never
    /// sees) and brings <see cref="Collection"/> to the tools not refused as drifted (RTT-MCP-003); a tool whose server
    /// is down stays listed (its calls say why). True when the collection changed (list_changed was sent).
    /// </summary>
    public async Task<bool> SyncAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var written = File.Exists(_appliedPath) ? File.GetLastWriteTimeUtc(_appliedPath) : DateTime.MinValue;
            if (!_read || written != _appliedWritten)
            {
                var plan = File.Exists(_appliedPath) ? RttWorkspace.ReadObject(_appliedPath) : null;
                var (planId, tools) = GatewayCatalog.Build(_workspace, plan, Caller, out var others);
                _appliedWritten = written;
                _read = true;
                _table = new Table(planId, tools, others, "");
            }

            var table = _table;
            var routes = table.Tools.Select(t => t.Route).Concat(table.Others.Select(o => o.Route)).ToList();
            var drifted = await Task.WhenAll(routes.Select(async route =>
            {
                try
                {
                    await _caller.ProbeAsync(route, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                    return false;
                }
                catch (RttException ex)
                {
                    return IsDrift(ex);
                }
            })).ConfigureAwait(false);
            var served = table.Tools.Where((_, i) => !drifted[i]).ToList();
            var servedOthers = table.Others.Where((_, i) => !drifted[table.Tools.Count + i]).ToList();
            static string Of(IEnumerable<(string Json, long Route)> items) =>
                string.Join("\n", items.Select(t => t.Json + " " + t.Route.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            var toolSignature = Of(served.Select(t => (t.DefinitionJson, (long)t.Route.RouteId)));
            var promptSignature = Of(servedOthers.Where(o => o.Primitive == McpPrimitive.Prompt).Select(o => (o.DefinitionJson, (long)o.Route.RouteId)));
            var resourceSignature = Of(servedOthers.Where(o => o.Primitive != McpPrimitive.Prompt).Select(o => (o.Primitive.Kind + o.DefinitionJson, (long)o.Route.RouteId)));
            var signature = toolSignature + "\u0001" + promptSignature + "\u0001" + resourceSignature;
            if (signature == table.Signature)
            {
                return false;
            }

            var was = table.Signature.Split('\u0001');
            _table = table with { Signature = signature };
            _servedOthers = servedOthers;
            if (was.Length != 3 || was[0] != toolSignature)
            {
                using (Collection.DeferChangedEvents())
                {
                    Collection.Clear();
                    foreach (var tool in served)
                    {
                        Collection.Add(new Served(this, tool));
                    }
                }
            }

            // Each collection that changes makes the SDK send its own list_changed (prompts, resources) to every session.
            if (was.Length != 3 || was[1] != promptSignature)
            {
                using (Prompts.DeferChangedEvents())
                {
                    Prompts.Clear();
                    foreach (var prompt in servedOthers.Where(o => o.Primitive == McpPrimitive.Prompt))
                    {
                        Prompts.Add(new ServedPrompt(this, prompt));
                    }
                }
            }

            if (was.Length != 3 || was[2] != resourceSignature)
            {
                using (Resources.DeferChangedEvents())
                {
                    Resources.Clear();
                    foreach (var resource in servedOthers.Where(o => o.Primitive != McpPrimitive.Prompt))
                    {
                        Resources.Add(new ServedResource(this, resource));
                    }
                }
            }

            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// tools/call through the fabric, as <c>rtt call</c>: the arguments as a JSON object on the route's lane, the
    /// endpoint's answer (the server's CallToolResult: content, structuredContent, isError, _meta) back as it came.
    /// </summary>
    public async ValueTask<CallToolResult> CallAsync(GatewayTool tool, RequestContext<CallToolRequestParams> request, CancellationToken cancellationToken)
    {
        // The arguments object written straight from the client's JSON elements (no JsonNode tree, no string in between).
        var arguments = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(arguments))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in request.Params?.Arguments ?? new Dictionary<string, JsonElement>())
            {
                writer.WritePropertyName(key);
                value.WriteTo(writer);
            }

            writer.WriteEndObject();
        }

        byte[] answer;
        // The endpoint's interim messages (progress, log messages, sampling/elicitation requests) arrive on the lane's
        // receive thread: queued, and relayed to this session's client in order by one pump, all before the result.
        // Made on the first interim message only: a call without any (the usual tool call) has no pump to wait for, and so
        // no thread-pool hop between its answer and its result.
        var interims = new LazyRelay(request, cancellationToken);
        if (request.Params?.Meta?["traceparent"] is System.Text.Json.Nodes.JsonValue tp && tp.TryGetValue<string>(out var traceText)
            && Rtt.Fabric.Frames.TraceParent.TryParse(traceText, out var parent))
        {
            Rtt.Fabric.Frames.TraceParent.Outgoing = parent; // the client's trace context goes on with the call (observability.md, "Traces")
        }

        try
        {
            answer = await _caller.CallAsync(tool.Route, arguments.WrittenMemory, CallTimeout,
                interims.Post, cancellationToken).ConfigureAwait(false);
        }
        catch (RttException ex)
        {
            var code = ex.Code == ErrorCodes.CallArgsInvalid ? McpErrorCode.InvalidParams : McpErrorCode.InternalError;
            throw new McpProtocolException($"{ex.Code}: {ex.Message}", code);
        }
        finally
        {
            await interims.CompleteAsync().ConfigureAwait(false);
        }

        try
        {
            return JsonSerializer.Deserialize(answer, ResultInfo) as CallToolResult ?? throw new JsonException("null");
        }
        catch (JsonException ex)
        {
            throw new McpProtocolException($"{ErrorCodes.CallProtocolError}: the endpoint of {tool.Route.To} answered with something that is not a CallToolResult: {ex.Message}", McpErrorCode.InternalError);
        }
    }

    /// <summary>A call's relay of interim messages, started by the first one (on the lane's receive thread); completed after the answer.</summary>
    private sealed class LazyRelay(RequestContext<CallToolRequestParams> request, CancellationToken cancellationToken)
    {
        private readonly Lock _gate = new();
        private System.Threading.Channels.Channel<(byte[] Message, Func<ReadOnlyMemory<byte>, bool> Reply)>? _messages;
        private Task? _pump;
        private bool _done;

        public void Post(byte[] message, Func<ReadOnlyMemory<byte>, bool> reply)
        {
            lock (_gate)
            {
                if (_done)
                {
                    return;
                }

                if (_messages is null)
                {
                    _messages = System.Threading.Channels.Channel.CreateUnbounded<(byte[] Message, Func<ReadOnlyMemory<byte>, bool> Reply)>(
                        new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });
                    _pump = RelayAsync(_messages.Reader, request, cancellationToken); // runs to its first wait, then on the pool
                }

                _messages.Writer.TryWrite((message, reply));
            }
        }

        public Task CompleteAsync()
        {
            lock (_gate)
            {
                _done = true;
                _messages?.Writer.TryComplete();
                return _pump ?? Task.CompletedTask;
            }
        }
    }

    /// <summary>
    /// Relays a call's interim messages to the session's client (docs/gateway.md, "Relays"): progress under the client's
    /// own progress token (none given: dropped), other notifications (log messages) as they came, and requests (sampling,
    /// elicitation) asked of the client, its answer or error sent back on the lane. Notifications keep their order.
    /// </summary>
    private static async Task RelayAsync(System.Threading.Channels.ChannelReader<(byte[] Message, Func<ReadOnlyMemory<byte>, bool> Reply)> interims,
        RequestContext<CallToolRequestParams> request, CancellationToken cancellationToken)
    {
        var asks = new List<Task>();
        await foreach (var (bytes, reply) in interims.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            try
            {
                if (JsonNode.Parse(bytes) is not JsonObject message || (string?)message["method"] is not { } method)
                {
                    continue;
                }

                var parameters = message["params"]?.DeepClone();
                if (message["id"] is { } id)
                {
                    asks.Add(AskClientAsync(request, method, parameters, id.DeepClone(), reply, cancellationToken));
                }
                else if (method == NotificationMethods.ProgressNotification)
                {
                    if (request.Params?.ProgressToken is { } token && parameters is JsonObject progress)
                    {
                        progress["progressToken"] = JsonSerializer.SerializeToNode(token, McpJsonUtilities.DefaultOptions);
                        await request.Server.SendNotificationAsync(method, progress, McpJsonUtilities.DefaultOptions, cancellationToken).ConfigureAwait(false);
                    }
                }
                else
                {
                    await request.Server.SendNotificationAsync(method, parameters, McpJsonUtilities.DefaultOptions, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is JsonException or OperationCanceledException or IOException or InvalidOperationException)
            {
                // The client went away or the message was not JSON: the call's own answer says what happened.
            }
        }

        await Task.WhenAll(asks).ConfigureAwait(false);
    }

    private static async Task AskClientAsync(RequestContext<CallToolRequestParams> request, string method, JsonNode? parameters, JsonNode id,
        Func<ReadOnlyMemory<byte>, bool> reply, CancellationToken cancellationToken)
    {
        JsonObject answer;
        try
        {
            var response = await request.Server.SendRequestAsync(new JsonRpcRequest { Method = method, Params = parameters }, cancellationToken).ConfigureAwait(false);
            answer = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["result"] = response.Result?.DeepClone() };
        }
        catch (McpProtocolException ex)
        {
            answer = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["error"] = new JsonObject { ["code"] = (int)ex.ErrorCode, ["message"] = ex.Message } };
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            answer = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = id, ["error"] = new JsonObject { ["code"] = (int)McpErrorCode.InternalError, ["message"] = $"{method} could not be asked of the client: {ex.Message}" } };
        }
        catch (OperationCanceledException)
        {
            return; // the call was withdrawn: its Cancel frame ends the upstream call
        }

        reply(Encoding.UTF8.GetBytes(answer.ToJsonString()));
    }

    private static bool IsDrift(RttException ex) => ex.Code == ErrorCodes.McpDrift || ex.Message.Contains(ErrorCodes.McpDrift, StringComparison.Ordinal);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var key in _subscriptions.Keys)
        {
            if (_subscriptions.TryRemove(key, out var withdraw))
            {
                withdraw.Cancel(); // a Cancel frame each: the endpoint ends the upstream subscriptions
            }
        }

        if (_watch is not null)
        {
            try
            {
                await _watch.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        _caller.Dispose();
        _stop.Dispose();
    }

    private sealed record Table(string? PlanId, IReadOnlyList<GatewayTool> Tools, IReadOnlyList<GatewayPrimitive> Others, string Signature);

    /// <summary>
    /// A request to a routed prompt, resource or template through the fabric (lane → the silo's MCP endpoint → the server's
    /// shared session): <c>{"method", "params"}</c> on the route's lane, the server's result back as it came. A capability
    /// token that does not allow the route's symbol is refused (as for tools); a failure is a JSON-RPC error with its RTT code.
    /// </summary>
    public async ValueTask<T> RequestAsync<T>(GatewayPrimitive primitive, string method, JsonNode? parameters, System.Security.Claims.ClaimsPrincipal? user, CancellationToken cancellationToken)
    {
        Allow(primitive, user);
        var request = new JsonObject { ["method"] = method, ["params"] = parameters?.DeepClone() ?? new JsonObject() };
        byte[] answer;
        try
        {
            answer = await _caller.CallAsync(primitive.Route, Encoding.UTF8.GetBytes(request.ToJsonString()), CallTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (RttException ex)
        {
            var code = ex.Code == ErrorCodes.CallArgsInvalid ? McpErrorCode.InvalidParams : McpErrorCode.InternalError;
            throw new McpProtocolException($"{ex.Code}: {ex.Message}", code);
        }

        try
        {
            return (T)(JsonSerializer.Deserialize(answer, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(T))) ?? throw new JsonException("null"));
        }
        catch (JsonException ex)
        {
            throw new McpProtocolException($"{ErrorCodes.CallProtocolError}: the endpoint of {primitive.Route.To} answered {method} with something that is not a {typeof(T).Name}: {ex.Message}", McpErrorCode.InternalError);
        }
    }

    private readonly ConcurrentDictionary<(string Session, string Uri), CancellationTokenSource> _subscriptions = new();
    private readonly ConcurrentDictionary<string, McpServer> _sessions = new(StringComparer.Ordinal);

    /// <summary>A Streamable HTTP session began (its server outlives the requests: subscription updates are sent on it).</summary>
    public void SessionStarted(McpServer server)
    {
        if (server.SessionId is { } id)
        {
            _sessions[id] = server;
        }
    }

    /// <summary>A session ended: its subscriptions are withdrawn (each ends upstream when it was the resource's last).</summary>
    public void SessionEnded(string? sessionId)
    {
        if (sessionId is not null)
        {
            _sessions.TryRemove(sessionId, out _);
        }

        foreach (var key in _subscriptions.Keys.Where(k => k.Session == (sessionId ?? "")))
        {
            if (_subscriptions.TryRemove(key, out var subscription))
            {
                subscription.Cancel();
            }
        }
    }

    /// <summary>
    /// resources/subscribe (docs/gateway.md, "Subscriptions"): a long-lived call on the resource's route that takes interim
    /// frames; the endpoint holds the subscription upstream, acknowledges it, then relays each
    /// <c>notifications/resources/updated</c> of the resource, which goes to the subscribing session. Answered once the
    /// endpoint acknowledged (or with its error); a second subscribe of the same URI by the same session is a no-op.
    /// </summary>
    public async ValueTask<EmptyResult> SubscribeAsync(GatewayPrimitive resource, string uri, McpServer server, System.Security.Claims.ClaimsPrincipal? user, CancellationToken cancellationToken)
    {
        Allow(resource, user);
        var key = (server.SessionId ?? "", uri);
        var withdraw = new CancellationTokenSource();
        if (!_subscriptions.TryAdd(key, withdraw))
        {
            withdraw.Dispose();
            return new EmptyResult();
        }

        // The session's own server (HTTP: not the one bound to this request's response stream, which ends with it).
        var target = server.SessionId is { } id && _sessions.TryGetValue(id, out var session) ? session : server;
        var (acknowledged, call) = SubscriptionCall(resource, uri,
            update => target.SendNotificationAsync(NotificationMethods.ResourceUpdatedNotification, update, McpJsonUtilities.DefaultOptions, CancellationToken.None), withdraw.Token);
        _ = call.ContinueWith(_ => ((ICollection<KeyValuePair<(string, string), CancellationTokenSource>>)_subscriptions).Remove(new(key, withdraw)),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            await acknowledged.WaitAsync(CallTimeout, cancellationToken).ConfigureAwait(false);
            return new EmptyResult();
        }
        catch (Exception ex)
        {
            if (((ICollection<KeyValuePair<(string, string), CancellationTokenSource>>)_subscriptions).Remove(new(key, withdraw)))
            {
                await withdraw.CancelAsync().ConfigureAwait(false);
            }

            throw ex switch
            {
                RttException rtt => new McpProtocolException($"{rtt.Code}: {rtt.Message}", rtt.Code == ErrorCodes.CallArgsInvalid ? McpErrorCode.InvalidParams : McpErrorCode.InternalError),
                TimeoutException => new McpProtocolException($"{ErrorCodes.CallTimeout}: the endpoint of {resource.Route.To} did not take the subscription to {uri} within {CallTimeout.TotalSeconds:0.###} s", McpErrorCode.InternalError),
                _ => ex,
            };
        }
    }

    /// <summary>
    /// subscriptions/listen of a 2026-07-28 client (docs/gateway.md, "Subscriptions"): the held-open request's stream
    /// carries, tagged with the request's id under <c>_meta</c>, first one <c>notifications/subscriptions/acknowledged</c>
    /// naming what is honored, then the <c>list_changed</c> notifications asked for when the plan changes a set, and the
    /// <c>notifications/resources/updated</c> of each asked resource the plan routes (each a long-lived lane call on the
    /// resource's route, as for resources/subscribe; a resource not routed, not allowed by the caller's token or whose
    /// endpoint refuses it is left out of the acknowledgement). Everything ends when the client cancels the request.
    /// </summary>
    public async ValueTask<EmptyResult> ListenAsync(SubscriptionsListenRequestParams? request, RequestId id, McpServer server, System.Security.Claims.ClaimsPrincipal? user, CancellationToken cancellationToken)
    {
        var asked = request?.Notifications ?? new SubscriptionsListenNotifications();
        var tag = JsonSerializer.SerializeToNode(id, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(RequestId)));
        var outbox = System.Threading.Channels.Channel.CreateUnbounded<(string Method, JsonObject Params)>(new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });
        var withdraw = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var honored = new List<string>();
        void ToolsChanged(object? sender, EventArgs e) => outbox.Writer.TryWrite((NotificationMethods.ToolListChangedNotification, new JsonObject()));
        void PromptsChanged(object? sender, EventArgs e) => outbox.Writer.TryWrite((NotificationMethods.PromptListChangedNotification, new JsonObject()));
        void ResourcesChanged(object? sender, EventArgs e) => outbox.Writer.TryWrite((NotificationMethods.ResourceListChangedNotification, new JsonObject()));
        try
        {
            foreach (var uri in (asked.ResourceSubscriptions ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                if (ResourceOf(uri) is not { } resource || !Allowed(resource, user))
                {
                    continue;
                }

                var (acknowledged, _) = SubscriptionCall(resource, uri, update =>
                {
                    update.Remove("_meta");
                    outbox.Writer.TryWrite((NotificationMethods.ResourceUpdatedNotification, update));
                    return Task.CompletedTask;
                }, withdraw.Token);
                try
                {
                    await acknowledged.WaitAsync(CallTimeout, cancellationToken).ConfigureAwait(false);
                    honored.Add(uri);
                }
                catch (Exception) when (!cancellationToken.IsCancellationRequested)
                {
                    // Refused, failed or not taken in time: left out of the acknowledgement (its call is withdrawn at the end).
                }
            }

            var granted = new SubscriptionsListenNotifications
            {
                ToolsListChanged = asked.ToolsListChanged,
                PromptsListChanged = asked.PromptsListChanged,
                ResourcesListChanged = asked.ResourcesListChanged,
                ResourceSubscriptions = honored.Count > 0 ? honored : null,
            };
            var ack = new JsonObject
            {
                ["notifications"] = JsonSerializer.SerializeToNode(granted, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(SubscriptionsListenNotifications))),
            };
            await Send(NotificationMethods.SubscriptionsAcknowledgedNotification, ack).ConfigureAwait(false);
            if (asked.ToolsListChanged == true)
            {
                Collection.Changed += ToolsChanged;
            }

            if (asked.PromptsListChanged == true)
            {
                Prompts.Changed += PromptsChanged;
            }

            if (asked.ResourcesListChanged == true)
            {
                Resources.Changed += ResourcesChanged;
            }

            await foreach (var (method, parameters) in outbox.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                await Send(method, parameters).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client cancelled the listen request (or went away): the stream is over.
        }
        finally
        {
            Collection.Changed -= ToolsChanged;
            Prompts.Changed -= PromptsChanged;
            Resources.Changed -= ResourcesChanged;
            await withdraw.CancelAsync().ConfigureAwait(false);
            withdraw.Dispose();
        }

        return new EmptyResult();

        Task Send(string method, JsonObject parameters)
        {
            parameters["_meta"] = new JsonObject { [MetaKeys.SubscriptionId] = tag?.DeepClone() };
            return server.SendNotificationAsync(method, parameters, McpJsonUtilities.DefaultOptions, cancellationToken);
        }
    }

    /// <summary>
    /// The long-lived lane call that holds a subscription to <paramref name="uri"/> on the resource's route (a
    /// resources/subscribe request taking interim frames, no deadline, until <paramref name="withdraw"/>). Its interim
    /// messages are read off the lane client's thread, in order: the endpoint's acknowledgement completes
    /// <c>Acknowledged</c> (which fails when the call ends first), and each <c>notifications/resources/updated</c> goes to
    /// <paramref name="onUpdate"/> with its params (a copy). <c>Call</c> ends when the subscription does.
    /// </summary>
    private (Task Acknowledged, Task Call) SubscriptionCall(GatewayPrimitive resource, string uri, Func<JsonObject, Task> onUpdate, CancellationToken withdraw)
    {
        var messages = System.Threading.Channels.Channel.CreateUnbounded<byte[]>(new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });
        var acknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var request = new JsonObject { ["method"] = RequestMethods.ResourcesSubscribe, ["params"] = new JsonObject { ["uri"] = uri } };
        var call = _caller.CallAsync(resource.Route, Encoding.UTF8.GetBytes(request.ToJsonString()), Timeout.InfiniteTimeSpan,
            (message, _) => messages.Writer.TryWrite(message), withdraw);
        _ = Task.Run(async () =>
        {
            await foreach (var bytes in messages.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                try
                {
                    if (JsonNode.Parse(bytes) is not JsonObject message || (string?)message["method"] is not { } method)
                    {
                        continue;
                    }

                    if (method == NotificationMethods.SubscriptionsAcknowledgedNotification)
                    {
                        acknowledged.TrySetResult();
                    }
                    else if (method == NotificationMethods.ResourceUpdatedNotification && message["params"] is JsonObject updated)
                    {
                        await onUpdate((JsonObject)updated.DeepClone()).ConfigureAwait(false);
                    }
                }
                catch (Exception ex) when (ex is JsonException or OperationCanceledException or IOException or InvalidOperationException or ObjectDisposedException)
                {
                    // The subscriber went away or the message was not JSON: the next update is tried all the same.
                }
            }
        }, CancellationToken.None);
        var ended = call.ContinueWith(t =>
        {
            // The call ended: withdrawn (unsubscribe, session or listen over), refused, or the silo went away.
            messages.Writer.TryComplete();
            acknowledged.TrySetException(t.Exception?.GetBaseException() ?? new RttException(ErrorCodes.CallProtocolError, $"the endpoint of {resource.Route.To} ended the subscription to {uri} at once"));
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return (acknowledged.Task, ended);
    }

    /// <summary>resources/unsubscribe: the session's subscription call is withdrawn (a no-op when it holds none).</summary>
    public ValueTask<EmptyResult> UnsubscribeAsync(GatewayPrimitive resource, string uri, McpServer server, System.Security.Claims.ClaimsPrincipal? user)
    {
        Allow(resource, user);
        if (_subscriptions.TryRemove((server.SessionId ?? "", uri), out var withdraw))
        {
            withdraw.Cancel();
        }

        return ValueTask.FromResult(new EmptyResult());
    }

    /// <summary>Whether the caller's credential reaches the primitive's route (a capability token narrows; the workspace token reaches all).</summary>
    private static bool Allowed(GatewayPrimitive primitive, System.Security.Claims.ClaimsPrincipal? user) =>
        GatewayAccess.FromPrincipal(user) is not { Rights: not null } access || access.Allows(primitive.Route.To);

    private static void Allow(GatewayPrimitive primitive, System.Security.Claims.ClaimsPrincipal? user)
    {
        if (!Allowed(primitive, user))
        {
            throw new McpProtocolException($"{ErrorCodes.TokenRouteDenied}: the capability token does not allow open,rx,tx on {primitive.Route.To}", McpErrorCode.InvalidParams);
        }
    }

    /// <summary>The served prompt or resource template a completion's reference names (null: none is routed).</summary>
    public GatewayPrimitive? CompletionTarget(Reference? reference) => reference switch
    {
        PromptReference p => _servedOthers.FirstOrDefault(o => o.Primitive == McpPrimitive.Prompt && o.Name == p.Name),
        ResourceTemplateReference r => _servedOthers.FirstOrDefault(o => o.Primitive == McpPrimitive.Template && o.Name == r.Uri),
        _ => null,
    };

    /// <summary>The served resource with this URI (subscriptions; null: none is routed).</summary>
    public GatewayPrimitive? ResourceOf(string? uri) => _servedOthers.FirstOrDefault(o => o.Primitive == McpPrimitive.Resource && o.Name == uri);

    /// <summary>One served prompt: its pinned definition under its served name; prompts/get goes through the fabric.</summary>
    private sealed class ServedPrompt : McpServerPrompt
    {
        private readonly McpGateway _gateway;
        private readonly GatewayPrimitive _prompt;

        public ServedPrompt(McpGateway gateway, GatewayPrimitive prompt)
        {
            _gateway = gateway;
            _prompt = prompt;
            ProtocolPrompt = JsonSerializer.Deserialize(prompt.DefinitionJson, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(Prompt))) as Prompt
                ?? throw new RttException(ErrorCodes.McpToolInvalid, "the pinned prompt object does not make an MCP prompt", prompt.Route.To, "re-run `rtt mcp ingest`");
        }

        public override Prompt ProtocolPrompt { get; }

        public override IReadOnlyList<object> Metadata => [];

        public override ValueTask<GetPromptResult> GetAsync(RequestContext<GetPromptRequestParams> request, CancellationToken cancellationToken = default) =>
            _gateway.RequestAsync<GetPromptResult>(_prompt, RequestMethods.PromptsGet,
                JsonSerializer.SerializeToNode(request.Params, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(GetPromptRequestParams))), request.User, cancellationToken);
    }

    /// <summary>One served resource or resource template: its pinned definition under its server's URI; resources/read goes through the fabric.</summary>
    private sealed class ServedResource : McpServerResource
    {
        private readonly McpGateway _gateway;
        private readonly GatewayPrimitive _resource;

        public ServedResource(McpGateway gateway, GatewayPrimitive resource)
        {
            _gateway = gateway;
            _resource = resource;
            if (resource.Primitive == McpPrimitive.Resource)
            {
                ProtocolResource = JsonSerializer.Deserialize(resource.DefinitionJson, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(Resource))) as Resource
                    ?? throw new RttException(ErrorCodes.McpToolInvalid, "the pinned resource object does not make an MCP resource", resource.Route.To, "re-run `rtt mcp ingest`");
                ProtocolResourceTemplate = new ResourceTemplate
                {
                    UriTemplate = ProtocolResource.Uri, Name = ProtocolResource.Name, Title = ProtocolResource.Title, Description = ProtocolResource.Description,
                    MimeType = ProtocolResource.MimeType, Annotations = ProtocolResource.Annotations,
                };
            }
            else
            {
                ProtocolResourceTemplate = JsonSerializer.Deserialize(resource.DefinitionJson, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(ResourceTemplate))) as ResourceTemplate
                    ?? throw new RttException(ErrorCodes.McpToolInvalid, "the pinned resource template object does not make an MCP resource template", resource.Route.To, "re-run `rtt mcp ingest`");
            }
        }

        public override ResourceTemplate ProtocolResourceTemplate { get; }

        public override Resource? ProtocolResource { get; }

        public override IReadOnlyList<object> Metadata => [];

        public override bool IsMatch(string uri) =>
            _resource.Primitive == McpPrimitive.Resource ? uri == _resource.Name : McpPrimitive.TemplateMatches(_resource.Name, uri);

        public override ValueTask<ReadResourceResult> ReadAsync(RequestContext<ReadResourceRequestParams> request, CancellationToken cancellationToken = default) =>
            _gateway.RequestAsync<ReadResourceResult>(_resource, RequestMethods.ResourcesRead,
                JsonSerializer.SerializeToNode(request.Params, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(ReadResourceRequestParams))), request.User, cancellationToken);
    }

    /// <summary>One served tool: its pinned definition under its served name; a call goes through the fabric.</summary>
    private sealed class Served(McpGateway gateway, GatewayTool tool) : McpServerTool
    {
        public override Tool ProtocolTool => tool.Definition;

        public override IReadOnlyList<object> Metadata => [];

        public override ValueTask<CallToolResult> InvokeAsync(RequestContext<CallToolRequestParams> request, CancellationToken cancellationToken = default) =>
            gateway.CallAsync(tool, request, cancellationToken);
    }
}
