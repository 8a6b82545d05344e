using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Orleans.Runtime;
using Rtt.Cli.Bench;
using Rtt.Cli.Stubs;
using Rtt.Cli.Tests;
using Rtt.Client;
using Rtt.Core.Tests;
using Rtt.Core.Workspace;
using Rtt.Grains.Diagnostics;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Tests.Shared;

// Cluster benchmark (issue 19): three `rtt up --cluster` silo processes (node0..node2, one workspace copy each) on a
// private PostgreSQL server started here exactly as the cluster tests start theirs, then
//   1. control path: sequential grain calls from a client app connected to node0's gateway to the node grains of
//      node1 and node2 (on the other silos) and node0 (on the gateway's silo), against bare ping grains placed on the
//      gateway's silo and on another one, alternating slices, HdrHistogram percentiles (rtt bench control's code);
//   2. failover: kill -9 of node2's silo until the membership table marks it dead and until the survivors applied (2PC,
//      verify probes included) the plan policy.json auto_replan made without node2; node2 started again until the plan
//      with node2 is applied again;
//   3. apply of N routes (default 1,000) spread over the three silos, and their removal, through `rtt apply`, 3 times;
// against the same N-route apply (all on node0) on an embedded single silo with SQLite, in the same run.
// Membership uses the tests' quick failure detection (probe timeout 1 s, 2 missed probes), not the production defaults.
// Everything started (silos, PostgreSQL, temp folders) is removed at the end, on a failure, and on SIGINT/SIGTERM.
//   dotnet run -c Release --project bench/Rtt.Cluster.Bench -- [--seconds 2] [--routes 1000] [--failovers 3] [--applies 3]
var seconds = double.Parse(Arg("--seconds", "2"), CultureInfo.InvariantCulture);
var routeCount = int.Parse(Arg("--routes", "1000"), CultureInfo.InvariantCulture);
var failovers = int.Parse(Arg("--failovers", "3"), CultureInfo.InvariantCulture);
var applies = int.Parse(Arg("--applies", "3"), CultureInfo.InvariantCulture);

using var stop = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    context.Cancel = true; // cleaned up below (silos, PostgreSQL, temp folders), then the bench ends
    Console.Error.WriteLine("cluster bench: interrupted, cleaning up");
    stop.Cancel();
}

using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

var membership = new Dictionary<string, string>
{
    ["RTT_Cluster__Membership__ProbeTimeout"] = "00:00:01",
    ["RTT_Cluster__Membership__NumMissedProbesLimit"] = "2",
    ["RTT_Cluster__Membership__IAmAliveTablePublishTimeout"] = "00:00:05",
};
string[] nodes = ["node0", "node1", "node2"];
(string From, string To)[] routes =
[
    ("rtt://ui/hook/refresh", "rtt://core/api/metrics"),
    ("rtt://ui/chat/console", "rtt://core/api/echo1"),
    ("rtt://ui/chat/tools", "rtt://core/api/echo2"),
];

var total = Stopwatch.StartNew();
var dir = Directory.CreateTempSubdirectory("rtt-cluster-bench-").FullName;
var silos = new RttProcess?[3];
RttProcess? single = null;
PostgresServerFixture? pg = null;
try
{
    Console.WriteLine($"cluster bench: {Environment.ProcessorCount} cores, load {StubBench.Load()}, temp {dir}");
    Console.WriteLine("starting a private PostgreSQL server (initdb, pg_ctl) as the cluster tests do");
    pg = new PostgresServerFixture();
    var database = pg.NewDatabase();
    Ok(dir, "db", "init", database);
    var ws = Workspaces(Path.Combine(dir, "cluster"), out var p1);
    var ports = nodes.Select(_ => (Silo: RttProcess.FreePort(), Gateway: RttProcess.FreePort())).ToArray();
    RttProcess StartNode(int i) => RttProcess.StartSilo(ws[i], ports[i].Silo, ports[i].Gateway, membership, TimeSpan.FromSeconds(90), "--cluster", database, "--node-id", nodes[i]);

    // node0 first and alone (the reconciler and the WAL grain activate there), then node1 and node2 together.
    var started = Stopwatch.StartNew();
    silos[0] = StartNode(0);
    var others = new[] { Task.Run(() => StartNode(1)), Task.Run(() => StartNode(2)) };
    silos[1] = await others[0];
    silos[2] = await others[1];
    Console.WriteLine($"three silos up in {started.Elapsed.TotalSeconds:0.0} s; applying the 3-route plan (one echo route per node)");
    Apply(ws[0], p1);
    stop.Token.ThrowIfCancellationRequested();

    await using (var client = await Connect(ws[0]))
    {
        // 1. Control path. The client's only gateway is node0's silo; node1's and node2's grains live on their own silos.
        var placed = JsonNode.Parse(Ok(ws[0], "status", "--json"))!["placements"]!.AsArray();
        var where = string.Join(", ", placed.Select(p => $"{p!["node_id"]} on its own silo: {p["on_own_silo"]}"));
        var grains = nodes.Select(n => client.Cluster.GetGrain<INodeGrain>(n)).ToArray();
        foreach (var g in grains)
        {
            _ = await g.Get() ?? throw new InvalidOperationException("a node grain has no record: the silos did not register");
        }

        // Two ping grains as the baseline: one the default placement put on the gateway's silo (node0's), one it put on
        // another silo (the same hop as a call to node1's or node2's grain).
        // (the management grain is an admin interface: each call presents a one-use token minted with the workspace key)
        var management = client.Cluster.GetGrain<IManagementGrain>(0);
        var admin = RttWorkspace.Open(ws[0]);
        async Task<SiloAddress?> Where(IAddressable grain)
        {
            Rtt.Grains.ManagementCalls.Present(admin, Rtt.Core.Tokens.ManagementTokens.Admin);
            return await management.GetActivationAddress(grain);
        }

        var gateway = await Where(grains[0]);
        IPingGrain? local = null, remote = null;
        for (var key = 0; key < 256 && (local is null || remote is null); key++)
        {
            var candidate = client.Cluster.GetGrain<IPingGrain>(key);
            await candidate.Ping(key);
            var at = await Where(candidate);
            if (at is not null && at.Equals(gateway))
            {
                local ??= candidate;
            }
            else if (at is not null)
            {
                remote ??= candidate;
            }
        }

        if (local is null || remote is null)
        {
            throw new InvalidOperationException("no ping grain was placed on the gateway's silo or none on another one in 256 tries");
        }

        Orleans.Runtime.RequestContext.Clear(); // the calls measured carry no token

        var loadBefore = StubBench.Load();
        var cases = await CallsBench.Alternate([
            ("ping-local", async () => await local.Ping(1)),
            ("ping-remote", async () => await remote.Ping(1)),
            ("node0", async () => await grains[0].Get()),
            ("node1", async () => await grains[1].Get()),
            ("node2", async () => await grains[2].Get()),
        ], seconds, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));
        Console.WriteLine($"control path: sequential calls from a client on node0's gateway, {seconds:0.#} s per case in alternating 100 ms slices after 0.5 s warm-up; load {loadBefore} before, {StubBench.Load()} after");
        Console.WriteLine($"  placement: {where}; ping-local on the gateway's silo, ping-remote on another (node0's grain is read against ping-local, node1's and node2's against ping-remote)");
        foreach (var c in cases)
        {
            var baseline = (string)c["case"]! switch
            {
                "node0" => cases[0],
                "node1" or "node2" => cases[1],
                _ => null,
            };
            var ratio = baseline is null ? "" : string.Create(CultureInfo.InvariantCulture,
                $"  vs ping: p50 {(double)c["p50_us"]! / (double)baseline["p50_us"]!:0.00}x, p99 {(double)c["p99_us"]! / (double)baseline["p99_us"]!:0.00}x");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {c["case"],-11} calls {(long)c["calls"]!,6}  p50 {(double)c["p50_us"]!,8:0.0} µs  p99 {(double)c["p99_us"]!,8:0.0} µs  p99.9 {(double)c["p999_us"]!,8:0.0} µs{ratio}"));
        }

        // 2. Failover with auto_replan: kill -9 of node2's silo (not the reconciler's), until the survivors applied a plan
        //    without node2; then node2 again, until the plan with it is applied again.
        var history = client.Cluster.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        var down = new List<double>();
        var dead = new List<double>();
        var back = new List<double>();
        for (var r = 1; r <= failovers; r++)
        {
            stop.Token.ThrowIfCancellationRequested();
            var before = await Applied(history, null, TimeSpan.FromSeconds(30), stop.Token);
            var load = StubBench.Load();
            var deadQuery = $"SELECT count(*) FROM rtt_membership WHERE port = {ports[2].Silo} AND status = 6;"; // 6: Dead
            var deadBefore = PostgresServerFixture.Scalar<long>(database, deadQuery);
            var clock = Stopwatch.StartNew();
            silos[2]!.Kill();
            var declared = Task.Run(async () =>
            {
                while (PostgresServerFixture.Scalar<long>(database, deadQuery) == deadBefore && clock.Elapsed < TimeSpan.FromSeconds(120))
                {
                    await Task.Delay(50, stop.Token);
                }

                return clock.Elapsed.TotalSeconds;
            });
            var without = await Applied(history, before, TimeSpan.FromSeconds(120), stop.Token);
            down.Add(clock.Elapsed.TotalSeconds);
            dead.Add(await declared);
            var survivor = Route(ws[1], routes[1].To);
            if (survivor.ExitCode != 0)
            {
                throw new InvalidOperationException($"node1's route under the new plan: {survivor}");
            }

            silos[2]!.Dispose();
            clock.Restart();
            silos[2] = StartNode(2);
            var up = clock.Elapsed.TotalSeconds;
            await Applied(history, without, TimeSpan.FromSeconds(120), stop.Token);
            back.Add(clock.Elapsed.TotalSeconds);
            var restored = Route(ws[2], routes[2].To);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"failover {r}: kill -9 node2 -> declared dead in the membership table at {dead[^1]:0.00} s, survivors applied the plan without it at {down[^1]:0.00} s (node1's route answers: yes); node2 restarted (up in {up:0.0} s) -> plan with node2 applied {back[^1]:0.00} s after the start (its route answers: {(restored.ExitCode == 0 ? "yes" : "NO")}); load {load}"));
        }

        if (failovers > 0)
        {
            Console.WriteLine($"failover kill -9 -> declared dead: {Summary(dead)}");
            Console.WriteLine($"failover kill -9 -> new plan applied by the survivors: {Summary(down)}");
            Console.WriteLine($"restart -> plan with the node applied again: {Summary(back)}");
        }
    }

    // 3. N routes spread over the three silos, on PostgreSQL.
    var cluster = ApplyRuns(ws[0], Path.Combine(dir, "cluster-plans"), routeCount, i => nodes[i % 3]);
    StopAll(silos);

    // The same on an embedded single silo (SQLite), all routes on its node0.
    var alone = Path.Combine(dir, "single");
    Ok(dir, "init", "--example", "quickstart", alone);
    Ok(alone, "scan");
    single = RttProcess.StartSilo(alone, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(90));
    var embedded = ApplyRuns(alone, Path.Combine(dir, "single-plans"), routeCount, _ => "node0");
    single.Terminate();
    single.WaitForExit(TimeSpan.FromSeconds(30));

    Console.WriteLine($"apply of {routeCount} routes through `rtt apply`, then their removal, {applies} times: silo-side phases (the command's wall time, process start included, in brackets)");
    foreach (var (name, runs) in new[] { ("3 silos, PostgreSQL (routes spread over node0..node2)", cluster), ("1 embedded silo, SQLite (all routes on node0)", embedded) })
    {
        Console.WriteLine($"  {name}: apply {Summary(runs.Apply, "ms")}; remove {Summary(runs.Remove, "ms")}");
        foreach (var line in runs.Lines)
        {
            Console.WriteLine(line);
        }
    }

    Console.WriteLine($"cluster bench done in {total.Elapsed.TotalSeconds:0} s; load {StubBench.Load()}");
    return 0;
}
catch (OperationCanceledException) when (stop.IsCancellationRequested)
{
    return 130;
}
catch (Exception e)
{
    // What the silos said last, for the failure's cause (the bench's own exception alone rarely names it).
    foreach (var (silo, i) in silos.Append(single).Select((s, i) => (s, i)).Where(s => s.s is not null))
    {
        var log = silo!.Stderr;
        Console.Error.WriteLine($"--- silo {i} (last of its error output)\n{log[Math.Max(0, log.Length - 4000)..]}");
    }

    Console.Error.WriteLine($"cluster bench failed: {e}");
    return 1;
}
finally
{
    foreach (var silo in silos.Append(single))
    {
        silo?.Dispose(); // kill -9 of whatever is still running
    }

    pg?.Dispose(); // pg_ctl stop, its folder removed

    try
    {
        Directory.Delete(dir, recursive: true);
    }
    catch (IOException e)
    {
        Console.Error.WriteLine($"cluster bench: {dir} not removed: {e.Message}");
    }
}

// A warm-up plan (3 routes), then `applies` times: N routes applied (new names each time) and removed again, each timed.
(List<double> Apply, List<double> Remove, List<string> Lines) ApplyRuns(string workspace, string plans, int count, Func<int, string> node)
{
    stop.Token.ThrowIfCancellationRequested();
    Directory.CreateDirectory(plans);
    using var key = RttWorkspace.Open(workspace).LoadSigningKey();
    var current = (string?)JsonNode.Parse(Ok(workspace, "history", "--json"))!["applied"];
    var (applied, removed, lines) = (new List<double>(), new List<double>(), new List<string>());
    var steps = new List<(string What, int Routes, string Prefix)> { ("warm", 3, "w") };
    for (var k = 1; k <= applies; k++)
    {
        steps.Add(($"apply{k}", count, $"a{k}-"));
        steps.Add(($"remove{k}", 0, $"a{k}-"));
    }

    foreach (var (what, n, prefix) in steps)
    {
        stop.Token.ThrowIfCancellationRequested();
        var plan = Planner.Manual(key, current, Enumerable.Range(0, n).Select(i => ($"rtt://bench/src/{prefix}{i}", $"rtt://bench/dst/{prefix}{i}", node(i))));
        var path = Path.Combine(plans, $"{what}.json");
        File.WriteAllText(path, plan.ToJsonString());
        var load = StubBench.Load();
        var clock = Stopwatch.StartNew();
        var report = Apply(workspace, path);
        var wall = clock.Elapsed.TotalMilliseconds;
        current = (string)plan["plan_id"]!;
        if (what != "warm")
        {
            var phases = report["phases"]!.AsArray().Select(p => ((string)p!["phase"]!, (double)p["ms"]!)).ToArray();
            (n > 0 ? applied : removed).Add(phases.Sum(p => p.Item2));
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"    {what,-8} {phases.Sum(p => p.Item2),6:0} ms [{wall,5:0} ms] ({string.Join(", ", phases.Select(p => $"{p.Item1} {p.Item2:0}"))}; load {load})"));
        }
    }

    return (applied, removed, lines);
}

// `rtt apply PLAN --json` to an applied outcome; its report.
static JsonNode Apply(string workspace, string plan)
{
    var report = JsonNode.Parse(Ok(workspace, "apply", plan, "--json"))!;
    if ((string?)report["outcome"] != "applied")
    {
        throw new InvalidOperationException($"apply {plan}: {report.ToJsonString()}");
    }

    return report;
}

// The reconciler's applied plan id once it is another than `other` (any, when null); calls that fail or hang while a
// silo is lost are tried again every 100 ms.
static async Task<string> Applied(IReconcilerGrain reconciler, string? other, TimeSpan timeout, CancellationToken cancel)
{
    var clock = Stopwatch.StartNew();
    while (true)
    {
        try
        {
            var h = await reconciler.History().WaitAsync(TimeSpan.FromSeconds(10), cancel);
            if (h.AppliedPlanId is { } id && id != other)
            {
                return id;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancel.IsCancellationRequested)
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"no plan other than {other} applied in {timeout}", e);
            }
        }

        if (clock.Elapsed > timeout)
        {
            throw new TimeoutException($"no plan other than {other} applied in {timeout}");
        }

        await Task.Delay(100, cancel);
    }
}

static async Task<RttClient> Connect(string workspace)
{
    var options = RttClientOptions.FromWorkspace(RttWorkspace.Open(workspace)) ?? throw new InvalidOperationException($"no live silo in {workspace}");
    return await RttClient.ConnectAsync(options);
}

static void StopAll(RttProcess?[] silos)
{
    foreach (var silo in silos)
    {
        silo?.Terminate();
    }

    foreach (var silo in silos)
    {
        silo?.WaitForExit(TimeSpan.FromSeconds(30));
    }
}

static string Summary(List<double> values, string unit = "s")
{
    var s = values.Order().ToList();
    var format = unit == "s" ? "0.00" : "0";
    return s.Count == 0 ? "none" : string.Create(CultureInfo.InvariantCulture,
        $"min {s[0].ToString(format, CultureInfo.InvariantCulture)} {unit}, median {s[s.Count / 2].ToString(format, CultureInfo.InvariantCulture)} {unit}, max {s[^1].ToString(format, CultureInfo.InvariantCulture)} {unit} (n={s.Count})");
}

static RttResult Route(string workspace, string symbol) =>
    RttProcess.Run(workspace, "bench", "route-client", Path.Combine(workspace, ".rtt", "state", "lanes.sock"), symbol, "--count", "50");

// Runs rtt to success; a client that found no gateway in its connect timeout (a loaded machine) tries again, twice.
static string Ok(string workspace, params string[] args)
{
    for (var attempt = 1; ; attempt++)
    {
        var r = RttProcess.Run(workspace, args);
        if (r.ExitCode == 0)
        {
            return r.Stdout;
        }

        if (attempt == 3 || !r.Stderr.Contains("RTT-CLIENT-001", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"rtt {string.Join(' ', args)}: {r}");
        }
    }
}

// The quickstart with one echo route per node (caller and provider pinned there), auto_replan on, three NUMA nodes of
// one host in the topology; scanned, planned (plan 1), and copied for node1 and node2 (same keys, routes, policy).
static string[] Workspaces(string dir, out string p1)
{
    string[] nodes = ["node0", "node1", "node2"];
    (string From, string To)[] routes =
    [
        ("rtt://ui/hook/refresh", "rtt://core/api/metrics"),
        ("rtt://ui/chat/console", "rtt://core/api/echo1"),
        ("rtt://ui/chat/tools", "rtt://core/api/echo2"),
    ];
    Directory.CreateDirectory(dir);
    var first = Path.Combine(dir, "node0");
    Ok(dir, "init", "--example", "quickstart", first);
    var rtt = Path.Combine(first, ".rtt");
    var tools = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "manifests", "ui.chat.tools.json")))!["output"]!;
    foreach (var (name, type) in new[] { ("echo1", (JsonNode)"rtt.types/Text"), ("echo2", tools) })
    {
        File.WriteAllText(Path.Combine(rtt, "manifests", $"core.api.{name}.json"), new JsonObject
        {
            ["address"] = $"rtt://core/api/{name}",
            ["version"] = "1.0.0",
            ["input"] = type.DeepClone(),
            ["output"] = type.DeepClone(),
            ["lanes"] = new JsonArray("shm", "uds", "tcp"),
            ["latency_us"] = 50,
            ["demand"] = new JsonObject { ["cpu_millis"] = 100, ["memory_mb"] = 16 },
        }.ToJsonString());
    }

    var pins = new JsonObject();
    for (var i = 0; i < 3; i++)
    {
        pins[routes[i].From] = nodes[i];
        pins[routes[i].To] = nodes[i];
    }

    var policy = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "policy.json")))!;
    policy["pins"] = pins;
    policy["auto_replan"] = true;
    File.WriteAllText(Path.Combine(rtt, "policy.json"), policy.ToJsonString());
    var topology = JsonNode.Parse(File.ReadAllText(Path.Combine(rtt, "topology.json")))!;
    topology["hosts"] = new JsonArray(new JsonObject
    {
        ["name"] = "localhost",
        ["numa_nodes"] = new JsonArray([.. nodes.Select(n => (JsonNode)new JsonObject { ["id"] = n, ["cpu_millis"] = 1000, ["memory_mb"] = 1024 })]),
    });
    File.WriteAllText(Path.Combine(rtt, "topology.json"), topology.ToJsonString());
    File.WriteAllText(Path.Combine(rtt, "routes.json"), new JsonObject
    {
        ["routes"] = new JsonArray([.. routes.Select(r => (JsonNode)new JsonObject { ["from"] = r.From, ["to"] = r.To })]),
    }.ToJsonString());
    Ok(first, "scan");
    p1 = Path.Combine(dir, "p1.json");
    Ok(first, "plan", "--out", p1);
    var all = new[] { first, Path.Combine(dir, "node1"), Path.Combine(dir, "node2") };
    foreach (var copy in all.Skip(1))
    {
        WorkspaceCopy.CopyTree(first, copy);
    }

    return all;
}

string Arg(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
