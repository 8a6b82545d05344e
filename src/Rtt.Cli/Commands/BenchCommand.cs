using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Lanes.Bench;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt bench lanes</c>: the fabric's lanes against raw baselines measured in the same run, with two real processes.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var seconds = new Option<double>("--seconds") { Description = "Ping-pong time per case and per baseline (streaming gets half)", DefaultValueFactory = _ => 2 };
        var json = RttCommands.JsonOption();
        var only = new Option<string[]>("--lane") { Description = "Measure only these lanes (shm, uds, tcp; repeatable; default all); each with its baseline", AllowMultipleArgumentsPerToken = true };
        var sizes = new Option<int[]>("--size") { Description = "Payload sizes in bytes (repeatable; default 64 4096 65536)", AllowMultipleArgumentsPerToken = true };
        var lanes = new Command("lanes", "Round trip, one-way latency and throughput of the SHM, UDS and TCP lanes against a shared-memory mailbox, raw UDS and raw TCP (two processes)")
        {
            seconds, json, only, sizes,
        };
        lanes.SetAction(RttCommands.Guard((parse, _) =>
        {
            var s = parse.GetValue(seconds);
            if (s is <= 0 or > 600)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"--seconds {s.ToString(CultureInfo.InvariantCulture)} is out of range", "--seconds", "give a time per case between 0 and 600 seconds");
            }

            var asJson = parse.GetValue(json);
            var kinds = new List<Fabric.Lanes.LaneKind>();
            foreach (var name in parse.GetValue(only) ?? [])
            {
                kinds.Add(name switch
                {
                    "shm" => Fabric.Lanes.LaneKind.Shm,
                    "uds" => Fabric.Lanes.LaneKind.Uds,
                    "tcp" => Fabric.Lanes.LaneKind.Tcp,
                    _ => throw new RttException(ErrorCodes.LaneConfigInvalid, $"--lane {name} is not a lane", "--lane", "give shm, uds or tcp"),
                });
            }

            var sizeList = parse.GetValue(sizes) ?? [];
            if (sizeList.Any(n => n is < 16 or > 65536))
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, "--size must be between 16 and 65536 bytes", "--size", "give payload sizes from 16 B to 64 KiB");
            }

            var defaults = new LaneBenchOptions { StartPeer = StartPeer };
            var result = LaneBench.Run(new LaneBenchOptions
            {
                Seconds = s,
                Lanes = kinds.Count > 0 ? kinds.Distinct().ToArray() : defaults.Lanes,
                Sizes = sizeList.Length > 0 ? sizeList.Distinct().ToArray() : defaults.Sizes,
                StartPeer = StartPeer,
                Progress = m => Console.Error.WriteLine($"bench: {m}"),
            });
            if (asJson)
            {
                Console.Out.Write(PrettyJson.ToText(ToJson(result)));
            }
            else
            {
                Print(result);
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        // The other process of every case; started by `bench lanes` itself.
        var mode = new Argument<string>("mode");
        var address = new Argument<string>("address");
        var peer = new Command("peer", "The peer process of rtt bench lanes") { mode, address };
        peer.Hidden = true;
        peer.SetAction(parse => LanePeer.Run([parse.GetValue(mode)!, parse.GetValue(address)!]));

        // A client process sending traffic through the silo's lanes (rtt up --once runs it).
        var control = new Argument<string>("control");
        var routes = new Argument<string[]>("routes") { Arity = ArgumentArity.OneOrMore };
        var count = new Option<int>("--count") { DefaultValueFactory = _ => 2000 };
        var tokens = new Option<string[]>("--token") { Description = "A lane token per route, in the routes' order (a strict-mode silo needs them)" };
        var routeClient = new Command("route-client", "Sends requests through the silo's lanes and prints per-route latency as JSON") { control, routes, count, tokens };
        routeClient.Hidden = true;
        routeClient.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var result = new JsonArray();
            var given = parse.GetValue(tokens) ?? [];
            var names = parse.GetValue(routes)!;
            for (var i = 0; i < names.Length; i++)
            {
                result.Add(await RouteTraffic(parse.GetValue(control)!, names[i], parse.GetValue(count), cancellationToken, i < given.Length ? given[i] : null));
            }

            Console.Out.Write(result.ToJsonString());
            return RttCommands.Ok;
        }));

        return new Command("bench", "Benchmarks") { lanes, Calls(), peer, CallsPeer(), routeClient, Bench.SecurityBench.Create(), Bench.ControlBench.Create() };
    }

    /// <summary><c>rtt bench calls</c>: calls to real endpoints through RTT against their baselines in the same run.</summary>
    private static Command Calls()
    {
        var seconds = new Option<double>("--seconds") { Description = "Measured time per case and size (alternating slices)", DefaultValueFactory = _ => 2 };
        var sizes = new Option<int[]>("--size") { Description = "Payload sizes in bytes (repeatable; default 64 4096 65536)", AllowMultipleArgumentsPerToken = true };
        var only = new Option<string[]>("--only") { Description = "services (echo, process, gRPC, pipelined) or mcp; default both", AllowMultipleArgumentsPerToken = true };
        var server = new Option<string?>("--mcp-server") { Description = "The MCP server command line for the MCP cases (default: the bundled C# sample server)" };
        var tool = new Option<string>("--mcp-tool") { Description = "The tool to call", DefaultValueFactory = _ => "echo" };
        var arguments = new Option<string>("--mcp-args") { Description = "Its arguments (a JSON object)", DefaultValueFactory = _ => """{"message":"hello"}""" };
        var json = RttCommands.JsonOption();
        var calls = new Command("calls", "A process service over SHM against the SHM echo round trip and gRPC unary over a Unix socket; pipelined calls; an MCP tool call through RTT against the same call with the SDK client")
        {
            seconds, sizes, only, server, tool, arguments, json,
        };
        calls.SetAction(RttCommands.Guard(async (parse, _) =>
        {
            var s = parse.GetValue(seconds);
            if (s is <= 0 or > 600)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"--seconds {s.ToString(CultureInfo.InvariantCulture)} is out of range", "--seconds", "give a time per case between 0 and 600 seconds");
            }

            var sizeList = parse.GetValue(sizes) ?? [];
            if (sizeList.Any(n => n is < 1 or > 65536))
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, "--size must be between 1 and 65536 bytes", "--size", "give payload sizes from 1 B to 64 KiB");
            }

            var parts = parse.GetValue(only) ?? [];
            if (parts.FirstOrDefault(p => p is not ("services" or "mcp")) is { } unknown)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"--only {unknown} is not a part of the bench", "--only", "give services or mcp");
            }

            var args = parse.GetValue(arguments)!;
            try
            {
                if (System.Text.Json.Nodes.JsonNode.Parse(args) is not JsonObject)
                {
                    throw new System.Text.Json.JsonException("not an object");
                }
            }
            catch (System.Text.Json.JsonException ex)
            {
                throw new RttException(ErrorCodes.CallInputInvalid, $"--mcp-args is not a JSON object: {ex.Message}", "--mcp-args", "give the tool's arguments as a JSON object, e.g. '{\"message\":\"hello\"}'");
            }

            var mcp = parts.Length == 0 || parts.Contains("mcp");
            string[]? argv = null;
            if (mcp)
            {
                var line = parse.GetValue(server);
                argv = line is null ? SampleMcpServer() : line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (argv.Length == 0)
                {
                    throw new RttException(ErrorCodes.LaneConfigInvalid, "--mcp-server is empty", "--mcp-server", "give the server's command line, e.g. \"npx -y @modelcontextprotocol/server-everything\"");
                }
            }

            var report = await Bench.CallsBench.RunAsync(new Bench.CallsBenchOptions
            {
                Seconds = s,
                Sizes = sizeList.Length > 0 ? [.. sizeList.Distinct()] : [64, 4096, 65536],
                Services = parts.Length == 0 || parts.Contains("services"),
                McpServer = argv,
                McpTool = parse.GetValue(tool)!,
                McpArguments = args,
                StartPeer = (serviceSocket, grpcSocket) => StartSelf("bench", "calls-peer", serviceSocket, grpcSocket),
                Progress = m => Console.Error.WriteLine($"bench: {m}"),
            });
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(report));
            }
            else
            {
                Bench.CallsBench.Print(report, Console.Out);
            }

            return RttCommands.Ok;
        }));
        return calls;
    }

    private static Command CallsPeer()
    {
        var serviceSocket = new Argument<string>("service-socket");
        var grpcSocket = new Argument<string>("grpc-socket");
        var peer = new Command("calls-peer", "The service process of rtt bench calls") { serviceSocket, grpcSocket };
        peer.Hidden = true;
        peer.SetAction((parse, _) => Bench.CallsBench.PeerAsync(parse.GetValue(serviceSocket)!, parse.GetValue(grpcSocket)!));
        return peer;
    }

    /// <summary>The bundled C# MCP sample server beside the rtt binaries.</summary>
    private static string[] SampleMcpServer()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "rtt-sample-mcp.dll");
        if (!File.Exists(dll))
        {
            throw new RttException(ErrorCodes.LaneConfigInvalid, $"the bundled MCP sample server is missing ({dll})", "--mcp-server",
                "rebuild rtt (the sample is built with it) or give a server with --mcp-server");
        }

        return ["dotnet", dll];
    }

    /// <summary>Starts this rtt with the given arguments (as <c>dotnet rtt.dll</c> when run that way).</summary>
    internal static Process StartSelf(params string[] args) => StartSelf(args, redirect: false);

    /// <summary>This rtt again with these arguments (its output read by the caller when <paramref name="redirect"/>).</summary>
    internal static Process StartSelf(string[] args, bool redirect)
    {
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardOutput = redirect, RedirectStandardError = redirect };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            info.ArgumentList.Add(typeof(BenchCommand).Assembly.Location); // run as `dotnet rtt.dll`
        }

        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    /// <summary>Attaches to one route over SHM and measures request/response round trips through the silo.</summary>
    private static async Task<JsonObject> RouteTraffic(string control, string route, int count, CancellationToken cancellationToken, string? token = null)
    {
        using var client = Client.Lanes.LaneClient.Attach(control, route, inlineContinuations: true, token: token); // one thread: no hop between answer and next request
        var payload = new byte[64];
        var histogram = new HdrHistogram.LongHistogram(10_000_000_000, 3);
        for (var i = 0; i < count + 200; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            var answer = await client.RequestAsync(payload, cancellationToken);
            var t1 = Stopwatch.GetTimestamp();
            if (answer.Length != payload.Length)
            {
                throw new InvalidOperationException($"route {route} answered {answer.Length} bytes to a {payload.Length}-byte request");
            }

            if (i >= 200)
            {
                histogram.RecordValue((t1 - t0) * 1_000_000_000 / Stopwatch.Frequency); // first 200: warm-up
            }
        }

        return new JsonObject
        {
            ["route"] = route,
            ["route_id"] = client.RouteId,
            ["lane"] = "shm",
            ["requests"] = count,
            ["p50_us"] = Math.Round(histogram.GetValueAtPercentile(50) / 1000.0, 1),
            ["p99_us"] = Math.Round(histogram.GetValueAtPercentile(99) / 1000.0, 1),
            ["dropped"] = client.Counters.Dropped,
        };
    }

    /// <summary>
    /// The <c>rtt up --once</c> step: the silo's lane host serves the workspace's routes; a separate client
    /// process attaches to each over SHM and sends requests through it; the step reports per-route p50/p99.
    /// </summary>
    public static JsonObject LaneStep(Silo.Hosting.RttSilo silo)
    {
        var lanes = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetService<Silo.Lanes.LaneHostService>(silo.Host.Services);
        if (lanes is not { Running: true })
        {
            return new JsonObject { ["step"] = "lanes", ["status"] = "skip", ["detail"] = "lane host disabled (Lanes:Enabled)" };
        }

        // The echo routes: their answers are the requests, so a client can check every byte. Routes to real
        // endpoints are called with real inputs by the calls step.
        var routes = lanes.Routes.Routes.Where(r => r.Endpoint is Fabric.Routing.DriverEndpoint { Driver: Fabric.Drivers.EchoDriver }).ToList();
        if (routes.Count == 0)
        {
            return new JsonObject { ["step"] = "lanes", ["status"] = "ok", ["detail"] = lanes.Routes.Routes.Count == 0 ? "lane host up, no routes in routes.json" : "no echo routes to measure" };
        }

        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            info.ArgumentList.Add(typeof(BenchCommand).Assembly.Location);
        }

        foreach (var arg in new[] { "bench", "route-client", lanes.ControlSocket }.Concat(routes.Select(r => r.RouteId.ToString(CultureInfo.InvariantCulture))))
        {
            info.ArgumentList.Add(arg);
        }

        if (Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetService<Silo.Security.RttSecurityOptions>(silo.Host.Services) is { Strict: true })
        {
            using var key = silo.Workspace.LoadSigningKey(); // one token per lane (a token opens one lane)
            foreach (var r in routes)
            {
                info.ArgumentList.Add("--token");
                info.ArgumentList.Add(Core.Tokens.ManagementTokens.MintLane(key, r.Name, TimeSpan.FromMinutes(10)));
            }
        }

        using var client = Process.Start(info)!;
        var stdout = client.StandardOutput.ReadToEndAsync();
        var stderr = client.StandardError.ReadToEndAsync();
        if (!client.WaitForExit(60_000))
        {
            client.Kill();
            client.WaitForExit();
            return new JsonObject { ["step"] = "lanes", ["status"] = "fail", ["detail"] = "the lane client process did not finish in 60 s" };
        }

        if (client.ExitCode != 0)
        {
            return new JsonObject { ["step"] = "lanes", ["status"] = "fail", ["detail"] = $"the lane client process failed: {stderr.Result.Trim()}" };
        }

        var measured = JsonNode.Parse(stdout.Result)!.AsArray();
        var detail = string.Join("; ", measured.Select(m => string.Create(CultureInfo.InvariantCulture,
            $"{m!["route"]} (route {m["route_id"]}, shm) p50 {(double)m["p50_us"]!:0.0} µs p99 {(double)m["p99_us"]!:0.0} µs over {m["requests"]} requests")));
        return new JsonObject
        {
            ["step"] = "lanes",
            ["status"] = "ok",
            ["detail"] = $"{routes.Count} route(s) served; client process {client.Id}: {detail}",
            ["routes"] = measured.DeepClone(),
        };
    }

    private static Process StartPeer(string mode, string address) => StartSelf("bench", "peer", mode, address);

    public static JsonObject ToJson(LaneBenchResult result)
    {
        var cases = new JsonArray();
        foreach (var c in result.Cases)
        {
            cases.Add(new JsonObject
            {
                ["lane"] = c.Lane,
                ["size"] = c.Size,
                ["crc"] = c.Crc,
                ["rtt_p50_ns"] = c.RoundTrip.P50,
                ["rtt_p99_ns"] = c.RoundTrip.P99,
                ["rtt_p999_ns"] = c.RoundTrip.P999,
                ["rtt_max_ns"] = c.RoundTrip.Max,
                ["frames_per_s"] = Math.Round(c.FramesPerSecond),
                ["baseline"] = c.Baseline,
                ["baseline_p50_ns"] = c.BaselineRoundTrip.P50,
                ["baseline_p99_ns"] = c.BaselineRoundTrip.P99,
                ["oneway_p50_ns"] = c.OneWay.P50,
                ["oneway_p99_ns"] = c.OneWay.P99,
                ["alloc_bytes_per_frame"] = Math.Round(Math.Max(c.ParentBytesPerFrame, c.PeerBytesPerFrame), 4),
            });
        }

        var json = new JsonObject
        {
            ["cases"] = cases,
            ["memcpy_ns"] = Sizes(result.MemcpyNs),
            ["crc32c_ns"] = Sizes(result.Crc32cNs),
        };
        if (result.ZeroCopy is { } pair)
        {
            json["zero_copy"] = new JsonObject
            {
                ["loaned_size"] = pair.LoanedSize,
                ["loaned_p50_ns"] = pair.Loaned.P50,
                ["loaned_p99_ns"] = pair.Loaned.P99,
                ["shm_64_p50_ns"] = pair.Small.P50,
                ["shm_64_p99_ns"] = pair.Small.P99,
            };
        }

        return json;
    }

    private static JsonObject Sizes(IReadOnlyDictionary<int, double> values)
    {
        var o = new JsonObject();
        foreach (var (size, ns) in values.OrderBy(p => p.Key))
        {
            o[size.ToString(CultureInfo.InvariantCulture)] = Math.Round(ns, 1);
        }

        return o;
    }

    private static string Us(long ns) => (ns / 1000.0).ToString("0.00", CultureInfo.InvariantCulture);

    private static void Print(LaneBenchResult result)
    {
        Console.WriteLine("round trip (ping-pong) and one-way latency in µs, HdrHistogram; ratio = lane / baseline in the same run");
        Console.WriteLine($"{"lane",-9}{"size",7} {"crc",-4}{"p50",9}{"p99",9}{"p99.9",9}{"max",10} {"1way p50",9}{"1way p99",9}{"frames/s",12}{"B/frame",8}  {"baseline",-9}{"p50",9}{"p99",9}{"x p50",7}{"x p99",7}");
        foreach (var c in result.Cases)
        {
            var b = c.BaselineRoundTrip;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{c.Lane,-9}{c.Size,7} {(c.Crc ? "yes" : "no"),-4}{Us(c.RoundTrip.P50),9}{Us(c.RoundTrip.P99),9}{Us(c.RoundTrip.P999),9}{Us(c.RoundTrip.Max),10} {Us(c.OneWay.P50),9}{Us(c.OneWay.P99),9}{c.FramesPerSecond,12:0}{Math.Max(c.ParentBytesPerFrame, c.PeerBytesPerFrame),8:0.###}  {c.Baseline,-9}{Us(b.P50),9}{Us(b.P99),9}{c.RoundTrip.P50 / (double)b.P50,7:0.00}{c.RoundTrip.P99 / (double)b.P99,7:0.00}"));
        }

        Console.WriteLine();
        Console.WriteLine("per operation (ns): " + string.Join(", ", result.MemcpyNs.OrderBy(p => p.Key).Select(p =>
            string.Create(CultureInfo.InvariantCulture, $"{p.Key} B memcpy {p.Value:0.0}, crc32c {result.Crc32cNs[p.Key]:0.0}"))));
        if (result.ZeroCopy is { } pair)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"zero copy, interleaved: shm-loan {pair.LoanedSize} B p50 {Us(pair.Loaned.P50)} p99 {Us(pair.Loaned.P99)}, shm 64 B p50 {Us(pair.Small.P50)} p99 {Us(pair.Small.P99)} µs"));
        }

        Console.WriteLine();
        Console.WriteLine("goals (issue 6):");
        foreach (var (goal, value, limit, pass) in Goals(result))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {(pass ? "pass" : "MISS"),-5}{goal,-70} {value,10:0.00} (limit {limit:0.##})"));
        }
    }

    /// <summary>The issue's goals as (goal, measured, limit, met).</summary>
    public static IEnumerable<(string Goal, double Value, double Limit, bool Pass)> Goals(LaneBenchResult r)
    {
        LaneCaseResult? Find(string lane, int size) => r.Cases.FirstOrDefault(c => c.Lane == lane && c.Size == size);
        var results = new List<(string, double, double, bool)>();
        void Ratio(string goal, double value, double limit) => results.Add((goal, value, limit, value <= limit));

        if (Find("shm", 64) is { } shm64)
        {
            Ratio("SHM 64 B round trip p50 / mailbox p50", shm64.RoundTrip.P50 / (double)shm64.BaselineRoundTrip.P50, 1.5);
            Ratio("SHM 64 B round trip p99 / mailbox p99", shm64.RoundTrip.P99 / (double)shm64.BaselineRoundTrip.P99, 2.0);
            if (r.ZeroCopy is { LoanedSize: 65536 } pair)
            {
                Ratio("SHM 64 KiB loaned, no payload CRC, p50 / SHM 64 B p50 (interleaved)", pair.Loaned.P50 / (double)pair.Small.P50, 2.0);
            }

            results.Add(("SHM 64 B streaming, million frames/s (at least)", shm64.FramesPerSecond / 1e6, 10, shm64.FramesPerSecond >= 10e6));
        }

        if (Find("shm", 65536) is { } shm64k)
        {
            Ratio("SHM 64 KiB with payload CRC p50 / mailbox (same CRC) p50", shm64k.RoundTrip.P50 / (double)shm64k.BaselineRoundTrip.P50, 1.0);
        }

        // The seed's SHM target (p99 < 1.5 ms at 64 KiB) with two orders of magnitude to spare: the zero-copy hot
        // path (loaned, header CRC), and with the payload copied and checksummed both ways (four 64 KiB CRCs and
        // four copies per round trip: a floor the per-operation figures above show).
        if (Find("shm-loan", 65536) is { } loan64k)
        {
            Ratio("SHM 64 KiB zero-copy p99 in µs (seed 1500 µs / 100)", loan64k.RoundTrip.P99 / 1000.0, 15);
        }

        if (Find("shm", 65536) is { } crc64k)
        {
            Ratio("SHM 64 KiB copied + CRC p99 in µs (seed 1500 µs / 100)", crc64k.RoundTrip.P99 / 1000.0, 15);
        }

        foreach (var c in r.Cases.Where(c => c.Lane == "uds"))
        {
            var crc = c.Crc ? "" : ", no payload CRC";
            Ratio($"UDS {c.Size} B{crc} p50 / raw UDS p50", c.RoundTrip.P50 / (double)c.BaselineRoundTrip.P50, 1.2);
            Ratio($"UDS {c.Size} B{crc} p99 / raw UDS p99", c.RoundTrip.P99 / (double)c.BaselineRoundTrip.P99, 1.3);
        }

        // The seed's UDS and TCP targets with two orders of magnitude to spare; the raw socket's own p99 in the
        // same run says whether the kernel allows it on this machine at all.
        if (r.Cases.Where(c => c.Lane == "uds").MaxBy(c => c.RoundTrip.P99) is { } udsWorst)
        {
            Ratio(string.Create(CultureInfo.InvariantCulture, $"UDS worst p99 in µs (seed 300 µs / 100; raw UDS {udsWorst.BaselineRoundTrip.P99 / 1000.0:0.#})"), udsWorst.RoundTrip.P99 / 1000.0, 3);
        }

        foreach (var c in r.Cases.Where(c => c.Lane == "tcp"))
        {
            Ratio($"TCP {c.Size} B{(c.Crc ? "" : ", no payload CRC")} p50 / raw TCP p50", c.RoundTrip.P50 / (double)c.BaselineRoundTrip.P50, 1.2);
        }

        if (r.Cases.Where(c => c.Lane == "tcp").MaxBy(c => c.RoundTrip.P99) is { } tcpWorst)
        {
            Ratio(string.Create(CultureInfo.InvariantCulture, $"TCP worst p99 in µs (seed 10 ms / 100; raw TCP {tcpWorst.BaselineRoundTrip.P99 / 1000.0:0.#})"), tcpWorst.RoundTrip.P99 / 1000.0, 100);
        }

        var alloc = r.Cases.Max(c => Math.Max(c.ParentBytesPerFrame, c.PeerBytesPerFrame));
        results.Add(("allocated bytes per streamed frame, worst case (both sides)", alloc, 0, alloc < 0.01));
        return results;
    }
}
