using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HdrHistogram;
using Microsoft.Extensions.Logging.Abstractions;
using ModelContextProtocol.Client;
using Rtt.Cli.Mcp;
using Rtt.Client.Lanes;
using Rtt.Core.Calls;
using Rtt.Core.Reconciling;
using Rtt.Core.Registry;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Silo.Endpoints.Mcp;
using Rtt.Silo.Lanes;

// An MCP tool call through RTT against the same call made directly with the SDK client, in one run:
//   direct  McpClient (ModelContextProtocol SDK) -> stdio -> server process
//   rtt     LaneClient -> SHM lane -> the silo's lane host (LaneHostService) -> MCP endpoint (args checked against
//           the pinned inputSchema, tools/call on the server's shared SDK session) -> stdio -> server process -> back
//   driver  the same MCP endpoint driver called in this process without a lane (what the endpoint itself costs)
//   spin-lane  control without MCP: an async endpoint that answers after ~100 us of work, through an SHM lane
//           (what the lane host's off-worker path costs around an endpoint that takes ~100 us)
// Each side has its own server process (same command). Calls are sequential, in alternating slices so both see the
// same machine; p50/p99 from HdrHistogram. Goal: RTT p50 <= 1.2x direct, p99 <= 1.5x.
// Usage: dotnet bench/Rtt.Mcp.Bench/bin/Release/net10.0/Rtt.Mcp.Bench.dll [--server sample|everything|"CMD ARGS..."]
//        [--tool echo] [--args '{"message":"hello"}'] [--seconds 10] [--json]
var server = "sample";
var tool = "echo";
var arguments = """{"message":"hello"}""";
var seconds = 10.0;
var json = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--server": server = args[++i]; break;
        case "--tool": tool = args[++i]; break;
        case "--args": arguments = args[++i]; break;
        case "--seconds": seconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--json": json = true; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 1;
    }
}

string[] argv = server switch
{
    "sample" => ["dotnet", Path.Combine(Metadata("RttSampleMcpDirectory"), "rtt-sample-mcp.dll")],
    "everything" => ["node", Everything(), "stdio"],
    _ => server.Split(' ', StringSplitOptions.RemoveEmptyEntries),
};

var root = Directory.CreateTempSubdirectory("rtt-mcp-bench-").FullName;
McpEndpoints.Register();
var workspace = WorkspaceInitializer.Create(root).Workspace;

// Pin the tools as `rtt mcp ingest` does, with the server's serve block; the tool's endpoint is what a plan carries.
var listing = await McpToolSource.FromServerAsync("bench", argv, root, TimeSpan.FromSeconds(60), CancellationToken.None);
JsonObject serve;
using (var store = RegistryStore.Open(workspace))
{
    var stdio = new JsonObject { ["kind"] = "mcp-stdio", ["command"] = argv[0], ["args"] = new JsonArray([.. argv.Skip(1).Select(a => (JsonNode)JsonValue.Create(a))]) };
    McpCatalog.Ingest(workspace, store, "bench", listing.ServerName, listing.ServerVersion, argv, listing.ToolsList, "bench", acceptDrift: false, McpCatalog.ServeOfServer(stdio, "bench"));
    var manifest = RttWorkspace.ReadObject(McpCatalog.ManifestPath(workspace, "bench"));
    var entry = manifest["tools"]!.AsArray().Single(t => (string?)t!["name"] == tool)!;
    serve = McpCatalog.ServeOfTool(workspace, store, (string)entry["object"]!)!;
}

var symbol = $"rtt://mcp/bench/{tool}";
var lane = new LaneTarget(PlanTargets.RouteId("rtt://bench/caller", symbol), symbol, "rtt://bench/caller", symbol, "shm", ServeSpec.Hash(serve), serve.ToJsonString());
using var host = new LaneHostService(workspace, new RttLaneOptions(), NullLogger<LaneHostService>.Instance);
await host.StartAsync(CancellationToken.None);
await host.ServeAsync([lane]);
if ((await host.ProbeAsync([lane], TimeSpan.FromSeconds(30))).FirstOrDefault() is { Why: { } why })
{
    Console.Error.WriteLine($"the MCP endpoint is not ready: {why}");
    return 1;
}

using var client = LaneClient.Attach(host.ControlSocket, symbol);
var request = Encoding.UTF8.GetBytes(arguments);

await using var direct = await McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions
{
    Name = "direct",
    Command = argv[0],
    Arguments = [.. argv.Skip(1)],
    WorkingDirectory = root,
}));
var directArgs = JsonSerializer.Deserialize<Dictionary<string, object?>>(arguments)!;

// Both answers must be the same tool result before anything is timed.
var viaRtt = JsonNode.Parse(await client.RequestAsync(request))!;
var viaSdk = JsonSerializer.SerializeToNode(await direct.CallToolAsync(tool, directArgs), ModelContextProtocol.McpJsonUtilities.DefaultOptions)!;
if (!JsonNode.DeepEquals(viaRtt["content"], viaSdk["content"]))
{
    Console.Error.WriteLine($"answers differ: rtt {viaRtt.ToJsonString()} direct {viaSdk.ToJsonString()}");
    return 1;
}

// Control: an async endpoint that answers after a fixed delay with no MCP at all (is the lane path itself the cost?).
using var spinHost = new Rtt.Fabric.Routing.LaneHost();
await spinHost.SwapAsync(new Rtt.Fabric.Routing.RouteTable([new Rtt.Fabric.Routing.RouteEntry(7, "spin", new Rtt.Fabric.Drivers.AsyncDriverEndpoint(new SpinDriver()))]));
var spinControl = Path.Combine(root, "spin.sock");
using var spinListener = new Rtt.Fabric.Routing.LaneHostListener(spinHost, new Rtt.Fabric.Lanes.LaneOptions(), spinControl);
using var spinClient = LaneClient.Attach(spinControl, "spin");

var cases = new (string Name, Func<Task> Call)[]
{
    ("direct", async () => await direct.CallToolAsync(tool, directArgs)),
    ("rtt", async () => await client.RequestAsync(request)),
    ("spin-lane", async () => await spinClient.RequestAsync(request)),
    ("driver", async () => await ((Rtt.Fabric.Drivers.AsyncDriverEndpoint)host.Endpoints[lane.Endpoint!]).Driver.CallAsync(request, CancellationToken.None)),
};
var histograms = cases.Select(_ => new LongHistogram(Stopwatch.Frequency * 10, 3)).ToArray();
var counts = new long[cases.Length];

// Warm-up (JIT, both sessions), then alternating 250 ms slices.
foreach (var (_, call) in cases)
{
    for (var i = 0; i < 2000; i++)
    {
        await call();
    }
}

var end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
var slice = Stopwatch.Frequency / 4;
while (Stopwatch.GetTimestamp() < end)
{
    for (var c = 0; c < cases.Length; c++)
    {
        var sliceEnd = Stopwatch.GetTimestamp() + slice;
        while (Stopwatch.GetTimestamp() < sliceEnd)
        {
            var t0 = Stopwatch.GetTimestamp();
            await cases[c].Call();
            histograms[c].RecordValue(Stopwatch.GetTimestamp() - t0);
            counts[c]++;
        }
    }
}

await host.StopAsync(CancellationToken.None);
var report = new JsonObject
{
    ["server"] = string.Join(' ', argv.Select(Path.GetFileName)),
    ["tool"] = tool,
    ["seconds"] = seconds,
};
for (var c = 0; c < cases.Length; c++)
{
    report[cases[c].Name] = new JsonObject
    {
        ["calls"] = counts[c],
        ["p50_us"] = Us(histograms[c], 50),
        ["p99_us"] = Us(histograms[c], 99),
        ["p999_us"] = Us(histograms[c], 99.9),
    };
}

var p50 = Us(histograms[1], 50) / Us(histograms[0], 50);
var p99 = Us(histograms[1], 99) / Us(histograms[0], 99);
report["ratio"] = new JsonObject { ["p50"] = Math.Round(p50, 3), ["p99"] = Math.Round(p99, 3) };
report["goal"] = new JsonObject { ["p50_max"] = 1.2, ["p99_max"] = 1.5, ["met"] = p50 <= 1.2 && p99 <= 1.5 };
if (json)
{
    Console.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}
else
{
    Console.WriteLine($"MCP tool call {tool} on {report["server"]} ({seconds:0.#} s, alternating slices)");
    for (var c = 0; c < cases.Length; c++)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {cases[c].Name,-9} calls {counts[c],8}  p50 {Us(histograms[c], 50),8:0.0} us  p99 {Us(histograms[c], 99),8:0.0} us  p99.9 {Us(histograms[c], 99.9),8:0.0} us"));
    }

    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  rtt/direct p50 {p50:0.000}x (goal <= 1.2)  p99 {p99:0.000}x (goal <= 1.5)"));
}

try
{
    Directory.Delete(root, recursive: true);
}
catch (IOException)
{
}

return 0;

static double Us(LongHistogram h, double percentile) => Math.Round(h.GetValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency, 2);

static string Metadata(string key) => Path.GetFullPath(typeof(Program).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!);

static string Everything()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rtt.sln")))
    {
        dir = dir.Parent;
    }

    return Path.Combine(dir!.FullName, "tests", "mcp", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
}

/// <summary>Answers with the request after about 100 us on the thread pool.</summary>
internal sealed class SpinDriver : Rtt.Fabric.Drivers.IAsyncLaneDriver
{
    public string Name => "spin";

    public string? NotReady => null;

    public async ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var end = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 10_000;
        while (Stopwatch.GetTimestamp() < end)
        {
            Thread.SpinWait(10);
        }

        return request.ToArray();
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
