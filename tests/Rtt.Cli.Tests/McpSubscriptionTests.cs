using System.Text.Json.Nodes;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Rtt.Cli.Tests;

/// <summary>
/// resources/subscribe and unsubscribe through <c>rtt mcp serve --http</c> to a real upstream that sends updates: the npm
/// <c>server-everything</c> (a 2025-11-25 server: the silo's session subscribes with resources/subscribe), ingested,
/// routed (a resource and its <c>toggle-subscriber-updates</c> tool) and started by the silo. Two SDK clients subscribe to
/// the same resource; the server's <c>notifications/resources/updated</c> reach both; after one unsubscribes the other
/// still gets them (one upstream subscription for both, ended by the last). A 2026-07-28 client listens
/// (subscriptions/listen) through the gateway and gets the same updates on its listen stream. The 2026-07-28 upstream form
/// (subscriptions/listen to the server) is covered by the conformance suite through RTT (McpConformanceTests).
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class McpSubscriptionTests(EverythingServer everything) : IClassFixture<EverythingServer>
{
    private const string Caller = "rtt://agents/subscriber/client";
    private const string Uri = "demo://resource/static/document/features.md";

    [Fact]
    public async Task Resource_updates_of_server_everything_reach_each_subscribed_session_through_rtt_until_it_unsubscribes()
    {
        using var dir = TempDir.Quickstart(out var ws);
        McpGatewayTests.Ok(ws, "mcp", "ingest", "--name", "ev", "--", "node", everything.Entry, "stdio");
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", "agents.subscriber.client.json"), new JsonObject
        {
            ["address"] = Caller,
            ["version"] = "1.0.0",
            ["input"] = "rtt.types/Void",
            ["output"] = JsonNode.Parse("""{"type":"object"}"""),
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 50,
            ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
        }.ToJsonString());
        using var silo = McpGatewayTests.RouteAndApply(ws, Caller, ["rtt://mcp/ev/toggle-subscriber-updates", Rtt.Registry.McpPrimitive.Resource.Symbol("ev", Uri)]);
        using var gateway = McpGatewayTests.StartHttpGateway(ws, Caller, out var address, out var token);
        var url = new System.Uri(address);
        try
        {
            Task<McpClient> Connect() => McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
            {
                Endpoint = url,
                TransportMode = HttpTransportMode.StreamableHttp,
                AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
            }), new McpClientOptions { ProtocolVersion = "2025-11-25" });
            await using var first = await Connect();
            await using var second = await Connect();
            Assert.Contains(Uri, (await first.ListResourcesAsync()).Select(r => r.Uri));

            var firstUpdates = 0;
            var secondUpdates = 0;
            var firstGot = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var secondGot = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var firstSubscription = await first.SubscribeToResourceAsync(Uri, (update, _) =>
            {
                Assert.Equal(Uri, update.Uri);
                Interlocked.Increment(ref firstUpdates);
                firstGot.TrySetResult();
                return ValueTask.CompletedTask;
            });
            await using var secondSubscription = await second.SubscribeToResourceAsync(Uri, (update, _) =>
            {
                Assert.Equal(Uri, update.Uri);
                Interlocked.Increment(ref secondUpdates);
                secondGot.TrySetResult();
                return ValueTask.CompletedTask;
            });

            // The server sends an update at once and then every 5 s for what its (one, shared) session subscribed to.
            var toggled = await first.CallToolAsync("ev__toggle-subscriber-updates", new Dictionary<string, object?>());
            Assert.NotEqual(true, toggled.IsError);
            await firstGot.Task.WaitAsync(TimeSpan.FromSeconds(20));
            await secondGot.Task.WaitAsync(TimeSpan.FromSeconds(20));

            // The first unsubscribes: it hears no more; the second, still subscribed, goes on hearing them.
            await firstSubscription.DisposeAsync();
            var firstAfter = Volatile.Read(ref firstUpdates);
            var secondAfter = Volatile.Read(ref secondUpdates);
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (Volatile.Read(ref secondUpdates) == secondAfter)
            {
                Assert.True(DateTime.UtcNow < deadline, "the second session heard no update after the first unsubscribed");
                await Task.Delay(100);
            }

            Assert.Equal(firstAfter, Volatile.Read(ref firstUpdates));

            // Subscribing the same URI twice in one session is one subscription (one update per server update).
            await first.SubscribeToResourceAsync(new SubscribeRequestParams { Uri = Uri });
            await first.SubscribeToResourceAsync(new SubscribeRequestParams { Uri = Uri });
            await first.UnsubscribeFromResourceAsync(new UnsubscribeRequestParams { Uri = Uri });

            // A URI the plan does not route is refused.
            await Assert.ThrowsAsync<ModelContextProtocol.McpProtocolException>(() => first.SubscribeToResourceAsync(new SubscribeRequestParams { Uri = "demo://resource/static/document/architecture.md" }));

            // A 2026-07-28 client has no resources/subscribe: it listens (subscriptions/listen) for the resource, for one the
            // plan does not route, and for tools list_changed. The acknowledgement names only what is honored; the
            // resource's updates (the upstream subscription the second session still holds) arrive on the listen stream,
            // tagged with the listen request's id; after the client cancels the request none arrive.
            await using var modern = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
            {
                Endpoint = url,
                TransportMode = HttpTransportMode.StreamableHttp,
                AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
            }), new McpClientOptions { ProtocolVersion = "2026-07-28" });
            var acked = new TaskCompletionSource<JsonNode?>(TaskCreationOptions.RunContinuationsAsynchronously);
            var modernUpdates = 0;
            var modernGot = new TaskCompletionSource<JsonNode?>(TaskCreationOptions.RunContinuationsAsynchronously);
            await using var onAck = modern.RegisterNotificationHandler(NotificationMethods.SubscriptionsAcknowledgedNotification, (n, _) =>
            {
                acked.TrySetResult(n.Params);
                return ValueTask.CompletedTask;
            });
            await using var onUpdate = modern.RegisterNotificationHandler(NotificationMethods.ResourceUpdatedNotification, (n, _) =>
            {
                if ((string?)n.Params?["uri"] == Uri)
                {
                    Interlocked.Increment(ref modernUpdates);
                    modernGot.TrySetResult(n.Params);
                }

                return ValueTask.CompletedTask;
            });
            using var stopListening = new CancellationTokenSource();
            var listen = modern.SendRequestAsync(new JsonRpcRequest
            {
                Method = RequestMethods.SubscriptionsListen,
                Params = new JsonObject
                {
                    ["notifications"] = new JsonObject
                    {
                        ["toolsListChanged"] = true,
                        ["resourceSubscriptions"] = new JsonArray(Uri, "demo://resource/static/document/architecture.md"),
                    },
                },
            }, stopListening.Token);
            var ack = await acked.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal([Uri], ack!["notifications"]!["resourceSubscriptions"]!.AsArray().Select(u => (string?)u));
            Assert.True((bool?)ack["notifications"]!["toolsListChanged"]);
            var listenId = ack["_meta"]?[MetaKeys.SubscriptionId];
            Assert.NotNull(listenId);
            var modernUpdate = await modernGot.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(listenId!.ToJsonString(), modernUpdate!["_meta"]?[MetaKeys.SubscriptionId]?.ToJsonString());
            await stopListening.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => listen);
            await Task.Delay(1000); // an update already on its way may still land
            var modernAfter = Volatile.Read(ref modernUpdates);
            secondAfter = Volatile.Read(ref secondUpdates);
            deadline = DateTime.UtcNow.AddSeconds(20);
            while (Volatile.Read(ref secondUpdates) <= secondAfter + 1)
            {
                Assert.True(DateTime.UtcNow < deadline, "the second session heard no more updates");
                await Task.Delay(100);
            }

            Assert.Equal(modernAfter, Volatile.Read(ref modernUpdates));
        }
        finally
        {
            gateway.Terminate();
            gateway.WaitForExit(TimeSpan.FromSeconds(20));
            silo.Terminate();
            silo.WaitForExit(TimeSpan.FromSeconds(30));
        }
    }
}
