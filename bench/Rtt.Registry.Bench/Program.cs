using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HdrHistogram;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Registry;

// Registry benchmark harness: ingest N generated agents (rtt scan), re-scan the unchanged tree, pack,
// and look objects up in the pack; each against a baseline measured in the same run.
//   dotnet run -c Release --project bench/Rtt.Registry.Bench -- [--count 100000] [--lookups 1000000] [--keep DIR]
var count = Arg("--count", 100_000);
var lookups = Arg("--lookups", 1_000_000);
var root = Directory.CreateTempSubdirectory("rtt-bench-registry-").FullName;
var ws = WorkspaceInitializer.Create(root).Workspace;
Console.WriteLine($"workspace {root}, {count} agents, {Environment.ProcessorCount} cores");

// Generate the sources (not timed as RTT work).
var sw = Stopwatch.StartNew();
for (var i = 0; i < count; i++)
{
    var dir = Path.Combine(root, "agents", $"g{i % 1000:D4}");
    if (i < 1000)
    {
        Directory.CreateDirectory(dir);
    }

    File.WriteAllText(Path.Combine(dir, $"a{i:D6}.agent.json"), string.Create(CultureInfo.InvariantCulture,
        $$$"""{"id":"agent-{{{i}}}","version":"1.{{{i % 7}}}.0","description":"generated agent {{{i}}}","instructions":"Handle request kind {{{i}}} carefully.","tools":["read","write"],"exports":[{"symbol":"rtt://bench/agent/a{{{i}}}","input":"rtt.types/Text","output":"rtt.types/Text"}]}"""));
}

Console.WriteLine($"generated in {sw.Elapsed.TotalSeconds:0.0} s");

// Baseline for ingest: read every file and write its bytes to another folder (no parse, sign, hash or fsync).
var copyDir = Directory.CreateDirectory(Path.Combine(root, "baseline-copy")).FullName;
sw.Restart();
var n = 0;
foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "agents"), "*.json", SearchOption.AllDirectories))
{
    File.WriteAllBytes(Path.Combine(copyDir, $"{n++}.json"), File.ReadAllBytes(file));
}

var copySeconds = sw.Elapsed.TotalSeconds;
Directory.Delete(copyDir, recursive: true);

// Generation and the baseline are done: give their memory back (aggressive: decommitted too) and, on Linux, reset the
// peak (VmHWM, through /proc/self/clear_refs) so the peak working set below is the ingest's own, not the generator's.
GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
var heapBefore = GC.GetTotalMemory(true);
var peakReset = ResetPeak();
var workingSetBefore = Process.GetCurrentProcess().WorkingSet64;
sw.Restart();
ScanReport first;
long retained, retainedIndex;
double ingestSeconds;
long peakWorkingSet;
using (var store = RegistryStore.Open(ws))
{
    first = new Scanner(ws, store).Run();
    ingestSeconds = sw.Elapsed.TotalSeconds;
    peakWorkingSet = Process.GetCurrentProcess().PeakWorkingSet64; // since the reset (else over the whole run so far)
    // What a scan leaves on the heap: the index (kept by the store) and the report (its path lists).
    retained = GC.GetTotalMemory(true) - heapBefore;
}

retainedIndex = retained - (GC.GetTotalMemory(true) - heapBefore); // the store (and its index) is gone, the report is not

var gcInfo = GC.GetGCMemoryInfo();
Console.WriteLine($"ingest: {first.Summary}");
Console.WriteLine($"ingest {count} agents: {ingestSeconds:0.00} s ({count / ingestSeconds:0} /s); baseline read+copy {copySeconds:0.00} s; ratio {ingestSeconds / copySeconds:0.0}x");
Console.WriteLine($"  peak working set {peakWorkingSet / (1 << 20)} MiB {(peakReset ? "during the ingest" : "over the run (peak not resettable here)")} (working set before the ingest {workingSetBefore / (1 << 20)} MiB), heap before {heapBefore / (1 << 20)} MiB, GC heap at last GC {gcInfo.HeapSizeBytes / (1 << 20)} MiB, committed {gcInfo.TotalCommittedBytes / (1 << 20)} MiB, {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} gen0/1/2 GCs");

Console.WriteLine($"  heap kept after the scan: {retained / (1 << 20)} MiB ({retained / count} B per agent), of which the index {retainedIndex / (1 << 20)} MiB ({retainedIndex / count} B per entry) and the report {(retained - retainedIndex) / (1 << 20)} MiB");

// Unchanged re-scan against its floor: enumerating the same tree with stat data.
sw.Restart();
var files = 0L;
foreach (var info in new DirectoryInfo(root).EnumerateFiles("*.agent.json", new EnumerationOptions { RecurseSubdirectories = true }))
{
    files += info.Length > 0 ? 1 : 0;
}

var enumerateSeconds = sw.Elapsed.TotalSeconds;
sw.Restart();
ScanReport second;
using (var store = RegistryStore.Open(ws))
{
    second = new Scanner(ws, store).Run();
}

var rescanSeconds = sw.Elapsed.TotalSeconds;
Console.WriteLine($"re-scan unchanged ({second.Unchanged} files): {rescanSeconds:0.00} s; baseline enumerate+stat {enumerateSeconds:0.00} s; ratio {rescanSeconds / enumerateSeconds:0.0}x");

// Pack and look up.
sw.Restart();
var packed = Packfile.Write(new CasStore(ws.Cas), ws.Pack);
Console.WriteLine($"pack {packed} objects: {sw.Elapsed.TotalSeconds:0.00} s, {new FileInfo(Path.Combine(ws.Pack, Packfile.PackName)).Length / (1 << 20)} MiB");

using var pack = PackReader.Open(ws.Pack);
var keys = pack.Hashes().Select(h => Convert.FromHexString(h.AsSpan(ContentHash.Prefix.Length))).ToArray();
var random = new Random(42);
var order = Enumerable.Range(0, lookups).Select(_ => random.Next(keys.Length)).ToArray();
// The keys to look up laid out in lookup order, as a caller has the hash it looks up in hand: reading the next key is
// then sequential, so a sample times the lookup, not a cache miss on a scattered key array (about 300 ns here).
var lookupKeys = new byte[(long)lookups * 32];
for (var i = 0; i < lookups; i++)
{
    keys[order[i]].CopyTo(lookupKeys, i * 32);
}

var packHistogram = new LongHistogram(Stopwatch.Frequency, 3);
var dictHistogram = new LongHistogram(Stopwatch.Frequency, 3);
var dictionary = keys.ToDictionary(k => Convert.ToHexString(k), k => (Offset: 0L, Length: 0));
long sink = 0;
for (var i = 0; i < Math.Min(lookups, 100_000); i++) // warm-up
{
    pack.TryGet(keys[order[i]], out ReadOnlySpan<byte> warm);
    sink += warm.Length;
}

for (var i = 0; i < lookups; i++)
{
    var key = lookupKeys.AsSpan(i * 32, 32);
    var start = Stopwatch.GetTimestamp();
    pack.TryGet(key, out ReadOnlySpan<byte> bytes);
    var elapsed = Stopwatch.GetTimestamp() - start;
    sink += bytes.Length;
    packHistogram.RecordValue(elapsed);
}

// Allocations of the lookups alone (the histogram is not in this loop), and the timer's own cost per sample.
var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
for (var i = 0; i < lookups; i++)
{
    pack.TryGet(lookupKeys.AsSpan(i * 32, 32), out ReadOnlySpan<byte> bytes);
    sink += bytes.Length;
}

var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
// Baseline: a hash-table lookup keyed by the hex string (the obvious in-memory index), hex formatting included.
for (var i = 0; i < lookups; i++)
{
    var key = lookupKeys.AsSpan(i * 32, 32);
    var start = Stopwatch.GetTimestamp();
    dictionary.TryGetValue(Convert.ToHexString(key), out var location);
    var elapsed = Stopwatch.GetTimestamp() - start;
    sink += location.Length;
    dictHistogram.RecordValue(elapsed);
}

var timerHistogram = new LongHistogram(Stopwatch.Frequency, 3);
foreach (var index in order)
{
    var start = Stopwatch.GetTimestamp();
    var elapsed = Stopwatch.GetTimestamp() - start;
    sink += keys[index].Length;
    timerHistogram.RecordValue(elapsed);
}

double Ns(LongHistogram h, double percentile) => h.GetValueAtPercentile(percentile) * 1e9 / Stopwatch.Frequency;
Console.WriteLine($"pack lookup ({lookups} random of {keys.Length}): p50 {Ns(packHistogram, 50):0} ns, p99 {Ns(packHistogram, 99):0} ns, p99.9 {Ns(packHistogram, 99.9):0} ns, max {packHistogram.GetMaxValue() * 1e9 / Stopwatch.Frequency:0} ns; {allocated} bytes allocated ({(double)allocated / lookups:0.000} per lookup)");
Console.WriteLine($"baseline Dictionary<string> lookup: p50 {Ns(dictHistogram, 50):0} ns, p99 {Ns(dictHistogram, 99):0} ns; pack/baseline p50 {Ns(packHistogram, 50) / Ns(dictHistogram, 50):0.00}x, p99 {Ns(packHistogram, 99) / Ns(dictHistogram, 99):0.00}x");
Console.WriteLine($"timer alone (two timestamps, no lookup): p50 {Ns(timerHistogram, 50):0} ns, p99 {Ns(timerHistogram, 99):0} ns; included in every sample above (checksum {sink})");

if (!args.Contains("--keep"))
{
    Directory.Delete(root, recursive: true);
}

static bool ResetPeak()
{
    try
    {
        File.WriteAllText("/proc/self/clear_refs", "5"); // Linux: "5" resets the peak resident set size to the current one
        return true;
    }
    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
    {
        return false;
    }
}

int Arg(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}
