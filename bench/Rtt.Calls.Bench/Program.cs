using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Net.Client;
using HdrHistogram;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Rtt.Calls.Bench.Grpc;
using Rtt.Client.Lanes;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Services;
using Rtt.Fabric.Streams;

// Calls through RTT against their baselines, in one run (docs/calls.md, "Benchmarks"):
//   echo     client -> SHM lane -> lane host -> echo driver -> back (the SHM echo round trip)
//   process  client -> SHM lane -> lane host -> SHM lane -> service process (ServiceHost, echo) -> back
//   grpc     the same request/response as gRPC unary over a Unix socket (Grpc.AspNetCore server in the same
//            service process, Grpc.Net.Client), the same payload sizes
// Cases run in alternating slices so each sees the same machine; p50/p99 from HdrHistogram. Then pipelined
// throughput through the process endpoint and the bytes allocated per call in this process (the lane host's worker
// and the client; the service is another process).
// Usage: dotnet run -c Release --project bench/Rtt.Calls.Bench -- [--seconds 2] [--sizes 64,4096,65536] [--json]
if (args.Length > 0 && args[0] == "service")
{
    return await Service(args[1], args[2]);
}

var seconds = 2.0;
int[] sizes = [64, 4096, 65536];
var json = false;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--seconds": seconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--sizes": sizes = [.. args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
        case "--json": json = true; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 1;
    }
}

var dir = Directory.CreateTempSubdirectory("rtt-calls-bench-").FullName;
var control = Path.Combine(dir, "lanes.sock");
var serviceSocket = Path.Combine(dir, "svc.sock");
var grpcSocket = Path.Combine(dir, "grpc.sock");
var options = new LaneOptions { RingCapacity = 1 << 20, MaxPayload = 64 * 1024 };
using var host = new LaneHost();
using var serviceListener = LaneSockets.ListenUnix(serviceSocket);
var self = Environment.ProcessPath!;
var info = new ProcessStartInfo(self) { UseShellExecute = false };
if (Path.GetFileNameWithoutExtension(self) == "dotnet")
{
    info.ArgumentList.Add(typeof(Program).Assembly.Location);
}

foreach (var a in new[] { "service", serviceSocket, grpcSocket })
{
    info.ArgumentList.Add(a);
}

using var service = Process.Start(info)!;
try
{
    serviceListener.ReceiveTimeout = 30_000;
    var upstream = LaneAttach.Accept(serviceListener.Accept(), _ => 1u, options with { Backpressure = BackpressurePolicy.Fail }, host.Doorbell)!;
    await host.SwapAsync(new RouteTable([
        new RouteEntry(1, "echo", new DriverEndpoint(new EchoDriver())),
        new RouteEntry(2, "process", new LaneEndpoint("process", upstream)),
    ]));
    using var listener = new LaneHostListener(host, options, control);
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
    using var echo = LaneClient.Attach(control, "1", LaneKind.Shm, options: options, inlineContinuations: true);
    using var process = LaneClient.Attach(control, "2", LaneKind.Shm, options: options, inlineContinuations: true);

    var results = new JsonArray();
    foreach (var size in sizes)
    {
        var payload = new byte[size];
        Random.Shared.NextBytes(payload);
        var message = new Payload { Data = ByteString.CopyFrom(payload) };
        var cases = new (string Name, Func<Task> Call)[]
        {
            ("echo", async () => Check((await echo.RequestAsync(payload)).Length, size)),
            ("process", async () => Check((await process.RequestAsync(payload)).Length, size)),
            ("grpc", async () => Check((await grpc.CallAsync(message)).Data.Length, size)),
        };
        var histograms = cases.Select(_ => new LongHistogram(Stopwatch.Frequency * 10, 3)).ToArray();
        foreach (var (_, call) in cases)
        {
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed.TotalSeconds < 0.5)
            {
                await call();
            }
        }

        var spent = new double[cases.Length];
        while (spent.Min() < seconds)
        {
            for (var c = 0; c < cases.Length; c++)
            {
                var slice = Stopwatch.StartNew();
                while (slice.Elapsed.TotalMilliseconds < 50)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    await cases[c].Call();
                    histograms[c].RecordValue(Stopwatch.GetTimestamp() - t0);
                }

                spent[c] += slice.Elapsed.TotalSeconds;
            }
        }

        for (var c = 0; c < cases.Length; c++)
        {
            results.Add(new JsonObject
            {
                ["case"] = cases[c].Name,
                ["size"] = size,
                ["calls"] = histograms[c].TotalCount,
                ["p50_us"] = Us(histograms[c], 50),
                ["p99_us"] = Us(histograms[c], 99),
            });
        }
    }

    var throughput = Throughput(control, options, TimeSpan.FromSeconds(Math.Max(1, seconds)));
    var report = new JsonObject { ["cases"] = results, ["throughput"] = throughput };
    if (json)
    {
        Console.WriteLine(report.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
    else
    {
        Console.WriteLine($"{"case",-8} {"size",7} {"calls",9} {"p50 µs",9} {"p99 µs",9}");
        foreach (var r in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r!["case"],-8} {(int)r["size"]!,7} {(long)r["calls"]!,9} {(double)r["p50_us"]!,9:0.0} {(double)r["p99_us"]!,9:0.0}"));
        }

        foreach (var size in sizes)
        {
            double P(string name, string p) => (double)results.Single(r => (string)r!["case"]! == name && (int)r["size"]! == size)![p]!;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"size {size}: process/echo p50 {P("process", "p50_us") / P("echo", "p50_us"):0.00}x (goal <= 2), process/grpc p50 {P("process", "p50_us") / P("grpc", "p50_us"):0.000}x (goal <= 0.2), p99 {P("process", "p99_us") / P("grpc", "p99_us"):0.000}x"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"pipelined through the process endpoint (64 B, window {throughput["window"]}): {(double)throughput["calls_per_s"]!:N0} calls/s (goal >= 1,000,000); allocated {(double)throughput["allocated_bytes_per_call"]!:0.00} B per call in this process"));
    }

    return 0;
}
finally
{
    host.Dispose();
    if (!service.WaitForExit(5000))
    {
        service.Kill(entireProcessTree: true);
    }

    Directory.Delete(dir, recursive: true);
}

static double Us(LongHistogram h, double percentile) => Math.Round(h.GetValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency, 2);

static void Check(int length, int expected)
{
    if (length != expected)
    {
        throw new InvalidOperationException($"answer of {length} bytes to a {expected}-byte request");
    }
}


// Pipelined: one thread keeps `window` requests in flight on a raw SHM lane to the process endpoint; nothing is
// allocated per call on this side, so the process's allocation delta is the lane host's.
static JsonObject Throughput(string control, LaneOptions options, TimeSpan duration)
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

        while (received < sent)
        {
            lane.Poll(onAnswer, 1024);
        }
    }

    Run(TimeSpan.FromMilliseconds(500)); // warm-up
    var (s0, r0) = (sent, received);
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
        ["sent"] = sent - s0,
    };
}

// The other process: the RTT process service (echo) on one thread, a gRPC echo server on a Unix socket beside it.
static async Task<int> Service(string serviceSocket, string grpcSocket)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(grpcSocket, o => o.Protocols = HttpProtocols.Http2));
    builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 1 << 20);
    var app = builder.Build();
    app.MapGrpcService<EchoService>();
    await app.StartAsync();
    var lane = ServiceHost.Attach(serviceSocket, LaneKind.Shm, new LaneOptions { RingCapacity = 1 << 20, MaxPayload = 64 * 1024 });
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

internal sealed class EchoService : Echo.EchoBase
{
    public override Task<Payload> Call(Payload request, global::Grpc.Core.ServerCallContext context) => Task.FromResult(new Payload { Data = request.Data });
}

internal static partial class Program;
