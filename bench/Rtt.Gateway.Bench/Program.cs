using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using HdrHistogram;
using ModelContextProtocol.Client;

// rtt-gateway-bench: one MCP tool call (the quickstart's `upper` of rtt-sample-mcp) made three ways in the same run,
// in alternating 100 ms slices so a busy neighbour weighs on all alike:
//   direct        the SDK's McpClient to rtt-sample-mcp over stdio (one session)
//   rtt           the SDK's McpClient over Streamable HTTP to `rtt mcp serve --http` (silo, lane, MCP endpoint, the same server)
//   sdk-http      the SDK's McpClient over Streamable HTTP to rtt-sample-mcp --http (HTTP and the SDK alone, no RTT)
//   supergateway  the SDK's McpClient over Streamable HTTP to supergateway --stateful --stdio rtt-sample-mcp (npm, tests/mcp)
// usage: dotnet run -c Release --project bench/Rtt.Gateway.Bench [-- --seconds N] [--no-supergateway]
// Needs a Release build of src/Rtt.Cli (rtt and rtt-sample-mcp beside it) and `npm ci` in tests/mcp for supergateway.
var seconds = Arg("--seconds") is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : 10;
var repo = Repo();
var cli = Path.Combine(repo, "src", "Rtt.Cli", "bin", "Release", "net10.0");
var rtt = Path.Combine(cli, "rtt");
var server = Path.Combine(cli, "rtt-sample-mcp");
var supergateway = Path.Combine(repo, "tests", "mcp", "node_modules", "supergateway", "dist", "index.js");
if (!File.Exists(rtt) || !File.Exists(server))
{
    Console.Error.WriteLine($"build src/Rtt.Cli in Release first ({rtt})");
    return 2;
}

var useSupergateway = !args.Contains("--no-supergateway");
if (useSupergateway && !File.Exists(supergateway))
{
    Console.Error.WriteLine($"supergateway is not installed ({supergateway}): run npm ci in tests/mcp, or pass --no-supergateway");
    return 2;
}

var root = Directory.CreateTempSubdirectory("rtt-gateway-bench-").FullName;
var processes = new List<Process>();
try
{
    var ws = Path.Combine(root, "qs");
    Run(rtt, root, "init", "--example", "quickstart", ws);
    Run(rtt, ws, "scan");
    processes.Add(Start(rtt, ws, "up", "--silo-port", Free().ToString(CultureInfo.InvariantCulture), "--gateway-port", Free().ToString(CultureInfo.InvariantCulture)));
    WaitFor(processes[^1], "Ctrl-C", TimeSpan.FromSeconds(90));
    Run(rtt, ws, "plan");
    Run(rtt, ws, "apply");
    var gateway = Start(rtt, ws, "mcp", "serve", "--as", "rtt://ui/chat/tools", "--http", "--port", "0");
    processes.Add(gateway);
    var line = WaitFor(gateway, "http://", TimeSpan.FromSeconds(60));
    var url = new Uri(line[line.IndexOf("http://", StringComparison.Ordinal)..].Split(' ')[0]);
    var token = File.ReadAllText(Path.Combine(ws, ".rtt", "keys", "mcp-gateway.token")).Trim();

    var clients = new List<(string Name, McpClient Client, string Tool)>
    {
        ("direct", await McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions { Command = server, Name = "direct" })), "upper"),
        ("rtt", await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = url,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
        })), "sample__upper"),
    };
    if (useSupergateway)
    {
        var port = Free();
        // --stateful: one server process per session (without it, supergateway 4 starts the server for every request).
        var sg = Start("node", root, supergateway, "--stdio", server, "--outputTransport", "streamableHttp", "--stateful", "--port", port.ToString(CultureInfo.InvariantCulture), "--logLevel", "none");
        processes.Add(sg);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!CanConnect(port) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        clients.Add(("supergateway", await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri($"http://127.0.0.1:{port}/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
        })), "upper"));
    }

    // The same server over Streamable HTTP without RTT: what HTTP and the SDK's session cost alone (the profile's split).
    var httpPort = Free();
    processes.Add(Start(server, root, "--http", $"http://127.0.0.1:{httpPort}/mcp"));
    WaitFor(processes[^1], "listening", TimeSpan.FromSeconds(60));
    clients.Insert(1, ("sdk-http", await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
    {
        Endpoint = new Uri($"http://127.0.0.1:{httpPort}/mcp"),
        TransportMode = HttpTransportMode.StreamableHttp,
    })), "upper"));

    var arguments = new Dictionary<string, object?> { ["text"] = "hello through the gateway" };
    foreach (var (name, client, tool) in clients)
    {
        var answer = await client.CallToolAsync(tool, arguments);
        if (answer.IsError == true || answer.Content.Count == 0)
        {
            throw new InvalidOperationException($"{name}: {tool} failed");
        }

        for (var i = 0; i < 50; i++)
        {
            await client.CallToolAsync(tool, arguments); // warm-up
        }
    }

    var histograms = clients.ToDictionary(c => c.Name, _ => new LongHistogram(TimeStamp.Seconds(10), 3));
    var load0 = File.ReadAllText("/proc/loadavg").Split(' ')[0];
    var end = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
    var slice = Stopwatch.Frequency / 10;
    while (Stopwatch.GetTimestamp() < end)
    {
        foreach (var (name, client, tool) in clients)
        {
            var sliceEnd = Stopwatch.GetTimestamp() + slice;
            var h = histograms[name];
            while (Stopwatch.GetTimestamp() < sliceEnd)
            {
                var t0 = Stopwatch.GetTimestamp();
                await client.CallToolAsync(tool, arguments);
                h.RecordValue(Stopwatch.GetTimestamp() - t0);
            }
        }
    }

    var load1 = File.ReadAllText("/proc/loadavg").Split(' ')[0];
    double Us(LongHistogram h, double q) => h.GetValueAtPercentile(q) * 1e6 / Stopwatch.Frequency;
    var direct = histograms["direct"];
    var report = new JsonObject { ["seconds"] = seconds, ["load_before"] = load0, ["load_after"] = load1, ["cores"] = Environment.ProcessorCount };
    Console.WriteLine($"MCP tool call, alternating 100 ms slices for {seconds} s; load {load0} -> {load1} on {Environment.ProcessorCount} cores");
    Console.WriteLine($"{"case",-14} {"calls",8} {"p50 us",10} {"p99 us",10} {"p50/direct",11}");
    foreach (var (name, h) in histograms)
    {
        Console.WriteLine($"{name,-14} {h.TotalCount,8} {Us(h, 50),10:0.0} {Us(h, 99),10:0.0} {Us(h, 50) / Us(direct, 50),10:0.00}x");
        report[name] = new JsonObject { ["calls"] = h.TotalCount, ["p50_us"] = Math.Round(Us(h, 50), 1), ["p99_us"] = Math.Round(Us(h, 99), 1) };
    }

    if (histograms.TryGetValue("supergateway", out var sgh))
    {
        Console.WriteLine($"rtt/supergateway p50 {Us(histograms["rtt"], 50) / Us(sgh, 50):0.00}x (goal <= 0.2)");
    }

    Console.WriteLine($"rtt/direct p50 {Us(histograms["rtt"], 50) / Us(direct, 50):0.00}x (goal <= 1.5)");

    // The split of the rtt case: the lane host's own latency for the route (request read by its worker -> answer written:
    // the silo's MCP endpoint, its SDK session and the server over stdio), from `rtt metrics --json` (all calls of the run,
    // the warm-up included); the rest of the rtt p50 is HTTP, the gateway's SDK server, the gateway and the lane both ways.
    var metrics = Start(rtt, ws, "metrics", "--json");
    metrics.WaitForExit(30_000);
    Thread.Sleep(100);
    var text = string.Join("\n", Output[metrics]);
    if (JsonNode.Parse(text[text.IndexOf('{', StringComparison.Ordinal)..])?["routes"] is JsonArray routes
        && routes.Where(r => ((string?)r?["route"] ?? "").Contains("upper", StringComparison.Ordinal)).MaxBy(r => (long?)r?["requests"] ?? 0) is { } route)
    {
        var hostP50 = (double)route["latency_ns"]!["p50"]! / 1000;
        Console.WriteLine($"split of rtt p50: silo lane host (endpoint, SDK session, server over stdio) p50 {hostP50:0.0} us over {(long)route["requests"]!} requests; the rest (HTTP, gateway, lane) {Us(histograms["rtt"], 50) - hostP50:0.0} us");
        report["silo_host_p50_us"] = Math.Round(hostP50, 1);
    }
    else
    {
        Console.WriteLine($"split of rtt p50: the route's metrics were not found in `rtt metrics --json`: {text}");
    }
    if (args.Contains("--json"))
    {
        Console.WriteLine(report.ToJsonString());
    }

    foreach (var (_, client, _) in clients)
    {
        await client.DisposeAsync();
    }

    return 0;
}
finally
{
    foreach (var p in Enumerable.Reverse(processes))
    {
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    try
    {
        Directory.Delete(root, recursive: true);
    }
    catch (IOException)
    {
    }
}

string? Arg(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;

static string Repo()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rtt.sln")))
    {
        dir = dir.Parent;
    }

    return dir?.FullName ?? throw new InvalidOperationException("run from inside the repository");
}

static int Free()
{
    using var l = new TcpListener(IPAddress.Loopback, 0);
    l.Start();
    return ((IPEndPoint)l.LocalEndpoint).Port;
}

static bool CanConnect(int port)
{
    try
    {
        using var c = new TcpClient();
        c.Connect(IPAddress.Loopback, port);
        return true;
    }
    catch (SocketException)
    {
        return false;
    }
}

static void Run(string command, string cwd, params string[] args)
{
    using var p = Start(command, cwd, args);
    p.WaitForExit();
    if (p.ExitCode != 0)
    {
        throw new InvalidOperationException($"{command} {string.Join(' ', args)} exited {p.ExitCode}");
    }
}

static Process Start(string command, string cwd, params string[] args)
{
    var info = new ProcessStartInfo(command) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
    foreach (var a in args)
    {
        info.ArgumentList.Add(a);
    }

    var p = Process.Start(info)!;
    var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
    p.OutputDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue(e.Data); } };
    p.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lines.Enqueue(e.Data); } };
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    Output[p] = lines;
    return p;
}

static string WaitFor(Process p, string text, TimeSpan timeout)
{
    var deadline = DateTime.UtcNow + timeout;
    while (DateTime.UtcNow < deadline)
    {
        if (Output[p].FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line)
        {
            return line;
        }

        if (p.HasExited)
        {
            throw new InvalidOperationException($"exited: {string.Join('\n', Output[p])}");
        }

        Thread.Sleep(50);
    }

    throw new TimeoutException($"no \"{text}\": {string.Join('\n', Output[p])}");
}

partial class Program
{
    internal static readonly System.Collections.Concurrent.ConcurrentDictionary<Process, System.Collections.Concurrent.ConcurrentQueue<string>> Output = new();
}
