using System.Diagnostics;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Rtt.Cli.Mcp;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Planning;
using Rtt.Reconciling;
using Rtt.Registry;
using Rtt.Silo.Lanes;

namespace Rtt.Silo.Tests.Mcp;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class McpCollection
{
    public const string Name = "mcp processes";
}

/// <summary>
/// A quickstart workspace with a running lane host: MCP servers are ingested as `rtt mcp ingest` does (their serve
/// block recorded in the signed manifest), scanned, routed, planned, and the plan's lanes served; clients attach
/// over SHM and send tool arguments on the route.
/// </summary>
public sealed class McpHarness : IAsyncDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "rtt-mcp-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly List<LaneClient> _clients = [];
    private readonly List<JsonObject> _routes = [];

    public static string Examples { get; } = Metadata("RttExamplesDirectory");

    /// <summary>The built sample server (samples/Rtt.Samples.McpServer).</summary>
    public static string SampleServer { get; } = Path.Combine(Metadata("RttSampleMcpDirectory"), "rtt-sample-mcp.dll");

    public static string FakeServer { get; } = Path.Combine(AppContext.BaseDirectory, "Mcp", "fake-mcp.js");

    private static string Metadata(string key) => Path.GetFullPath(typeof(McpHarness).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!);

    private McpHarness()
    {
        Workspace = WorkspaceInitializer.Create(_root, Path.Combine(Examples, "quickstart")).Workspace;
        var policy = RttWorkspace.ReadObject(Workspace.PolicyPath);
        policy["acl"]!.AsArray().Add(new JsonObject { ["allow"] = new JsonObject { ["from"] = "rtt://test/**", ["to"] = "rtt://mcp/**" } });
        File.WriteAllText(Workspace.PolicyPath, policy.ToJsonString());

        // The quickstart's own MCP route (its sample server over stdio) is left out: each test starts the servers it names.
        var routes = RttWorkspace.ReadObject(Workspace.RoutesPath);
        var list = routes["routes"]!.AsArray();
        foreach (var mcp in list.Where(r => ((string?)r!["to"])?.StartsWith("rtt://mcp/", StringComparison.Ordinal) == true).ToList())
        {
            list.Remove(mcp);
        }

        File.WriteAllText(Workspace.RoutesPath, routes.ToJsonString());
        Host = new LaneHostService(Workspace, new RttLaneOptions(), NullLogger<LaneHostService>.Instance);
    }

    public RttWorkspace Workspace { get; }

    public LaneHostService Host { get; }

    public IReadOnlyList<LaneTarget> Lanes { get; private set; } = [];

    public JsonObject Plan { get; private set; } = [];

    public static async Task<McpHarness> StartAsync()
    {
        var harness = new McpHarness();
        await harness.Host.StartAsync(CancellationToken.None);
        return harness;
    }

    /// <summary>
    /// Lists the tools of <paramref name="argv"/> (as `rtt mcp ingest -- ARGV` does) and pins them under
    /// <paramref name="name"/> with <paramref name="serve"/> (default: mcp-stdio of the same command) as the server's
    /// serve block; <paramref name="edit"/> may change the listed tools first (a pin that no longer matches).
    /// </summary>
    public async Task IngestAsync(string name, string[] argv, JsonObject? serve = null, Action<JsonObject>? edit = null)
    {
        var listing = await McpToolSource.FromServerAsync(name, argv, Workspace.Root, TimeSpan.FromSeconds(60), CancellationToken.None);
        edit?.Invoke(listing.ToolsList);
        serve ??= Stdio(argv);
        using var store = RegistryStore.Open(Workspace);
        McpCatalog.Ingest(Workspace, store, name, listing.ServerName, listing.ServerVersion, argv, listing.ToolsList, string.Join(' ', argv), acceptDrift: false,
            McpCatalog.ServeOfServer(serve, "test"));
    }

    public static JsonObject Stdio(string[] argv, int? timeoutMs = null)
    {
        var serve = new JsonObject
        {
            ["kind"] = "mcp-stdio",
            ["command"] = argv[0],
            ["args"] = new JsonArray([.. argv.Skip(1).Select(a => (JsonNode)JsonValue.Create(a))]),
        };
        if (timeoutMs is { } t)
        {
            serve["timeout_ms"] = t;
        }

        return serve;
    }

    /// <summary>Adds routes from the quickstart's agent to these symbols, scans, plans, and serves the plan's lanes.</summary>
    public async Task RouteAsync(params string[] symbols)
    {
        Scan();
        var known = RttWorkspace.ReadObject(Path.Combine(Workspace.Registry, "symbols.json"));
        foreach (var symbol in symbols)
        {
            // A caller whose output is the tool's input schema: the planner's type check admits the route.
            var input = known[symbol]?.AsArray()[^1]?["input"];
            var caller = symbol.StartsWith("rtt://mcp/", StringComparison.Ordinal) && input is not null ? $"rtt://test/caller/{symbol["rtt://mcp/".Length..].Replace('/', '-')}" : "rtt://ui/hook/refresh";
            if (caller != "rtt://ui/hook/refresh")
            {
                File.WriteAllText(Path.Combine(Workspace.Manifests, $"test.caller.{caller[(caller.LastIndexOf('/') + 1)..]}.json"), new JsonObject
                {
                    ["address"] = caller,
                    ["version"] = "1.0.0",
                    ["input"] = "rtt.types/Void",
                    ["output"] = input!.DeepClone(),
                    ["lanes"] = new JsonArray("shm", "uds", "tcp"),
                    ["latency_us"] = 10,
                    ["demand"] = new JsonObject { ["cpu_millis"] = 1, ["memory_mb"] = 1 },
                }.ToJsonString());
            }

            _routes.Add(new JsonObject { ["from"] = caller, ["to"] = symbol, ["version"] = "*" });
        }

        var routes = RttWorkspace.ReadObject(Workspace.RoutesPath);
        var list = routes["routes"]!.AsArray();
        foreach (var route in _routes.Where(r => list.All(x => (string?)x!["to"] != (string?)r["to"])))
        {
            list.Add(route.DeepClone());
        }

        File.WriteAllText(Workspace.RoutesPath, routes.ToJsonString());
        Scan();
        var outcome = Planner.Compute(PlanInputs.Load(Workspace));
        Assert.True(outcome.Rejected.Count == 0, outcome.Body.ToJsonString());
        Plan = outcome.Body;
        Lanes = [.. PlanTargets.Of(Plan).Where(t => t.Key.StartsWith(PlanTargets.NodePrefix, StringComparison.Ordinal)).SelectMany(t => LaneTarget.Of((Rtt.Grains.Reconciling.NodeTarget)t.Value))
            .Where(l => l.Endpoint is null || l.To.StartsWith("rtt://mcp/", StringComparison.Ordinal))]; // the quickstart's own services are other tests' business
        await Host.ServeAsync(Lanes);
    }

    private void Scan()
    {
        using var store = RegistryStore.Open(Workspace);
        var report = new Scanner(Workspace, store).Run();
        Assert.True(report.Errors.Count == 0, string.Join("; ", report.Errors.Select(e => e.ToString())));
    }

    public LaneTarget LaneTo(string symbol) => Lanes.Single(l => l.To == symbol);

    public LaneClient Attach(string symbol)
    {
        var client = LaneClient.Attach(Host.ControlSocket, symbol);
        client.RequestTimeout = TimeSpan.FromSeconds(60);
        _clients.Add(client);
        return client;
    }

    /// <summary>One call: the arguments as UTF-8 JSON in, the CallToolResult JSON out.</summary>
    public static async Task<JsonObject> CallAsync(LaneClient client, string arguments) =>
        JsonNode.Parse(await client.RequestAsync(Encoding.UTF8.GetBytes(arguments)))!.AsObject();

    /// <summary>A call that must fail: the RTT error it got.</summary>
    public static async Task<RttException> FailAsync(LaneClient client, string arguments) =>
        await Assert.ThrowsAsync<RttException>(() => client.RequestAsync(Encoding.UTF8.GetBytes(arguments)));

    public static string Text(JsonObject result) => (string)result["content"]![0]!["text"]!;

    public static async Task WaitUntil(Func<bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        await Host.StopAsync(CancellationToken.None);
        Host.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

