using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Cli.Commands;
using Rtt.Client;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Grains;
using Rtt.Grains.Diagnostics;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;

namespace Rtt.Cli.Bench;

/// <summary>
/// <c>rtt bench control</c>: the control path from a client app (issue 20, the seed's p99 ≤ 300 µs). An embedded silo runs
/// as its own process on a quickstart workspace (scanned, its plan applied); an <see cref="RttClient"/> in this process
/// makes sequential grain calls, each case in alternating slices so all see the same machine: a bare ping grain (the
/// same-run baseline: what Orleans itself costs here), symbol resolution, a node grain read, the reconciler's history,
/// <see cref="RttClient.GetStatusAsync"/> (membership plus every node record), apply of the applied plan (with a compact MAC token as the
/// call's argument, the same in the request context, a JSON MAC token and a signed one), and apply's excess in parts (the
/// plan's bytes, a token carried, a token checked; IPingGrain.Echo, Ping and Guarded with a token argument). Percentiles from HdrHistogram, and what each process allocates per call of each case.
/// </summary>
public static class ControlBench
{
    public const double GoalP99Us = 300;
    public const double GoalRatio = 1.5;

    public static Command Create()
    {
        var seconds = new Option<double>("--seconds") { Description = "Measured time per case (alternating 100 ms slices, the cases in a shuffled order each round)", DefaultValueFactory = _ => 3 };
        var only = new Option<string[]>("--case") { Description = $"Only these cases, besides ping (repeatable): {string.Join(", ", CaseNames.Skip(1))}", AllowMultipleArgumentsPerToken = false };
        var json = RttCommands.JsonOption();
        var command = new Command("control", "Grain calls from a client app (symbol resolution, node read, history, status, apply of the applied plan with a compact MAC token as its argument, the same in the request context, a JSON one and a signed one, and apply's parts: the plan's bytes, a token carried, a token checked) against a bare ping grain, same run") { seconds, only, json };
        command.SetAction(RttCommands.Guard(async (parse, _) =>
        {
            var s = parse.GetValue(seconds);
            if (s is <= 0 or > 600)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"--seconds {s.ToString(CultureInfo.InvariantCulture)} is out of range", "--seconds", "give a time per case between 0 and 600 seconds");
            }

            var cases = parse.GetValue(only) ?? [];
            if (cases.FirstOrDefault(c => !CaseNames.Contains(c, StringComparer.Ordinal)) is { } unknown)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"--case {unknown} is not a case of this bench", "--case", $"name one of {string.Join(", ", CaseNames)}");
            }

            var result = await RunAsync(s, parse.GetValue(json) ? null : Console.Error.WriteLine, cases);
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(result));
            }
            else
            {
                Print(result);
            }

            return RttCommands.Ok;
        }));
        return command;
    }

    /// <summary>The cases in the order they run; ping, the baseline, first.</summary>
    public static readonly string[] CaseNames = ["ping", "resolve", "node", "history", "status", "apply-unchanged", "apply-context", "apply-mac1", "apply-signed", "ping+plan", "ping+token", "guarded"];

    /// <param name="only">The cases to run besides ping (empty: all).</param>
    public static async Task<JsonObject> RunAsync(double seconds, Action<string>? progress, IReadOnlyCollection<string>? only = null)
    {
        var dir = Directory.CreateTempSubdirectory("rtt-bench-control-").FullName;
        var root = Path.Combine(dir, "ws");
        Process? silo = null;
        try
        {
            progress?.Invoke("workspace from the quickstart, scanned");
            Run("init", "--example", "quickstart", root);
            Run("scan", "--workspace", root);
            progress?.Invoke("starting the embedded silo (its own process)");
            silo = BenchCommand.StartSelf(["up", "--workspace", root, "--silo-port", FreePort(), "--gateway-port", FreePort()], redirect: true);
            silo.OutputDataReceived += (_, _) => { }; // the silo's own output is not the bench's
            silo.ErrorDataReceived += (_, _) => { };
            silo.BeginOutputReadLine();
            silo.BeginErrorReadLine();
            var workspace = RttWorkspace.Open(root);
            await using var client = await Connect(workspace, silo);
            Run("plan", "--workspace", root);
            Run("apply", "--workspace", root);

            var ping = client.Cluster.GetGrain<IPingGrain>(0);
            var node = client.Cluster.GetGrain<INodeGrain>("node0");
            var reconciler = client.Cluster.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
            if ((await client.ResolveSymbolAsync("rtt://core/api/upper")).Length == 0 || await node.Get() is null)
            {
                throw new RttException(ErrorCodes.ConfigInvalid, "the silo knows neither rtt://core/api/upper nor node0", root, "report this: the quickstart should have both");
            }

            // Apply's own grain call with the plan that is applied: parsed, its plan_id recomputed, its signature checked, the
            // WAL's root read, and "unchanged" answered (the front of every apply, without a transaction).
            var applied = IReconcilerGrain.PlanUtf8(RttWorkspace.ReadObject(new Rtt.Planning.PlanStore(workspace).AppliedPath)); // as `rtt apply` sends it
            using var key = workspace.LoadSigningKey();
            var siloInfo = SiloInfo.ReadLive(workspace.SiloInfoPath);
            async Task<ApplyReport> ApplyAgain()
            {
                // A fresh token per call, as `rtt apply` sends one (a token's nonce is used once), as the call's argument: a MAC
                // token, since this client holds the key the silo signs with (docs/tokens.md; checked below). It lives 3 s
                // instead of 2 minutes (the same size and checks): the silo keeps every spent nonce until its token expires, at
                // most 100,000, and the warm-up and the timed calls spend tens of thousands within two minutes.
                return await reconciler.ApplyUtf8(applied, Mac(Rtt.Core.Tokens.ManagementTokens.Apply));
            }

            // The MAC token form the silo reads (its silo.json's mac_format; compact rttm2 from this version on, docs/tokens.md).
            ManagementToken Mac(string operation) => new(Rtt.Core.Tokens.ManagementTokens.MintFor(key, operation, siloInfo, macTtl: TimeSpan.FromSeconds(3)));

            async Task<ApplyReport> ApplyInContext()
            {
                // The same token in the call's request context, as clients before the token argument present it: what the argument saves.
                Rtt.Grains.ManagementCalls.Present(Mac(Rtt.Core.Tokens.ManagementTokens.Apply).Text);
                return await reconciler.ApplyUtf8(applied);
            }

            async Task<ApplyReport> ApplyJsonMac()
            {
                // The same with the JSON MAC token (rttm1) that clients before the compact form present: what the compact form saves.
                return await reconciler.ApplyUtf8(applied, new(Rtt.Core.Tokens.ManagementTokens.MintMac(key, Rtt.Core.Tokens.ManagementTokens.Apply, ttl: TimeSpan.FromSeconds(3))));
            }

            async Task<ApplyReport> ApplySigned()
            {
                // The same with a sealed, Ed25519-signed token: what a caller with another trusted key presents.
                return await reconciler.ApplyUtf8(applied, new(Rtt.Core.Tokens.ManagementTokens.Mint(key, Rtt.Core.Tokens.ManagementTokens.Apply)));
            }

            if (siloInfo?.SigningKeyId != key.KeyId)
            {
                throw new RttException(ErrorCodes.ConfigInvalid, $"the silo's silo.json names signing key {siloInfo?.SigningKeyId ?? "(none)"}, not the workspace's {key.KeyId}", root, "report this");
            }

            var again = await ApplyAgain();
            if (again.Outcome != "unchanged")
            {
                throw new RttException(ErrorCodes.ConfigInvalid, $"applying the applied plan again answered {again.Outcome}, not unchanged: {again.Reason}", root, "report this");
            }

            progress?.Invoke($"calls: {seconds:0.#} s per case, alternating 100 ms slices");
            (string, Func<Task>)[] calls = [
                ("ping", async () => await ping.Ping(1)),
                ("resolve", async () => await client.ResolveSymbolAsync("rtt://core/api/upper")),
                ("node", async () => await node.Get()),
                ("history", async () => await reconciler.History()),
                ("status", async () => await client.GetStatusAsync()),
                ("apply-unchanged", async () => await ApplyAgain()),
                ("apply-context", async () => await ApplyInContext()),
                ("apply-mac1", async () => await ApplyJsonMac()),
                ("apply-signed", async () => await ApplySigned()),

                // Apply's excess over the ping, in parts: the plan's bytes without a token; a MAC token minted and carried but
                // not checked (a read); a token minted, carried, checked and spent, with no work behind it.
                ("ping+plan", async () => await ping.Echo(applied)),
                ("ping+token", async () => await ping.Ping(1, Mac(Rtt.Core.Tokens.ManagementTokens.Admin))),
                ("guarded", async () => await ping.Guarded(1, Mac(Rtt.Core.Tokens.ManagementTokens.Admin))),
            ];
            if (!calls.Select(c => c.Item1).SequenceEqual(CaseNames))
            {
                throw new InvalidOperationException("ControlBench.CaseNames must list the bench's cases in their order"); // what --case checks against
            }

            if (only is { Count: > 0 })
            {
                calls = [.. calls.Where(c => c.Item1 == "ping" || only.Contains(c.Item1))];
            }

            progress?.Invoke("warming up until the JIT has settled in both processes (two rounds of every case compiling at most 25 methods each)");
            var (warmUp, settled) = await WarmUp(calls, ping);
            var cases = await CallsBench.Alternate(calls, seconds, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100), shuffled: true);
            for (var i = 0; i < calls.Length; i++)
            {
                // 1,000 calls more, after the timed ones: what each process allocates and collects for them (the two Runtime
                // calls around them included: a few hundred bytes in all).
                var silo0 = await ping.Runtime();
                var (bytes0, gen00, pause0) = (GC.GetTotalAllocatedBytes(precise: true), GC.CollectionCount(0), GC.GetTotalPauseDuration());
                for (var n = 0; n < AllocationCalls; n++)
                {
                    await calls[i].Item2();
                }

                var (bytes1, gen01, pause1) = (GC.GetTotalAllocatedBytes(precise: true), GC.CollectionCount(0), GC.GetTotalPauseDuration());
                var silo1 = await ping.Runtime();
                cases[i]["allocated_bytes_per_call"] = (bytes1 - bytes0) / AllocationCalls;
                cases[i]["gen0_per_1000_calls"] = (long)(gen01 - gen00);
                cases[i]["gc_pause_us_per_1000_calls"] = (long)(pause1 - pause0).TotalMicroseconds;
                cases[i]["silo_allocated_bytes_per_call"] = (silo1.AllocatedBytes - silo0.AllocatedBytes) / AllocationCalls;
                cases[i]["silo_gen0_per_1000_calls"] = (long)(silo1.Gen0Collections - silo0.Gen0Collections);
                cases[i]["silo_gc_pause_us_per_1000_calls"] = silo1.GcPauseMicroseconds - silo0.GcPauseMicroseconds;
            }

            var baseline = (double)cases[0]["p99_us"]!;
            foreach (var c in cases.Skip(1))
            {
                c["p99_vs_ping"] = Math.Round((double)c["p99_us"]! / baseline, 2);
            }

            return new JsonObject
            {
                ["load_average"] = Stubs.StubBench.Load(),
                ["gc_gen0size"] = Environment.GetEnvironmentVariable(Rtt.Core.Hosting.Gen0Budget.Variable) ?? "runtime's own", // both processes (the silo inherits it)
                ["warm_up_seconds"] = Math.Round(warmUp, 1),
                ["jit_settled"] = settled,
                ["mac_format"] = siloInfo?.MacFormat ?? 0, // the MAC token form apply-unchanged, apply-context, ping+token and guarded presented (silo.json's)
                ["token_argument"] = siloInfo?.TokenArgument ?? false, // the silo takes apply's token as its argument (silo.json): apply-unchanged sent it so
                ["cases"] = new JsonArray([.. cases]),
                ["goal_p99_us"] = GoalP99Us,
                ["goal_p99_vs_ping"] = GoalRatio,
            };
        }
        finally
        {
            if (silo is not null)
            {
                Terminate(silo);
            }

            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private const int AllocationCalls = 1000;
    private static readonly TimeSpan MaxWarmUp = TimeSpan.FromSeconds(60);

    private const int SettledMethods = 25;

    /// <summary>
    /// Runs every case in turn, 100 ms each, until two rounds in a row compile at most <see cref="SettledMethods"/> methods
    /// in the two processes together, at most a minute. A call is measured only after its code (the token's check, the
    /// plan's parse, Orleans' own) reached the JIT's optimized tier: the tiers move on only after 100 ms without new
    /// methods, so the old fixed 0.5 s warm-up measured seconds of calls in unoptimized or instrumented code, a silo's
    /// first minute rather than its steady state. (Not "none": the silo's timers and rare paths go on compiling a few
    /// methods a second for minutes; measured here, 16,000 methods after the first round, 22,000 after 28 s.)
    /// </summary>
    private static async Task<(double Seconds, bool Settled)> WarmUp((string Name, Func<Task> Call)[] calls, IPingGrain ping)
    {
        var clock = Stopwatch.StartNew();
        async Task<(long, long)> Compiled() => (System.Runtime.JitInfo.GetCompiledMethodCount(), (await ping.Runtime()).CompiledMethods);
        var last = await Compiled();
        var quiet = 0;
        while (clock.Elapsed < MaxWarmUp)
        {
            foreach (var (_, call) in calls)
            {
                var slice = Stopwatch.StartNew();
                while (slice.ElapsedMilliseconds < 100)
                {
                    await call();
                }
            }

            var now = await Compiled();
            quiet = now.Item1 - last.Item1 + now.Item2 - last.Item2 <= SettledMethods ? quiet + 1 : 0;
            if (quiet == 2)
            {
                return (clock.Elapsed.TotalSeconds, true);
            }

            last = now;
        }

        return (clock.Elapsed.TotalSeconds, false);
    }

    private static async Task<RttClient> Connect(RttWorkspace workspace, Process silo)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (true)
        {
            if (silo.HasExited)
            {
                throw new RttException(ErrorCodes.NoSiloAnswers, $"the silo exited with code {silo.ExitCode} before it answered", workspace.Root, "run `rtt up` in a workspace by hand to see why");
            }

            if (RttClientOptions.FromWorkspace(workspace) is { } options)
            {
                try
                {
                    return await RttClient.ConnectAsync(options);
                }
                catch (RttException) when (DateTime.UtcNow < deadline)
                {
                }
            }
            else if (DateTime.UtcNow >= deadline)
            {
                throw new RttException(ErrorCodes.NoSiloAnswers, "the silo did not come up in 90 s", workspace.Root, "run `rtt up` in a workspace by hand to see why");
            }

            await Task.Delay(200);
        }
    }

    private static void Run(params string[] args)
    {
        using var process = BenchCommand.StartSelf(args, redirect: true);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new RttException(ErrorCodes.ConfigInvalid, $"`rtt {string.Join(' ', args)}` exited with {process.ExitCode}: {error.Result.Trim()} {output.Result.Trim()}", args[0],
                "run the same command by hand to see why");
        }
    }

    private static void Terminate(Process silo)
    {
        try
        {
            if (!silo.HasExited)
            {
                Rtt.Fabric.Interop.ProcessSignals.Terminate(silo.Id);
                if (!silo.WaitForExit(30_000))
                {
                    silo.Kill(entireProcessTree: true);
                }
            }
        }
        catch (InvalidOperationException)
        {
        }

        silo.Dispose();
    }

    private static string FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
    }

    private static void Print(JsonObject r)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"control path, sequential calls from a client app (goal p99 <= {GoalP99Us} µs and <= {GoalRatio}x ping); load average {r["load_average"]}; DOTNET_GCgen0size {r["gc_gen0size"]}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  warm-up {(double)r["warm_up_seconds"]!:0.0} s, {((bool)r["jit_settled"]! ? "until the JIT settled" : "the JIT still compiling after a minute: the figures include unoptimized code")}"));
        foreach (var c in r["cases"]!.AsArray())
        {
            var ratio = c!["p99_vs_ping"] is { } v ? string.Create(CultureInfo.InvariantCulture, $"  p99 {(double)v:0.00}x ping") : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {c["case"],-15} calls {(long)c["calls"]!,7}  p50 {(double)c["p50_us"]!,8:0.0} µs  p99 {(double)c["p99_us"]!,8:0.0} µs  p99.9 {(double)c["p999_us"]!,8:0.0} µs  client {(long)c["allocated_bytes_per_call"]!,6} B, {(long)c["gen0_per_1000_calls"]!,2} gen0 {(long)c["gc_pause_us_per_1000_calls"]!,5} µs  silo {(long)c["silo_allocated_bytes_per_call"]!,6} B, {(long)c["silo_gen0_per_1000_calls"]!,2} gen0 {(long)c["silo_gc_pause_us_per_1000_calls"]!,5} µs{ratio}"));
        }
    }
}
