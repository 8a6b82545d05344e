using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Autotune;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Nodes;
using Rtt.Core.Workspace;
using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>
/// Autotune's deterministic parts (docs/autotune.md): traces (flight NDJSON, synthetic), the search order and noise
/// guard, the signed profile (refused when tampered, ignored on another machine) and the planner reading its lane p99s.
/// </summary>
public sealed class AutotuneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-tune-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Bytes(Trace trace)
    {
        using var buffer = new MemoryStream();
        TraceFile.Write(trace, buffer);
        return buffer.ToArray();
    }

    [Fact]
    public void A_synthetic_trace_is_the_same_bytes_for_the_same_spec_and_round_trips_through_flight_ndjson()
    {
        var spec = SyntheticTraceSpec.Bursty(0.2, 8_000, seed: 42) with { Routes = 3 };
        var a = SyntheticTrace.Generate(spec);
        var b = SyntheticTrace.Generate(spec);
        Assert.Equal(Bytes(a), Bytes(b));
        Assert.Equal(a.Hash, b.Hash);
        Assert.NotEqual(a.Hash, SyntheticTrace.Generate(spec with { Seed = 43 }).Hash);
        Assert.InRange(a.Frames.Count, 800, 2400); // 8 kHz for 0.2 s, bursts of 64: 1,600 on average
        Assert.Equal(3, a.Routes.Count);
        Assert.True(a.Frames.Zip(a.Frames.Skip(1)).All(p => p.First.AtNs <= p.Second.AtNs));

        var read = TraceFile.Read(new MemoryStream(Bytes(a)), "mem");
        Assert.Equal(a.Hash, read.Hash); // offsets (100 ns resolution), routes and sizes survive
        Assert.Equal(a.SizeHistogram(), read.SizeHistogram());

        // Steady at the same mean rate: no back-to-back runs.
        var steady = SyntheticTrace.Generate(SyntheticTraceSpec.Steady(0.2, 8_000, seed: 42));
        Assert.True(steady.Frames.Zip(steady.Frames.Skip(1)).Count(p => p.Second.AtNs - p.First.AtNs == 1_000) < steady.Frames.Count / 10);
    }

    [Fact]
    public void A_flight_dump_is_read_in_start_order_ignoring_window_and_metrics_lines()
    {
        var text = """
            {"type":"window","at":"2026-12-02T09:49:09.1234560Z","seconds":5,"frames":2,"metrics":1,"reason":"tap","recorded":2,"capacity":131072}
            {"type":"metrics","ts":"2026-12-02T09:49:08.0001200Z","route_id":9,"route":"rtt://a/b","requests":2,"answers":2,"errors":0,"in_flight":0,"breaker":"closed"}
            {"type":"frame","ts":"2026-12-02T09:49:08.8841200Z","route_id":9,"route":"rtt://a/b","endpoint":"e","frame_id":8,"request_bytes":5,"answer_bytes":88,"latency_ns":412000,"outcome":"ok"}
            {"type":"frame","ts":"2026-12-02T09:49:08.8841000Z","route_id":9,"route":"rtt://a/b","endpoint":"e","frame_id":7,"request_bytes":70,"answer_bytes":7,"latency_ns":900000,"outcome":"error","code":"RTT-CALL-004"}
            """;
        var trace = TraceFile.Read(new MemoryStream(Encoding.UTF8.GetBytes(text)), "dump");
        Assert.Equal([new TraceFrame(0, 9, "rtt://a/b", 70, 7), new TraceFrame(20_000, 9, "rtt://a/b", 5, 88)], trace.Frames);
    }

    [Theory]
    [InlineData("{\"type\":\"frame\"", "line 2")] // not JSON
    [InlineData("{\"type\":\"span\"}", "line 2")]
    [InlineData("{\"type\":\"frame\",\"ts\":\"yesterday\",\"route_id\":1,\"request_bytes\":1,\"answer_bytes\":1}", "line 2")]
    [InlineData("{\"type\":\"frame\",\"ts\":\"2026-12-02T09:49:08.8841200Z\",\"route_id\":1,\"answer_bytes\":1}", "request_bytes")]
    [InlineData("{\"type\":\"frame\",\"ts\":\"2026-12-02T09:49:08.8841200Z\",\"route_id\":1,\"request_bytes\":70000,\"answer_bytes\":1}", "outside 0..65536")]
    public void A_malformed_trace_line_is_named_by_its_number(string badLine, string expected)
    {
        var good = "{\"type\":\"frame\",\"ts\":\"2026-12-02T09:49:08.8841200Z\",\"route_id\":1,\"request_bytes\":1,\"answer_bytes\":1}";
        var path = Path.Combine(_dir, "t.ndjson");
        File.WriteAllText(path, good + "\n" + badLine + "\n" + good + "\n");
        var ex = Assert.Throws<RttException>(() => TraceFile.Read(path));
        Assert.Equal(ErrorCodes.TuneTraceMalformed, ex.Code);
        Assert.Contains(expected, ex.Message);
        Assert.Equal($"{path}: line 2", ex.Location);
    }

    [Fact]
    public void A_missing_or_empty_trace_is_refused_with_its_code()
    {
        Assert.Equal(ErrorCodes.TuneTraceMissing, Assert.Throws<RttException>(() => TraceFile.Read(Path.Combine(_dir, "none.ndjson"))).Code);
        var path = Path.Combine(_dir, "empty.ndjson");
        File.WriteAllText(path, "{\"type\":\"window\",\"at\":\"2026-12-02T09:49:09.1234560Z\",\"seconds\":5,\"frames\":0}\n");
        Assert.Equal(ErrorCodes.TuneTraceEmpty, Assert.Throws<RttException>(() => TraceFile.Read(path)).Code);
        Assert.Equal(ErrorCodes.TuneInputInvalid, Assert.Throws<RttException>(() => SyntheticTrace.Generate(SyntheticTraceSpec.Steady() with { Sizes = [2] })).Code);
    }

    private static readonly MachineKey TwoCores = new("Test CPU @ 2.0GHz", 2, [new NumaNode(0, [0, 1], 0)]);

    /// <summary>A machine that measures deterministically: each setting has a made-up p99 (lower is better); a worker that never parks costs CPU.</summary>
    private static ReplayFigures Fake(TuneSettings s) => new(1_000, 100_000 - s.RingSize * 3 - (s.Spins == 10_000 ? 5_000 : 0) - (s.Cpus.SequenceEqual([1]) ? 20_000 : 0), 1e6, s.Park ? 500 : 5_000, 100);

    [Fact]
    public void The_search_visits_settings_in_a_fixed_order_and_keeps_only_clear_wins()
    {
        var space = TuneSpace.For(TwoCores);
        Assert.Equal([[0], [1]], space.CpuSets.Select(c => c.ToArray()));
        List<string> Visit()
        {
            var visited = new List<string>();
            var noise = 0;
            TuneSearch.Run(TuneSettings.Defaults, space, s =>
            {
                visited.Add(s.ToString());
                return Fake(s) with { P99Ns = Fake(s).P99Ns + (noise++ % 2) * 100 }; // 100 ns of run-to-run jitter
            }, 2, () => false);
            return visited;
        }

        var first = Visit();
        Assert.Equal(first, Visit());
        Assert.Equal([
            "ring 256 spins 50000 yields 200 cpus any", "ring 256 spins 50000 yields 200 cpus any", // the noise guard: the defaults twice
            "ring 512 spins 50000 yields 200 cpus any", "ring 512 spins 50000 yields 200 cpus any",
        ], first.Take(4));
        Assert.Equal([true, false], space.Parks);
        var result = TuneSearch.Run(TuneSettings.Defaults, space, Fake, 2, () => false);
        Assert.Equal("ring 4096 spins 10000 yields 200 cpus 1", result.Best.ToString());
        Assert.True(result.Best.Park);
        // Each knob in order, each value but the one in force: park true is the default, so only park false is measured,
        // after yields and before cpus; with the same p99 and throughput it loses on CPU per frame and is not kept.
        Assert.Equal([.. Enumerable.Repeat("ring_size", 4), .. Enumerable.Repeat("spins", 3), .. Enumerable.Repeat("yields", 2), "park", "cpus", "cpus"],
            result.Steps.Select(s => s.Knob));
        var park = Assert.Single(result.Steps, s => s.Knob == "park");
        Assert.Equal(("ring 4096 spins 10000 yields 200 no-park cpus any", false), (park.Settings.ToString(), park.Kept));

        // A machine where never parking wins on p99: kept, and the CPU placement is then searched without parking.
        var busy = TuneSearch.Run(TuneSettings.Defaults, space, s => Fake(s) with { P99Ns = Fake(s).P99Ns - (s.Park ? 0 : 10_000) }, 2, () => false);
        Assert.Equal("ring 4096 spins 10000 yields 200 no-park cpus 1", busy.Best.ToString());
        Assert.All(busy.Steps.Where(s => s.Knob == "cpus"), s => Assert.False(s.Settings.Park));

        // A win smaller than the defaults' spread is not kept.
        var jitter = 0;
        var noisy = TuneSearch.Run(TuneSettings.Defaults, space, s => Fake(TuneSettings.Defaults) with { P99Ns = 100_000 - (jitter++ % 2) * 30_000 + (s.Same(TuneSettings.Defaults) ? 0 : -1_000) }, 2, () => false);
        Assert.True(noisy.Best.Same(TuneSettings.Defaults));

        // The budget stops it before the next measurement.
        var steps = 0;
        var bounded = TuneSearch.Run(TuneSettings.Defaults, space, Fake, 2, () => steps++ >= 3);
        Assert.True(bounded.BudgetReached);
        Assert.Equal(3, bounded.Steps.Count);
    }

    private RttWorkspace Workspace() => WorkspaceInitializer.Create(Path.Combine(_dir, "ws")).Workspace;

    private static readonly ReplayFigures Before = new(20_000, 90_000, 200_000, 900, 5000);
    private static readonly ReplayFigures After = new(15_000, 30_000, 250_000, 700, 5000);

    private static TunedProfile WriteProfile(RttWorkspace ws, MachineKey machine, double shmP99 = 8)
    {
        using var key = ws.LoadSigningKey();
        return TunedProfile.Write(ws, key, machine, TuneSettings.Defaults with { RingSize = 1024, Spins = 10_000 },
            SyntheticTrace.Generate(SyntheticTraceSpec.Steady(0.05)), "shm", Before, After,
            new Dictionary<string, double> { ["shm"] = shmP99, ["uds"] = 40, ["tcp"] = 90 });
    }

    [Fact]
    public void A_profile_is_signed_private_and_used_only_on_its_machine_and_only_untampered()
    {
        var ws = Workspace();
        var written = WriteProfile(ws, TwoCores);
        var path = TunedProfile.PathOf(ws);
        Assert.Equal(WorkspaceModes.File, File.GetUnixFileMode(path));
        Assert.Equal(WorkspaceModes.Folder, File.GetUnixFileMode(ws.Tuned));
        WorkspaceModes.Check(ws);

        var loaded = TunedProfile.Load(ws, TwoCores, out var mismatch);
        Assert.Null(mismatch);
        Assert.Equal(written.Hash, loaded!.Hash);
        Assert.Equal(1024, loaded.Settings.RingSize);
        Assert.Equal(8, loaded.LaneP99Us["shm"]);
        Assert.Equal(30_000, (long)loaded.Json["after"]!["p99_ns"]!);
        Assert.True(loaded.Settings.Park);
        Assert.True((bool)loaded.Json["settings"]!["park"]!);
        Assert.True((bool)loaded.Json["defaults"]!["park"]!);

        // Another machine: ignored, with the reason.
        Assert.Null(TunedProfile.Load(ws, TwoCores with { Cores = 4 }, out mismatch));
        Assert.Contains("2 cores, this machine has 4", mismatch);
        Assert.Null(TunedProfile.Load(ws, TwoCores with { CpuModel = "Other" }, out mismatch));
        Assert.Contains("CPU model", mismatch);

        // Tampered: refused, whatever the machine.
        var json = RttWorkspace.ReadObject(path);
        json["settings"]!["spins"] = 1;
        AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(json), WorkspaceModes.File);
        var ex = Assert.Throws<RttException>(() => TunedProfile.Load(ws, TwoCores, out _));
        Assert.Equal(ErrorCodes.TuneProfileInvalid, ex.Code);
        Assert.Contains(ErrorCodes.SignatureInvalid, ex.Message);
        Assert.Equal(ErrorCodes.TuneProfileInvalid, Assert.Throws<RttException>(() => TunedProfile.Load(ws, TwoCores with { Cores = 4 }, out _)).Code);
        File.WriteAllText(path, "{\"format\":\"something else\"}");
        Assert.Equal(ErrorCodes.TuneProfileInvalid, Assert.Throws<RttException>(() => TunedProfile.Load(ws, TwoCores, out _)).Code);
    }

    [Fact]
    public void A_profiles_park_round_trips_and_a_profile_without_it_reads_as_park()
    {
        var ws = Workspace();
        using var key = ws.LoadSigningKey();
        var trace = SyntheticTrace.Generate(SyntheticTraceSpec.Steady(0.05));
        var busy = TunedProfile.Write(ws, key, TwoCores, TuneSettings.Defaults with { Park = false }, trace, "shm", Before, After, new Dictionary<string, double> { ["shm"] = 8 });
        Assert.False(busy.Settings.Park);
        var loaded = TunedProfile.Load(ws, TwoCores, out _)!;
        Assert.False(loaded.Settings.Park);
        Assert.False((bool)loaded.Json["settings"]!["park"]!);
        Assert.True((bool)loaded.Json["defaults"]!["park"]!);

        // A profile written before "park" existed (signed without it) still loads, as a worker that sleeps on its doorbell.
        var path = TunedProfile.PathOf(ws);
        void Rewrite(Action<JsonObject> change)
        {
            var json = RttWorkspace.ReadObject(path);
            json.Remove("sign");
            change(json);
            AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(Rtt.Core.Signing.ObjectSigner.Sign(json, key)), WorkspaceModes.File);
        }

        Rewrite(j =>
        {
            j["settings"]!.AsObject().Remove("park");
            j["defaults"]!.AsObject().Remove("park");
        });
        var old = TunedProfile.Load(ws, TwoCores, out _)!;
        Assert.True(old.Settings.Park);
        Assert.Equal(TuneSettings.Defaults.Spins, old.Settings.Spins);

        // A park that is not a boolean: refused with the profile's code (signed, so only the type is wrong).
        Rewrite(j => j["settings"]!["park"] = "no");
        Assert.Equal(ErrorCodes.TuneProfileInvalid, Assert.Throws<RttException>(() => TunedProfile.Load(ws, TwoCores, out _)).Code);
    }

    [Fact]
    public void The_planner_uses_the_profiles_measured_lane_p99s_and_its_hash_enters_the_inputs()
    {
        var ws = Workspace();
        // A route whose 40 µs budget the seed's default SHM figure (50 µs) cannot meet, but a measured 8 µs can.
        var routes = PlannerTests.Routes(PlannerTests.Route("rtt://core/api/caller", "rtt://core/api/callee", budget: 40));
        var topology = PlannerTests.Topology(("h1", "n0", 1000, 1000));
        topology.Remove("lanes");
        PlanInputs Inputs(TunedProfile? tuned) => PlanInputs.Build(routes, PlannerTests.OpenPolicy(), topology,
            [PlannerTests.Contract("rtt://core/api/caller"), PlannerTests.Contract("rtt://core/api/callee")], null, tuned: tuned);

        var plain = Inputs(null);
        Assert.Equal(50, plain.LaneP99Us["shm"]);
        var rejected = Planner.Compute(plain);
        Assert.Equal("qos", Assert.Single(rejected.Rejected).Constraint);

        var tuned = Inputs(WriteProfile(ws, TwoCores));
        Assert.Equal(8, tuned.LaneP99Us["shm"]);
        Assert.Equal(40, tuned.LaneP99Us["uds"]);
        Assert.NotEqual(plain.Hash, tuned.Hash);
        var admitted = Planner.Compute(tuned);
        Assert.Empty(admitted.Rejected);
        Assert.Equal(tuned.Hash, (string)admitted.Body["inputs"]!);

        // The profile's settings travel in the plan: SHM rings of at least its ring size, its idle settings in "tuning",
        // and on every lane's node target (so verify judges every lane a re-tune changes); none without a profile.
        Assert.Null(rejected.Body["tuning"]);
        var tuning = admitted.Body["tuning"]!;
        Assert.Equal(tuned.TunedProfile, (string?)tuning["profile"]);
        Assert.Equal((10_000, 200), ((int)tuning["spins"]!, (int)tuning["yields"]!));
        var lane = Assert.Single((JsonArray)admitted.Body["lanes"]!)!;
        Assert.Equal(("shm", 1024), ((string)lane["kind"]!, (int)lane["ring_size"]!));
        var signed = admitted.Body.DeepClone().AsObject();
        signed["plan_id"] = "sha256:test";
        var target = JsonNode.Parse(Rtt.Reconciling.PlanTargets.Of(signed).Single(t => t.Key.StartsWith(Rtt.Reconciling.PlanTargets.NodePrefix, StringComparison.Ordinal)).Value.ToJson())!;
        var laneTarget = Assert.Single((JsonArray)target["lanes"]!)!;
        Assert.Equal((1024, 10_000, 200), ((int)laneTarget["ring_size"]!, (int)laneTarget["idle"]!["spins"]!, (int)laneTarget["idle"]!["yields"]!));
        // A profile that parks (the default) adds no "park", so plans of profiles written before it keep their bytes.
        Assert.Null(tuning["park"]);
        Assert.Null(laneTarget["idle"]!["park"]);

        // A profile that never parks: "park": false in the tuning and in every lane's idle settings.
        JsonNode NodeTarget(JsonObject body)
        {
            var copy = body.DeepClone().AsObject();
            copy["plan_id"] = "sha256:test";
            return JsonNode.Parse(Rtt.Reconciling.PlanTargets.Of(copy).Single(t => t.Key.StartsWith(Rtt.Reconciling.PlanTargets.NodePrefix, StringComparison.Ordinal)).Value.ToJson())!;
        }

        using (var key = ws.LoadSigningKey())
        {
            var busyProfile = TunedProfile.Write(ws, key, TwoCores, TuneSettings.Defaults with { RingSize = 1024, Park = false },
                SyntheticTrace.Generate(SyntheticTraceSpec.Steady(0.05)), "shm", Before, After, new Dictionary<string, double> { ["shm"] = 8, ["uds"] = 40, ["tcp"] = 90 });
            var busy = Planner.Compute(Inputs(busyProfile)).Body;
            Assert.False((bool)busy["tuning"]!["park"]!);
            Assert.False((bool)Assert.Single((JsonArray)NodeTarget(busy)["lanes"]!)!["idle"]!["park"]!);
        }

        // A re-tune with other figures is another profile: another inputs hash.
        var retuned = Inputs(WriteProfile(ws, TwoCores, shmP99: 9));
        Assert.NotEqual(tuned.Hash, retuned.Hash);

        // Figures set by hand in topology.json win over the profile.
        topology["lanes"] = new JsonObject { ["shm"] = new JsonObject { ["p99_us"] = 70 } };
        Assert.Equal(70, Inputs(WriteProfile(ws, TwoCores)).LaneP99Us["shm"]);
    }
}
