using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary><c>rtt bench lanes</c> end to end: real peer processes per lane and per baseline, JSON as documented.</summary>
[Collection(ProcessCollection.Name)]
public sealed class BenchCommandTests
{
    [Fact]
    public void Bench_lanes_measures_every_lane_against_its_baseline_in_the_same_run()
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "lanes", "--size", "64", "--seconds", "0.2", "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var json = JsonNode.Parse(run.Stdout)!.AsObject();
        var cases = json["cases"]!.AsArray().Select(c => c!.AsObject()).ToList();

        // shm and shm-loan against the mailbox; uds and tcp with and without payload CRC against the raw sockets.
        var expected = new[] { ("shm", true, "mailbox"), ("shm-loan", false, "mailbox"), ("uds", true, "raw-uds"), ("uds", false, "raw-uds"), ("tcp", true, "raw-tcp"), ("tcp", false, "raw-tcp") };
        Assert.Equal(expected, cases.Select(c => ((string)c["lane"]!, (bool)c["crc"]!, (string)c["baseline"]!)).ToArray());
        foreach (var c in cases)
        {
            Assert.Equal(64, (int)c["size"]!);
            var p50 = (long)c["rtt_p50_ns"]!;
            var p99 = (long)c["rtt_p99_ns"]!;
            Assert.True(p50 > 0 && p50 <= p99 && p99 <= (long)c["rtt_p999_ns"]! && (long)c["rtt_p999_ns"]! <= (long)c["rtt_max_ns"]!, c.ToJsonString());
            Assert.True((long)c["baseline_p50_ns"]! > 0 && (long)c["baseline_p50_ns"]! <= (long)c["baseline_p99_ns"]!, c.ToJsonString());
            Assert.True((double)c["frames_per_s"]! > 1000, c.ToJsonString()); // every streamed frame was counted by the peer
            Assert.True((long)c["oneway_p50_ns"]! <= p99, c.ToJsonString());
        }

        Assert.Null(json["zero_copy"]); // only with a size above 64 B

        Assert.True((double)json["memcpy_ns"]!["64"]! > 0);
        Assert.True((double)json["crc32c_ns"]!["64"]! > 0);
    }

    [Fact]
    public void Bench_lanes_measures_zero_copy_size_independence_as_an_interleaved_pair()
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "lanes", "--lane", "shm", "--size", "64", "--size", "4096", "--seconds", "0.2", "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var json = JsonNode.Parse(run.Stdout)!.AsObject();
        Assert.Equal(["shm", "shm", "shm-loan", "shm-loan"], json["cases"]!.AsArray().Select(c => (string)c!["lane"]!).ToArray());
        var pair = json["zero_copy"]!;
        Assert.Equal(4096, (int)pair["loaned_size"]!);
        Assert.True((long)pair["loaned_p50_ns"]! > 0 && (long)pair["loaned_p50_ns"]! <= (long)pair["loaned_p99_ns"]!, pair.ToJsonString());
        Assert.True((long)pair["shm_64_p50_ns"]! > 0 && (long)pair["shm_64_p50_ns"]! <= (long)pair["shm_64_p99_ns"]!, pair.ToJsonString());
    }

    [Theory]
    [InlineData("--seconds", "0", "--seconds")]
    [InlineData("--lane", "pigeon", "--lane")]
    [InlineData("--size", "8", "--size")]
    public void Bad_bench_options_are_refused_before_anything_starts(string option, string value, string named)
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "lanes", option, value);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(ErrorCodes.LaneConfigInvalid, run.Stderr);
        Assert.Contains(named, run.Stderr);
        Assert.DoesNotContain("   at ", run.Stderr); // no stack trace for a user's mistake
        Assert.Equal(string.Empty, run.Stdout);
    }

    [Fact]
    public void Bench_calls_measures_a_process_service_grpc_and_an_mcp_tool_against_their_baselines_in_the_same_run()
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "calls", "--size", "64", "--size", "4096", "--seconds", "0.3", "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var json = JsonNode.Parse(run.Stdout)!.AsObject();

        // Each size: the SHM echo round trip, the process service over SHM, gRPC unary over a Unix socket.
        var services = json["services"]!;
        var cases = services["cases"]!.AsArray().Select(c => c!.AsObject()).ToList();
        Assert.Equal([("echo", 64), ("process", 64), ("grpc", 64), ("echo", 4096), ("process", 4096), ("grpc", 4096)],
            cases.Select(c => ((string)c["case"]!, (int)c["size"]!)).ToArray());
        foreach (var c in cases)
        {
            Assert.True((long)c["calls"]! > 0 && (double)c["p50_us"]! > 0 && (double)c["p50_us"]! <= (double)c["p99_us"]!, c.ToJsonString());
        }

        var ratio = services["ratios"]!.AsArray()[0]!;
        Assert.Equal(Math.Round((double)cases[1]["p50_us"]! / (double)cases[0]["p50_us"]!, 3), (double)ratio["process_echo_p50"]!, 3);
        Assert.Equal(Math.Round((double)cases[1]["p50_us"]! / (double)cases[2]["p50_us"]!, 3), (double)ratio["process_grpc_p50"]!, 3);
        var pipelined = services["pipelined"]!;
        Assert.True((long)pipelined["calls"]! > 1000, pipelined.ToJsonString()); // every pipelined answer came back from the service
        Assert.True((double)pipelined["allocated_bytes_per_call"]! < 1, pipelined.ToJsonString()); // the lane host's hot path allocates nothing per call

        // MCP: the bundled C# server's echo, direct with the SDK client and through RTT (same answers checked first).
        var mcp = json["mcp"]!;
        Assert.Equal("echo", (string?)mcp["tool"]);
        Assert.Equal(["direct", "rtt", "driver", "spin-lane"], mcp["cases"]!.AsArray().Select(c => (string)c!["case"]!).ToArray());
        Assert.All(mcp["cases"]!.AsArray(), c => Assert.True((long)c!["calls"]! > 0, c.ToJsonString()));
        Assert.True((double)mcp["ratio"]!["p50"]! > 0);
    }

    [Theory]
    [InlineData("--only", "grpc", "--only")]
    [InlineData("--mcp-args", "[1]", "--mcp-args")]
    [InlineData("--size", "0", "--size")]
    public void Bad_bench_calls_options_are_refused_before_anything_starts(string option, string value, string named)
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "calls", option, value);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(named, run.Stderr);
        Assert.Contains("RTT-", run.Stderr);
        Assert.DoesNotContain("   at ", run.Stderr);
        Assert.Equal(string.Empty, run.Stdout);
    }

    [Fact]
    public void Bench_control_measures_grain_calls_from_a_client_against_a_ping_grain_in_the_same_run()
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "control", "--seconds", "0.3", "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var cases = JsonNode.Parse(run.Stdout)!["cases"]!.AsArray();
        Assert.Equal(["ping", "resolve", "node", "history", "status", "apply-unchanged", "apply-context", "apply-mac1", "apply-signed", "ping+plan", "ping+token", "guarded"], cases.Select(c => (string)c!["case"]!));
        Assert.All(cases, c =>
        {
            Assert.True((long)c!["calls"]! > 10, c.ToJsonString());
            Assert.True((double)c["p50_us"]! > 0 && (double)c["p99_us"]! >= (double)c["p50_us"]!, c.ToJsonString());
            Assert.True((long)c["allocated_bytes_per_call"]! > 0, c.ToJsonString()); // a grain call allocates its message at least
            Assert.True((long)c["silo_allocated_bytes_per_call"]! > 0, c.ToJsonString()); // read from the silo (IPingGrain.Runtime)
            Assert.True((long)c["silo_gen0_per_1000_calls"]! >= 0 && (long)c["silo_gc_pause_us_per_1000_calls"]! >= 0, c.ToJsonString());
        });
        var result = JsonNode.Parse(run.Stdout)!;
        Assert.True((double)result["warm_up_seconds"]! > 0, result.ToJsonString()); // warmed up by rounds until the JIT settled (or a minute)
        Assert.NotNull(result["jit_settled"]);
        Assert.Equal(2, (int)result["mac_format"]!); // the silo said it reads compact MAC tokens: apply-unchanged presented those
        Assert.True((bool)result["token_argument"]!); // and that it takes apply's token as the call's argument
        Assert.All(cases.Skip(1), c => Assert.True((double)c!["p99_vs_ping"]! > 0));
        Assert.Equal(1, RttProcess.Run(dir.Path, "bench", "control", "--seconds", "0").ExitCode);

        // Some cases only, ping always first (the baseline); a case that does not exist is named with the ones that do.
        var some = RttProcess.Run(dir.Path, "bench", "control", "--seconds", "0.2", "--case", "guarded", "--case", "status", "--json");
        Assert.True(some.ExitCode == 0, some.ToString());
        Assert.Equal(["ping", "status", "guarded"], JsonNode.Parse(some.Stdout)!["cases"]!.AsArray().Select(c => (string)c!["case"]!));
        var unknown = RttProcess.Run(dir.Path, "bench", "control", "--case", "apply");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("--case apply is not a case of this bench", unknown.Stderr);
        Assert.Contains("apply-unchanged", unknown.Stderr);
        Assert.DoesNotContain("   at ", unknown.Stderr);
    }

    [Fact]
    public void Bench_calls_names_the_tools_when_the_mcp_tool_is_not_listed()
    {
        using var dir = new TempDir();
        var run = RttProcess.Run(dir.Path, "bench", "calls", "--only", "mcp", "--mcp-tool", "nope", "--seconds", "0.1");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(ErrorCodes.CallInputInvalid, run.Stderr);
        Assert.Contains("echo, ", run.Stderr);
        Assert.DoesNotContain("   at ", run.Stderr);
    }
}
