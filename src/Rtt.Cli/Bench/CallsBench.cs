using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using HdrHistogram;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ModelContextProtocol.Client;
using Rtt.Cli.Bench.Grpc;
using Rtt.Cli.Mcp;
using Rtt.Client.Lanes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Services;
using Rtt.Fabric.Streams;
using Rtt.Grains.Nodes;
using Rtt.Reconciling;
using Rtt.Registry;
using Rtt.Silo.Lanes;

namespace Rtt.Cli.Bench;

/// <summary>What <c>rtt bench calls</c> measures.</summary>
public sealed record CallsBenchOptions
{
    public double Seconds { get; init; } = 2;

    public int[] Sizes { get; init; } = [64, 4096, 65536];

    /// <summary>Measure the service cases (echo, process, gRPC, pipelined throughput).</summary>
    public bool Services { get; init; } = true;

    /// <summary>The MCP server command (argv); null: no MCP cases.</summary>
    public string[]? McpServer { get; init; }

    public string McpTool { get; init; } = "echo";

    public string McpArguments { get; init; } = """{"message":"hello"}""";

    /// <summary>Starts <c>rtt bench calls-peer SERVICE_SOCKET GRPC_SOCKET</c> (the other process).</summary>
    public required Func<string, string, Process> StartPeer { get; init; }

    public Action<string>? Progress { get; init; }
}

/// <summary>
/// Calls through RTT against their baselines, measured in one run (docs/calls.md, "Benchmarks"). Cases run in
/// alternating slices so each sees the same machine; percentiles from HdrHistogram.
/// <list type="bullet">
/// <item>echo: client → SHM lane → lane host → echo driver → back (the SHM echo round trip);</item>
/// <item>process: client → SHM lane → lane host → SHM lane → service process (echo) → back;</item>
/// <item>grpc: the same request/response as gRPC unary over a Unix socket (Kestrel + Grpc.Net.Client), the server in
/// the same service process;</item>
/// <item>pipelined calls through the process endpoint, and the bytes this process allocates per call;</item>
/// <item>MCP: the same tool call made directly with the SDK client and through RTT (SHM lane → lane host → MCP
/// endpoint → stdio), each with its own server process, plus the endpoint driver alone and a control without MCP (an
/// async endpoint that answers after ~100 µs).</item>
/// </list>
/// </summary>
public static class CallsBench
{
    public const double ProcessEchoGoal = 2.0;
    public const double ProcessGrpcGoal = 0.2;
    public const double PipelinedGoal = 1_000_000;
    public const double McpP50Goal = 1.2;
    public const double McpP99Goal = 1.5;

    public static async Task<JsonObject> RunAsync(CallsBenchOptions options)
    {
        var report = new JsonObject { ["seconds"] = options.Seconds };
        if (options.Services)
        {
            report["services"] = await ServicesAsync(options);
        }

        if (options.McpServer is { } server)
        {
            report["mcp"] = await McpAsync(options, server);
        }

        return report;
    }

    private static async Task<JsonObject> ServicesAsync(CallsBenchOptions options)
    {
        var dir = Directory.CreateTempSubdirectory("rtt-bench-calls-").FullName;
        var control = Path.Combine(dir, "lanes.sock");
        var serviceSocket = Path.Combine(dir, "svc.sock");
        var grpcSocket = Path.Combine(dir, "grpc.sock");
        var lanes = new LaneOptions { RingCapacity = Rtt.Core.Lanes.LaneDefaults.RingCapacity, MaxPayload = Rtt.Core.Lanes.LaneDefaults.MaxPayload };
        using var host = new LaneHost();
        using var serviceListener = LaneSockets.ListenUnix(serviceSocket);
        options.Progress?.Invoke("starting the service process (RTT service and gRPC server)");
        using var service = options.StartPeer(serviceSocket, grpcSocket);
        try
        {
            serviceListener.ReceiveTimeout = 30_000;
            var upstream = LaneAttach.Accept(serviceListener.Accept(), _ => 1u, lanes with { Backpressure = BackpressurePolicy.Fail }, host.Doorbell)
                ?? throw new RttException(ErrorCodes.LaneAttachFailed, "the bench's service process did not attach", serviceSocket, "see its error output above");
            await host.SwapAsync(new RouteTable([
                new RouteEntry(1, "echo", new DriverEndpoint(new EchoDriver())),
                new RouteEntry(2, "process", new LaneEndpoint("process", upstream)),
            ]));
            using var listener = new LaneHostListener(host, lanes, control);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!File.Exists(grpcSocket) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            using var channel = GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler
                {
                    ConnectCallback = async (_, ct) =>
                    {
                        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(grpcSocket), ct);
                        return new NetworkStream(socket, ownsSocket: true);
                    },
                },
                MaxReceiveMessageSize = 1 << 20,
            });
            var grpc = new Echo.EchoClient(channel);
            using var echo = LaneClient.Attach(control, "1", LaneKind.Shm, options: lanes, inlineContinuations: true);
            using var process = LaneClient.Attach(control, "2", LaneKind.Shm, options: lanes, inlineContinuations: true);

            var results = new JsonArray();
            var ratios = new JsonArray();
            foreach (var size in options.Sizes)
            {
                options.Progress?.Invoke($"request/response {size} B: echo, process, grpc");
                var payload = new byte[size];
                new Random(size).NextBytes(payload);
                var message = new Payload { Data = ByteString.CopyFrom(payload) };
                var cases = new (string Name, Func<Task> Call)[]
                {
                    ("echo", async () => Check((await echo.RequestAsync(payload)).Length, size)),
                    ("process", async () => Check((await process.RequestAsync(payload)).Length, size)),
                    ("grpc", async () => Check((await grpc.CallAsync(message)).Data.Length, size)),
                };
                var measured = await Alternate(cases, options.Seconds, TimeSpan.FromMilliseconds(50), warmUp: TimeSpan.FromSeconds(Math.Min(0.5, options.Seconds)));
                foreach (var m in measured)
                {
                    m["size"] = size;
                    results.Add(m);
                }

                double P(int c, string p) => (double)measured[c][p]!;
                ratios.Add(new JsonObject
                {
                    ["size"] = size,
                    ["process_echo_p50"] = Math.Round(P(1, "p50_us") / P(0, "p50_us"), 3),
                    ["process_grpc_p50"] = Math.Round(P(1, "p50_us") / P(2, "p50_us"), 3),
                    ["process_grpc_p99"] = Math.Round(P(1, "p99_us") / P(2, "p99_us"), 3),
                });
            }

            options.Progress?.Invoke("pipelined calls through the process endpoint");
            var throughput = Pipelined(control, lanes, TimeSpan.FromSeconds(Math.Max(1, options.Seconds)));
            return new JsonObject
            {
                ["cases"] = results,
                ["ratios"] = ratios,
                ["pipelined"] = throughput,
                ["goals"] = new JsonObject
                {
                    ["process_echo_p50_max"] = ProcessEchoGoal,
                    ["process_grpc_p50_max"] = ProcessGrpcGoal,
                    ["pipelined_calls_per_s_min"] = PipelinedGoal,
                    ["allocated_bytes_per_call_max"] = 0,
                },
            };
        }
        finally
        {
            host.Dispose();
            if (!service.WaitForExit(5000))
            {
                service.Kill(entireProcessTree: true);
            }

            TryDelete(dir);
        }
    }

    private static async Task<JsonObject> McpAsync(CallsBenchOptions options, string[] argv)
    {
        var root = Directory.CreateTempSubdirectory("rtt-bench-mcp-").FullName;
        try
        {
            var workspace = WorkspaceInitializer.Create(root).Workspace;
            options.Progress?.Invoke($"MCP: listing and pinning the tools of {string.Join(' ', argv)}");

            // Pin the tools as `rtt mcp ingest` does, with the server's serve block: the endpoint a plan would carry.
            var listing = await McpToolSource.FromServerAsync("bench", argv, root, TimeSpan.FromSeconds(60), CancellationToken.None);
            JsonObject serve;
            using (var store = RegistryStore.Open(workspace))
            {
                var stdio = new JsonObject { ["kind"] = "mcp-stdio", ["command"] = argv[0], ["args"] = new JsonArray([.. argv.Skip(1).Select(a => (JsonNode)JsonValue.Create(a))]) };
                McpCatalog.Ingest(workspace, store, "bench", listing.ServerName, listing.ServerVersion, argv, listing.ToolsList, "bench", acceptDrift: false, McpCatalog.ServeOfServer(stdio, "bench"));
                var manifest = RttWorkspace.ReadObject(McpCatalog.ManifestPath(workspace, "bench"));
                var entry = manifest["tools"]!.AsArray().SingleOrDefault(t => (string?)t!["name"] == options.McpTool)
                    ?? throw new RttException(ErrorCodes.CallInputInvalid, $"the MCP server lists no tool \"{options.McpTool}\"", "--mcp-tool",
                        $"give one of: {string.Join(", ", manifest["tools"]!.AsArray().Select(t => (string?)t!["name"]))}");
                serve = McpCatalog.ServeOfTool(workspace, store, (string)entry["object"]!)!;
            }

            var symbol = $"rtt://mcp/bench/{options.McpTool}";
            var lane = new LaneTarget(RouteIds.Of("rtt://bench/caller", symbol), symbol, "rtt://bench/caller", symbol, "shm", ServeSpec.Hash(serve), serve.ToJsonString());
            using var host = new LaneHostService(workspace, new RttLaneOptions(), NullLogger<LaneHostService>.Instance);
            await host.StartAsync(CancellationToken.None);
            try
            {
                await host.ServeAsync([lane]);
                if ((await host.ProbeAsync([lane], TimeSpan.FromSeconds(30))).FirstOrDefault() is { Why: { } why })
                {
                    throw new RttException(ErrorCodes.EndpointUnavailable, $"the MCP endpoint is not ready: {why}", string.Join(' ', argv), "check that the server starts with this command");
                }

                using var client = LaneClient.Attach(host.ControlSocket, symbol, inlineContinuations: true); // as the service cases: no hop after the answer
                var request = Encoding.UTF8.GetBytes(options.McpArguments);
                await using var direct = await McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions
                {
                    Name = "direct",
                    Command = argv[0],
                    Arguments = [.. argv.Skip(1)],
                    WorkingDirectory = root,
                }));
                var directArgs = JsonSerializer.Deserialize<Dictionary<string, object?>>(options.McpArguments)!;

                // Both sides must give the same tool result before anything is timed.
                var viaRtt = JsonNode.Parse(await client.RequestAsync(request))!;
                var viaSdk = JsonSerializer.SerializeToNode(await direct.CallToolAsync(options.McpTool, directArgs), ModelContextProtocol.McpJsonUtilities.DefaultOptions)!;
                if (!JsonNode.DeepEquals(viaRtt["content"], viaSdk["content"]))
                {
                    throw new RttException(ErrorCodes.CallProtocolError, $"the answers differ: through RTT {viaRtt.ToJsonString()}, direct {viaSdk.ToJsonString()}", symbol,
                        "the bench needs a tool whose answer depends only on its arguments");
                }

                // Control without MCP: an async endpoint that answers after ~100 µs, through the same kind of lane.
                using var spinHost = new LaneHost();
                await spinHost.SwapAsync(new RouteTable([new RouteEntry(7, "spin", new AsyncDriverEndpoint(new SpinDriver()))]));
                var spinControl = Path.Combine(root, "spin.sock");
                using var spinListener = new LaneHostListener(spinHost, new LaneOptions(), spinControl);
                using var spinClient = LaneClient.Attach(spinControl, "spin", inlineContinuations: true);
                var driver = ((AsyncDriverEndpoint)host.Endpoints[lane.Endpoint!]).Driver;

                options.Progress?.Invoke($"MCP: {options.McpTool} direct, through RTT, the driver alone, the control");
                var cases = new (string Name, Func<Task> Call)[]
                {
                    ("direct", async () => await direct.CallToolAsync(options.McpTool, directArgs)),
                    ("rtt", async () => await client.RequestAsync(request)),
                    ("driver", async () => await driver.CallAsync(request, CancellationToken.None)),
                    ("spin-lane", async () => await spinClient.RequestAsync(request)),
                };
                var measured = await Alternate(cases, options.Seconds, TimeSpan.FromMilliseconds(250), warmUp: TimeSpan.FromSeconds(Math.Min(1, options.Seconds)));
                var p50 = (double)measured[1]["p50_us"]! / (double)measured[0]["p50_us"]!;
                var p99 = (double)measured[1]["p99_us"]! / (double)measured[0]["p99_us"]!;
                return new JsonObject
                {
                    ["server"] = string.Join(' ', argv.Select(Path.GetFileName)),
                    ["tool"] = options.McpTool,
                    ["cases"] = new JsonArray([.. measured]),
                    ["ratio"] = new JsonObject { ["p50"] = Math.Round(p50, 3), ["p99"] = Math.Round(p99, 3) },
                    ["goals"] = new JsonObject { ["p50_max"] = McpP50Goal, ["p99_max"] = McpP99Goal },
                };
            }
            finally
            {
                await host.StopAsync(CancellationToken.None);
            }
        }
        finally
        {
            TryDelete(root);
        }
    }

    /// <summary>Warms each case up, then runs them in turns of <paramref name="slice"/> until each had its time.</summary>
    /// <param name="shuffled">Each round runs the cases in an order of its own (a seeded shuffle: the same orders in every run), so no
    /// case always follows the same one: a case run right after a similar one (same grain, same bytes) starts its slice warm,
    /// and the first milliseconds of a slice hold more of the slow calls than the rest (docs/operations.md, "Control-path latency").</param>
    internal static async Task<JsonObject[]> Alternate((string Name, Func<Task> Call)[] cases, double seconds, TimeSpan slice, TimeSpan warmUp, bool shuffled = false)
    {
        foreach (var (_, call) in cases)
        {
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed < warmUp)
            {
                await call();
            }
        }

        var histograms = cases.Select(_ => new LongHistogram(Stopwatch.Frequency * 10, 3)).ToArray();
        var spent = new double[cases.Length];
        var order = Enumerable.Range(0, cases.Length).ToArray();
        var rounds = new Random(20); // fixed seed: the same sequence of orders in every run
        while (spent.Min() < seconds)
        {
            if (shuffled)
            {
                rounds.Shuffle(order);
            }

            foreach (var c in order)
            {
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed < slice)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    await cases[c].Call();
                    histograms[c].RecordValue(Stopwatch.GetTimestamp() - t0);
                }

                spent[c] += clock.Elapsed.TotalSeconds;
            }
        }

        return [.. cases.Select((c, i) => new JsonObject
        {
            ["case"] = c.Name,
            ["calls"] = histograms[i].TotalCount,
            ["p50_us"] = Us(histograms[i], 50),
            ["p99_us"] = Us(histograms[i], 99),
            ["p999_us"] = Us(histograms[i], 99.9),
        })];
    }

    /// <summary>
    /// One thread keeps <c>window</c> requests in flight on a raw SHM lane to the process endpoint. Nothing is allocated
    /// per call on this side, so this process's allocation delta is the lane host's.
    /// </summary>
    private static JsonObject Pipelined(string control, LaneOptions options, TimeSpan duration)
    {
        const int window = 256;
        using var lane = LaneAttach.ConnectUnix(control, "2", LaneKind.Shm, options).Lane;
        var payload = new byte[64];
        long sent = 0, received = 0;
        FrameHandler onAnswer = (in FrameHeader h, ReadOnlySpan<byte> p) => received++;
        void Run(TimeSpan d)
        {
            var stop = Stopwatch.GetTimestamp() + (long)(d.TotalSeconds * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < stop)
            {
                while (sent - received < window && lane.TrySend(2, (uint)sent, payload))
                {
                    sent++;
                }

                lane.Flush();
                lane.Poll(onAnswer, 1024);
            }

            while (received < sent && !lane.PeerGone)
            {
                lane.Poll(onAnswer, 1024);
            }
        }

        Run(TimeSpan.FromMilliseconds(500)); // warm-up
        var r0 = received;
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        Run(duration);
        var elapsed = clock.Elapsed.TotalSeconds;
        var bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        var calls = received - r0;
        return new JsonObject
        {
            ["window"] = window,
            ["calls"] = calls,
            ["calls_per_s"] = Math.Round(calls / elapsed),
            ["allocated_bytes_per_call"] = Math.Round((double)bytes / Math.Max(1, calls), 3),
        };
    }

    /// <summary>
    /// The other process of the service cases: an RTT process service (echo) on its own thread over SHM, and a gRPC echo
    /// server on a Unix socket beside it. Ends when the lane host goes away.
    /// </summary>
    public static async Task<int> PeerAsync(string serviceSocket, string grpcSocket)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(grpcSocket, o => o.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 1 << 20);
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        await app.StartAsync();
        var lane = ServiceHost.Attach(serviceSocket, LaneKind.Shm, new LaneOptions { RingCapacity = Rtt.Core.Lanes.LaneDefaults.RingCapacity, MaxPayload = Rtt.Core.Lanes.LaneDefaults.MaxPayload });
        var thread = new Thread(() => ServiceHost.Serve(lane, (request, response) =>
        {
            request.CopyTo(response);
            return request.Length;
        }, idle: Environment.GetEnvironmentVariable("RTT_BENCH_SERVICE_SPIN") == "1" ? new BusySpinIdleStrategy() : null)) { Name = "rtt-service" };
        thread.Start();
        thread.Join();
        lane.Dispose();
        await app.StopAsync();
        return 0;
    }

    public static void Print(JsonObject report, TextWriter output)
    {
        if (report["services"] is JsonObject services)
        {
            output.WriteLine($"{"case",-8} {"size",7} {"calls",9} {"p50 µs",9} {"p99 µs",9}");
            foreach (var r in services["cases"]!.AsArray())
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r!["case"],-8} {(int)r["size"]!,7} {(long)r["calls"]!,9} {(double)r["p50_us"]!,9:0.0} {(double)r["p99_us"]!,9:0.0}"));
            }

            foreach (var r in services["ratios"]!.AsArray())
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"size {r!["size"]}: process/echo p50 {(double)r["process_echo_p50"]!:0.00}x (goal <= {ProcessEchoGoal}), process/grpc p50 {(double)r["process_grpc_p50"]!:0.000}x (goal <= {ProcessGrpcGoal}), p99 {(double)r["process_grpc_p99"]!:0.000}x"));
            }

            var t = services["pipelined"]!;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"pipelined through the process endpoint (64 B, window {t["window"]}): {(double)t["calls_per_s"]!:N0} calls/s (goal >= {PipelinedGoal:N0}); {(double)t["allocated_bytes_per_call"]!:0.000} B allocated per call in the lane host's process (goal 0)"));
        }

        if (report["mcp"] is JsonObject mcp)
        {
            output.WriteLine($"MCP tool call {mcp["tool"]} on {mcp["server"]} (alternating slices)");
            foreach (var c in mcp["cases"]!.AsArray())
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {c!["case"],-9} calls {(long)c["calls"]!,8}  p50 {(double)c["p50_us"]!,8:0.0} µs  p99 {(double)c["p99_us"]!,8:0.0} µs  p99.9 {(double)c["p999_us"]!,8:0.0} µs"));
            }

            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  rtt/direct p50 {(double)mcp["ratio"]!["p50"]!:0.000}x (goal <= {McpP50Goal})  p99 {(double)mcp["ratio"]!["p99"]!:0.000}x (goal <= {McpP99Goal})"));
        }
    }

    private static double Us(LongHistogram h, double percentile) => Math.Round(h.GetValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency, 2);

    private static void Check(int length, int expected)
    {
        if (length != expected)
        {
            throw new InvalidOperationException($"answer of {length} bytes to a {expected}-byte request");
        }
    }

    private static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private sealed class EchoService : Echo.EchoBase
    {
        public override Task<Payload> Call(Payload request, global::Grpc.Core.ServerCallContext context) => Task.FromResult(new Payload { Data = request.Data });
    }

    /// <summary>Answers with the request after about 100 µs on the thread pool.</summary>
    private sealed class SpinDriver : IAsyncLaneDriver
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
}
