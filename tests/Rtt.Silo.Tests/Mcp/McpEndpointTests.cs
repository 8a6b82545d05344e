using System.Diagnostics;
using System.Text.Json.Nodes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Silo.Endpoints.Mcp;

namespace Rtt.Silo.Tests.Mcp;

/// <summary>MCP tools called through a real lane host: client → SHM lane → silo lane host → MCP server process.</summary>
[Collection(McpCollection.Name)]
public sealed class McpEndpointTests(EverythingServer everything) : IClassFixture<EverythingServer>
{
    private static string[] Sample => ["dotnet", McpHarness.SampleServer];

    private static string[] Fake(string mode) => ["node", McpHarness.FakeServer, mode];

    [Fact]
    public async Task Tools_of_the_csharp_sample_server_answer_through_the_lane_with_one_shared_session()
    {
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("sample", Sample);
        await rtt.RouteAsync("rtt://mcp/sample/echo", "rtt://mcp/sample/add", "rtt://mcp/sample/upper", "rtt://mcp/sample/fail");

        // The plan carries one endpoint per tool: the server's serve block plus the tool's name, pin and object.
        var endpoints = rtt.Plan["endpoints"]!.AsObject();
        Assert.Equal(4, endpoints.Count(e => (string?)e.Value!["kind"] == "mcp-stdio"));
        var echoLane = rtt.LaneTo("rtt://mcp/sample/echo");
        var echoServe = endpoints[echoLane.Endpoint!]!.AsObject();
        Assert.Equal("mcp-stdio", (string?)echoServe["kind"]);
        Assert.Equal("echo", (string?)echoServe["tool"]!["name"]);
        Assert.StartsWith("sha256:", (string?)echoServe["tool"]!["pin"]);
        Assert.Equal(echoLane.Endpoint, ServeSpec.Hash(echoServe));
        Assert.Null(rtt.LaneTo("rtt://core/api/metrics").Endpoint); // a symbol without a serve block still ends at echo

        Assert.Empty(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30))); // the reconciler's verify passes

        var echo = rtt.Attach("rtt://mcp/sample/echo");
        Assert.Equal("hello through RTT", McpHarness.Text(await McpHarness.CallAsync(echo, """{"message":"hello through RTT"}""")));
        Assert.Equal("42", McpHarness.Text(await McpHarness.CallAsync(rtt.Attach("rtt://mcp/sample/add"), """{"a":40,"b":2}""")));
        Assert.Equal("ÉTÉ", McpHarness.Text(await McpHarness.CallAsync(rtt.Attach("rtt://mcp/sample/upper"), """{"text":"été"}""")));

        var failed = await McpHarness.CallAsync(rtt.Attach("rtt://mcp/sample/fail"), """{"reason":"on purpose"}""");
        Assert.True((bool)failed["isError"]!); // a tool error is the tool's answer, kept as it is
        Assert.Equal("failed: on purpose", McpHarness.Text(failed));

        // Arguments are checked against the pinned inputSchema before anything is sent.
        var bad = await McpHarness.FailAsync(rtt.Attach("rtt://mcp/sample/add"), """{"a":"forty","b":2}""");
        Assert.Equal(ErrorCodes.CallArgsInvalid, bad.Code);
        Assert.Contains("/a", bad.Message);
        Assert.Equal(ErrorCodes.CallArgsInvalid, (await McpHarness.FailAsync(echo, "[1,2]")).Code);
        Assert.Equal(ErrorCodes.CallArgsInvalid, (await McpHarness.FailAsync(echo, "{not json")).Code);

        // 200 concurrent calls, each answered with its own result.
        var calls = Enumerable.Range(0, 200).Select(i => McpHarness.CallAsync(echo, $$"""{"message":"m{{i}}"}""")).ToArray();
        var answers = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"m{i}"), answers.Select(McpHarness.Text));

        // Four tool endpoints, one server process and session; retiring the last tool closes it.
        var driver = Assert.IsType<McpToolDriver>(Assert.IsType<Fabric.Drivers.AsyncDriverEndpoint>(rtt.Host.Endpoints[echoLane.Endpoint!]).Driver);
        Assert.Equal(1, McpEndpoints.OpenSessions);
        Assert.Equal(1, driver.Session.Connects);
        await rtt.Host.ServeAsync([]);
        Assert.Equal(0, McpEndpoints.OpenSessions);
        Assert.NotNull(driver.Session.Down);
    }

    [Fact]
    public async Task The_real_server_everything_answers_through_the_lane()
    {
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("live", ["node", everything.Entry, "stdio"]);
        await rtt.RouteAsync("rtt://mcp/live/echo", "rtt://mcp/live/get-sum");
        Assert.Empty(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30)));

        var echo = rtt.Attach("rtt://mcp/live/echo");
        var answer = await McpHarness.CallAsync(echo, """{"message":"hi"}""");
        Assert.Contains("hi", McpHarness.Text(answer));
        Assert.NotEqual(true, (bool?)answer["isError"]);
        var sum = await McpHarness.CallAsync(rtt.Attach("rtt://mcp/live/get-sum"), """{"a":2,"b":3}""");
        Assert.Contains("5", McpHarness.Text(sum));

        var missing = await McpHarness.FailAsync(echo, "{}");
        Assert.Equal(ErrorCodes.CallArgsInvalid, missing.Code); // "message" is required by the pinned schema
    }

    [Fact]
    public async Task A_traced_call_reaches_the_MCP_server_with_the_silo_spans_traceparent_in_meta()
    {
        var spans = new System.Collections.Concurrent.ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Rtt",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("traced", Fake("ok"));
        await rtt.RouteAsync("rtt://mcp/traced/echo");
        var echo = rtt.Attach("rtt://mcp/traced/echo");
        Assert.Null((await McpHarness.CallAsync(echo, """{"message":"untraced"}"""))["_meta"]); // no context: none sent upstream
        Assert.True(Rtt.Fabric.Frames.TraceParent.TryParse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", out var caller));
        Rtt.Fabric.Frames.TraceParent.Outgoing = caller;
        JsonObject result;
        try
        {
            result = await McpHarness.CallAsync(echo, """{"message":"traced"}""");
        }
        finally
        {
            Rtt.Fabric.Frames.TraceParent.Outgoing = default;
        }

        Assert.Equal("echo: traced", McpHarness.Text(result));
        var sent = (string)result["_meta"]!["traceparent"]!; // what the server got in tools/call params._meta
        var span = spans.Single(s => s.TraceId.ToHexString() == "4bf92f3577b34da6a3ce929d0e0e4736");
        Assert.Equal("00f067aa0ba902b7", span.ParentSpanId.ToHexString()); // the silo's span is the caller's child
        Assert.Equal($"00-4bf92f3577b34da6a3ce929d0e0e4736-{span.SpanId.ToHexString()}-01", sent); // and the server's parent
        Assert.Equal("rtt://mcp/traced/echo", span.GetTagItem("rtt.route"));
    }

    [Fact]
    public async Task A_server_that_exits_at_start_fails_verify_with_its_exit_code_and_stderr()
    {
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("dead", Fake("ok"), McpHarness.Stdio(Fake("exit"), timeoutMs: 10_000));
        await rtt.RouteAsync("rtt://mcp/dead/echo", "rtt://core/api/metrics");
        var failed = Assert.Single(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30)));
        Assert.Equal("rtt://mcp/dead/echo", failed.Lane.To);
        Assert.StartsWith(ErrorCodes.EndpointUnavailable, failed.Why, StringComparison.Ordinal);
        Assert.Contains("cannot start", failed.Why); // the end of its stderr
        var call = await McpHarness.FailAsync(rtt.Attach("rtt://mcp/dead/echo"), """{"message":"x"}""");
        Assert.Equal(ErrorCodes.EndpointUnavailable, call.Code);
        Assert.Equal(0, McpEndpoints.OpenSessions);
    }

    [Fact]
    public async Task A_server_that_writes_garbage_never_initializes_and_is_refused_in_time()
    {
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("junk", Fake("ok"), McpHarness.Stdio(Fake("garbage"), timeoutMs: 2_000));
        var clock = Stopwatch.StartNew();
        await rtt.RouteAsync("rtt://mcp/junk/echo");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"serving took {clock.Elapsed}");
        var failed = Assert.Single(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30)));
        Assert.StartsWith(ErrorCodes.EndpointUnavailable, failed.Why, StringComparison.Ordinal);
        Assert.Contains("did not initialize within 2 s", failed.Why);
    }

    [Fact]
    public async Task Protocol_errors_hangs_drift_and_a_dying_server_each_get_their_code_while_the_host_keeps_serving()
    {
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("fake", Fake("ok"), McpHarness.Stdio(Fake("ok"), timeoutMs: 1_500));
        await rtt.RouteAsync("rtt://mcp/fake/echo", "rtt://mcp/fake/rpcerror", "rtt://mcp/fake/hang", "rtt://mcp/fake/mutate", "rtt://mcp/fake/die");
        Assert.Empty(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30)));
        var echo = rtt.Attach("rtt://mcp/fake/echo");
        Assert.Equal("echo: a", McpHarness.Text(await McpHarness.CallAsync(echo, """{"message":"a"}""")));
        var states = McpToolStates.Of(rtt.Host.Routes); // what the panel's Registry page shows live
        Assert.Equal(["rtt://mcp/fake/die", "rtt://mcp/fake/echo", "rtt://mcp/fake/hang", "rtt://mcp/fake/mutate", "rtt://mcp/fake/rpcerror"], states.Select(s => s.Symbol));
        Assert.All(states, s => Assert.True(s.State == "ok" && s.Pin == s.LivePin && s.Pin is not null && s.Why is null && s.Server.Contains("fake-mcp.js", StringComparison.Ordinal), s.ToString()));

        var rpc = await McpHarness.FailAsync(rtt.Attach("rtt://mcp/fake/rpcerror"), "{}");
        Assert.Equal(ErrorCodes.CallProtocolError, rpc.Code);
        Assert.Contains("-32603", rpc.Message);
        Assert.Contains("failed on purpose", rpc.Message);

        var clock = Stopwatch.StartNew();
        var hang = await McpHarness.FailAsync(rtt.Attach("rtt://mcp/fake/hang"), "{}");
        Assert.Equal(ErrorCodes.CallTimeout, hang.Code);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.4, 10);
        Assert.Equal("echo: b", McpHarness.Text(await McpHarness.CallAsync(echo, """{"message":"b"}"""))); // same session still serves

        // The server dies: calls are refused while it restarts, then served by the new process.
        var driver = Assert.IsType<McpToolDriver>(Assert.IsType<Fabric.Drivers.AsyncDriverEndpoint>(rtt.Host.Endpoints[rtt.LaneTo("rtt://mcp/fake/echo").Endpoint!]).Driver);
        await Assert.ThrowsAsync<RttException>(() => McpHarness.CallAsync(rtt.Attach("rtt://mcp/fake/die"), "{}"));
        await McpHarness.WaitUntil(() => driver.Session.Connects == 2 && driver.NotReady is null, TimeSpan.FromSeconds(20), "the restarted server");
        Assert.Equal("echo: c", McpHarness.Text(await McpHarness.CallAsync(echo, """{"message":"c"}""")));

        // The server changes echo while running (tools/list_changed): echo is refused as drifted, the others still run.
        Assert.Equal("mutated", McpHarness.Text(await McpHarness.CallAsync(rtt.Attach("rtt://mcp/fake/mutate"), "{}")));
        await McpHarness.WaitUntil(() => driver.Drift() is not null && driver.Session.Down is null, TimeSpan.FromSeconds(10), "the new tool list to be read");
        var drifted = await McpHarness.FailAsync(echo, """{"message":"d"}""");
        Assert.Equal(ErrorCodes.McpDrift, drifted.Code);
        Assert.Contains("drifted from its pin", drifted.Message);
        var probe = Assert.Single(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30)));
        Assert.Equal("rtt://mcp/fake/echo", probe.Lane.To);
        Assert.Contains(ErrorCodes.McpDrift, probe.Why); // the probe fails (RTT-CALL-003) naming the drift
        var live = McpToolStates.Of(rtt.Host.Routes);
        var echoState = Assert.Single(live, s => s.State != "ok");
        Assert.Equal(("rtt://mcp/fake/echo", "echo", "drifted"), (echoState.Symbol, echoState.Tool, echoState.State));
        Assert.NotEqual(echoState.Pin, echoState.LivePin);
        Assert.Contains("drifted from its pin", echoState.Why);
        Assert.Equal(ErrorCodes.CallProtocolError, (await McpHarness.FailAsync(rtt.Attach("rtt://mcp/fake/rpcerror"), "{}")).Code);
    }

    [Fact]
    public async Task A_tool_whose_live_definition_differs_from_its_pin_is_refused_from_the_start()
    {
        await using var rtt = await McpHarness.StartAsync();
        await rtt.IngestAsync("pinned", Fake("ok"), edit: tools => tools["tools"]![0]!["description"] = "what it said when it was pinned");
        await rtt.RouteAsync("rtt://mcp/pinned/echo", "rtt://mcp/pinned/rpcerror");
        var failed = Assert.Single(await rtt.Host.ProbeAsync(rtt.Lanes, TimeSpan.FromSeconds(30)));
        Assert.Equal("rtt://mcp/pinned/echo", failed.Lane.To);
        Assert.Contains(ErrorCodes.McpDrift, failed.Why);
        Assert.Equal(["drifted", "ok"], McpToolStates.Of(rtt.Host.Routes).Select(s => s.State)); // echo, rpcerror
        Assert.Equal(ErrorCodes.McpDrift, (await McpHarness.FailAsync(rtt.Attach("rtt://mcp/pinned/echo"), """{"message":"x"}""")).Code);
    }
}
