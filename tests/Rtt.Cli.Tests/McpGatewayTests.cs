using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>
/// One workspace for the gateway tests: the quickstart with a caller (<c>rtt://agents/gw/client</c>) routed to four tools
/// of the bundled C# MCP server, a running silo with the plan applied, and <c>rtt mcp serve --http</c> in front of it.
/// </summary>
public sealed class GatewayWorkspace : IDisposable
{
    public const string Caller = "rtt://agents/gw/client";
    private readonly TempDir _dir;

    public GatewayWorkspace()
    {
        _dir = TempDir.Quickstart(out var ws);
        Workspace = ws;
        File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", "agents.gw.client.json"), new JsonObject
        {
            ["address"] = Caller,
            ["version"] = "1.0.0",
            ["input"] = "rtt.types/Void",
            ["output"] = JsonNode.Parse("""
                {"type":"object","required":["text","message","reason","ms"],
                 "properties":{"text":{"type":"string"},"message":{"type":"string"},"reason":{"type":"string"},"ms":{"type":"integer"}}}
                """),
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 50,
            ["demand"] = new JsonObject { ["cpu_millis"] = 50, ["memory_mb"] = 16 },
        }.ToJsonString());
        Route("upper", "fail", "sleep");
        var policy = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "policy.json")))!;
        policy["acl"]!.AsArray().Add(new JsonObject { ["allow"] = new JsonObject { ["from"] = Caller, ["to"] = "rtt://mcp/sample/*" } });
        File.WriteAllText(Path.Combine(ws, ".rtt", "policy.json"), policy.ToJsonString());
        McpGatewayTests.Ok(ws, "scan");
        // The silo serves the gateway too (rtt up --mcp): the same server at /mcp on its web host.
        Silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60), "--mcp", Caller, "--panel-port", "0");
        var mcpLine = Silo.Stdout.Split('\n').Single(l => l.TrimStart().StartsWith("mcp: http://", StringComparison.Ordinal));
        SiloUrl = new Uri(mcpLine.Trim()["mcp: ".Length..].Split(' ')[0]);
        Apply();
        Gateway = RttProcess.Start(ws, null, "mcp", "serve", "--as", Caller, "--http", "--port", "0");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!Gateway.Stdout.Contains("/mcp", StringComparison.Ordinal))
        {
            Assert.False(Gateway.HasExited, $"rtt mcp serve exited: {Gateway.Stderr}");
            Assert.True(DateTime.UtcNow < deadline, $"rtt mcp serve did not start: {Gateway.Stderr}");
            Thread.Sleep(50);
        }

        var line = Gateway.Stdout;
        var at = line.IndexOf("http://", StringComparison.Ordinal);
        Url = new Uri(line[at..line.IndexOf(' ', at)]);
        Token = File.ReadAllText(Path.Combine(ws, ".rtt", "keys", "mcp-gateway.token")).Trim();
    }

    public string Workspace { get; }

    public RttProcess Silo { get; }

    public RttProcess Gateway { get; }

    public Uri Url { get; }

    /// <summary>The silo's own gateway (rtt up --mcp CALLER): /mcp on its web host.</summary>
    public Uri SiloUrl { get; }

    public string Token { get; }

    /// <summary>Adds routes from the caller to these tools of the sample server (routes.json only).</summary>
    public void Route(params string[] tools)
    {
        var path = Path.Combine(Workspace, ".rtt", "routes.json");
        var routes = JsonNode.Parse(File.ReadAllText(path))!;
        foreach (var tool in tools)
        {
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = Caller, ["to"] = $"rtt://mcp/sample/{tool}", ["version"] = "^1.0.0" });
        }

        File.WriteAllText(path, routes.ToJsonString());
    }

    public void Apply()
    {
        McpGatewayTests.Ok(Workspace, "plan");
        Assert.Equal("applied", (string?)JsonNode.Parse(McpGatewayTests.Ok(Workspace, "apply", "--json"))!["outcome"]);
    }

    public void Dispose()
    {
        Gateway.Terminate();
        Assert.True(Gateway.WaitForExit(TimeSpan.FromSeconds(20)), "rtt mcp serve did not stop on SIGTERM");
        Assert.DoesNotContain(Token, Gateway.Stdout + Gateway.Stderr + Silo.Stdout + Silo.Stderr, StringComparison.Ordinal);
        Silo.Terminate();
        Silo.WaitForExit(TimeSpan.FromSeconds(30));
        Gateway.Dispose();
        Silo.Dispose();
        _dir.Dispose();
    }
}

/// <summary><c>rtt mcp serve</c> with real MCP clients (the SDK's McpClient over Streamable HTTP and stdio) and raw HTTP.</summary>
[Collection(ProcessCollection.Name)]
public sealed partial class McpGatewayTests(GatewayWorkspace gw) : IClassFixture<GatewayWorkspace>
{
    private static readonly string[] Served = ["sample__fail", "sample__sleep", "sample__upper"];

    [Fact]
    public async Task An_sdk_client_over_streamable_http_lists_the_pinned_tools_and_calls_through_the_fabric()
    {
        await using var client = await Http(gw.Token);
        var tools = await client.ListToolsAsync();
        Assert.Equal(Served, tools.Select(t => t.Name).Where(n => n != "say").Order(StringComparer.Ordinal)); // "say": routed by the stdio test
        var upper = tools.Single(t => t.Name == "sample__upper").ProtocolTool;
        Assert.Equal("Returns the text in upper case (invariant culture).", upper.Description); // the pinned description
        Assert.Equal("""{"properties":{"text":{"description":"The text","type":"string"}},"required":["text"],"type":"object"}""", JsonSerializer.Serialize(upper.InputSchema));

        var answer = await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "été through rtt" });
        Assert.Equal("ÉTÉ THROUGH RTT", Assert.IsType<TextContentBlock>(Assert.Single(answer.Content)).Text);
        Assert.NotEqual(true, answer.IsError);

        // A tool error is an answer with isError, as the server sent it.
        var failed = await client.CallToolAsync("sample__fail", new Dictionary<string, object?> { ["reason"] = "on purpose" });
        Assert.True(failed.IsError);
        Assert.Contains("on purpose", Assert.IsType<TextContentBlock>(Assert.Single(failed.Content)).Text, StringComparison.Ordinal);

        // Bad input: arguments that fail the pinned schema (nothing reaches the server), an unknown tool.
        var bad = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["txt"] = 1 }).AsTask());
        Assert.Equal(McpErrorCode.InvalidParams, bad.ErrorCode);
        Assert.Contains(ErrorCodes.CallArgsInvalid, bad.Message, StringComparison.Ordinal);
        var unknown = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("sample__echo", new Dictionary<string, object?> { ["message"] = "x" }).AsTask());
        Assert.Contains("sample__echo", unknown.Message, StringComparison.Ordinal);

        // Concurrent calls on one session each get their own answer.
        var many = await Task.WhenAll(Enumerable.Range(0, 16).Select(i =>
            client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = $"call {i}" }).AsTask()));
        Assert.Equal(Enumerable.Range(0, 16).Select(i => $"CALL {i}"), many.Select(r => ((TextContentBlock)r.Content[0]).Text));
    }

    [Fact]
    public async Task A_silo_started_with_mcp_serves_the_same_gateway_on_its_web_host_behind_the_same_credentials()
    {
        Assert.Contains($"mcp: {gw.SiloUrl} (as {GatewayWorkspace.Caller}", gw.Silo.Stdout, StringComparison.Ordinal);
        Assert.Equal("/mcp", gw.SiloUrl.AbsolutePath);

        // Nothing runs without the gateway's credential: no bearer (the web host wants an Origin or a credential on a
        // write: 403), a wrong one (401), the panel's login cookie path is not a way in either.
        using var http = new HttpClient();
        var body = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample__sleep","arguments":{"ms":1}}}""";
        foreach (var (auth, origin, status) in new (string?, string?, HttpStatusCode)[]
                 {
                     (null, null, HttpStatusCode.Forbidden),
                     (null, $"http://{gw.SiloUrl.Authority}", HttpStatusCode.Unauthorized),
                     ("Bearer wrong-token-wrong-token", null, HttpStatusCode.Unauthorized),
                     ("Bearer " + gw.Token, "http://evil.example", HttpStatusCode.Forbidden),
                 })
        {
            using var request = McpPost(gw.SiloUrl, body, auth, origin, null);
            using var response = await http.SendAsync(request);
            Assert.True(status == response.StatusCode, $"{auth} {origin}: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        // A real MCP client with the workspace's gateway token lists the pinned tools and calls through the fabric.
        await using var client = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = gw.SiloUrl,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + gw.Token },
        }));
        Assert.Equal("rtt", client.ServerInfo?.Name);
        IList<McpClientTool> tools = [];
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!(tools = await client.ListToolsAsync()).Any(t => t.Name == "sample__upper"))
        {
            Assert.True(DateTime.UtcNow < deadline, "the silo's gateway never listed the applied plan's tools");
            await Task.Delay(200);
        }

        Assert.Equal("Returns the text in upper case (invariant culture).", tools.Single(t => t.Name == "sample__upper").Description);
        var answer = await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "through the silo" });
        Assert.Equal("THROUGH THE SILO", Assert.IsType<TextContentBlock>(Assert.Single(answer.Content)).Text);
        var bad = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["txt"] = 1 }).AsTask());
        Assert.Contains(ErrorCodes.CallArgsInvalid, bad.Message, StringComparison.Ordinal);

        // A capability token as bearer reaches only the tools it allows, as with rtt mcp serve (the silo's own verifier).
        var upperOnly = Ok(gw.Workspace, "token", "issue", "--saddr", "rtt://mcp/sample/upper", "--verb", "open,rx,tx", "--ttl", "10m").Trim();
        await using var narrow = await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = gw.SiloUrl,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + upperOnly },
        }));
        Assert.Equal(["sample__upper"], (await narrow.ListToolsAsync()).Select(t => t.Name));
        var denied = await Assert.ThrowsAsync<McpProtocolException>(() => narrow.CallToolAsync("sample__sleep", new Dictionary<string, object?> { ["ms"] = 1 }).AsTask());
        Assert.Contains(ErrorCodes.TokenRouteDenied, denied.Message, StringComparison.Ordinal);
    }

    /// <summary>A Streamable HTTP POST as an MCP client sends it, with the given Authorization, Origin and Host (each when not null).</summary>
    private static HttpRequestMessage McpPost(Uri url, string body, string? auth, string? origin, string? host)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (auth is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", auth);
        }

        if (origin is not null)
        {
            request.Headers.TryAddWithoutValidation("Origin", origin);
        }

        if (host is not null)
        {
            request.Headers.Host = host;
        }

        return request;
    }

    [Fact]
    public async Task Http_without_the_right_credential_or_from_a_foreign_origin_is_refused_before_anything_runs()
    {
        using var http = new HttpClient();
        var body = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample__sleep","arguments":{"ms":1}}}""";
        foreach (var (auth, origin, host, status) in new (string?, string?, string?, HttpStatusCode)[]
                 {
                     (null, null, null, HttpStatusCode.Unauthorized),
                     ("Bearer wrong-token-wrong-token", null, null, HttpStatusCode.Unauthorized),
                     ("Basic " + gw.Token, null, null, HttpStatusCode.Unauthorized),
                     ("Bearer " + gw.Token, "http://evil.example", null, HttpStatusCode.Forbidden),
                     ("Bearer " + gw.Token, null, "evil.example", HttpStatusCode.Forbidden),
                 })
        {
            using var request = McpPost(gw.Url, body, auth, origin, host);
            using var response = await http.SendAsync(request);
            Assert.Equal(status, response.StatusCode);
            var text = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain(gw.Token, text, StringComparison.Ordinal);
            if (status == HttpStatusCode.Unauthorized)
            {
                Assert.StartsWith("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
            }
        }

        // A loopback Origin is fine; malformed JSON-RPC is a 400 from the protocol layer, the gateway keeps serving.
        using var malformed = new HttpRequestMessage(HttpMethod.Post, gw.Url) { Content = new StringContent("""{"jsonrpc":""", Encoding.UTF8, "application/json") };
        malformed.Headers.Accept.ParseAdd("application/json");
        malformed.Headers.Accept.ParseAdd("text/event-stream");
        malformed.Headers.TryAddWithoutValidation("Authorization", "Bearer " + gw.Token);
        malformed.Headers.TryAddWithoutValidation("Origin", "http://localhost:3000");
        using var bad = await http.SendAsync(malformed);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);

        await using var client = await Http(gw.Token);
        Assert.Contains("sample__upper", (await client.ListToolsAsync()).Select(t => t.Name));
    }

    [Fact]
    public async Task An_sdk_client_over_stdio_lists_and_calls_and_a_newly_routed_tool_is_announced_with_list_changed()
    {
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Command = Path.Combine(RttProcess.CliDirectory, "rtt"),
            Arguments = ["mcp", "serve", "--as", GatewayWorkspace.Caller, "--stdio"],
            WorkingDirectory = gw.Workspace,
            Name = "rtt",
        });
        // 2025-11-25: list_changed is sent unasked (2026-07-28 clients subscribe to it through the SDK instead).
        await using var client = await McpClient.CreateAsync(transport, new McpClientOptions { ProtocolVersion = "2025-11-25" });
        Assert.Equal("rtt", client.ServerInfo?.Name);
        var before = (await client.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Contains("sample__upper", before);
        var answer = await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "over stdio" });
        Assert.Equal("OVER STDIO", ((TextContentBlock)answer.Content[0]).Text);

        // An alias equal to a served name is a planning error naming both tools; nothing is applied.
        var policyPath = Path.Combine(gw.Workspace, ".rtt", "policy.json");
        var policy = JsonNode.Parse(File.ReadAllText(policyPath))!;
        policy["mcp_aliases"] = new JsonObject { ["rtt://mcp/sample/echo"] = "sample__upper" };
        File.WriteAllText(policyPath, policy.ToJsonString());
        gw.Route("echo");
        var clash = RttProcess.Run(gw.Workspace, "plan");
        Assert.Equal(1, clash.ExitCode);
        Assert.Contains(ErrorCodes.PlanToolNameCollision, clash.Stderr, StringComparison.Ordinal);
        Assert.Contains("rtt://mcp/sample/echo", clash.Stderr, StringComparison.Ordinal);
        Assert.Contains("rtt://mcp/sample/upper", clash.Stderr, StringComparison.Ordinal);

        // With a free alias the plan applies, and the client hears tools/list_changed and sees the new tool by its alias.
        var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var handler = client.RegisterNotificationHandler(NotificationMethods.ToolListChangedNotification, (_, _) =>
        {
            changed.TrySetResult();
            return ValueTask.CompletedTask;
        });
        policy["mcp_aliases"] = new JsonObject { ["rtt://mcp/sample/echo"] = "say" };
        File.WriteAllText(policyPath, policy.ToJsonString());
        gw.Apply();
        await changed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var after = (await client.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal([.. before.Append("say").Order(StringComparer.Ordinal)], after);
        Assert.Equal("via alias", ((TextContentBlock)(await client.CallToolAsync("say", new Dictionary<string, object?> { ["message"] = "via alias" })).Content[0]).Text);
    }

    [Fact]
    public async Task A_cancelled_call_and_a_client_that_goes_away_mid_call_are_cancelled_upstream()
    {
        // The SDK client cancels: notifications/cancelled reaches the gateway, which withdraws the request on its lane
        // (a Cancel frame); the lane host cancels the MCP endpoint's call, which tells the server.
        await using (var client = await Http(gw.Token))
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                client.CallToolAsync("sample__sleep", new Dictionary<string, object?> { ["ms"] = 60_001 }, cancellationToken: cts.Token).AsTask());
            await Until(() => (gw.Silo.Stdout + gw.Silo.Stderr).Contains("sleep 60001 ms cancelled", StringComparison.Ordinal), "the server never heard of the cancellation");
            Assert.Equal("STILL", ((TextContentBlock)(await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "still" })).Content[0]).Text);
        }

        // A client whose gateway process dies mid-call (its lanes close): the lane host withdraws the call.
        var info = new System.Diagnostics.ProcessStartInfo(Path.Combine(RttProcess.CliDirectory, "rtt"), ["mcp", "serve", "--as", GatewayWorkspace.Caller, "--stdio"])
        {
            WorkingDirectory = gw.Workspace,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var stdio = System.Diagnostics.Process.Start(info)!;
        stdio.ErrorDataReceived += (_, _) => { };
        stdio.BeginErrorReadLine();
        var transport = new StreamClientTransport(stdio.StandardInput.BaseStream, stdio.StandardOutput.BaseStream);
        await using var doomed = await McpClient.CreateAsync(transport);
        var call = doomed.CallToolAsync("sample__sleep", new Dictionary<string, object?> { ["ms"] = 60_002 }).AsTask();
        await Until(() => (gw.Silo.Stdout + gw.Silo.Stderr).Contains("sleep", StringComparison.Ordinal) && !call.IsCompleted, "the call did not start");
        await Task.Delay(1000);
        stdio.Kill(); // SIGKILL: nothing is said, the lanes just close
        await Until(() => (gw.Silo.Stdout + gw.Silo.Stderr).Contains("sleep 60002 ms cancelled", StringComparison.Ordinal), "the server never heard that the caller went away");
        await Assert.ThrowsAnyAsync<Exception>(() => call);
    }

    private static async Task Until(Func<bool> condition, string because)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, because);
            await Task.Delay(100);
        }
    }

    private async Task<McpClient> Http(string token) => await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
    {
        Endpoint = gw.Url,
        TransportMode = HttpTransportMode.StreamableHttp,
        AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
    }));

    /// <summary>
    /// Routes <paramref name="caller"/> to each of <paramref name="targets"/> (its ACL: <c>rtt://mcp/**</c>), scans, starts
    /// the silo, plans and applies; the caller's manifest must be written already. Returns the silo.
    /// </summary>
    internal static RttProcess RouteAndApply(string ws, string caller, IEnumerable<string> targets)
    {
        var routesPath = Path.Combine(ws, ".rtt", "routes.json");
        var routes = JsonNode.Parse(File.ReadAllText(routesPath))!;
        foreach (var to in targets)
        {
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = caller, ["to"] = to });
        }

        File.WriteAllText(routesPath, routes.ToJsonString());
        var policyPath = Path.Combine(ws, ".rtt", "policy.json");
        var policy = JsonNode.Parse(File.ReadAllText(policyPath))!;
        policy["acl"]!.AsArray().Add(new JsonObject { ["allow"] = new JsonObject { ["from"] = caller, ["to"] = "rtt://mcp/**" } });
        File.WriteAllText(policyPath, policy.ToJsonString());
        Ok(ws, "scan");
        var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60));
        Ok(ws, "plan");
        Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws, "apply", "--json"))!["outcome"]);
        return silo;
    }

    /// <summary><c>rtt mcp serve --as CALLER --http --port 0</c>, once it listens, with its URL and the workspace's bearer token.</summary>
    internal static RttProcess StartHttpGateway(string ws, string caller, out string url, out string token)
    {
        var gateway = RttProcess.Start(ws, null, "mcp", "serve", "--as", caller, "--http", "--port", "0");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!gateway.Stdout.Contains("/mcp", StringComparison.Ordinal))
        {
            Assert.False(gateway.HasExited || DateTime.UtcNow > deadline, $"rtt mcp serve did not start: {gateway.Stderr}");
            Thread.Sleep(50);
        }

        var at = gateway.Stdout.IndexOf("http://", StringComparison.Ordinal);
        url = gateway.Stdout[at..gateway.Stdout.IndexOf(' ', at)];
        token = File.ReadAllText(Path.Combine(ws, ".rtt", "keys", "mcp-gateway.token")).Trim();
        return gateway;
    }

    internal static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
