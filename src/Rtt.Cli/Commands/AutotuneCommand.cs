using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Cli.Autotune;
using Rtt.Core.Autotune;
using Trace = Rtt.Core.Autotune.Trace;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Fabric.Autotune;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Telemetry;
using Spectre.Console;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt autotune</c>: traces, replay through real lanes, the search, the signed profile (docs/autotune.md).</summary>
public static class AutotuneCommand
{
    public static Command Create()
    {
        var trace = new Option<string?>("--trace") { Description = "A trace: flight NDJSON (rtt autotune record, rtt tap --flight, rtt autotune gen); default a synthetic bursty trace" };
        var lane = new Option<string>("--lane") { Description = "The lane to tune on: shm, uds or tcp", DefaultValueFactory = _ => "shm" };
        var budget = new Option<string>("--budget") { Description = "Time the whole run may take (10s to 1h)", DefaultValueFactory = _ => "60s" };
        var repeats = new Option<int>("--repeats") { Description = "Runs per setting (the median counts; the defaults' spread is the noise guard), 2 to 9", DefaultValueFactory = _ => 3 };
        var live = new Option<bool>("--live") { Description = "Then apply the new profile to the running silo's lanes through a signed plan (as `rtt autotune live`): SLO-gated, rolled back on a breach" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Search and print, but do not write .rtt/tuned/profile.json" };
        var json = RttCommands.JsonOption();
        var command = new Command("autotune", "Replay a trace through real lanes, search ring size, idle thresholds and CPU placement, and write a signed profile for this machine")
        {
            trace, lane, budget, repeats, live, dryRun, json,
        };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            if (parse.GetValue(live))
            {
                if (parse.GetValue(dryRun))
                {
                    throw new RttException(ErrorCodes.TuneLiveRefused, "--live applies the profile the search writes, and --dry-run writes none", "--live",
                        "drop one of the two");
                }

                LiveChecks(ws, requireProfile: false); // before minutes of search: no silo or no SLO rules is known now
            }

            var limit = Budget(parse.GetValue(budget)!);
            var kind = Lane(parse.GetValue(lane)!);
            var runs = parse.GetValue(repeats);
            if (runs is < 2 or > 9)
            {
                throw new RttException(ErrorCodes.TuneInputInvalid, $"--repeats {runs} is not from 2 to 9", "--repeats", "for example --repeats 3");
            }

            var t = parse.GetValue(trace) is { } file ? TraceFile.Read(Path.GetFullPath(file)) : SyntheticTrace.Generate(SyntheticTraceSpec.Bursty(0.5, 10_000));
            var result = Tune(ws, t, kind, limit, runs, !parse.GetValue(dryRun), parse.GetValue(json), cancellationToken);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(PrettyJson.ToText(result));
            }
            else
            {
                PrintTable(result);
            }

            return parse.GetValue(live) ? await LiveAsync(ws, parse.GetValue(json), cancellationToken) : RttCommands.Ok;
        }));
        command.Subcommands.Add(Live());
        command.Subcommands.Add(Record());
        command.Subcommands.Add(Gen());
        command.Subcommands.Add(Replay());
        command.Subcommands.Add(Host());
        return command;
    }

    private static Command Live()
    {
        var json = RttCommands.JsonOption();
        json.Description = "Write the apply's outcome as JSON";
        var command = new Command("live", "Apply this machine's tuned profile to the running silo's lanes through a signed plan: the apply's SLO gates judge every changed lane under its live traffic, and a breach rolls it back") { json };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) => await LiveAsync(RttCommands.FindWorkspace(parse), parse.GetValue(json), cancellationToken)));
        return command;
    }

    /// <summary>
    /// Tuning on production lanes (docs/autotune.md "Live"): plans with the profile (SHM rings at least its ring size, its idle
    /// spins and yields in the plan's <c>tuning</c>), then applies that plan through the reconciler. Verify judges every lane
    /// the new settings changed against policy.json <c>slo</c> under the traffic it gets meanwhile; a breach fails verify and
    /// the reconciler restores the plan before. Exit codes as <c>rtt apply</c>.
    /// </summary>
    private static async Task<int> LiveAsync(RttWorkspace ws, bool json, CancellationToken cancellationToken)
    {
        var profile = LiveChecks(ws, requireProfile: true)!;
        var applied = new Rtt.Planning.PlanStore(ws).Applied();
        if (applied is null)
        {
            throw new RttException(ErrorCodes.TuneLiveRefused, "no plan is applied: there are no production lanes to tune", ws.Root, "apply a plan first (`rtt plan`, `rtt apply`)");
        }

        var (plan, _, path, _) = PlanCommand.Compute(ws, null, null);
        var tuning = plan["tuning"] as JsonObject;
        if (!json)
        {
            Console.WriteLine($"tuned plan {plan["plan_id"]} ({path}): profile {profile.Hash}, idle spins {tuning?["spins"]}, yields {tuning?["yields"]}{(tuning?["park"] is null ? "" : ", park false")}, SHM rings of at least {profile.Settings.RingSize} frames");
        }

        // The same lanes, placement and tuning as the applied plan (a new plan id only because its base is that plan): nothing to swap.
        if (new[] { "tuning", "lanes", "placement", "endpoints" }.All(k => JsonNode.DeepEquals(plan[k], applied[k])))
        {
            if (json)
            {
                Console.Out.Write(PrettyJson.ToText(new JsonObject { ["outcome"] = "unchanged", ["plan_id"] = (string?)plan["plan_id"], ["profile"] = profile.Hash }));
            }
            else
            {
                Console.WriteLine("unchanged: the applied plan already carries this profile's settings");
            }

            return RttCommands.Ok;
        }

        await using var client = await ApplyCommands.Connect(ws, cancellationToken);
        var report = await ApplyCommands.Run(json, $"applying the tuned plan {plan["plan_id"]} (SLO-gated)", () =>
        {
            var reconciler = client.Cluster.GetGrain<Rtt.Grains.Reconciling.IReconcilerGrain>(Rtt.Grains.Reconciling.IReconcilerGrain.ClusterKey);
            var text = Rtt.Grains.Reconciling.IReconcilerGrain.PlanUtf8(plan);
            return Rtt.Grains.ManagementCalls.Call(ws, Rtt.Core.Tokens.ManagementTokens.Apply, token => reconciler.ApplyUtf8(text, token), () => reconciler.ApplyUtf8(text));
        });
        return ApplyCommands.Print(report, json, rollback: false);
    }

    /// <summary>What --live needs before anything runs: SLO rules to judge the swap, and (once searched) this machine's profile.</summary>
    private static TunedProfile? LiveChecks(RttWorkspace ws, bool requireProfile)
    {
        if (Silo.Telemetry.SloRule.Read(ws.PolicyPath).Count == 0)
        {
            throw new RttException(ErrorCodes.TuneLiveRefused, "policy.json has no \"slo\" rules: nothing would judge the new settings under live traffic, so nothing could roll them back",
                ws.PolicyPath, "add slo rules for the routes that matter (docs/observability.md, \"SLO gates in verify\"), then run again");
        }

        if (RttClientOptionsOf(ws) is null)
        {
            throw new RttException(ErrorCodes.NoSiloAnswers, "no silo is running on this workspace", ws.Root, "start one with `rtt up` (in another terminal), then run this again");
        }

        if (!requireProfile)
        {
            return null;
        }

        var profile = TunedProfile.Load(ws, MachineKey.Local(), out var mismatch);
        if (mismatch is not null)
        {
            throw new RttException(ErrorCodes.TuneLiveRefused, $"the tuned profile was not made on this machine: {mismatch}", TunedProfile.PathOf(ws),
                "run `rtt autotune` on this machine first");
        }

        return profile ?? throw new RttException(ErrorCodes.TuneLiveRefused, "there is no tuned profile", TunedProfile.PathOf(ws),
            "run `rtt autotune` first, or `rtt autotune --live` (it searches, writes the profile, then applies it)");
    }

    private static Rtt.Client.RttClientOptions? RttClientOptionsOf(RttWorkspace ws) => Rtt.Client.RttClientOptions.FromWorkspace(ws);

    internal static TimeSpan Budget(string text)
    {
        TimeSpan value;
        try
        {
            value = TelemetryCommands.Duration(text, "--budget");
        }
        catch (RttException)
        {
            value = TimeSpan.Zero;
        }

        if (value < TimeSpan.FromSeconds(10) || value > TimeSpan.FromHours(1))
        {
            throw new RttException(ErrorCodes.TuneInputInvalid, $"--budget {text} is not a duration from 10s to 1h", "--budget", "for example --budget 60s or --budget 5m");
        }

        return value;
    }

    internal static LaneKind Lane(string text) => text switch
    {
        "shm" => LaneKind.Shm,
        "uds" => LaneKind.Uds,
        "tcp" => LaneKind.Tcp,
        _ => throw new RttException(ErrorCodes.TuneInputInvalid, $"--lane {text} is not shm, uds or tcp", "--lane", "for example --lane shm"),
    };

    private static string LaneName(LaneKind kind) => kind switch { LaneKind.Shm => "shm", LaneKind.Uds => "uds", _ => "tcp" };

    /// <summary>The whole run: noise, search, before/after measured alternately, lane p99s, the signed profile.</summary>
    private static JsonObject Tune(RttWorkspace ws, Trace trace, LaneKind kind, TimeSpan budget, int repeats, bool write, bool json, CancellationToken cancellationToken)
    {
        var machine = MachineKey.Local();
        var space = TuneSpace.For(machine);
        using var bench = new ReplayBench(trace, kind);
        var clock = Stopwatch.StartNew();
        // What must still fit after the search: before/after (2 x repeats) and the two other lane kinds.
        bool OutOfTime()
        {
            var per = bench.Measurements == 0 ? 2.0 : bench.SecondsSpent / bench.Measurements;
            return cancellationToken.IsCancellationRequested || clock.Elapsed.TotalSeconds + per * (repeats + 2 * repeats + 2) > budget.TotalSeconds;
        }

        SearchResult result = null!;
        List<ReplayFigures> before = [], after = [];
        var lanes = new SortedDictionary<string, double>(StringComparer.Ordinal);
        void Work(Action<string, double> report)
        {
            report($"measuring the defaults {Math.Max(2, repeats)} times (the noise guard)", 0);
            result = TuneSearch.Run(TuneSettings.Defaults, space, s => bench.Measure(s), repeats, OutOfTime,
                step => report(string.Create(CultureInfo.InvariantCulture,
                    $"{step.Index}: {step.Knob} -> {step.Settings}: p99 {step.Figures.P99Ns / 1000.0:0.0} µs, {step.Figures.FramesPerSecond:0} frames/s{(step.Kept ? " (kept)" : "")}"),
                    clock.Elapsed.TotalSeconds / budget.TotalSeconds));
            report("before/after, measured in turns", clock.Elapsed.TotalSeconds / budget.TotalSeconds);
            for (var i = 0; i < repeats; i++)
            {
                before.Add(bench.Measure(TuneSettings.Defaults));
                after.Add(result.Best.Same(TuneSettings.Defaults) ? before[^1] : bench.Measure(result.Best));
            }

            lanes[LaneName(kind)] = P99Us(ReplayFigures.Median(after));
            foreach (var other in new[] { LaneKind.Shm, LaneKind.Uds, LaneKind.Tcp }.Where(k => k != kind))
            {
                report($"lane p99 of {LaneName(other)} with the tuned settings", clock.Elapsed.TotalSeconds / budget.TotalSeconds);
                lanes[LaneName(other)] = P99Us(bench.Measure(result.Best, other));
            }

            report("done", 1);
        }

        if (!json && AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected)
        {
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn()).Start(ctx =>
            {
                var task = ctx.AddTask("autotune", maxValue: 1);
                Work((what, fraction) =>
                {
                    task.Description = Markup.Escape(what.Length > 70 ? what[..70] : what);
                    task.Value = Math.Min(1, fraction);
                });
            });
        }
        else
        {
            Work((what, _) => Console.Error.WriteLine($"autotune: {what}"));
        }

        var beforeMedian = ReplayFigures.Median(before);
        var afterMedian = ReplayFigures.Median(after);
        string? profileHash = null;
        if (write)
        {
            using var key = ws.LoadSigningKey();
            profileHash = TunedProfile.Write(ws, key, machine, result.Best, trace, LaneName(kind), beforeMedian, afterMedian, lanes).Hash;
        }

        return new JsonObject
        {
            ["machine"] = machine.ToJson(),
            ["trace"] = new JsonObject { ["hash"] = trace.Hash, ["source"] = trace.Source, ["frames"] = trace.Frames.Count, ["rate_hz"] = Math.Round(trace.RateHz) },
            ["lane"] = LaneName(kind),
            ["defaults"] = TunedProfile.SettingsJson(TuneSettings.Defaults),
            ["settings"] = TunedProfile.SettingsJson(result.Best),
            ["before"] = TunedProfile.FiguresJson(beforeMedian),
            ["after"] = TunedProfile.FiguresJson(afterMedian),
            ["noise"] = new JsonObject { ["p99_ns"] = result.Noise.P99Ns, ["frames_per_s"] = Math.Round(result.Noise.FramesPerSecond), ["cpu_ns_per_frame"] = Math.Round(result.Noise.CpuNsPerFrame) },
            ["steps"] = new JsonArray([.. result.Steps.Select(s => (JsonNode)new JsonObject
            {
                ["knob"] = s.Knob, ["settings"] = TunedProfile.SettingsJson(s.Settings), ["figures"] = TunedProfile.FiguresJson(s.Figures), ["kept"] = s.Kept,
            })]),
            ["budget_reached"] = result.BudgetReached,
            ["lanes"] = new JsonObject([.. lanes.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)new JsonObject { ["p99_us"] = l.Value }))]),
            ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
            ["profile"] = write ? Path.GetRelativePath(ws.Root, TunedProfile.PathOf(ws)) : null,
            ["profile_hash"] = profileHash,
        };
    }

    private static double P99Us(ReplayFigures f) => Math.Ceiling(f.P99Ns / 100.0) / 10; // µs, rounded up to 0.1

    private static void PrintTable(JsonObject r)
    {
        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 160);
        }

        var table = new Table().AddColumns("", "defaults", "tuned");
        string S(JsonNode s) => $"ring {s["ring_size"]}, spins {s["spins"]}, yields {s["yields"]}, park {s["park"]?.ToJsonString() ?? "true"}, cpus {(s["cpus"]!.AsArray().Count == 0 ? "any" : string.Join(',', s["cpus"]!.AsArray()))}";
        table.AddRow("settings", S(r["defaults"]!), S(r["settings"]!));
        foreach (var (label, field, scale, unit) in new[] { ("p50", "p50_ns", 1000.0, "µs"), ("p99", "p99_ns", 1000.0, "µs"), ("throughput", "frames_per_s", 1.0, "frames/s"), ("host CPU", "cpu_ns_per_frame", 1.0, "ns/frame") })
        {
            table.AddRow(label, Fmt(Num(r["before"]![field]!) / scale, unit), Fmt(Num(r["after"]![field]!) / scale, unit));
        }

        AnsiConsole.Write(table);
        Console.WriteLine($"trace {r["trace"]!["source"]} ({r["trace"]!["frames"]} frames, {r["trace"]!["hash"]}), lane {r["lane"]}, {r["steps"]!.AsArray().Count} settings tried in {Num(r["seconds"]!).ToString(CultureInfo.InvariantCulture)} s{((bool)r["budget_reached"]! ? " (budget reached)" : "")}");
        Console.WriteLine($"noise guard (spread of the defaults): p99 {(Num(r["noise"]!["p99_ns"]!) / 1000.0).ToString("0.0", CultureInfo.InvariantCulture)} µs");
        Console.WriteLine("lane p99 with the tuned settings: " + string.Join(", ", r["lanes"]!.AsObject().Select(l => $"{l.Key} {Num(l.Value!["p99_us"]!).ToString(CultureInfo.InvariantCulture)} µs")));
        Console.WriteLine(r["profile"] is { } p ? $"profile written to {p} ({r["profile_hash"]})" : "profile not written (--dry-run)");
    }

    /// <summary>A JSON number as a double, whichever CLR type the node holds.</summary>
    private static double Num(JsonNode n) => double.Parse(n.ToJsonString(), CultureInfo.InvariantCulture);

    private static string Fmt(double v, string unit) => v.ToString(unit == "µs" ? "0.0" : "#,0", CultureInfo.InvariantCulture) + " " + unit;

    private static Command Record()
    {
        var seconds = new Option<int>("--seconds") { Description = "How long to record the live traffic (1 to 3600)", DefaultValueFactory = _ => 5 };
        var output = new Option<string?>("--out") { Description = "Where to write the trace (default .rtt/tuned/trace.ndjson)" };
        var command = new Command("record", "Record a trace from the running silo's live traffic (its flight recorder, as rtt tap --flight)") { seconds, output };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var n = parse.GetValue(seconds);
            if (n is < 1 or > 3600)
            {
                throw new RttException(ErrorCodes.TuneInputInvalid, $"--seconds {n} is not from 1 to 3600", "--seconds", "for example --seconds 5");
            }

            var socket = Client.Lanes.LaneClient.ControlSocketOf(ws);
            _ = TelemetryProtocol.Metrics(socket); // fails now, not after the wait, when no silo runs
            var path = Path.GetFullPath(parse.GetValue(output) ?? Path.Combine(ws.Tuned, "trace.ndjson"));
            Console.Error.WriteLine($"autotune: recording {n} s of live traffic");
            await Task.Delay(TimeSpan.FromSeconds(n), cancellationToken);
            using (var buffer = new MemoryStream())
            {
                TelemetryProtocol.Flight(socket, TimeSpan.FromSeconds(n), buffer);
                if (WorkspaceModes.InsideWorkspaceDir(path))
                {
                    WorkspaceModes.CreatePrivateDirectory(Path.GetDirectoryName(path)!);
                }

                AtomicFile.WriteAllBytes(path, buffer.ToArray(), WorkspaceModes.File);
            }

            var trace = TraceFile.Read(path);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{trace.Frames.Count} frames over {trace.DurationNs / 1e9:0.00} s on {trace.Routes.Count} route(s), {trace.Hash}; written to {path}"));
            return RttCommands.Ok;
        }));
        return command;
    }

    private static Command Gen()
    {
        var kind = new Option<string>("--kind") { Description = "steady (Poisson arrivals) or bursty (bursts of --burst requests)", DefaultValueFactory = _ => "bursty" };
        var seconds = new Option<double>("--seconds") { DefaultValueFactory = _ => 1 };
        var rate = new Option<double>("--rate") { Description = "Mean requests per second", DefaultValueFactory = _ => 5_000 };
        var burst = new Option<int?>("--burst") { Description = "Requests per burst (default 1 steady, 64 bursty)" };
        var sizes = new Option<string>("--sizes") { Description = "Payload sizes drawn uniformly, comma separated (4 to 65536)", DefaultValueFactory = _ => "64,512,4096" };
        var routes = new Option<int>("--routes") { DefaultValueFactory = _ => 1 };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out") { Description = "Where to write the trace (flight NDJSON)", Required = true };
        var command = new Command("gen", "Write a deterministic synthetic trace (same options, same bytes)") { kind, seconds, rate, burst, sizes, routes, seed, output };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var k = parse.GetValue(kind)!;
            if (k is not ("steady" or "bursty"))
            {
                throw new RttException(ErrorCodes.TuneInputInvalid, $"--kind {k} is not steady or bursty", "--kind", "for example --kind bursty");
            }

            var sizeList = new List<int>();
            foreach (var part in parse.GetValue(sizes)!.Split(','))
            {
                sizeList.Add(int.TryParse(part.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
                    : throw new RttException(ErrorCodes.TuneInputInvalid, $"--sizes has \"{part}\", not a whole number", "--sizes", "for example --sizes 64,4096"));
            }

            var spec = new SyntheticTraceSpec(parse.GetValue(seconds), parse.GetValue(rate), parse.GetValue(burst) ?? (k == "steady" ? 1 : 64), sizeList, parse.GetValue(routes), parse.GetValue(seed));
            var trace = SyntheticTrace.Generate(spec);
            using (var buffer = new MemoryStream())
            {
                TraceFile.Write(trace, buffer);
                AtomicFile.WriteAllBytes(Path.GetFullPath(parse.GetValue(output)!), buffer.ToArray(), WorkspaceModes.File);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{trace.Frames.Count} frames over {trace.DurationNs / 1e9:0.00} s, {trace.Hash}"));
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    /// <summary><c>rtt autotune replay</c>: the defaults against the profile's settings on each trace, in turns, in one run (the benchmark).</summary>
    private static Command Replay()
    {
        var traces = new Option<string[]>("--trace") { Description = "Trace files (repeatable)", Required = true, AllowMultipleArgumentsPerToken = false };
        var lane = new Option<string>("--lane") { DefaultValueFactory = _ => "shm" };
        var rounds = new Option<int>("--rounds") { Description = "Rounds of (defaults, profile), 1 to 20; medians are printed", DefaultValueFactory = _ => 3 };
        var json = RttCommands.JsonOption();
        var command = new Command("replay", "Replay traces with the defaults and with the tuned profile's settings, in turns, and print both") { traces, lane, rounds, json };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var kind = Lane(parse.GetValue(lane)!);
            var n = parse.GetValue(rounds);
            if (n is < 1 or > 20)
            {
                throw new RttException(ErrorCodes.TuneInputInvalid, $"--rounds {n} is not from 1 to 20", "--rounds", "for example --rounds 3");
            }

            var loaded = parse.GetValue(traces)!.Select(f => TraceFile.Read(Path.GetFullPath(f))).ToArray();
            var profile = TunedProfile.Load(ws, MachineKey.Local(), out var mismatch);
            if (mismatch is not null)
            {
                Console.Error.WriteLine($"warning: {mismatch}");
            }

            var tuned = profile?.Settings ?? TuneSettings.Defaults;
            var results = new JsonArray();
            foreach (var t in loaded)
            {
                using var bench = new ReplayBench(t, kind);
                List<ReplayFigures> d = [], p = [];
                for (var i = 0; i < n; i++)
                {
                    d.Add(bench.Measure(TuneSettings.Defaults));
                    p.Add(bench.Measure(tuned));
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"replay: {Path.GetFileName(t.Source)} round {i + 1}: defaults p99 {d[^1].P99Ns / 1000.0:0.0} µs, profile p99 {p[^1].P99Ns / 1000.0:0.0} µs"));
                }

                results.Add(new JsonObject
                {
                    ["trace"] = t.Source, ["hash"] = t.Hash, ["frames"] = t.Frames.Count, ["rate_hz"] = Math.Round(t.RateHz),
                    ["defaults"] = TunedProfile.FiguresJson(ReplayFigures.Median(d)), ["profile"] = TunedProfile.FiguresJson(ReplayFigures.Median(p)),
                });
            }

            var output = new JsonObject
            {
                ["lane"] = LaneName(kind), ["rounds"] = n, ["profile"] = profile?.Hash, ["settings"] = TunedProfile.SettingsJson(tuned),
                ["load"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : null, ["traces"] = results,
            };
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(PrettyJson.ToText(output));
                return Task.FromResult(RttCommands.Ok);
            }

            var table = new Table().AddColumns("trace", "settings", "p50 µs", "p99 µs", "frames/s", "host CPU ns/frame");
            foreach (var r in results)
            {
                foreach (var which in new[] { "defaults", "profile" })
                {
                    var f = r![which]!;
                    table.AddRow(Markup.Escape(Path.GetFileName((string)r["trace"]!)), which, (Num(f["p50_ns"]!) / 1000.0).ToString("0.0", CultureInfo.InvariantCulture),
                        (Num(f["p99_ns"]!) / 1000.0).ToString("0.0", CultureInfo.InvariantCulture), Num(f["frames_per_s"]!).ToString("#,0", CultureInfo.InvariantCulture),
                        Num(f["cpu_ns_per_frame"]!).ToString("#,0", CultureInfo.InvariantCulture));
                }
            }

            AnsiConsole.Write(table);
            Console.WriteLine($"profile {profile?.Hash ?? "none (defaults on both sides)"}: {tuned}; lane {LaneName(kind)}; load {output["load"]}");
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    /// <summary>The lane host process of a replay: serves until its stdin closes.</summary>
    private static Command Host()
    {
        var socket = new Option<string>("--socket") { Required = true };
        var routes = new Option<string>("--routes") { Required = true };
        var maxAnswer = new Option<int>("--max-answer") { DefaultValueFactory = _ => 4096 };
        var ring = new Option<int>("--ring") { DefaultValueFactory = _ => TuneSettings.Defaults.RingSize };
        var spins = new Option<int>("--spins") { DefaultValueFactory = _ => TuneSettings.Defaults.Spins };
        var yields = new Option<int>("--yields") { DefaultValueFactory = _ => TuneSettings.Defaults.Yields };
        var park = new Option<bool>("--park") { DefaultValueFactory = _ => TuneSettings.Defaults.Park };
        var cpus = new Option<string>("--cpus") { DefaultValueFactory = _ => "any" };
        var tcp = new Option<bool>("--tcp");
        var command = new Command("host", "The lane host process of rtt autotune") { socket, routes, maxAnswer, ring, spins, yields, park, cpus, tcp };
        command.Hidden = true;
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var cpuText = parse.GetValue(cpus)!;
            var settings = new TuneSettings(parse.GetValue(ring), parse.GetValue(spins), parse.GetValue(yields),
                cpuText == "any" ? [] : [.. cpuText.Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))], parse.GetValue(park));
            using var host = new ReplayHost(settings, parse.GetValue(socket)!, parse.GetValue(routes)!.Split('\n'), parse.GetValue(maxAnswer), parse.GetValue(tcp));
            Console.Out.WriteLine($"ready {host.TcpEndPoint?.Port ?? 0}");
            Console.Out.Flush();
            Console.In.ReadToEnd(); // until the parent closes our stdin (or dies)
            Console.Error.WriteLine(host.Describe());
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }
}
