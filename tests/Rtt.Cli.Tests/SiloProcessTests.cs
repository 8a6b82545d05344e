using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>The real silo: the built <c>rtt up</c> in a temp workspace, driven and killed as an operator would.</summary>
[Collection(ProcessCollection.Name)]
public sealed class SiloProcessTests
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private static (int Silo, int Gateway) Ports() => (RttProcess.FreePort(), RttProcess.FreePort());

    private static RttProcess StartSilo(string workspace, int siloPort, int gatewayPort, params string[] extra) =>
        RttProcess.StartSilo(workspace, siloPort, gatewayPort, null, StartTimeout, extra);

    private static JsonObject Status(string workspace)
    {
        var result = RttProcess.Run(workspace, "status", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonNode.Parse(result.Stdout)!.AsObject();
    }

    [Fact]
    public void Node_state_survives_kill_9_in_sqlite()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var (siloPort, gatewayPort) = Ports();

        string firstRegistered;
        using (var silo = StartSilo(dir.Path, siloPort, gatewayPort))
        {
            var status = Status(dir.Path);
            var member = status["members"]!.AsArray().Single()!;
            Assert.Equal("node0", (string?)member["name"]);
            Assert.Equal("Active", (string?)member["status"]);
            Assert.Equal("all", (string?)member["numa"]); // silo metadata: not bound to a NUMA node
            Assert.Equal("node0", (string?)member["node"]);
            var node = status["nodes"]!.AsArray().Single()!;
            Assert.Equal("node0", (string?)node["node_id"]);
            Assert.Equal(1, (int)node["registrations"]!);
            var placement = status["placements"]!.AsArray().Single()!;
            Assert.True((bool)placement["on_own_silo"]!, placement.ToJsonString());
            Assert.Equal((string?)member["address"], (string?)placement["silo"]);
            Assert.True((int)node["logical_cores"]! >= 1);
            Assert.NotEmpty(node["numa_nodes"]!.AsArray());
            firstRegistered = (string)node["first_registered"]!;

            // The silo host started again in its own process (same id) with a 16 MiB generation-0 budget where the runtime
            // cannot see the processor's caches (Gen0Budget), and as it was started where it can.
            if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable(Rtt.Core.Hosting.Gen0Budget.Variable) is null)
            {
                var environ = File.ReadAllText($"/proc/{silo.Id}/environ").Split('\0');
                Assert.Equal(!Directory.Exists(Rtt.Core.Hosting.Gen0Budget.CacheFolder), environ.Contains($"{Rtt.Core.Hosting.Gen0Budget.Variable}={Rtt.Core.Hosting.Gen0Budget.Value}"));
            }

            // The node registry fills the planner's topology.
            var topology = RttProcess.Run(dir.Path, "topology", "--from-cluster");
            Assert.True(topology.ExitCode == 0, topology.ToString());
            var written = JsonNode.Parse(File.ReadAllText(dir[".rtt/topology.json"]))!;
            var numa = written["hosts"]![0]!["numa_nodes"]!.AsArray().Single()!;
            Assert.Equal("node0", (string?)numa["id"]);
            Assert.Equal((int)node["logical_cores"]! * 1000, (int)numa["cpu_millis"]!);

            silo.Kill(); // SIGKILL: no shutdown code runs
        }

        // The row is in the SQLite file, readable by any SQLite client.
        using (var connection = new SqliteConnection($"Data Source={dir[".rtt/state/rtt.db"]};Mode=ReadOnly;Pooling=False"))
        {
            connection.Open();
            using var query = connection.CreateCommand();
            query.CommandText = "SELECT payload_text FROM rtt_grain_state_text WHERE state_name = 'node' AND grain_key_ext = 'node0'";
            var payload = query.ExecuteScalar() as string;
            Assert.NotNull(payload);
            Assert.Contains("node0", payload);
        }

        using (var silo = StartSilo(dir.Path, siloPort, gatewayPort))
        {
            var node = Status(dir.Path)["nodes"]!.AsArray().Single()!;
            Assert.Equal(2, (int)node["registrations"]!);
            Assert.Equal(firstRegistered, (string?)node["first_registered"]);

            var table = RttProcess.Run(dir.Path, "status");
            Assert.True(table.ExitCode == 0, table.ToString());
            Assert.Contains("node0", table.Stdout);
        }
    }

    [Fact]
    public async Task A_client_app_resolves_symbols_through_the_running_silo()
    {
        using var dir = new TempDir();
        var ws = dir["qs"];
        Assert.Equal(0, RttProcess.Run(dir.Path, "init", "--example", "quickstart", ws).ExitCode);
        Assert.Equal(0, RttProcess.Run(ws, "scan").ExitCode);
        var (siloPort, gatewayPort) = Ports();
        using var silo = StartSilo(ws, siloPort, gatewayPort);

        await using var client = await Rtt.Client.RttClient.ConnectAsync(new Rtt.Client.RttClientOptions { GatewayPort = gatewayPort });
        var metrics = Assert.Single(await client.ResolveSymbolAsync("rtt://core/api/metrics"));
        Assert.Equal(("1.2.0", "service"), (metrics.Version, metrics.Kind));
        var echo = Assert.Single(await client.ResolveSymbolAsync("rtt://mcp/everything/echo"));
        Assert.Contains("\"message\"", echo.InputJson);
        var registry = client.Cluster.GetGrain<Rtt.Grains.Registry.IRegistryGrain>(Rtt.Grains.Registry.IRegistryGrain.WorkspaceKey);
        var obj = await registry.GetByHash(metrics.Object);
        Assert.NotNull(obj);
        Assert.Contains("rtt://core/api/metrics", obj.Json);
    }

    [Fact]
    public void The_rtt_host_runs_the_garbage_collector_it_is_measured_with()
    {
        // The silo's latency figures (docs/reconciler.md, "Memory") are measured with these settings; the reconciler
        // bench copies them. A build that loses one of them changes what a silo does between applies.
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(RttProcess.CliDirectory, "rtt.runtimeconfig.json")))!["runtimeOptions"]!["configProperties"]!;
        Assert.False((bool)config["System.GC.Server"]!);
        Assert.False((bool)config["System.GC.Concurrent"]!);
        Assert.Equal(2 * 1024 * 1024, (int)config["System.GC.LOHThreshold"]!);
    }

    [Fact]
    public void Sigterm_shuts_down_cleanly()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var (siloPort, gatewayPort) = Ports();
        using var silo = StartSilo(dir.Path, siloPort, gatewayPort);
        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), "silo did not stop on SIGTERM");
        Assert.True(silo.ExitCode == 0, $"exit {silo.ExitCode}\n{silo.Stdout}\n{silo.Stderr}");
        Assert.Contains("stopped", silo.Stdout);
        Assert.False(File.Exists(dir[".rtt/state/silo.json"]), "silo.json left behind");
    }

    [Fact]
    public void Up_once_runs_the_quickstart_and_state_persists_between_runs()
    {
        using var dir = new TempDir();
        var (siloPort, gatewayPort) = Ports();
        string[] ports = ["--silo-port", siloPort.ToString(CultureInfo.InvariantCulture), "--gateway-port", gatewayPort.ToString(CultureInfo.InvariantCulture)];
        var first = RttProcess.Run(dir.Path, ["up", "--example", "quickstart", "--into", dir["qs"], "--once", "--json", .. ports]);
        Assert.True(first.ExitCode == 0, first.ToString());
        var summary = JsonNode.Parse(first.Stdout)!; // stdout is pure JSON: logs and the init note go to stderr
        Assert.Contains("Created workspace", first.Stderr);
        Assert.Equal(1, (int)summary["node"]!["registrations"]!);
        Assert.Contains("4 route(s), 6 manifest(s)", (string?)summary["steps"]![0]!["detail"]);

        // The run ends by calling each real endpoint through RTT: the process service, the plugin and the C# MCP server
        // (its upper tool, over stdio) answer for real.
        var calls = summary["steps"]!.AsArray().Single(s => (string?)s!["step"] == "calls")!;
        Assert.True((string?)calls["status"] == "ok", calls.ToJsonString());
        var answers = calls["calls"]!.AsArray().ToDictionary(c => (string)c!["symbol"]!, c => (string?)c!["answer"]);
        Assert.Equal("v1:HELLO FROM RTT", answers["rtt://core/api/upper"]);
        Assert.Equal("v1:ttr morf olleh", answers["rtt://core/api/reverse"]);
        Assert.Equal("HELLO FROM RTT", answers["rtt://mcp/sample/upper"]);

        var second = RttProcess.Run(dir["qs"], ["up", "--once", .. ports]);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("node0 registered (2 registration(s))", second.Stdout);
    }

    [Fact]
    public void A_second_silo_on_the_same_workspace_is_refused_and_leaves_the_first_untouched()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        using var first = RttProcess.StartSilo(dir.Path, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60));
        var info = File.ReadAllText(dir[".rtt/state/silo.json"]);

        var second = RttProcess.Run(dir.Path, "up", "--once", "--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture),
            "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, second.ExitCode);
        Assert.Contains(ErrorCodes.SiloAlreadyRunning, second.Stderr);
        Assert.Contains($"pid {first.Id}", second.Stderr);
        Assert.DoesNotContain("   at ", second.Stderr);

        // The first silo's files are still there and it still answers.
        Assert.Equal(info, File.ReadAllText(dir[".rtt/state/silo.json"]));
        Assert.True(File.Exists(dir[".rtt/state/lanes.sock"]));
        var status = RttProcess.Run(dir.Path, "status", "--json");
        Assert.True(status.ExitCode == 0, status.ToString());
        first.Terminate();
        Assert.True(first.WaitForExit(TimeSpan.FromSeconds(30)));

        // Once it is gone, the workspace is free again.
        var third = RttProcess.Run(dir.Path, "up", "--once", "--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture),
            "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture));
        Assert.True(third.ExitCode == 0, third.ToString());
    }

    [Fact]
    public void Configuration_comes_from_rtt_environment_variables()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var env = new Dictionary<string, string>
        {
            ["RTT_Silo__NodeId"] = "numa1",
            ["RTT_Silo__SiloPort"] = RttProcess.FreePort().ToString(CultureInfo.InvariantCulture),
            ["RTT_Silo__GatewayPort"] = RttProcess.FreePort().ToString(CultureInfo.InvariantCulture),
        };
        var result = RttProcess.RunWith(dir.Path, env, "up", "--once", "--json");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("numa1", (string?)JsonNode.Parse(result.Stdout)!["node"]!["node_id"]);

        env["RTT_Silo__NodeId"] = "bad/id";
        var bad = RttProcess.RunWith(dir.Path, env, "up", "--once");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(ErrorCodes.ConfigInvalid, bad.Stderr);
        Assert.Contains("Silo:NodeId", bad.Stderr);
    }

    [Fact]
    public async Task Metrics_are_served_in_prometheus_format()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var (siloPort, gatewayPort) = Ports();
        var metricsPort = RttProcess.FreePort();
        using var silo = StartSilo(dir.Path, siloPort, gatewayPort, "--metrics-port", metricsPort.ToString(CultureInfo.InvariantCulture));
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
        Assert.Contains("rtt_node_registrations", text); // our meter
        Assert.Contains("orleans_", text);                // Orleans' meter
    }

    [Fact]
    public void Status_without_a_silo_is_a_clear_error()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var result = RttProcess.Run(dir.Path, "status", "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.NoSiloAnswers, result.Stderr);
        Assert.Contains("rtt up", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    [Fact]
    public void Malformed_topology_is_named_with_line_and_column()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        File.WriteAllText(dir[".rtt/topology.json"], "{\n  \"hosts\": [\n    { \"name\": \"a\" \"numa_nodes\": [] }\n  ]\n}\n");
        var result = RttProcess.Run(dir.Path, "up", "--once");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.JsonInvalid, result.Stderr);
        Assert.Contains("topology.json:3:", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.False(File.Exists(dir[".rtt/state/rtt.db"]), "nothing should start on a bad workspace");
    }

    [Fact]
    public void Missing_signing_key_file_is_a_clear_error()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        File.Delete(dir[".rtt/keys/default.key"]);
        var result = RttProcess.Run(dir.Path, "up", "--once");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.KeyFileMissing, result.Stderr);
        Assert.Contains("default.key", result.Stderr);
    }

    [Fact]
    public void Occupied_port_is_a_clear_error()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        squatter.Start();
        var taken = ((System.Net.IPEndPoint)squatter.LocalEndpoint).Port;
        var result = RttProcess.Run(dir.Path, "up", "--once", "--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture), "--gateway-port", taken.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.PortInUse, result.Stderr);
        Assert.Contains($"port {taken}", result.Stderr);
        Assert.Contains("--gateway-port", result.Stderr);
    }

    [Fact]
    public void Corrupt_database_is_a_clear_error_and_is_left_as_it_was()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var garbage = new byte[8192];
        new Random(7).NextBytes(garbage);
        File.WriteAllBytes(dir[".rtt/state/rtt.db"], garbage);
        var result = RttProcess.Run(dir.Path, "up", "--once", "--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture), "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.StateCorrupt, result.Stderr);
        Assert.Contains("rtt.db", result.Stderr);
        Assert.Equal(garbage, File.ReadAllBytes(dir[".rtt/state/rtt.db"]));
    }

    [Fact]
    public void Unwritable_state_folder_is_a_clear_error()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        // Root ignores permission bits, so make the state path something that cannot hold files.
        Directory.Delete(dir[".rtt/state"]);
        File.WriteAllText(dir[".rtt/state"], "not a folder");
        var result = RttProcess.Run(dir.Path, "up", "--once");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(ErrorCodes.StateUnwritable, result.Stderr);
    }
}
