using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Rtt.Cli.Stubs;
using Rtt.Core.Errors;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Stubs;

namespace Rtt.Cli.Tests;

/// <summary>Builds every stub of stubs/stubs.json once, into a temp folder (never the source tree).</summary>
public sealed class StubFixture : IDisposable
{
    public StubFixture()
    {
        Output = Directory.CreateTempSubdirectory("rtt-stubs-").FullName;
        Stubs = StubCatalog.Load(Path.Combine(RepoRoot, "stubs", "stubs.json"), Output, RttProcess.CliDirectory);
        BuildFailures = StubCatalog.BuildAllAsync(Stubs).GetAwaiter().GetResult();
    }

    public static string RepoRoot { get; } = Path.GetFullPath(typeof(StubFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RttRepoRoot").Value!);

    public string Output { get; }

    public IReadOnlyList<StubEntry> Stubs { get; }

    /// <summary>A stub whose toolchain is missing or that does not build fails its tests (never skipped).</summary>
    public IReadOnlyDictionary<string, string> BuildFailures { get; }

    public StubEntry Get(string language)
    {
        var stub = Stubs.Single(s => s.Language == language);
        Assert.False(BuildFailures.TryGetValue(language, out var why), why);
        return stub;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Output, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// The universal stub protocol (docs/stub-protocol.md): every stub's sample echo service passes the conformance kit
/// (UDS, and SHM where the stub has it), a broken stub fails it with the rules it breaks, and every stub's service is
/// served by one plan and called with rtt call through a real silo.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class StubTests(StubFixture fixture) : IClassFixture<StubFixture>
{
    /// <summary>Every stub in stubs/stubs.json, with its lanes (a new stub is tested by being listed there).</summary>
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        var catalog = JsonNode.Parse(File.ReadAllText(Path.Combine(StubFixture.RepoRoot, "stubs", "stubs.json")))!;
        foreach (var stub in catalog["stubs"]!.AsArray())
        {
            data.Add((string)stub!["language"]!, "uds");
            if ((bool?)stub["shm"] ?? false)
            {
                data.Add((string)stub["language"]!, "shm");
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_stub_passes_every_rule_of_the_conformance_kit(string language, string lane)
    {
        var stub = fixture.Get(language);
        var results = StubConformance.Run(new StubCheckOptions
        {
            Command = stub.Run,
            Lane = lane == "shm" ? LaneKind.Shm : LaneKind.Uds,
            WorkingDirectory = stub.Source,
        });
        var failed = results.Where(r => !r.Passed).Select(r => $"{r.Rule}: {r.Detail}").ToList();
        Assert.True(failed.Count == 0, $"{language} over {lane}:\n{string.Join("\n", failed)}");
        Assert.Equal(18, results.Count);
        Assert.Equal(lane == "shm" ? 16 : 18, results.Count(r => r.Applicable));
    }

    [Fact]
    public void The_kit_fails_a_broken_stub_by_rule_and_exits_1_and_refuses_a_missing_command()
    {
        var broken = Path.Combine(StubFixture.RepoRoot, "tests", "Rtt.Cli.Tests", "Stubs", "broken_echo.py");
        var r = RttProcess.Run(fixture.Output, "stub", "check", "--", "python3", broken);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains(ErrorCodes.StubCheckFailed, r.Stderr, StringComparison.Ordinal);
        foreach (var rule in new[] { "bad-crc", "response-ignored", "error-frame", "heartbeat", "shutdown" })
        {
            Assert.Matches($"(?m)^FAIL +{rule} ", r.Stdout);
        }

        foreach (var rule in new[] { "attach", "echo", "max-payload", "interleaved", "no-socket" })
        {
            Assert.Matches($"(?m)^pass +{rule} ", r.Stdout);
        }

        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);

        var json = RttProcess.Run(fixture.Output, "stub", "check", "--json", "--", "python3", broken);
        Assert.Equal(1, json.ExitCode);
        var report = JsonNode.Parse(json.Stdout)!;
        Assert.False((bool)report["passed"]!);
        Assert.False((bool)report["rules"]!.AsArray().Single(x => (string?)x!["rule"] == "bad-crc")!["passed"]!);

        var none = RttProcess.Run(fixture.Output, "stub", "check");
        Assert.Equal(1, none.ExitCode);
        Assert.Contains(ErrorCodes.StubCheckUsage, none.Stderr, StringComparison.Ordinal);
        var missing = RttProcess.Run(fixture.Output, "stub", "check", "--", "/nonexistent/stub");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains(ErrorCodes.StubCheckUsage, missing.Stderr, StringComparison.Ordinal);
        var badLane = RttProcess.Run(fixture.Output, "stub", "check", "--lane", "tcp", "--", "python3", broken);
        Assert.Equal(1, badLane.ExitCode);
        Assert.Contains(ErrorCodes.StubCheckUsage, badLane.Stderr, StringComparison.Ordinal);

        // The CLI passes a good stub (exit 0, every rule printed).
        var good = RttProcess.Run(fixture.Output, [.. new[] { "stub", "check", "--lane", "shm", "--" }, .. fixture.Get("c").Run]);
        Assert.True(good.ExitCode == 0, good.ToString());
        Assert.Contains("all 18 rules passed", good.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_stub_is_served_by_one_plan_and_answers_rtt_call_through_the_silo()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: false);
        var routes = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt", "routes.json")))!;
        foreach (var stub in fixture.Stubs)
        {
            fixture.Get(stub.Language);
            var address = $"rtt://core/api/echo-{stub.Language}";
            var serve = new JsonObject
            {
                ["kind"] = "process",
                ["command"] = StubCatalog.FindOnPath(stub.Run[0]) ?? stub.Run[0],
                ["args"] = new JsonArray([.. stub.Run.Skip(1).Select(a => (JsonNode)a)]),
                ["cwd"] = stub.Source,
                ["lane"] = stub.Shm ? "shm" : "uds",
                ["start_timeout_ms"] = 30000,
            };
            File.WriteAllText(Path.Combine(ws, ".rtt", "manifests", $"core.api.echo-{stub.Language}.json"), new JsonObject
            {
                ["address"] = address,
                ["version"] = "1.0.0",
                ["input"] = "rtt.types/Text",
                ["output"] = "rtt.types/Text",
                ["lanes"] = new JsonArray("shm", "uds", "tcp"),
                ["latency_us"] = 100,
                ["demand"] = new JsonObject { ["cpu_millis"] = 10, ["memory_mb"] = 8 },
                ["serve"] = serve,
            }.ToJsonString());
            routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = "rtt://ui/chat/console", ["to"] = address, ["version"] = "^1.0.0" });
        }

        File.WriteAllText(Path.Combine(ws, ".rtt", "routes.json"), routes.ToJsonString());
        Ok(ws, "scan");
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(60));
        Ok(ws, "plan");
        var apply = JsonNode.Parse(Ok(ws, "apply", "--json"))!;
        Assert.True((string?)apply["outcome"] == "applied", apply.ToJsonString());

        foreach (var stub in fixture.Stubs)
        {
            var address = $"rtt://core/api/echo-{stub.Language}";
            var text = $"héllo from {stub.Language} {stub.Language.Length.ToString(CultureInfo.InvariantCulture)}";
            var call = JsonNode.Parse(Ok(ws, "call", address, "--args", text, "--json"))!;
            Assert.Equal(text, (string?)call["answer_text"]);
            Assert.Equal("process", (string?)call["endpoint"]!["kind"]);
            var fail = RttProcess.Run(ws, "call", address, "--args", "!fail");
            Assert.True(fail.ExitCode == 5, $"{stub.Language}: {fail}");
            Assert.Contains(ErrorCodes.DriverFault, fail.Stderr, StringComparison.Ordinal);
        }

        silo.Terminate();
        Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
    }

    private static string Ok(string ws, params string[] args)
    {
        var r = RttProcess.Run(ws, args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }
}
