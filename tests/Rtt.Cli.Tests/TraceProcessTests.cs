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

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, $"rtt {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }
}
