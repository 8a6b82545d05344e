using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>
/// Trace context end to end with real processes (observability.md, "Traces"): `rtt call --traceparent` (and the
/// TRACEPARENT environment variable) through the quickstart silo to its process service; the silo pushes the call's span
/// by OTLP to a stand-in collector, and the span carries the caller's trace id and parent id.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class TraceProcessTests
{
    private const string Upper = "rtt://core/api/upper";

    [Fact]
    public async Task Rtt_call_with_a_traceparent_gets_a_span_at_the_silo_whose_parent_is_the_callers()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        var otlpPort = RttProcess.FreePort();
        using var collector = new System.Net.HttpListener(); // a stand-in OTLP/HTTP collector: keeps what the silo pushes
        collector.Prefixes.Add($"http://127.0.0.1:{otlpPort}/");
        collector.Start();
        var pushed = new List<byte[]>();
        _ = Task.Run(async () =>
        {
            while (collector.IsListening)
            {
                try
                {
                    var context = await collector.GetContextAsync();
                    using var body = new MemoryStream();
                    await context.Request.InputStream.CopyToAsync(body);
                    lock (pushed)
                    {
                        pushed.Add(body.ToArray());
                    }

                    context.Response.StatusCode = 200;
                    context.Response.Close();
                }
                catch (Exception) when (!collector.IsListening)
                {
                    return;
                }
            }
        });
        var env = new Dictionary<string, string> { ["RTT_Metrics__OtlpTracesEndpoint"] = $"http://127.0.0.1:{otlpPort}/v1/traces" };
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), env, TimeSpan.FromSeconds(60));
        Ok(ws, "plan");
        Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws, "apply", "--json"))!["outcome"]);

        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        const string parentId = "00f067aa0ba902b7";
        Assert.Contains("v1:TRACED", Ok(ws, "call", Upper, "--args", "traced", "--traceparent", $"00-{traceId}-{parentId}-01"), StringComparison.Ordinal);
        const string envTraceId = "0af7651916cd43dd8448eb211c80319c";
        const string envParentId = "b7ad6b7169203331";
        var viaEnv = RttProcess.RunWith(ws, new Dictionary<string, string> { ["TRACEPARENT"] = $"00-{envTraceId}-{envParentId}-01" }, "call", Upper, "--args", "env");
        Assert.True(viaEnv.ExitCode == 0, viaEnv.ToString());

        // The OTLP body holds each span's trace id and parent span id as raw bytes.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        bool Has(string hex)
        {
            var bytes = Convert.FromHexString(hex);
            lock (pushed)
            {
                return pushed.Any(b => b.AsSpan().IndexOf(bytes) >= 0);
            }
        }

        while (!(Has(traceId + parentId) || (Has(traceId) && Has(parentId))) || !Has(envTraceId) || !Has(envParentId))
        {
            Assert.True(DateTime.UtcNow < deadline, $"no span with the callers' trace and parent ids pushed within 30 s ({pushed.Count} pushes)");
            await Task.Delay(200);
        }

        lock (pushed)
        {
            Assert.Contains(pushed, b => Encoding.UTF8.GetString(b).Contains(Upper, StringComparison.Ordinal)); // named after the route
        }

        var bad = RttProcess.Run(ws, "call", Upper, "--args", "x", "--traceparent", "00-nothex-01");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(ErrorCodes.CallInputInvalid, bad.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", bad.Stderr, StringComparison.Ordinal);
        collector.Stop();
    }

    [Fact]
    public async Task An_MCP_client_calling_through_the_gateway_with_meta_traceparent_gets_a_span_at_the_silo_whose_parent_is_the_clients()
    {
        // The gateway leg (observability.md, "Traces"): an MCP client's tools/call carries params._meta.traceparent into
        // `rtt mcp serve`; the gateway hands it to the call's envelope, and the silo's span of that call is its child.
        // (The next leg, the silo's span as the MCP server's _meta.traceparent, is McpEndpointTests'.)
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var collector = new OtlpCollector();
        var env = new Dictionary<string, string> { ["RTT_Metrics__OtlpTracesEndpoint"] = collector.TracesEndpoint };
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), env, TimeSpan.FromSeconds(60));
        Ok(ws, "plan");
        Assert.Equal("applied", (string?)JsonNode.Parse(Ok(ws, "apply", "--json"))!["outcome"]);

        var transport = new ModelContextProtocol.Client.StdioClientTransport(new ModelContextProtocol.Client.StdioClientTransportOptions
        {
            Command = Path.Combine(RttProcess.CliDirectory, "rtt"),
            Arguments = ["mcp", "serve", "--as", "rtt://ui/chat/tools", "--stdio"], // the quickstart routes it to the sample's upper
            WorkingDirectory = ws,
            Name = "rtt",
        });
        await using var client = await ModelContextProtocol.Client.McpClient.CreateAsync(transport);
        const string traceId = "5bf92f3577b34da6a3ce929d0e0e4737";
        const string parentId = "10f067aa0ba902b8";
        var untraced = await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "plain" });
        Assert.Equal("PLAIN", ((ModelContextProtocol.Protocol.TextContentBlock)untraced.Content[0]).Text);
        var traced = await client.CallToolAsync(new ModelContextProtocol.Protocol.CallToolRequestParams
        {
            Name = "sample__upper",
            Arguments = new Dictionary<string, System.Text.Json.JsonElement> { ["text"] = System.Text.Json.JsonSerializer.SerializeToElement("traced via mcp") },
            Meta = new JsonObject { ["traceparent"] = $"00-{traceId}-{parentId}-01" },
        });
        Assert.Equal("TRACED VIA MCP", ((ModelContextProtocol.Protocol.TextContentBlock)traced.Content[0]).Text);

        // A malformed traceparent is not a reason to fail the call: it is ignored, as W3C asks of a receiver.
        var malformed = await client.CallToolAsync(new ModelContextProtocol.Protocol.CallToolRequestParams
        {
            Name = "sample__upper",
            Arguments = new Dictionary<string, System.Text.Json.JsonElement> { ["text"] = System.Text.Json.JsonSerializer.SerializeToElement("bad trace") },
            Meta = new JsonObject { ["traceparent"] = "00-nothex-01" },
        });
        Assert.Equal("BAD TRACE", ((ModelContextProtocol.Protocol.TextContentBlock)malformed.Content[0]).Text);

        // The silo's span: the client's trace id, the client's span as its parent (OTLP carries both as raw bytes).
        var span = await collector.WaitForSpanAsync(traceId, parentId, TimeSpan.FromSeconds(30));
        Assert.Contains("rtt://mcp/sample/upper", span, StringComparison.Ordinal); // named after the route
    }

    /// <summary>A stand-in OTLP/HTTP collector: keeps the bodies the silo pushes.</summary>
    private sealed class OtlpCollector : IDisposable
    {
        private readonly System.Net.HttpListener _listener = new();
        private readonly List<byte[]> _pushed = [];

        public OtlpCollector()
        {
            var port = RttProcess.FreePort();
            TracesEndpoint = $"http://127.0.0.1:{port}/v1/traces";
            _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (_listener.IsListening)
                {
                    try
                    {
                        var context = await _listener.GetContextAsync();
                        using var body = new MemoryStream();
                        await context.Request.InputStream.CopyToAsync(body);
                        lock (_pushed)
                        {
                            _pushed.Add(body.ToArray());
                        }

                        context.Response.StatusCode = 200;
                        context.Response.Close();
                    }
                    catch (Exception) when (!_listener.IsListening)
                    {
                        return;
                    }
                }
            });
        }

        public string TracesEndpoint { get; }

        /// <summary>The text of the first push that holds a span with this trace id whose parent is this span id.</summary>
        public async Task<string> WaitForSpanAsync(string traceId, string parentSpanId, TimeSpan timeout)
        {
            var trace = Convert.FromHexString(traceId);
            var parent = Convert.FromHexString(parentSpanId);
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                lock (_pushed)
                {
                    // Each span is a protobuf message: trace_id (field 1) then span_id (2), trace_state (3), parent_span_id (4),
                    // so within one push the parent id follows the trace id closely.
                    foreach (var body in _pushed)
                    {
                        var at = body.AsSpan().IndexOf(trace);
                        if (at >= 0 && body.AsSpan(at).IndexOf(parent) is var p and >= 0 && p < 64)
                        {
                            return Encoding.UTF8.GetString(body);
                        }
                    }

                    Assert.True(DateTime.UtcNow < deadline, $"no span with trace {traceId} and parent {parentSpanId} pushed within {timeout.TotalSeconds} s ({_pushed.Count} pushes)");
                }

                await Task.Delay(200);
            }
        }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
        }
    }

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
