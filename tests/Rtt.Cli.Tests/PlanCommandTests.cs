using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

[Collection(ProcessCollection.Name)]
public sealed class PlanCommandTests
{

    [Fact]
    public void Plan_verify_and_tamper()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        var plan = RttProcess.Run(ws, "plan", "--out", dir["plan.json"]);
        Assert.True(plan.ExitCode == 0, plan.ToString());
        Assert.Contains("+ rtt://ui/hook/refresh -> rtt://core/api/metrics  1.2.0 over shm", plan.Stdout);
        var json = JsonNode.Parse(File.ReadAllText(dir["plan.json"]))!;
        var id = (string)json["plan_id"]!;

        var again = RttProcess.Run(ws, "plan", "--json");
        Assert.Equal(id, (string?)JsonNode.Parse(again.Stdout)!["plan_id"]); // same inputs, same plan

        var verify = RttProcess.Run(ws, "plan", "verify", dir["plan.json"], "--expect", id);
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains("recomputed: identical", verify.Stdout);

        json["placement"]!["rtt://core/api/metrics"] = "node9";
        File.WriteAllText(dir["tampered.json"], json.ToJsonString());
        var tampered = RttProcess.Run(ws, "plan", "verify", dir["tampered.json"]);
        Assert.Equal(1, tampered.ExitCode);
        Assert.Contains(ErrorCodes.PlanMismatch, tampered.Stderr);

        json.AsObject().Remove("plan_id");
        File.WriteAllText(dir["anonymous.json"], json.ToJsonString());
        var anonymous = RttProcess.Run(ws, "plan", "verify", dir["anonymous.json"]);
        Assert.Equal(1, anonymous.ExitCode);
        Assert.Contains($"{ErrorCodes.PlanIdMissing}: the plan has no plan_id", anonymous.Stderr); // its own code, not a mismatch
    }

    [Fact]
    public void Rejected_routes_exit_3_with_reasons()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        var routes = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt/routes.json")))!;
        routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = "rtt://ui/hook/refresh", ["to"] = "rtt://core/api/nothing" });
        routes["routes"]!.AsArray().Add(new JsonObject { ["from"] = "rtt://ui/hook/refresh", ["to"] = "rtt://core/api/metrics", ["version"] = "^2.0.0" });
        File.WriteAllText(Path.Combine(ws, ".rtt/routes.json"), routes.ToJsonString());
        var plan = RttProcess.Run(ws, "plan");
        Assert.Equal(3, plan.ExitCode);
        Assert.Contains("! rtt://ui/hook/refresh -> rtt://core/api/nothing: unknown-symbol", plan.Stdout);
        Assert.Contains("duplicate", plan.Stdout);
        Assert.Contains("2 rejected", plan.Stdout);
    }

    [Fact]
    public void Bad_inputs_are_clear_errors()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        var routesPath = Path.Combine(ws, ".rtt/routes.json");
        var original = File.ReadAllText(routesPath);
        File.WriteAllText(routesPath, original.Replace("^1.0.0", "one-ish", StringComparison.Ordinal));
        var range = RttProcess.Run(ws, "plan");
        Assert.Equal(1, range.ExitCode);
        Assert.Contains(ErrorCodes.PlanRangeInvalid, range.Stderr);
        Assert.Contains("/routes/0/version", range.Stderr);

        File.WriteAllText(routesPath, original);
        File.WriteAllText(Path.Combine(ws, ".rtt/manifests/new.json"), """{"address":"rtt://core/api/new","version":"1.0.0","input":"A","output":"B"}""");
        var unsigned = RttProcess.Run(ws, "plan");
        Assert.Equal(1, unsigned.ExitCode);
        Assert.Contains(ErrorCodes.PlanManifestUnsigned, unsigned.Stderr);
        Assert.Contains("rtt scan", unsigned.Stderr);

        File.Delete(Path.Combine(ws, ".rtt/manifests/new.json"));
        var policy = JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt/policy.json")))!;
        policy["pins"] = new JsonObject { ["rtt://core/api/metrics"] = "node7" };
        File.WriteAllText(Path.Combine(ws, ".rtt/policy.json"), policy.ToJsonString());
        var pin = RttProcess.Run(ws, "plan");
        Assert.Equal(1, pin.ExitCode);
        Assert.Contains(ErrorCodes.PlanPinUnknownNode, pin.Stderr);
        Assert.DoesNotContain("   at ", pin.Stderr);
    }
}
