using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Cli.Commands;
using Rtt.Client;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Grains.Diagnostics;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;

namespace Rtt.Cli.Bench;

/// <summary>
/// <c>rtt bench control</c>: the control path from a client app (issue 20, the seed's p99 ≤ 300 µs). An embedded silo runs
/// as its own process on a quickstart workspace (scanned, its plan applied); an <see cref="RttClient"/> in this process
/// makes sequential grain calls, each case in alternating slices so all see the same machine: a bare ping grain (the
/// same-run baseline: what Orleans itself costs here), symbol resolution, a node grain read, the reconciler's history,
/// and <see cref="RttClient.GetStatusAsync"/> (membership plus every node record). Percentiles from HdrHistogram, and what
/// the client process allocates per call of each case.
/// </summary>
public static class ControlBench
{
    public const double GoalP99Us = 300;
    public const double GoalRatio = 1.5;

    public static Command Create()
    {
        var seconds = new Option<double>("--seconds") { Description = "Measured time per case (alternating 100 ms slices)", DefaultValueFactory = _ => 3 };
        var json = RttCommands.JsonOption();
        var command = new Command("control", "Grain calls from a client app (symbol resolution, node read, history, status, apply of the applied plan with a MAC and with a signed token) against a bare ping grain, same run") { seconds, json };
        command.SetAction(RttCommands.Guard(async (parse, _) =>
        {
            var s = parse.GetValue(seconds);
            if (s is <= 0 or > 600)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"--seconds {s.ToString(CultureInfo.InvariantCulture)} is out of range", "--seconds", "give a time per case between 0 and 600 seconds");
            }

            var result = await RunAsync(s, parse.GetValue(json) ? null : Console.Error.WriteLine);
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

    public static async Task<JsonObject> RunAsync(double seconds, Action<string>? progress)
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
            var applied = IReconcilerGrain.PlanText(RttWorkspace.ReadObject(new Rtt.Planning.PlanStore(workspace).AppliedPath)); // as `rtt apply` sends it
            using var key = workspace.LoadSigningKey();
            var siloInfo = SiloInfo.ReadLive(workspace.SiloInfoPath);
            async Task<ApplyReport> ApplyAgain()
            {
                // A fresh token per call, as `rtt apply` presents one (a token's nonce is used once), in this call's context only:
                // a MAC token, since this client holds the key the silo signs with (docs/tokens.md).
                Rtt.Grains.ManagementCalls.Present(key, Rtt.Core.Tokens.ManagementTokens.Apply, siloInfo);
                return await reconciler.Apply(applied);
            }

            async Task<ApplyReport> ApplySigned()
            {
                // The same with a sealed, Ed25519-signed token: what a caller with another trusted key presents.
                Rtt.Grains.ManagementCalls.Present(Rtt.Core.Tokens.ManagementTokens.Mint(key, Rtt.Core.Tokens.ManagementTokens.Apply));
                return await reconciler.Apply(applied);
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
                ("apply-signed", async () => await ApplySigned()),
            ];
            var cases = await CallsBench.Alternate(calls, seconds, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));
            for (var i = 0; i < calls.Length; i++)
            {
                cases[i]["allocated_bytes_per_call"] = await Allocated(calls[i].Item2);
            }

            var baseline = (double)cases[0]["p99_us"]!;
            foreach (var c in cases.Skip(1))
            {
                c["p99_vs_ping"] = Math.Round((double)c["p99_us"]! / baseline, 2);
            }

            return new JsonObject
            {
                ["load_average"] = Stubs.StubBench.Load(),
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

    /// <summary>What the client process allocates per call (every thread: the call's own and Orleans' networking), over 1,000 calls.</summary>
    private static async Task<long> Allocated(Func<Task> call)
    {
        const int Calls = 1000;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        for (var i = 0; i < Calls; i++)
        {
            await call();
        }

        return (GC.GetTotalAllocatedBytes(precise: true) - before) / Calls;
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
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"control path, sequential calls from a client app (goal p99 <= {GoalP99Us} µs and <= {GoalRatio}x ping); load average {r["load_average"]}"));
        foreach (var c in r["cases"]!.AsArray())
        {
            var ratio = c!["p99_vs_ping"] is { } v ? string.Create(CultureInfo.InvariantCulture, $"  p99 {(double)v:0.00}x ping") : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {c["case"],-15} calls {(long)c["calls"]!,7}  p50 {(double)c["p50_us"]!,8:0.0} µs  p99 {(double)c["p99_us"]!,8:0.0} µs  p99.9 {(double)c["p999_us"]!,8:0.0} µs  {(long)c["allocated_bytes_per_call"]!,6} B/call{ratio}"));
        }
    }
}
