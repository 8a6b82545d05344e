using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Planning;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt plan</c> and <c>rtt plan verify</c>.</summary>
public static class PlanCommand
{
    /// <summary>Exit code of <c>rtt plan</c> when the plan is valid but some routes were rejected.</summary>
    public const int Rejected = 3;

    public static Command Create()
    {
        var output = new Option<string?>("--out") { Description = "Where to write the signed plan (default .rtt/plans/proposed.json)" };
        var baseFile = new Option<string?>("--base") { Description = "The applied plan to compute against (default .rtt/plans/applied.json when present)" };
        var json = RttCommands.JsonOption();
        json.Description = "Print the plan itself instead of the summary";
        var plan = new Command("plan", "Compute a deterministic, signed routing plan from routes, manifests, policy and topology") { output, baseFile, json };
        plan.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var (signed, outcome, path, inputs) = Compute(ws, parse.GetValue(baseFile), parse.GetValue(output));
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(signed));
            }
            else
            {
                Print(signed, outcome, path, inputs);
            }

            return Task.FromResult(outcome.Rejected.Count == 0 ? RttCommands.Ok : Rejected);
        }));

        var file = new Argument<string>("PLAN") { Description = "A plan file" };
        var expect = new Option<string?>("--expect") { Description = "The plan_id it must have (sha256:…)" };
        var verify = new Command("verify", "Check a plan's hash and signature, and recompute it when the workspace still has its inputs") { file, expect };
        verify.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var path = Path.GetFullPath(parse.GetValue(file)!);
            foreach (var line in Verify(ws, RttWorkspace.ReadObject(path), path, parse.GetValue(expect)))
            {
                Console.WriteLine(line);
            }

            return Task.FromResult(RttCommands.Ok);
        }));
        plan.Subcommands.Add(verify);
        return plan;
    }

    /// <summary>Computes, signs and stores a plan (also used by <c>rtt up --once</c>).</summary>
    public static (JsonObject Plan, PlanOutcome Outcome, string Path, PlanInputs Inputs) Compute(RttWorkspace ws, string? baseFile, string? output)
    {
        var store = new PlanStore(ws);
        var basePlan = baseFile is not null ? RttWorkspace.ReadObject(Path.GetFullPath(baseFile)) : store.Applied();
        var inputs = PlanInputs.Load(ws, basePlan);
        var outcome = Planner.Compute(inputs);
        using var key = ws.LoadSigningKey();
        var signed = Planner.Seal(outcome, key, out var content); // the outcome's body, sealed in place
        var pretty = PlanStore.FileForm(signed, content); // the file form, from the signed bytes: written once for both files
        store.Save(signed, pretty);
        var path = Path.GetFullPath(output ?? Path.Combine(store.Directory, "proposed.json"));
        AtomicFile.WriteAllBytes(path, pretty);
        return (signed, outcome, path, inputs);
    }

    /// <summary>The planning step of <c>rtt up --once</c>: computes, signs and stores the plan; reports what it decided.</summary>
    public static JsonObject Step(RttWorkspace ws)
    {
        var (plan, outcome, path, _) = Compute(ws, null, null);
        return new JsonObject
        {
            ["step"] = "plan",
            ["status"] = outcome.Rejected.Count == 0 ? "ok" : "rejected",
            ["detail"] = $"{plan["plan_id"]}: {outcome.Admitted} route(s) placed, {outcome.Rejected.Count} rejected ({outcome.Solver}); {Path.GetRelativePath(ws.Root, path)}",
        };
    }

    /// <summary>Hash, signature, expected id, and (when the inputs are unchanged) recomputation. Throws RTT-PLAN-006 on a mismatch.</summary>
    public static IReadOnlyList<string> Verify(RttWorkspace ws, JsonObject plan, string source, string? expect)
    {
        var lines = new List<string>();
        var declared = (string?)plan["plan_id"] ?? throw new RttException(ErrorCodes.PlanIdMissing, "the plan has no plan_id", source,
            "verify a plan made by `rtt plan` (it writes plan_id, the hash of the plan's content)");
        var actual = Planner.PlanId(plan);
        if (declared != actual)
        {
            throw new RttException(ErrorCodes.PlanMismatch, $"plan_id is {declared} but the content hashes to {actual}", source, "the plan was changed after it was made: recompute it with `rtt plan`");
        }

        lines.Add($"hash ok: {actual}");
        if (expect is not null && expect != actual)
        {
            throw new RttException(ErrorCodes.PlanMismatch, $"plan is {actual}, expected {expect}", source, "check that you have the plan you reviewed");
        }

        var signer = ws.LoadTrustStore().Verify(plan, source);
        lines.Add($"signature ok: signed by {signer}");

        var store = new PlanStore(ws);
        var baseId = (string?)plan["base"];
        var basePlan = baseId is null ? null : store.Find(baseId);
        if (baseId is not null && basePlan is null)
        {
            lines.Add($"recomputation skipped: base plan {baseId} is not in .rtt/plans");
            return lines;
        }

        var inputs = PlanInputs.Load(ws, basePlan);
        if (inputs.Hash != (string?)plan["inputs"])
        {
            lines.Add($"recomputation skipped: the workspace's inputs are now {inputs.Hash}, the plan was made from {plan["inputs"]}");
            return lines;
        }

        var recomputed = Planner.Compute(inputs).Body;
        recomputed["plan_id"] = Planner.PlanId(recomputed);
        var body = (JsonObject)plan.DeepClone();
        body.Remove("sign");
        if (!CanonicalJson.Serialize(recomputed).AsSpan().SequenceEqual(CanonicalJson.Serialize(body)))
        {
            throw new RttException(ErrorCodes.PlanMismatch, $"recomputing from the same inputs gives {recomputed["plan_id"]}, not {actual}", source,
                "the plan was not made by this planner from these inputs");
        }

        lines.Add("recomputed: identical");
        return lines;
    }

    private static void Print(JsonObject plan, PlanOutcome outcome, string path, PlanInputs inputs)
    {
        Console.WriteLine($"Plan {plan["plan_id"]} ({outcome.Solver}), base {((string?)plan["base"]) ?? "none"}");
        var source = inputs.TunedProfile is { } tuned ? $"tuned profile {tuned}" : inputs.TunedIgnored is { } why ? $"warning: {why}" : "topology.json or the defaults";
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"inputs {plan["inputs"]}; lane p99 shm {inputs.LaneP99Us["shm"]} us, uds {inputs.LaneP99Us["uds"]} us, tcp {inputs.LaneP99Us["tcp"]} us ({source})"));
        foreach (var r in plan["routes_add"]!.AsArray())
        {
            Console.WriteLine($"  + {r!["from"]} -> {r["to"]}  {r["version"]} over {r["lane"]}");
        }

        foreach (var r in plan["routes_remove"]!.AsArray())
        {
            Console.WriteLine($"  - {r!["from"]} -> {r["to"]}");
        }

        foreach (var m in plan["moves"]!.AsArray())
        {
            Console.WriteLine($"  ~ {m!["symbol"]}: {m["from"]} -> {m["to"]} ({m["reason"]})");
        }

        foreach (var r in plan["rejected"]!.AsArray())
        {
            Console.WriteLine($"  ! {r!["route"]!["from"]} -> {r["route"]!["to"]}: {r["constraint"]} {r["values"]!.ToJsonString()}");
        }

        Console.WriteLine($"{plan["routes_add"]!.AsArray().Count} to add, {plan["routes_remove"]!.AsArray().Count} to remove, {plan["moves"]!.AsArray().Count} to move, {plan["rejected"]!.AsArray().Count} rejected; {outcome.Admitted} route(s) in the plan");
        Console.WriteLine($"written to {path}");
    }
}
