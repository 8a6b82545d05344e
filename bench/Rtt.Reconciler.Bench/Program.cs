using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Rtt.Core.Calls;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Reconciling.Wal;
using Rtt.Silo.Hosting;
using Rtt.Silo.Lanes;

// Reconciler benchmark on one embedded silo (SQLite grain state and WAL, real lane host):
//   1. apply of a plan with N routes (default 1,000) over none: prepare N route grains + the node grain (each
//      persisting its vote), commit (persist + one lane-table swap), verify (a probe frame through every lane);
//   2. single-route changes (add one route, then remove it again, alternately), median and p90 of several;
// against baselines in the same run: the same lane-table swap and probe done directly on the lane host, and the
// WAL's own durable appends for one transaction (4 entries + a signed head) without any participant.
//   dotnet run -c Release --project bench/Rtt.Reconciler.Bench -- [--routes 1000] [--changes 21] [--warmup 0|N|auto] [--pace MS] [--sealed-tokens]
// The silo's process as `rtt up` runs it: on a host that hides its CPU caches, started again once with a 16 MiB
// generation-0 budget (docs/reconciler.md, "Memory"); DOTNET_GCgen0size set beforehand is kept (0: the runtime's own).
Rtt.Core.Hosting.Gen0Budget.Apply();
var routes = Arg("--routes", 1000);
var changes = Arg("--changes", 21);
// Untimed single-route changes before each timed series (even, so each series starts from the same state): 0 measures
// the code as a silo first runs it (not yet optimised by the JIT); auto runs them until the JIT is quiet (WarmUp: hundreds
// to thousands of changes; 60 left it compiling).
var warmupArg = ArgText("--warmup", "0")!;
var warmup = warmupArg == "auto" ? -1 : int.Parse(warmupArg, CultureInfo.InvariantCulture) / 2 * 2;
// A pause before each timed single-route change and each WAL-only baseline round (untimed, 0 by default): changes at an
// operator's pace rather than a burst (the disk's fsync after a quiet spell, and the JIT's background work between
// changes instead of beside them; docs/reconciler.md, "Measured").
var pace = TimeSpan.FromMilliseconds(Arg("--pace", 0));
var root = Directory.CreateTempSubdirectory("rtt-reconciler-bench-").FullName;
try
{
    var workspace = WorkspaceInitializer.Create(root).Workspace;
    var overrides = new Dictionary<string, string?>
    {
        ["Silo:SiloPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
        ["Silo:GatewayPort"] = FreePort().ToString(CultureInfo.InvariantCulture),
    };
    await using var silo = RttSiloHost.Build(workspace, overrides, logging => logging.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole());
    await silo.StartAsync();
    var reconciler = silo.Grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
    var lanes = silo.Host.Services.GetRequiredService<LaneHostService>();
    using var key = workspace.LoadSigningKey();
    TokenKind.Silo = args.Contains("--sealed-tokens") ? null : SiloInfo.ReadLive(workspace.SiloInfoPath);
    Console.WriteLine($"reconciler bench: {routes} routes on node0, {changes} single-route changes after {(warmup < 0 ? "enough" : warmup)} untimed{(pace > TimeSpan.Zero ? $", each after a {pace.TotalMilliseconds:0} ms pause" : "")}, {Environment.ProcessorCount} cores, {(TokenKind.Silo?.SigningKeyId == key.KeyId ? "MAC" : "sealed")} tokens, DOTNET_GCgen0size={Environment.GetEnvironmentVariable("DOTNET_GCgen0size") ?? "(not set)"}, workspace {root}");

    // Warm-up (JIT, grain activations of the reconciler, WAL, node): a one-route plan applied and removed.
    var warm = Plan(key, null, 1, "warm");
    Token(key);
    await Apply(reconciler, warm);
    var empty = Plan(key, Id(warm), 0, "warm");
    Token(key);
    await Apply(reconciler, empty);

    // Single-route changes on a small applied state (10 routes), then the big apply, then single-route changes on it.
    var small = Plan(key, Id(empty), 10, "s");
    Token(key);
    await Apply(reconciler, small);
    var smallWarm = await WarmUp(reconciler, key, small, 10, "s", warmup);
    var smallPhases = new Dictionary<string, List<double>>(StringComparer.Ordinal);
    var (smallTimes, smallLast, afterSmall, smallCost) = await Changes(reconciler, key, smallWarm, 10, "s", changes, phases: smallPhases, pace: pace);
    var none = Plan(key, Id(afterSmall), 0, "s");
    Token(key);
    await Apply(reconciler, none);

    var big = Plan(key, Id(none), routes, "r");
    Token(key);
    var clock = Stopwatch.StartNew();
    var report = await Apply(reconciler, big);
    var bigMs = clock.Elapsed.TotalMilliseconds;
    Console.WriteLine($"apply {routes} routes: {bigMs:0.0} ms ({string.Join(", ", report.Phases.Select(p => $"{p.Phase} {p.Milliseconds:0.0} ms"))})");
    var bigWarm = await WarmUp(reconciler, key, big, routes, "r", warmup);
    var bigPhases = new Dictionary<string, List<double>>(StringComparer.Ordinal);
    var (single, lastReport, afterSingle, bigCost) = await Changes(reconciler, key, bigWarm, routes, "r", changes, phases: bigPhases, pace: pace);

    // The same changes sent whole and as changes, alternating by pairs in one series (same state, same moment): from the
    // silo's own grain factory (no network), then from a client app connected to the silo's gateway (TCP on this machine).
    var sample = Plan(key, Id(afterSingle), routes + 1, "r");
    var deltaBytes = System.Text.Encoding.UTF8.GetByteCount(IReconcilerGrain.PlanText(Rtt.Reconciling.PlanDelta.Diff(afterSingle, sample)));
    var wholeBytes = System.Text.Encoding.UTF8.GetByteCount(IReconcilerGrain.PlanText(sample));
    var diffClock = Stopwatch.StartNew();
    Rtt.Reconciling.PlanDelta.Diff(afterSingle, sample);
    Console.WriteLine($"a single-route change on {routes} applied routes sent whole is {wholeBytes:N0} bytes, as a change {deltaBytes:N0} bytes (the client's diff {diffClock.Elapsed.TotalMilliseconds:0.00} ms, not timed)");
    var current = afterSingle;
    await using var client = await Rtt.Client.RttClient.ConnectAsync(Rtt.Client.RttClientOptions.FromWorkspace(workspace)!);
    foreach (var (via, target) in new[] { ("in the silo's process", reconciler), ("through the gateway", client.Cluster.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey)) })
    {
        var asChanges = new List<double>();
        (var asWhole, _, current, _) = await Changes(target, key, current, routes, "r", changes * 2, asChanges);
        Console.WriteLine($"single-route change on {routes} applied routes, {via}: sent whole p50 {asWhole[asWhole.Count / 2]:0.00} ms (n={asWhole.Count}), "
            + $"sent as a change p50 {asChanges[asChanges.Count / 2]:0.00} ms (n={asChanges.Count}), alternated by pairs");
    }
    Breakdown(workspace, key, big, routes);
    Console.WriteLine($"per single-route change, every thread of the process during the apply call: on 10 applied routes {smallCost}; on {routes} {bigCost}");
    Print("single-route change on 10 applied routes", smallTimes, smallLast, smallPhases);
    Print($"single-route change on {routes} applied routes", single, lastReport, bigPhases);

    // Baseline 1: the same table swap and probes straight on the lane host (no 2PC, no grains, no WAL).
    var targets = Enumerable.Range(0, routes).Select(i => new Rtt.Grains.Nodes.LaneTarget(
        RouteIds.Of($"rtt://bench/src/b{i}", $"rtt://bench/dst/b{i}"), $"rtt://bench/dst/b{i}", $"rtt://bench/src/b{i}", $"rtt://bench/dst/b{i}", "shm")).ToList();
    clock.Restart();
    await lanes.ServeAsync(targets);
    var failures = await lanes.ProbeAsync(targets, TimeSpan.FromSeconds(10));
    var directMs = clock.Elapsed.TotalMilliseconds;
    Console.WriteLine($"baseline: swap + probe {routes} lanes directly on the lane host: {directMs:0.0} ms ({failures.Count} failed)");

    // Baseline 2: one transaction's durable WAL work alone (4 appends, one signed head) on a separate log file, at the
    // changes' pace (a disk's fsync after a quiet spell can cost several times one right after another).
    var walTimes = new List<double>();
    using (var log = WalLog.Open(SqliteWalStore.Open(Path.Combine(root, "baseline-wal.db"))))
    {
        for (var i = 0; i < changes; i++)
        {
            if (pace > TimeSpan.Zero)
            {
                await Task.Delay(pace);
            }

            clock.Restart();
            foreach (var kind in new[] { "prepare", "commit", "applied", "verified" })
            {
                await log.AppendAsync(new JsonObject { ["kind"] = kind, ["tx"] = i });
            }

            log.SignHead(key, DateTimeOffset.UtcNow);
            walTimes.Add(clock.Elapsed.TotalMilliseconds);
        }
    }

    walTimes.Sort();
    Console.WriteLine($"baseline: one transaction's WAL appends + signed head: p50 {walTimes[walTimes.Count / 2]:0.00} ms");
    Console.WriteLine($"ratios: apply {routes} routes / direct swap+probe = {bigMs / directMs:0.0}x; single-route change (10 routes) / WAL-only = {smallTimes[smallTimes.Count / 2] / walTimes[walTimes.Count / 2]:0.0}x");
    Console.WriteLine($"goals: {routes}-route apply <= 1000 ms: {(bigMs <= 1000 ? "met" : "missed")}; single-route change <= 10 ms: {(smallTimes[smallTimes.Count / 2] <= 10 ? "met" : "missed")} on 10 routes, {(single[single.Count / 2] <= 10 ? "met" : "missed")} on {routes}");
    await silo.StopAsync();
}
finally
{
    Directory.Delete(root, recursive: true);
}

// Untimed changes before a timed series: `warmup` of them, or (-1, --warmup auto) batches of at least 20 changes and 1 s
// until the JIT compiled no method during a batch (at most 100 batches), so the timed changes run the code as a
// long-running silo runs it. (A batch shorter than the runtime's tiering delay, 100 ms of no new compilation before
// call counting starts, can be quiet while the optimised tiers are still to come: 20 changes on 10 routes were.)
static async Task<JsonObject> WarmUp(IReconcilerGrain reconciler, SigningKey key, JsonObject current, int count, string prefix, int warmup)
{
    if (warmup >= 0)
    {
        return (await Changes(reconciler, key, current, count, prefix, warmup)).Current;
    }

    var start = System.Runtime.JitInfo.GetCompiledMethodCount();
    var startTime = System.Runtime.JitInfo.GetCompilationTime();
    var total = 0;
    for (var batch = 1; batch <= 100; batch++)
    {
        var before = System.Runtime.JitInfo.GetCompiledMethodCount();
        var batchClock = Stopwatch.StartNew();
        var made = 0;
        while (made < 20 || batchClock.Elapsed < TimeSpan.FromSeconds(1))
        {
            current = (await Changes(reconciler, key, current, count, prefix, 2)).Current;
            made += 2;
        }

        var compiled = System.Runtime.JitInfo.GetCompiledMethodCount() - before;
        total += made;
        Console.Error.WriteLine($"warm-up {count}: batch {batch}: {made} changes, {compiled} methods compiled");
        if (compiled == 0 || batch == 100)
        {
            Console.WriteLine($"warm-up on {count} routes: {total} untimed changes until a batch (20 changes and 1 s or more) compiled no method ({(compiled == 0 ? "reached" : "not reached")}; {System.Runtime.JitInfo.GetCompiledMethodCount() - start} methods compiled, {(System.Runtime.JitInfo.GetCompilationTime() - startTime).TotalMilliseconds:0} ms of JIT time)");
            break;
        }
    }

    return current;
}

// Alternately adds route number `count` and removes it again; returns the sorted times and the last report.
// Cost: the process's processor time, allocation and collections per change (every thread; the silo runs in it), during the apply calls.
// With `sentAsChanges`, every other pair of changes is sent as a change (IReconcilerGrain.ApplyChange: the delta from the
// applied plan, as `rtt apply` sends it when applied.json is the base) and those are timed apart (`AsChanges`).
static async Task<(List<double> Times, ApplyReport Last, JsonObject Current, Cost Cost)> Changes(IReconcilerGrain reconciler, SigningKey key, JsonObject current, int count, string prefix, int changes,
    List<double>? sentAsChanges = null, Dictionary<string, List<double>>? phases = null, TimeSpan pace = default)
{
    var times = new List<double>();
    ApplyReport? last = null;
    var clock = new Stopwatch();
    var cpu = TimeSpan.Zero;
    long allocated = 0;
    var (gen0, gen1, gen2) = (0, 0, 0);
    for (var i = 0; i < changes; i++)
    {
        if (pace > TimeSpan.Zero)
        {
            await Task.Delay(pace);
        }

        var next = Plan(key, Id(current), i % 2 == 0 ? count + 1 : count, prefix);
        Token(key); // minted before the clock: the client's cost, not the apply's (the silo's check is timed)
        var asChange = sentAsChanges is not null && i / 2 % 2 == 1;
        var text = asChange ? null : IReconcilerGrain.PlanText(next); // the client's too
        var change = asChange ? new PlanChange(Id(current), Id(next), IReconcilerGrain.PlanText(Rtt.Reconciling.PlanDelta.Diff(current, next))) : null;
        var cpuBefore = Environment.CpuUsage.TotalTime;
        var allocatedBefore = GC.GetTotalAllocatedBytes();
        var (gen0Before, gen1Before, gen2Before) = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
        clock.Restart();
        last = change is null ? await ApplyText(reconciler, text!) : Applied(await reconciler.ApplyChange(change));
        (asChange ? sentAsChanges! : times).Add(clock.Elapsed.TotalMilliseconds);
        foreach (var phase in phases is null || asChange ? [] : last.Phases)
        {
            if (!phases!.TryGetValue(phase.Phase, out var list))
            {
                phases[phase.Phase] = list = [];
            }

            list.Add(phase.Milliseconds);
        }
        cpu += Environment.CpuUsage.TotalTime - cpuBefore;
        allocated += GC.GetTotalAllocatedBytes() - allocatedBefore;
        (gen0, gen1, gen2) = (gen0 + GC.CollectionCount(0) - gen0Before, gen1 + GC.CollectionCount(1) - gen1Before, gen2 + GC.CollectionCount(2) - gen2Before);
        current = next;
    }

    times.Sort();
    sentAsChanges?.Sort();
    var n = Math.Max(changes, 1);
    return (times, last!, current, new Cost(cpu.TotalMilliseconds / n, allocated / 1024.0 / n, gen0 * 100.0 / n, gen1 * 100.0 / n, gen2 * 100.0 / n));
}

// Where a single-route change's time goes outside the phases: the whole-document steps the silo runs per apply,
// timed one by one on a plan of `count` + 1 routes (median of 7 runs each).
static void Breakdown(RttWorkspace workspace, SigningKey key, JsonObject current, int count)
{
    var next = Plan(key, Id(current), count + 1, "r");
    var json = IReconcilerGrain.PlanText(next);
    var text = System.Text.Encoding.UTF8.GetBytes(json);
    var parsed = (JsonObject)System.Text.Json.Nodes.JsonNode.Parse(text)!;
    var trust = workspace.LoadTrustStore();
    var targets = Rtt.Reconciling.PlanTargets.Of(current);
    var store = new PlanStore(workspace);
    var steps = new (string Name, Action Run)[]
    {
        ("canonical text (client)", () => IReconcilerGrain.PlanText(next)),
        ("parse", () => System.Text.Json.Nodes.JsonNode.Parse(text)),
        ("plan_id and payload from the text", () => Planner.Content(parsed, text)),
        ("the same from the parsed tree", () => Planner.Content(parsed)),
        ("load trust store", () => workspace.LoadTrustStore()),
        ("verify signature", () => trust.Verify(next, Id(next))),
        ("targets of plan", () => Rtt.Reconciling.PlanTargets.Of(next)),
        ("changes", () => Rtt.Reconciling.PlanTargets.Changes(targets, Rtt.Reconciling.PlanTargets.Of(next))),
        ("deep clone", () => next.DeepClone()),
        ("prepare entry leaf", () => WalLog.LeafOf(new JsonObject { ["kind"] = "prepare", ["plan"] = next.DeepClone() })),
        ("save plan file", () => store.Save(next, durable: false)),
        ("write applied.json", () => AtomicFile.WriteAllBytes(store.AppliedPath + ".bench", Rtt.Core.Json.PrettyJson.ToUtf8(next), durable: false)),
    };
    var parts = new List<string>();
    foreach (var (name, run) in steps)
    {
        var t = new List<double>();
        for (var i = 0; i < 7; i++)
        {
            var c = Stopwatch.StartNew();
            run();
            t.Add(c.Elapsed.TotalMilliseconds);
        }

        t.Sort();
        parts.Add($"{name} {t[3]:0.00} ms");
    }

    Console.WriteLine($"whole-document steps on a {count + 1}-route plan ({json.Length / 1024} KiB): {string.Join(", ", parts)}");
}

static void Print(string what, List<double> times, ApplyReport last, Dictionary<string, List<double>> phases)
{
    Console.WriteLine($"{what}: p50 {times[times.Count / 2]:0.00} ms, p90 {times[(int)(times.Count * 0.9)]:0.00} ms, min {times[0]:0.00} ms (n={times.Count})");
    Console.WriteLine($"  last one: {string.Join(", ", last.Phases.Select(p => $"{p.Phase} {p.Milliseconds:0.0} ms"))}");
    Console.WriteLine($"  phases, p50 of each: {string.Join(", ", phases.Select(p => $"{p.Key} {p.Value.Order().ElementAt(p.Value.Count / 2):0.00} ms"))}");
}

static async Task<ApplyReport> Apply(IReconcilerGrain reconciler, JsonObject plan) => await ApplyText(reconciler, IReconcilerGrain.PlanText(plan));

// The plan as `rtt apply` sends it (its canonical text, made by the client before the clock in Changes).
static async Task<ApplyReport> ApplyText(IReconcilerGrain reconciler, string plan) => Applied(await reconciler.Apply(plan));

static ApplyReport Applied(ApplyReport report)
{
    if (report.Outcome != "applied")
    {
        throw new InvalidOperationException($"{report.Outcome}: {report.Reason}");
    }

    return report;
}

// Every apply needs a one-use capability token for rtt://rtt/manage/apply (docs/security.md): the one `rtt apply` presents
// (ManagementCalls.Present), a MAC token since the silo signs with the workspace's key (its silo.json says so); a sealed
// one (two Ed25519 verifications in the silo, ~0.25 ms here) with --sealed-tokens.
static void Token(SigningKey key) => Rtt.Grains.ManagementCalls.Present(key, Rtt.Core.Tokens.ManagementTokens.Apply, TokenKind.Silo);

static string Id(JsonObject plan) => (string)plan["plan_id"]!;

// A plan with `count` routes rtt://bench/src/<p>i -> rtt://bench/dst/<p>i, all placed on node0, over shm.
static JsonObject Plan(SigningKey key, string? baseId, int count, string prefix) =>
    Planner.Manual(key, baseId, Enumerable.Range(0, count).Select(i => ($"rtt://bench/src/{prefix}{i}", $"rtt://bench/dst/{prefix}{i}", "node0")));

static int FreePort()
{
    using var l = new TcpListener(IPAddress.Loopback, 0);
    l.Start();
    return ((IPEndPoint)l.LocalEndpoint).Port;
}

int Arg(string name, int fallback) => ArgText(name, null) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? ArgText(string name, string? fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

// What one change costs the process beyond its time (collections counted per 100 changes; a gen1 or gen2 one counts in gen0 too).
readonly record struct Cost(double CpuMs, double AllocatedKiB, double Gen0Per100, double Gen1Per100, double Gen2Per100)
{
    public override string ToString() => FormattableString.Invariant(
        $"processor {CpuMs:0.00} ms, allocated {AllocatedKiB:N0} KiB, collections per 100 changes gen0 {Gen0Per100:0.#} / gen1 {Gen1Per100:0.#} / gen2 {Gen2Per100:0.#}");
}

/// <summary>The silo's silo.json as read once after it started (null: sealed tokens).</summary>
internal static class TokenKind
{
    public static SiloInfo? Silo;
}
