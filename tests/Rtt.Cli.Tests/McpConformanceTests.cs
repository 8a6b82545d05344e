using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;
using Xunit.Abstractions;

namespace Rtt.Cli.Tests;

/// <summary>
/// One workspace for the conformance tests: the conformance test server (<c>rtt-conformance-mcp</c>, samples/) ingested
/// as <c>conf</c>, every one of its tools routed from <c>rtt://agents/conformance/client</c> under its own name (aliases),
/// a running silo with the plan applied, <c>rtt mcp serve --http</c> in front of it and, since the suite cannot send
/// request headers, tests/mcp/bearer-proxy.mjs adding the gateway's bearer token.
/// </summary>
public sealed class ConformanceWorkspace : IDisposable
{
    public const string Caller = "rtt://agents/conformance/client";

    public static readonly string[] ToolNames =
    [
        "test_simple_text", "test_image_content", "test_audio_content", "test_embedded_resource", "test_multiple_content_types",
        "test_error_handling", "test_tool_with_logging", "test_tool_with_progress", "test_sampling", "test_elicitation",
        "test_elicitation_sep1034_defaults", "test_elicitation_sep1330_enums", "json_schema_2020_12_tool", "test_reconnection",
    ];

    /// <summary>The conformance server's prompts and resources, routed from <see cref="Caller"/>.</summary>
    public static readonly string[] PromptNames = ["test_simple_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource", "test_prompt_with_image"];

    public static readonly string[] ResourceUris = ["test://static-text", "test://static-binary", "test://watched-resource"];

    private readonly TempDir _dir;

    public ConformanceWorkspace()
    {
        var everything = new EverythingServer(); // npm ci of tests/mcp (the suite, the proxy's folder)
        Modules = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(everything.Entry)!, "..", ".."));
        Suite = Path.Combine(Modules, "conformance", "dist", "index.js");
        Assert.True(File.Exists(Suite), $"tests/mcp lacks @modelcontextprotocol/conformance under {Modules}: run npm ci there");
        Server = Path.Combine(typeof(ConformanceWorkspace).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RttConformanceMcpDirectory").Value!, "rtt-conformance-mcp");
        Assert.True(File.Exists(Server), $"{Server} is not built");
        _dir = TempDir.Quickstart(out var ws);
        Workspace = ws;
        McpGatewayTests.Ok(ws, "mcp", "ingest", "--name", "conf", "--", Server);
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", "agents.conformance.client.json"), new JsonObject
        {
            ["address"] = Caller,
            ["version"] = "1.0.0",
            ["input"] = "rtt.types/Void",
            ["output"] = JsonNode.Parse("""
                {"type":"object","required":["prompt","message"],"properties":{"prompt":{"type":"string"},"message":{"type":"string"}}}
                """),
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 50,
            ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
        }.ToJsonString());
        var routesPath = Path.Combine(ws, ".rtt", "routes.json");
        var routes = JsonNode.Parse(File.ReadAllText(routesPath))!;
        var policyPath = Path.Combine(ws, ".rtt", "policy.json");
        var policy = JsonNode.Parse(File.ReadAllText(policyPath))!;
        policy["acl"]!.AsArray().Add(new JsonObject { ["allow"] = new JsonObject { ["from"] = Caller, ["to"] = "rtt://mcp/conf/*" } });
        var aliases = new JsonObject();
        foreach (var tool in ToolNames)
        {
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = Caller, ["to"] = $"rtt://mcp/conf/{tool}" });
            aliases[$"rtt://mcp/conf/{tool}"] = tool; // the suite calls the tools by their own names
        }

        // Prompts (under their own names), resources and the template: routed and served like the tools (docs/gateway.md).
        foreach (var prompt in PromptNames)
        {
            var symbol = Rtt.Registry.McpPrimitive.Prompt.Symbol("conf", prompt);
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = Caller, ["to"] = symbol });
            aliases[symbol] = prompt;
        }

        foreach (var uri in ResourceUris)
        {
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = Caller, ["to"] = Rtt.Registry.McpPrimitive.Resource.Symbol("conf", uri) });
        }

        routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = Caller, ["to"] = Rtt.Registry.McpPrimitive.Template.Symbol("conf", "test://template/{id}/data") });
        policy["mcp_aliases"] = aliases;
        File.WriteAllText(routesPath, routes.ToJsonString());
        File.WriteAllText(policyPath, policy.ToJsonString());
        McpGatewayTests.Ok(ws, "scan");
        Silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60));
        try
        {
            McpGatewayTests.Ok(ws, "plan");
            Assert.Equal("applied", (string?)JsonNode.Parse(McpGatewayTests.Ok(ws, "apply", "--json"))!["outcome"]);
            Gateway = RttProcess.Start(ws, null, "mcp", "serve", "--as", Caller, "--http", "--port", "0");
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!Gateway.Stdout.Contains("/mcp", StringComparison.Ordinal))
            {
                Assert.False(Gateway.HasExited || DateTime.UtcNow > deadline, $"rtt mcp serve did not start: {Gateway.Stderr}");
                Thread.Sleep(50);
            }

            var at = Gateway.Stdout.IndexOf("http://", StringComparison.Ordinal);
            Url = new Uri(Gateway.Stdout[at..Gateway.Stdout.IndexOf(' ', at)]);
            Token = File.ReadAllText(Path.Combine(ws, ".rtt", "keys", "mcp-gateway.token")).Trim();
            Proxy = StartListening("node", [Path.GetFullPath(Path.Combine(Modules, "..", "..", "bearer-proxy.mjs")), Url.ToString(), Path.Combine(ws, ".rtt", "keys", "mcp-gateway.token")], out var proxied);
            ProxiedUrl = new Uri(proxied, Url.AbsolutePath);
        }
        catch
        {
            // A fixture that throws is never disposed: stop what it started.
            Proxy?.Kill(entireProcessTree: true);
            Gateway?.Terminate();
            Gateway?.WaitForExit(TimeSpan.FromSeconds(20));
            Silo.Terminate();
            Silo.WaitForExit(TimeSpan.FromSeconds(30));
            _dir.Dispose();
            throw;
        }
    }

    public string Modules { get; }

    /// <summary>The conformance suite's entry script.</summary>
    public string Suite { get; }

    /// <summary>The conformance test server's binary.</summary>
    public string Server { get; }

    public string Workspace { get; }

    public RttProcess Silo { get; }

    public RttProcess Gateway { get; } = null!;

    public Process Proxy { get; } = null!;

    public Uri Url { get; } = null!;

    /// <summary>The gateway's URL through the bearer proxy (no credential needed).</summary>
    public Uri ProxiedUrl { get; } = null!;

    public string Token { get; } = "";

    /// <summary>Starts a process that prints a line with <c>http://…</c> once it listens; the URL's authority.</summary>
    public static Process StartListening(string command, IEnumerable<string> args, out Uri url)
    {
        var info = new ProcessStartInfo(command) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        var p = Process.Start(info)!;
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Line(string? line)
        {
            if (line is not null && line.IndexOf("http://", StringComparison.Ordinal) is var i and >= 0)
            {
                seen.TrySetResult(line[i..].Split(' ')[0]);
            }
        }

        p.OutputDataReceived += (_, e) => Line(e.Data);
        p.ErrorDataReceived += (_, e) => Line(e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!seen.Task.Wait(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{command} {string.Join(' ', info.ArgumentList)} did not start listening");
        }

        url = new Uri(new Uri(seen.Task.Result).GetLeftPart(UriPartial.Authority));
        return p;
    }

    public void Dispose()
    {
        Proxy.Kill(entireProcessTree: true);
        Proxy.Dispose();
        Gateway.Terminate();
        Gateway.WaitForExit(TimeSpan.FromSeconds(20));
        Silo.Terminate();
        Silo.WaitForExit(TimeSpan.FromSeconds(30));
        Gateway.Dispose();
        Silo.Dispose();
        _dir.Dispose();
    }
}

/// <summary>
/// The official MCP conformance suite (<c>@modelcontextprotocol/conformance</c> 0.1.13, all 32 server scenarios) run in
/// the same test against our conformance server directly (Streamable HTTP) and through <c>rtt mcp serve --http</c> (the
/// same server behind the silo over stdio). RTT must lose nothing of the protocol: every scenario that passes directly
/// passes through RTT, except the ones listed in <see cref="KnownGaps"/> (docs/gateway.md says why each one fails); a gap
/// that closes, or a scenario that starts failing, fails this test until the list says so.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class McpConformanceTests(ConformanceWorkspace cw, ITestOutputHelper output) : IClassFixture<ConformanceWorkspace>
{
    /// <summary>Scenarios that pass directly and fail through RTT today, and why (docs/gateway.md, "Conformance").</summary>
    public static readonly string[] KnownGaps = [];

    [Fact]
    public void The_suite_passes_as_many_scenarios_through_rtt_as_directly_except_the_known_gaps()
    {
        var port = RttProcess.FreePort();
        using var server = ConformanceWorkspace.StartListening(cw.Server, ["--http", $"http://127.0.0.1:{port}/mcp"], out _);
        Dictionary<string, (int Passed, int Failed)> direct, through;
        try
        {
            direct = Run(new Uri($"http://127.0.0.1:{port}/mcp"));
        }
        finally
        {
            server.Kill(entireProcessTree: true);
        }

        through = Run(cw.ProxiedUrl);
        output.WriteLine($"{"scenario",-32} {"direct",-8} through RTT");
        foreach (var (scenario, d) in direct)
        {
            var t = through.GetValueOrDefault(scenario, (0, -1));
            output.WriteLine($"{scenario,-32} {d.Passed}/{d.Passed + d.Failed,-6} {t.Item1}/{t.Item1 + t.Item2}");
        }

        Assert.Equal(32, direct.Count);
        Assert.All(direct, d => Assert.True(d.Value.Failed == 0, $"{d.Key} fails directly against rtt-conformance-mcp"));
        Assert.Equal(direct.Keys.Order(StringComparer.Ordinal), through.Keys.Order(StringComparer.Ordinal));
        var failing = through.Where(t => t.Value.Failed > 0).Select(t => t.Key).Order(StringComparer.Ordinal).ToList();
        foreach (var scenario in failing.Except(KnownGaps))
        {
            output.WriteLine($"{scenario} through RTT: {Details(scenario)}");
        }

        Assert.Equal(KnownGaps.Order(StringComparer.Ordinal), failing);
        // Outside the gaps, through RTT passes exactly the checks that pass directly.
        foreach (var (scenario, d) in direct.Where(d => !KnownGaps.Contains(d.Key)))
        {
            Assert.Equal((scenario, d), (scenario, through[scenario]));
        }
    }

    [Fact]
    public async Task Progress_log_messages_sampling_and_elicitation_are_relayed_to_an_sdk_client_through_the_fabric()
    {
        var logs = new ConcurrentQueue<string>();
        var asked = new ConcurrentQueue<string>();
#pragma warning disable MCP9005 // the deprecated features are what the relay carries
        var options = new McpClientOptions
        {
            // A 2025-11-25 session: server-to-client requests need one (a 2026-07-28 client is served per request, where the
            // SDK refuses them; docs/gateway.md).
            ProtocolVersion = "2025-11-25",
            Handlers = new McpClientHandlers
            {
                NotificationHandlers = [new(NotificationMethods.LoggingMessageNotification, (n, _) =>
                {
                    logs.Enqueue(n.Params!["data"]!.ToString());
                    return ValueTask.CompletedTask;
                })],
                SamplingHandler = (request, _, _) =>
                {
                    asked.Enqueue("sampling: " + ((TextContentBlock)request!.Messages[0].Content[0]).Text);
                    return ValueTask.FromResult(new CreateMessageResult { Model = "test-model", Role = Role.Assistant, Content = [new TextContentBlock { Text = "relayed answer" }] });
                },
                ElicitationHandler = (request, _) =>
                {
                    asked.Enqueue("elicitation: " + request!.Message);
                    return ValueTask.FromResult(new ElicitResult
                    {
                        Action = "accept",
                        Content = new Dictionary<string, JsonElement> { ["username"] = JsonSerializer.SerializeToElement("ada"), ["email"] = JsonSerializer.SerializeToElement("ada@example.com") },
                    });
                },
            },
        };
#pragma warning restore MCP9005
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = cw.Url,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + cw.Token },
        }), options);

        // Progress: the server's 0, 50, 100 of 100 arrive under this client's own token. (In order and before the result
        // is the conformance suite's check: this SDK client handles incoming messages concurrently, so it may reorder them.)
        var progress = new ConcurrentQueue<float>();
        var done = await client.CallToolAsync("test_tool_with_progress", new Dictionary<string, object?>(), new SyncProgress(p => progress.Enqueue(p.Progress)));
        Assert.Equal("Progress test completed", ((TextContentBlock)done.Content[0]).Text);
        Assert.Equal([0f, 50f, 100f], progress.Order());

        // Log messages during a call.
        await client.CallToolAsync("test_tool_with_logging", new Dictionary<string, object?>());
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (logs.Count < 3 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(["Tool execution completed", "Tool execution started", "Tool processing data"], logs.Order(StringComparer.Ordinal));

        // Sampling and elicitation: asked of this client, its answers back to the server inside the same call.
        var sampled = await client.CallToolAsync("test_sampling", new Dictionary<string, object?> { ["prompt"] = "what is rtt?" });
        Assert.Equal("LLM response: relayed answer", ((TextContentBlock)sampled.Content[0]).Text);
        var elicited = await client.CallToolAsync("test_elicitation", new Dictionary<string, object?> { ["message"] = "who are you?" });
        Assert.Equal("""User response: action=accept, content={"username":"ada","email":"ada@example.com"}""", ((TextContentBlock)elicited.Content[0]).Text);
        Assert.Equal(["sampling: what is rtt?", "elicitation: who are you?"], asked);
    }

    [Fact]
    public async Task Prompts_resources_templates_and_completion_reach_an_sdk_client_through_the_fabric_and_a_plan_change_is_announced()
    {
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = cw.Url,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + cw.Token },
        }), new McpClientOptions { ProtocolVersion = "2025-11-25" });

        // Listed from the pinned registry objects, prompts under their aliases, resources under the server's own URIs.
        Assert.Equal(ConformanceWorkspace.PromptNames.Order(StringComparer.Ordinal), (await client.ListPromptsAsync()).Select(p => p.Name).Order(StringComparer.Ordinal));
        var withArgs = (await client.ListPromptsAsync()).Single(p => p.Name == "test_prompt_with_arguments").ProtocolPrompt;
        Assert.Equal(["arg1", "arg2"], withArgs.Arguments!.Select(a => a.Name));
        Assert.Equal(ConformanceWorkspace.ResourceUris.Order(StringComparer.Ordinal), (await client.ListResourcesAsync()).Select(r => r.Uri).Order(StringComparer.Ordinal));
        Assert.Equal(["test://template/{id}/data"], (await client.ListResourceTemplatesAsync()).Select(t => t.UriTemplate));

        // prompts/get, resources/read (a resource and a template's URI) and completion/complete travel on their routes.
        var prompt = await client.GetPromptAsync("test_prompt_with_arguments", new Dictionary<string, object?> { ["arg1"] = "x", ["arg2"] = "y" });
        Assert.Equal("Prompt with arguments: arg1='x', arg2='y'", ((TextContentBlock)prompt.Messages[0].Content).Text);
        var text = await client.ReadResourceAsync("test://static-text");
        Assert.Equal("This is the content of the static text resource.", ((TextResourceContents)text.Contents[0]).Text);
        var templated = await client.ReadResourceAsync("test://template/42/data");
        Assert.Contains("Data for ID: 42", ((TextResourceContents)templated.Contents[0]).Text, StringComparison.Ordinal);
        var completed = await client.CompleteAsync(new PromptReference { Name = "test_prompt_with_arguments" }, "arg1", "pa");
        Assert.Equal(["paris", "park", "party"], completed.Completion.Values);
        await Assert.ThrowsAsync<McpProtocolException>(() => client.ReadResourceAsync("test://not-routed").AsTask());
        await Assert.ThrowsAsync<McpProtocolException>(() => client.GetPromptAsync("no_such_prompt").AsTask());

        // A capability token reaches only the prompts and resources whose symbols it allows (as for tools).
        var simpleOnly = McpGatewayTests.Ok(cw.Workspace, "token", "issue", "--saddr", Rtt.Registry.McpPrimitive.Prompt.Symbol("conf", "test_simple_prompt"), "--verb", "open,rx,tx", "--ttl", "10m").Trim();
        await using (var narrow = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = cw.Url,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + simpleOnly },
        })))
        {
            Assert.Equal(["test_simple_prompt"], (await narrow.ListPromptsAsync()).Select(p => p.Name));
            Assert.Empty(await narrow.ListResourcesAsync());
            Assert.Empty(await narrow.ListResourceTemplatesAsync());
            Assert.Equal("This is a simple prompt for testing.", ((TextContentBlock)(await narrow.GetPromptAsync("test_simple_prompt")).Messages[0].Content).Text);
            var denied = await Assert.ThrowsAsync<McpProtocolException>(() => narrow.ReadResourceAsync("test://static-text").AsTask());
            Assert.Contains(ErrorCodes.TokenRouteDenied, denied.Message, StringComparison.Ordinal);
        }

        // A plan without the image prompt and the binary resource: both list_changed notifications, and they are gone; then back.
        var prompts = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resources = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var onPrompts = client.RegisterNotificationHandler(NotificationMethods.PromptListChangedNotification, (_, _) => { prompts.TrySetResult(); return ValueTask.CompletedTask; });
        await using var onResources = client.RegisterNotificationHandler(NotificationMethods.ResourceListChangedNotification, (_, _) => { resources.TrySetResult(); return ValueTask.CompletedTask; });
        var routesPath = Path.Combine(cw.Workspace, ".rtt", "routes.json");
        var original = File.ReadAllText(routesPath);
        var routes = JsonNode.Parse(original)!;
        var dropped = new[] { Rtt.Registry.McpPrimitive.Prompt.Symbol("conf", "test_prompt_with_image"), Rtt.Registry.McpPrimitive.Resource.Symbol("conf", "test://static-binary") };
        var kept = new JsonArray([.. routes["routes"]!.AsArray().Where(r => !dropped.Contains((string?)r!["to"])).Select(r => r!.DeepClone())]);
        routes["routes"] = kept;
        try
        {
            File.WriteAllText(routesPath, routes.ToJsonString());
            McpGatewayTests.Ok(cw.Workspace, "plan");
            McpGatewayTests.Ok(cw.Workspace, "apply");
            await prompts.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await resources.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.DoesNotContain("test_prompt_with_image", (await client.ListPromptsAsync()).Select(p => p.Name));
            Assert.DoesNotContain("test://static-binary", (await client.ListResourcesAsync()).Select(r => r.Uri));
        }
        finally
        {
            File.WriteAllText(routesPath, original);
            McpGatewayTests.Ok(cw.Workspace, "plan");
            McpGatewayTests.Ok(cw.Workspace, "apply");
        }

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!(await client.ListPromptsAsync()).Any(p => p.Name == "test_prompt_with_image"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the restored plan's prompt never came back");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_subscription_through_rtt_is_held_upstream_with_subscriptions_listen_on_a_2026_07_28_session_and_cancelled_by_the_last_unsubscribe()
    {
        // The silo's session to the conformance server speaks 2026-07-28, which has no resources/subscribe: the endpoint
        // holds a subscriptions/listen request for the URI while a client is subscribed (docs/gateway.md, "Subscriptions").
        // (A resource the suite never subscribes: its sessions, never deleted, keep their subscription until they idle out.)
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = cw.Url,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + cw.Token },
        }), new McpClientOptions { ProtocolVersion = "2025-11-25" });
        await client.SubscribeToResourceAsync(new SubscribeRequestParams { Uri = "test://static-text" });
        string Log() => cw.Silo.Stdout + cw.Silo.Stderr;
        Assert.Contains("subscribing to test://static-text (subscriptions/listen, protocol 2026-07-28)", Log(), StringComparison.Ordinal);
        await client.UnsubscribeFromResourceAsync(new UnsubscribeRequestParams { Uri = "test://static-text" });
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!Log().Contains("the last subscriber of test://static-text left; unsubscribing (subscriptions/listen cancelled)", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the upstream listen request was never cancelled");
            await Task.Delay(100);
        }
    }

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; posts to the pool, which could reorder).</summary>
    private sealed class SyncProgress(Action<ProgressNotificationValue> report) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value) => report(value);
    }

    private string? _lastResults;

    /// <summary>The failed checks of a scenario in the last run (its checks.json), for the test's output.</summary>
    private string Details(string scenario)
    {
        var folder = Directory.GetDirectories(_lastResults!, $"server-{scenario}-*").FirstOrDefault();
        var checks = folder is null ? null : JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "checks.json"))) as JsonArray;
        return checks is null ? "(no checks.json)" : string.Join(" | ", checks.Where(c => (string?)c!["status"] == "FAILURE").Select(c => c!.ToJsonString()));
    }

    /// <summary>Runs every scenario of the suite (all, pending included) against a URL: passed and failed checks per scenario.</summary>
    private Dictionary<string, (int Passed, int Failed)> Run(Uri url)
    {
        var results = _lastResults = Path.Combine(cw.Workspace, "conformance-" + Guid.NewGuid().ToString("N"));
        var info = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetDirectoryName(cw.Suite)! };
        foreach (var a in new[] { cw.Suite, "server", "--suite", "all", "--url", url.ToString(), "-o", results })
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "the conformance suite hung");
        var summary = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        foreach (var line in stdout.Split('\n'))
        {
            // "✓ tools-call-image: 1 passed, 0 failed"
            var m = System.Text.RegularExpressions.Regex.Match(line, @"^[✓✗] ([a-z0-9-]+): (\d+) passed, (\d+) failed");
            if (m.Success)
            {
                summary[m.Groups[1].Value] = (int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), int.Parse(m.Groups[3].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        Assert.True(summary.Count > 0, $"no summary from the suite against {url}:\n{stdout}\n{stderr.Result}");
        return summary;
    }
}
