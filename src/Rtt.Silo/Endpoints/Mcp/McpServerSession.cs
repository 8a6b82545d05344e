using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// One MCP client session to one server (a serve block without its <c>tool</c>), shared by every tool endpoint of
/// that server. For <c>mcp-stdio</c> the SDK's transport starts the server process; this class supervises it: when
/// the session ends (the process died, the HTTP session was lost) calls are refused with RTT-CALL-003 while it
/// reconnects with backoff (0.2 s doubling to 10 s). After every (re)connect, and whenever the server sends
/// <c>notifications/tools/list_changed</c>, the live tool list is read again and each tool's pin recomputed
/// (<see cref="McpCatalog.Pin"/>), so a drifted tool is refused until the list matches its pin again.
/// </summary>
public sealed class McpServerSession : IAsyncDisposable
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    private readonly JsonObject _serve;
    private readonly RttWorkspace _workspace;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Queue<string> _stderr = new(); // the last lines, for error messages (all lines go to the log)
    private McpClient? _client;
    private volatile string? _down = "starting";
    private volatile IReadOnlyDictionary<string, string[]> _pins = new Dictionary<string, string[]>(StringComparer.Ordinal); // by pin format - 1
    private volatile bool _listStale;
    private volatile IReadOnlyDictionary<string, string> _otherPins = new Dictionary<string, string>(StringComparer.Ordinal); // "kind key" -> pin
    private int _refreshing;
    private long _listChanges;
    private Task _supervisor = Task.CompletedTask;

    private McpServerSession(string key, JsonObject serve, RttWorkspace workspace, ILogger logger)
    {
        Key = key;
        _serve = serve;
        _workspace = workspace;
        _logger = logger;
        Label = (string)serve["kind"]! == ServeSpec.McpHttp
            ? (string)serve["url"]!
            : string.Join(' ', new[] { (string)serve["command"]! }.Concat((serve["args"] as JsonArray ?? []).Select(a => (string)a!)));
        Subscriptions = new McpSubscriptions(() => Label, logger);
    }

    /// <summary>The serve block without <c>tool</c>, canonical: sessions are shared by this key.</summary>
    public string Key { get; }

    /// <summary>The command line or URL, for messages.</summary>
    public string Label { get; }

    /// <summary>Null when connected and the tool list is current, else why calls are refused (RTT-CALL-003).</summary>
    public string? Down => _down ?? (_listStale ? $"MCP server \"{Label}\" changed its tool list; re-checking the pins" : null);

    /// <summary>Connects and restarts the session; the connected client (null while down).</summary>
    public McpClient? Client => _client;

    /// <summary>How many times the session was (re)connected.</summary>
    public int Connects { get; private set; }

    /// <summary>The live pin of a tool (null: the server does not list it now).</summary>
    public string? LivePin(string tool, int pinFormat = McpCatalog.PinFormat) =>
        _pins.TryGetValue(tool, out var pins) && pinFormat >= 1 && pinFormat <= pins.Length ? pins[pinFormat - 1] : null;

    /// <summary>The live pin of a prompt, resource or resource template (null: the server does not list it now).</summary>
    public string? LivePin(McpPrimitive primitive, string key) => _otherPins.TryGetValue(primitive.Kind + " " + key, out var pin) ? pin : null;

    /// <summary>The calls in progress whose callers take interim messages (progress, log messages, sampling, elicitation).</summary>
    internal McpRelays Relays { get; } = new();

    /// <summary>The resource subscriptions held on this session for long-lived lane calls (docs/gateway.md, "Subscriptions").</summary>
    internal McpSubscriptions Subscriptions { get; }

    private static T Read<T>(JsonNode? result) =>
        result.Deserialize<T>(McpJsonUtilities.DefaultOptions) ?? throw new McpProtocolException("the caller answered with an empty result", McpErrorCode.InternalError);

    /// <summary>The session key of a serve block: the block without <c>tool</c>.</summary>
    public static string KeyOf(JsonObject serve)
    {
        var copy = (JsonObject)serve.DeepClone();
        copy.Remove("tool");
        return copy.ToJsonString();
    }

    /// <summary>
    /// Starts the server (or connects to the URL) and initializes the session, within the serve block's
    /// <c>timeout_ms</c>; RTT-CALL-003 with the exit code and the end of its stderr when it exits at start or never
    /// initializes.
    /// </summary>
    public static async Task<McpServerSession> StartAsync(JsonObject serve, RttWorkspace workspace, ILogger logger, CancellationToken cancellationToken)
    {
        var session = new McpServerSession(KeyOf(serve), serve, workspace, logger);
        try
        {
            await session.ConnectAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            session._stop.Cancel();
            session._stop.Dispose();
            throw;
        }

        session._supervisor = Task.Run(session.SuperviseAsync);
        return session;
    }

    private TimeSpan InitTimeout => TimeSpan.FromMilliseconds((int?)_serve["timeout_ms"] ?? ServeSpec.DefaultTimeoutMs);

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        lock (_stderr)
        {
            _stderr.Clear();
        }

        var transport = new RelayingClientTransport(Transport(), Relays, Subscriptions);
        var options = new McpClientOptions
        {
            ClientInfo = new Implementation { Name = "rtt-silo", Version = typeof(McpServerSession).Assembly.GetName().Version?.ToString(3) ?? "0.0.0" },
            InitializationTimeout = InitTimeout,
            Handlers = new McpClientHandlers
            {
                NotificationHandlers =
                [
                    new(NotificationMethods.ToolListChangedNotification, (_, _) =>
                    {
                        // Refused from now until the list is read again: a call never runs against an unchecked definition.
                        _listStale = true;
                        _ = Task.Run(RefreshToolsAsync);
                        return ValueTask.CompletedTask;
                    }),
                    new(NotificationMethods.PromptListChangedNotification, (_, _) => RefreshOthers()),
                    new(NotificationMethods.ResourceListChangedNotification, (_, _) => RefreshOthers()),
                    // Progress and log messages are relayed by the transport (RelayingClientTransport), in the server's order.
                ],
#pragma warning disable MCP9005 // sampling and elicitation are deprecated as of 2026-07-28 but what 2025-11-25 servers use; relayed as they come
                SamplingHandler = async (request, _, cancellationToken) =>
                    Read<CreateMessageResult>(await Relays.AskAsync(RequestMethods.SamplingCreateMessage, JsonSerializer.SerializeToNode(request, McpJsonUtilities.DefaultOptions), cancellationToken).ConfigureAwait(false)),
                ElicitationHandler = async (request, cancellationToken) =>
                    Read<ElicitResult>(await Relays.AskAsync(RequestMethods.ElicitationCreate, JsonSerializer.SerializeToNode(request, McpJsonUtilities.DefaultOptions), cancellationToken).ConfigureAwait(false)),
#pragma warning restore MCP9005
            },
        };

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        cts.CancelAfter(InitTimeout);
        McpClient client;
        try
        {
            client = await McpClient.CreateAsync(transport, options, cancellationToken: cts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw Unavailable(ex is OperationCanceledException or TimeoutException
                ? $"did not initialize within {InitTimeout.TotalSeconds:0.###} s"
                : $"failed to start: {Describe(ex)}", ex);
        }

        try
        {
            _pins = await ListPinsAsync(client, cts.Token).ConfigureAwait(false);
            try
            {
                _otherPins = await ListOtherPinsAsync(client, cts.Token).ConfigureAwait(false);
            }
            catch (McpException ex)
            {
                // The tools still serve; prompts and resources are refused (not listed) until a list_changed or reconnect reads them.
                _otherPins = new Dictionary<string, string>(StringComparer.Ordinal);
                _logger.LogWarning("MCP server {Server}: prompts/resources could not be listed: {Error}", Label, Describe(ex));
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw Unavailable($"did not answer tools/list: {Describe(ex)}", ex);
        }

        _client = client;
        _listStale = false;
        _down = null;
        Connects++;
        Subscriptions.Resubscribe(client); // a reconnected session holds none of the subscriptions its callers still have
        _logger.LogInformation("MCP server {Server} connected ({Tools} tools, protocol {Protocol})", Label, _pins.Count, client.NegotiatedProtocolVersion);
    }

    private IClientTransport Transport()
    {
        if ((string)_serve["kind"]! == ServeSpec.McpHttp)
        {
            return new HttpClientTransport(new HttpClientTransportOptions
            {
                Endpoint = new Uri((string)_serve["url"]!),
                TransportMode = HttpTransportMode.StreamableHttp,
                AdditionalHeaders = (_serve["headers"] as JsonObject ?? []).ToDictionary(h => h.Key, h => (string)h.Value!, StringComparer.Ordinal),
                ConnectionTimeout = InitTimeout,
            });
        }

        var root = _workspace.Root;
        var env = (_serve["env"] as JsonObject ?? []).ToDictionary(e => e.Key, e => (string?)ServeSpec.Expand((string)e.Value!), StringComparer.Ordinal);
        var command = ServeSpec.ResolvePath(root, (string)_serve["command"]!, isCommand: true);
        List<string> arguments = [.. (_serve["args"] as JsonArray ?? []).Select(a => ServeSpec.Expand((string)a!))];
        var workingDirectory = (string?)_serve["cwd"] is { } cwd ? ServeSpec.ResolvePath(root, cwd) : root;
        if (Sandbox.Of(_serve, root) is { } profile)
        {
            // The server runs under bubblewrap with the seccomp filter (docs/security.md); stdio crosses the sandbox as is.
            var inner = new System.Diagnostics.ProcessStartInfo(command) { WorkingDirectory = workingDirectory };
            arguments.ForEach(inner.ArgumentList.Add);
            var wrapped = Sandbox.Wrap(inner, profile, _workspace, []);
            command = wrapped.FileName;
            arguments = [.. wrapped.ArgumentList];
        }

        return new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = Label,
            Command = command,
            Arguments = arguments,
            WorkingDirectory = workingDirectory,
            EnvironmentVariables = env,
            ShutdownTimeout = TimeSpan.FromSeconds(2),
            StandardErrorLines = line =>
            {
                _logger.LogInformation("MCP server {Server} stderr: {Line}", Label, line);
                lock (_stderr)
                {
                    _stderr.Enqueue(line);
                    if (_stderr.Count > 5)
                    {
                        _stderr.Dequeue();
                    }
                }
            },
        });
    }

    /// <summary>tools/list, every page, as name → pin; the JSON of each tool is the SDK's, as at ingest.</summary>
    private static async Task<IReadOnlyDictionary<string, string[]>> ListPinsAsync(McpClient client, CancellationToken cancellationToken)
    {
        var pins = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var tool in await client.ListToolsAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            var json = JsonSerializer.SerializeToNode(tool.ProtocolTool, McpJsonUtilities.DefaultOptions)!.AsObject();
            pins[tool.ProtocolTool.Name] = [.. Enumerable.Range(1, McpCatalog.PinFormat).Select(format => McpCatalog.Pin(json, format))];
        }

        return pins;
    }

    /// <summary>prompts/list, resources/list, resources/templates/list (what the server declares) as "kind key" → pin, as at ingest.</summary>
    private static async Task<IReadOnlyDictionary<string, string>> ListOtherPinsAsync(McpClient client, CancellationToken cancellationToken)
    {
        var pins = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add<T>(McpPrimitive primitive, T item)
        {
            var json = JsonSerializer.SerializeToNode(item, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(T)))!.AsObject();
            pins[primitive.Kind + " " + (string)json[primitive.KeyMember]!] = primitive.Pin(json);
        }

        if (client.ServerCapabilities?.Prompts is not null)
        {
            foreach (var p in await client.ListPromptsAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                Add(McpPrimitive.Prompt, p.ProtocolPrompt);
            }
        }

        if (client.ServerCapabilities?.Resources is not null)
        {
            foreach (var r in await client.ListResourcesAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                Add(McpPrimitive.Resource, r.ProtocolResource);
            }

            foreach (var t in await client.ListResourceTemplatesAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                Add(McpPrimitive.Template, t.ProtocolResourceTemplate);
            }
        }

        return pins;
    }

    /// <summary>The server changed its prompts or resources: their pins are read again (in the background; calls meanwhile use the last list).</summary>
    private ValueTask RefreshOthers()
    {
        _ = Task.Run(async () =>
        {
            try
            {
                if (_client is { } client)
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    cts.CancelAfter(InitTimeout);
                    _otherPins = await ListOtherPinsAsync(client, cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (!_stop.IsCancellationRequested)
            {
                _logger.LogWarning("MCP server {Server}: prompts/resources list after list_changed failed: {Error}", Label, Describe(ex));
            }
            catch (OperationCanceledException)
            {
            }
        });
        return ValueTask.CompletedTask;
    }

    private async Task RefreshToolsAsync()
    {
        Interlocked.Increment(ref _listChanges);
        if (Interlocked.Exchange(ref _refreshing, 1) == 1)
        {
            return; // the running refresh sees the new count and reads the list once more
        }

        try
        {
            long seen;
            do
            {
                seen = Volatile.Read(ref _listChanges);
                var client = _client;
                if (client is null)
                {
                    return; // the next connect reads the list
                }

                using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                cts.CancelAfter(InitTimeout);
                var pins = await ListPinsAsync(client, cts.Token).ConfigureAwait(false);
                _pins = pins;
                _logger.LogInformation("MCP server {Server} changed its tool list ({Tools} tools); pins checked again", Label, pins.Count);
            }
            while (seen != Volatile.Read(ref _listChanges));

            _listStale = false;
        }
        catch (Exception ex) when (!_stop.IsCancellationRequested)
        {
            // Stays stale: calls are refused until a reconnect reads the list.
            _logger.LogWarning("MCP server {Server}: tools/list after list_changed failed: {Error}", Label, Describe(ex));
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
    }

    private async Task SuperviseAsync()
    {
        var backoff = TimeSpan.FromMilliseconds(200);
        while (!_stop.IsCancellationRequested)
        {
            var client = _client!;
            var details = await client.Completion.WaitAsync(_stop.Token).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default).ConfigureAwait(false);
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            _client = null;
            var why = Ended(details);
            _down = $"MCP server \"{Label}\" {why}; restarting";
            _logger.LogWarning("MCP server {Server} {Why}; restarting in {Delay} ms", Label, why, (int)backoff.TotalMilliseconds);
            await DisposeQuietly(client).ConfigureAwait(false);
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(backoff, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                try
                {
                    await ConnectAsync(_stop.Token).ConfigureAwait(false);
                    backoff = TimeSpan.FromMilliseconds(200);
                    break;
                }
                catch (Exception ex) when (!_stop.IsCancellationRequested)
                {
                    _down = ex is RttException r ? r.Message : $"MCP server \"{Label}\" could not be restarted: {Describe(ex)}";
                    _logger.LogWarning("MCP server {Server} restart failed: {Error}", Label, _down);
                    backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, backoff.Ticks * 2));
                }
                catch (OperationCanceledException)
                {
                    return;
                }

            }
        }
    }

    private string Ended(ClientCompletionDetails? details) => details switch
    {
        StdioClientCompletionDetails { ExitCode: { } code } => $"exited with code {code}{StderrTail(details)}",
        { Exception: { } ex } => $"closed the session: {Describe(ex)}",
        _ => "closed the session",
    };

    private string StderrTail(ClientCompletionDetails? details = null)
    {
        string[] lines;
        lock (_stderr)
        {
            lines = [.. _stderr];
        }

        if (lines.Length == 0 && details is StdioClientCompletionDetails { StandardErrorTail: { } tail })
        {
            lines = [.. tail.TakeLast(3)];
        }

        return lines.Length > 0 ? $"; its stderr: {string.Join(" | ", lines.TakeLast(3))}" : "";
    }

    private RttException Unavailable(string what, Exception inner)
    {
        var details = inner as ClientTransportClosedException;
        var exit = details?.Details is StdioClientCompletionDetails { ExitCode: { } code } ? $" (exit code {code})" : "";
        return new RttException(ErrorCodes.EndpointUnavailable, $"MCP server \"{Label}\" {what}{exit}{StderrTail(details?.Details)}", Label,
            (string)_serve["kind"]! == ServeSpec.McpHttp
                ? "check that the URL serves MCP over Streamable HTTP (and the headers it needs)"
                : "check that the command starts an MCP server on stdio (try running it by hand); the silo log has its stderr", inner);
    }

    private static string Describe(Exception ex) =>
        ex is AggregateException { InnerException: { } inner } ? Describe(inner) : $"{ex.GetType().Name}: {ex.Message}";

    private static async Task DisposeQuietly(McpClient client)
    {
        try
        {
            await client.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // the session is gone either way
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        _stop.Cancel();
        try
        {
            await _supervisor.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        if (Interlocked.Exchange(ref _client, null) is { } client)
        {
            await DisposeQuietly(client).ConfigureAwait(false);
        }

        _down = "stopped";
        _stop.Dispose();
        _logger.LogInformation("MCP server {Server} stopped", Label);
    }
}
