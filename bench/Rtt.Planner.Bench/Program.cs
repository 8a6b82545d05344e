using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using NuGet.Versioning;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Planning;

// Planner benchmark: plan generation including signing for 100, 1,000 and 10,000 routes over 100,000 symbols
// on 4 NUMA nodes (2 hosts), median of several runs, against a baseline in the same run: canonicalising,
// hashing and signing the same inputs (the routes and the contracts they name) without planning.
//   dotnet run -c Release --project bench/Rtt.Planner.Bench -- [--symbols 100000] [--runs 7] [--no-hard]
// RTT_BENCH_ROUTES=100,1000 picks the cases (the workloads, drawn from one seeded generator, then differ from the
// full run's); RTT_BENCH_PHASES=1 prints each run's phases. After the cases: a one-route change to the largest plan
// (that plan as the base, one route's provider changed; --warmup rounds first, timed and shown apart: the planner's
// methods are still partly in their first, unoptimised compilation), and the heap a sealed plan of that size keeps alive. The process
// runs with the rtt host's garbage collector settings (src/RttHostGc.props: no background collections, objects up to
// 2 MiB in generation 0), as `rtt plan` and a silo's auto-replan do. Before each timed plan the heap is collected in full
// (as BenchmarkDotNet does between iterations): the plan made just before it (the change's base) leaves megabytes of kept
// memos and plan that the next collection promotes, a cost of that plan, not of the one timed.
if (args.Contains("--help"))
{
    Console.WriteLine("Rtt.Planner.Bench [--symbols N (100000)] [--runs N (7)] [--warmup N (3)] [--no-hard]; env RTT_BENCH_ROUTES=100,1000,10000, RTT_BENCH_PHASES=1");
    return;
}

var symbols = Arg("--symbols", 100_000);
var runs = Arg("--runs", 7);
var warmup = Arg("--warmup", 3); // rounds of the change (first plan, base, change) run before the timed ones
var rnd = new Random(2026);
var contracts = new List<SymbolContract>(symbols);
for (var i = 0; i < symbols; i++)
{
    contracts.Add(new SymbolContract($"rtt://bench/svc/s{i}", new NuGetVersion(1, i % 5, 0), "service", JsonValue.Create("T"), JsonValue.Create("T"),
        [], ["shm", "tcp", "uds"], rnd.Next(0, 50), rnd.Next(1, 10), rnd.Next(1, 16), false));
}

// The catalogue indexed once (SymbolCatalogue), as a planner that plans many times against one registry holds it; every
// plan below is given it. Its build is timed once here, outside the plans.
var catalogueWatch = Stopwatch.StartNew();
var catalogue = new SymbolCatalogue(contracts);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"catalogue of {catalogue.Count} contracts indexed in {catalogueWatch.Elapsed.TotalMilliseconds:0} ms (once)"));

var topology = new JsonObject
{
    ["hosts"] = new JsonArray(
        new JsonObject { ["name"] = "h0", ["numa_nodes"] = new JsonArray(Node("n0"), Node("n1")) },
        new JsonObject { ["name"] = "h1", ["numa_nodes"] = new JsonArray(Node("n2"), Node("n3")) }),
};
var policy = new JsonObject { ["strict"] = false };
(JsonObject? Routes, int Count) largest = (null, 0);
using var key = SigningKey.Generate();
Console.WriteLine($"{symbols} symbols, 4 NUMA nodes on 2 hosts, {runs} runs per case (median), {Environment.ProcessorCount} cores");

foreach (var count in Environment.GetEnvironmentVariable("RTT_BENCH_ROUTES")?.Split(',').Select(int.Parse) ?? [100, 1_000, 10_000])
{
    var routes = new JsonArray();
    for (var i = 0; i < count; i++)
    {
        routes.Add(new JsonObject
        {
            ["from"] = $"rtt://bench/svc/s{rnd.Next(symbols)}",
            ["to"] = $"rtt://bench/svc/s{rnd.Next(symbols)}",
            ["version"] = "^1.0.0",
            ["qos"] = new JsonObject { ["p99_budget_us"] = 1500, ["rate_hz"] = 1000, ["priority"] = rnd.Next(3) },
        });
    }

    var routesJson = new JsonObject { ["routes"] = routes };
    largest = (routesJson, count);
    var plan = new List<double>();
    var cpu = new List<double>();
    var floor = new List<double>();
    long allocated = 0;
    string? id = null;
    var admittedCount = 0;
    for (var run = 0; run < runs; run++)
    {
        Planner.ForgetCanonicalBytes(); // every run is a process's first plan of these inputs
        Settle();
        var before = GC.GetAllocatedBytesForCurrentThread();
        var cpuBefore = ThreadCpu.Now();
        var sw = Stopwatch.StartNew();
        var inputs = PlanInputs.Build(routesJson, policy, topology, catalogue, null);
        var tBuild = sw.Elapsed.TotalMilliseconds;
        var outcome = Planner.Compute(inputs);
        var tCompute = sw.Elapsed.TotalMilliseconds;
        var signed = Planner.Seal(outcome, key);
        plan.Add(sw.Elapsed.TotalMilliseconds);
        cpu.Add((ThreadCpu.Now() - cpuBefore) / 1e6);
        if (Environment.GetEnvironmentVariable("RTT_BENCH_PHASES") == "1")
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    inputs {tBuild:0.0} ms, compute {tCompute - tBuild:0.0} ms, seal {sw.Elapsed.TotalMilliseconds - tCompute:0.0} ms"));
        }
        allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        admittedCount = outcome.Admitted;
        var thisId = (string)signed["plan_id"]!;
        if (id is not null && id != thisId)
        {
            throw new InvalidOperationException("plan differs between runs");
        }

        id = thisId;

        sw.Restart();
        var named = routes.SelectMany(r => new[] { (string)r!["from"]!, (string)r["to"]! }).ToHashSet(StringComparer.Ordinal);
        var canonical = new JsonObject { ["routes"] = routesJson.DeepClone(), ["topology"] = topology.DeepClone(), ["contracts"] = new JsonArray([.. contracts.Where(c => named.Contains(c.Address)).Select(c => (JsonNode)c.ToJson())]) };
        var hash = ContentHash.OfCanonical(canonical);
        ObjectSigner.Sign(new JsonObject { ["inputs"] = hash }, key);
        floor.Add(sw.Elapsed.TotalMilliseconds);
    }

    plan.Sort();
    floor.Sort();
    cpu.Sort();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{count,6} routes: plan p50 {plan[runs / 2],8:0.0} ms (min {plan[0]:0.0}, max {plan[^1]:0.0}; thread CPU p50 {cpu[runs / 2]:0.0} ms); baseline hash+sign of the inputs p50 {floor[runs / 2],8:0.0} ms; ratio {plan[runs / 2] / floor[runs / 2]:0.00}x; {admittedCount} admitted; {allocated / (1 << 20)} MiB allocated per plan; {id}"));
}

// A one-route change to the largest plan: that plan is the base (churn keeps its placements), one route's provider changes.
// Incremental: the base was planned in this process just before (as a silo or planner service re-planning does), so the
// planner reuses what it wrote for the unchanged routes and contracts. Same-run baseline: the same change planned as a
// process's first plan (nothing kept), which must give the same plan_id.
if (largest.Routes is { } baseRoutes)
{
    var basePlan = Planner.Seal(Planner.Compute(PlanInputs.Build(baseRoutes, policy, topology, catalogue, null)), key);
    var changed = (JsonObject)baseRoutes.DeepClone();
    changed["routes"]![largest.Count / 2]!["to"] = $"rtt://bench/svc/s{new Random(7).Next(symbols)}"; // own generator: the hard case below stays the same
    var times = new List<double>();
    var cpu = new List<double>();
    var cold = new List<double>();
    var warming = new List<double>();
    string? id = null;
    JsonObject? changedPlan = null;
    long changeAllocated = 0;
    for (var run = 0; run < warmup + runs; run++)
    {
        Planner.ForgetCanonicalBytes();
        var sw = Stopwatch.StartNew();
        var coldId = (string)Planner.Seal(Planner.Compute(PlanInputs.Build(changed, policy, topology, catalogue, basePlan)), key)["plan_id"]!;
        var coldTime = sw.Elapsed.TotalMilliseconds;

        Planner.ForgetCanonicalBytes();
        Planner.Seal(Planner.Compute(PlanInputs.Build(baseRoutes, policy, topology, catalogue, null)), key); // the base, planned in this process
        Settle();
        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var cpuBefore = ThreadCpu.Now();
        sw.Restart();
        var changedInputs = PlanInputs.Build(changed, policy, topology, catalogue, basePlan);
        var tBuild = sw.Elapsed.TotalMilliseconds;
        var outcome = Planner.Compute(changedInputs);
        var tCompute = sw.Elapsed.TotalMilliseconds;
        changedPlan = Planner.Seal(outcome, key);
        var time = sw.Elapsed.TotalMilliseconds;
        var cpuTime = (ThreadCpu.Now() - cpuBefore) / 1e6;
        if (Environment.GetEnvironmentVariable("RTT_BENCH_PHASES") == "1")
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    change{(run < warmup ? " (warm-up)" : "")}: inputs {tBuild:0.0} ms, compute {tCompute - tBuild:0.0} ms, seal {time - tCompute:0.0} ms"));
        }

        if (run < warmup)
        {
            warming.Add(time); // the planner's methods still partly in their first, unoptimised compilation
        }
        else
        {
            times.Add(time);
            cpu.Add(cpuTime);
            cold.Add(coldTime);
        }

        changeAllocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        if ((id is not null && id != (string)changedPlan["plan_id"]!) || coldId != (string)changedPlan["plan_id"]!)
        {
            throw new InvalidOperationException("changed plan differs between runs, or from the plan made from nothing kept");
        }

        id = (string)changedPlan["plan_id"]!;
    }

    times.Sort();
    cpu.Sort();
    cold.Sort();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"one-route change to a {largest.Count}-route base: p50 {times[runs / 2]:0.0} ms (min {times[0]:0.0}, max {times[^1]:0.0}; thread CPU p50 {cpu[runs / 2]:0.0} ms; after {warmup} warm-up rounds of {string.Join(" / ", warming.Select(w => w.ToString("0.0", CultureInfo.InvariantCulture)))} ms); baseline: the same change as a first plan p50 {cold[runs / 2]:0.0} ms, same plan_id; {changeAllocated / (1 << 20)} MiB allocated; {changedPlan!["routes_add"]!.AsArray().Count} added, {changedPlan["routes_remove"]!.AsArray().Count} removed, {changedPlan["moves"]!.AsArray().Count} moved; {id}"));

    // What one sealed plan of this size keeps alive (its nodes, and the parsed text behind them), measured as the heap that
    // full collections give back when it is let go (not the heap before and after making it: pools and caches the planning
    // fills or empties on the way would count).
    changedPlan = null;
    basePlan = null;
    var canonicalSize = CanonicalJson.Serialize(Planner.Seal(Planner.Compute(PlanInputs.Build(baseRoutes, policy, topology, catalogue, null)), key)).Length;
    var kept = Planner.Seal(Planner.Compute(PlanInputs.Build(baseRoutes, policy, topology, catalogue, null)), key); // as sealed, none of it read yet
    Planner.ForgetCanonicalBytes(); // the plan alone, not the bytes kept for planning again
    var heapWith = GC.GetTotalMemory(forceFullCollection: true);
    GC.KeepAlive(kept);
    kept = null;
    var heapWithout = GC.GetTotalMemory(forceFullCollection: true);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"memory: a sealed {largest.Count}-route plan holds {(heapWith - heapWithout) / (double)(1 << 20):0.0} MiB of heap ({canonicalSize / (double)(1 << 20):0.0} MiB canonical); peak working set of this process {Process.GetCurrentProcess().PeakWorkingSet64 / (double)(1 << 20):0} MiB"));
}

if (args.Contains("--no-hard"))
{
    return;
}

// A hard case: not everything fits, so CP-SAT decides admission.
{
    var small = contracts.Take(400).Select(c => c with { CpuMillis = 300, MemoryMb = 64 }).ToList();
    var routes = new JsonArray();
    for (var i = 0; i < 100; i++)
    {
        routes.Add(new JsonObject { ["from"] = $"rtt://bench/svc/s{rnd.Next(200)}", ["to"] = $"rtt://bench/svc/s{200 + rnd.Next(200)}", ["qos"] = new JsonObject { ["priority"] = rnd.Next(3) } });
    }

    var tight = new JsonObject
    {
        ["hosts"] = new JsonArray(new JsonObject { ["name"] = "h0", ["numa_nodes"] = new JsonArray(Node("n0", 4000), Node("n1", 4000), Node("n2", 4000), Node("n3", 4000)) }),
    };
    var hardRoutes = new JsonObject { ["routes"] = routes };
    var sw = Stopwatch.StartNew();
    var outcome = Planner.Compute(PlanInputs.Build(hardRoutes, policy, tight, small, null));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"hard case (100 routes, capacity for ~53 symbols): {sw.Elapsed.TotalMilliseconds:0} ms with {outcome.Solver}; {outcome.Admitted} admitted, {outcome.Rejected.Count} rejected"));

    // The same contested set again: the solver's answer comes from the planner's cache (docs/planner.md), same plan.
    sw.Restart();
    var again = Planner.Compute(PlanInputs.Build(hardRoutes, policy, tight, small, null));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"hard case again: {sw.Elapsed.TotalMilliseconds:0} ms; same plan: {Planner.PlanId(again.Body) == Planner.PlanId(outcome.Body)}"));
}

static JsonObject Node(string id, double cpu = 2_000_000) => new() { ["id"] = id, ["cpu_millis"] = cpu, ["memory_mb"] = 4_000_000 };

// A full, blocking collection with finalizers run: what the plans before left behind is collected or promoted now.
static void Settle()
{
    GC.Collect();
    GC.WaitForPendingFinalizers();
    GC.Collect();
}

int Arg(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}

/// <summary>CPU time of the calling thread (Linux CLOCK_THREAD_CPUTIME_ID), so figures taken on a busy machine can be read beside the wall time.</summary>
internal static class ThreadCpu
{
    public static long Now() => clock_gettime(3, out var t) == 0 ? (t.Seconds * 1_000_000_000) + t.Nanoseconds : 0;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int clock_gettime(int clock, out TimeSpec time);

    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
