using System.Text;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// The resource subscriptions of one upstream session (docs/gateway.md, "Subscriptions"). Each subscriber is a long-lived
/// lane call (a caller that takes interim frames, e.g. <c>rtt mcp serve</c>) that stays open while subscribed and is
/// withdrawn to unsubscribe. Subscribers of one URI share one upstream subscription, made by the first and ended by the
/// last: <c>resources/subscribe</c>/<c>unsubscribe</c> on a 2025-11-25 (or older) session, a <c>subscriptions/listen</c>
/// request with that URI on a 2026-07-28 session (cancelled to end it). The server's
/// <c>notifications/resources/updated</c> for the URI goes to every subscriber as an interim message. A reconnected
/// session subscribes again to every URI still subscribed. Thread-safe.
/// </summary>
internal sealed class McpSubscriptions(Func<string> label, Microsoft.Extensions.Logging.ILogger logger)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Entry> _byUri = new(StringComparer.Ordinal);

    /// <summary>The URIs subscribed upstream now (tests, diagnostics).</summary>
    public IReadOnlyList<string> Uris
    {
        get
        {
            lock (_gate)
            {
                return [.. _byUri.Keys];
            }
        }
    }

    /// <summary>
    /// Adds a subscriber of <paramref name="uri"/>: completes once the server has accepted the subscription (at once when
    /// another subscriber already holds it); throws RTT-CALL-008 with the server's error when it refuses.
    /// </summary>
    public async Task AddAsync(McpClient client, string uri, ICallChannel channel, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_gate)
        {
            if (!_byUri.TryGetValue(uri, out entry!))
            {
                entry = new Entry(uri);
                _byUri[uri] = entry;
                entry.Ready = SubscribeUpstreamAsync(client, entry);
            }

            entry.Subscribers.Add(channel);
        }

        try
        {
            await entry.Ready.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await RemoveAsync(client, uri, channel).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Removes a subscriber; the last one of a URI ends the upstream subscription (best effort: the server may be gone).</summary>
    public async Task RemoveAsync(McpClient? client, string uri, ICallChannel channel)
    {
        Entry? ended = null;
        lock (_gate)
        {
            if (_byUri.TryGetValue(uri, out var entry) && entry.Subscribers.Remove(channel) && entry.Subscribers.Count == 0)
            {
                _byUri.Remove(uri);
                ended = entry;
            }
        }

        if (ended is null)
        {
            return;
        }

        Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger, "MCP server {Server}: the last subscriber of {Uri} left; unsubscribing ({How})", label(),
            uri, ended.Listen is null ? RequestMethods.ResourcesUnsubscribe : "subscriptions/listen cancelled");

        if (ended.Listen is { } listen)
        {
            try
            {
                await listen.CancelAsync().ConfigureAwait(false); // the SDK sends notifications/cancelled for the listen request
            }
            catch (ObjectDisposedException)
            {
                // the listen request had ended already
            }

            return;
        }

        if (client is not null && !client.Completion.IsCompleted && ended.Ready.IsCompletedSuccessfully)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await client.SendRequestAsync(new JsonRpcRequest { Method = RequestMethods.ResourcesUnsubscribe, Params = new JsonObject { ["uri"] = uri } }, cts.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is McpException or OperationCanceledException or IOException or InvalidOperationException)
            {
                // The server went away or refused: nothing is subscribed for it either way.
            }
        }
    }

    /// <summary>A reconnected session: every URI still subscribed is subscribed again on it (failures leave the subscribers waiting; they hear nothing).</summary>
    public void Resubscribe(McpClient client)
    {
        lock (_gate)
        {
            foreach (var entry in _byUri.Values)
            {
                entry.Listen = null;
                entry.Ready = SubscribeUpstreamAsync(client, entry);
            }
        }
    }

    /// <summary>notifications/resources/updated from the server: to every subscriber of its URI, as the server sent it (without its _meta).</summary>
    public void Updated(JsonNode? parameters)
    {
        if ((string?)(parameters?["uri"] as JsonValue) is not { } uri)
        {
            return;
        }

        ICallChannel[] subscribers;
        lock (_gate)
        {
            if (!_byUri.TryGetValue(uri, out var entry))
            {
                return;
            }

            subscribers = [.. entry.Subscribers];
        }

        var copy = (JsonObject)parameters!.DeepClone();
        copy.Remove("_meta"); // the upstream subscription id means nothing to the caller
        var message = Encoding.UTF8.GetBytes(new JsonObject { ["jsonrpc"] = "2.0", ["method"] = NotificationMethods.ResourceUpdatedNotification, ["params"] = copy }.ToJsonString());
        foreach (var subscriber in subscribers)
        {
            subscriber.Send(message);
        }
    }

    /// <summary>notifications/subscriptions/acknowledged (2026-07-28): the listen requests whose URI it grants are subscribed.</summary>
    public void Acknowledged(JsonNode? parameters)
    {
        if (parameters?["notifications"]?["resourceSubscriptions"] is not JsonArray granted)
        {
            return;
        }

        lock (_gate)
        {
            foreach (var uri in granted.Select(u => (string?)(u as JsonValue)))
            {
                if (uri is not null && _byUri.TryGetValue(uri, out var entry))
                {
                    entry.Acknowledged?.TrySetResult();
                }
            }
        }
    }

    private Task SubscribeUpstreamAsync(McpClient client, Entry entry)
    {
        var modern = string.CompareOrdinal(client.NegotiatedProtocolVersion ?? "", "2026-07-28") >= 0; // versions are dates: ordinal order is their order
        Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger, "MCP server {Server}: subscribing to {Uri} ({How}, protocol {Protocol})", label(),
            entry.Uri, modern ? RequestMethods.SubscriptionsListen : RequestMethods.ResourcesSubscribe, client.NegotiatedProtocolVersion);
        if (modern)
        {
            // 2026-07-28 has no resources/subscribe: a subscriptions/listen request for the URI, held open while subscribed.
            var acknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var listen = new CancellationTokenSource();
            entry.Acknowledged = acknowledged;
            entry.Listen = listen;
            var request = new JsonRpcRequest
            {
                Method = RequestMethods.SubscriptionsListen,
                Params = new JsonObject { ["notifications"] = new JsonObject { ["resourceSubscriptions"] = new JsonArray(entry.Uri) } },
            };
            var held = client.SendRequestAsync(request, listen.Token);
            _ = held.ContinueWith(t =>
            {
                // The listen request ended: refused (before its acknowledgement), or cancelled by the last unsubscribe.
                var why = t.Exception?.GetBaseException();
                acknowledged.TrySetException(why is McpProtocolException protocol
                    ? Refused(entry.Uri, RequestMethods.SubscriptionsListen, protocol)
                    : new RttException(ErrorCodes.EndpointUnavailable, $"MCP server \"{label()}\" ended subscriptions/listen for {entry.Uri} before acknowledging it{(why is null ? "" : ": " + why.Message)}"));
                listen.Dispose();
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return acknowledged.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        return SubscribeLegacyAsync(client, entry.Uri);
    }

    private async Task SubscribeLegacyAsync(McpClient client, string uri)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await client.SendRequestAsync(new JsonRpcRequest { Method = RequestMethods.ResourcesSubscribe, Params = new JsonObject { ["uri"] = uri } }, cts.Token).ConfigureAwait(false);
        }
        catch (McpProtocolException ex)
        {
            throw Refused(uri, RequestMethods.ResourcesSubscribe, ex);
        }
    }

    private RttException Refused(string uri, string method, McpProtocolException ex) =>
        new(ErrorCodes.CallProtocolError, $"MCP server \"{label()}\" answered {method} {uri} with JSON-RPC error {(int)ex.ErrorCode}: {ex.Message}");

    private sealed class Entry(string uri)
    {
        public string Uri { get; } = uri;

        public List<ICallChannel> Subscribers { get; } = [];

        public Task Ready { get; set; } = Task.CompletedTask;

        public CancellationTokenSource? Listen { get; set; }

        public TaskCompletionSource? Acknowledged { get; set; }
    }
}
