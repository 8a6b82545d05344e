using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Client;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Spectre.Console;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt apply</c>, <c>rtt rollback</c> and <c>rtt history</c>: the reconciler of the silo running on the workspace.</summary>
public static class ApplyCommands
{
    /// <summary>Exit code when a plan did not apply: aborted in prepare, or rolled back after verify.</summary>
    public const int NotApplied = 4;

    public static IEnumerable<Command> Create()
    {
        var file = new Argument<string?>("PLAN") { Description = "The signed plan (default .rtt/plans/proposed.json)", Arity = ArgumentArity.ZeroOrOne };
        var applyJson = RttCommands.JsonOption();
        applyJson.Description = "Write the outcome as JSON";
        var apply = new Command("apply", "Apply a signed plan through the reconciler's two-phase commit (prepare, commit, verify; rollback on failure)") { file, applyJson };
        apply.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var path = Path.GetFullPath(parse.GetValue(file) ?? Path.Combine(new PlanStore(ws).Directory, "proposed.json"));
            if (!File.Exists(path))
            {
                throw new RttException(ErrorCodes.PlanInputInvalid, "no plan file here", path, "compute one with `rtt plan`, or name the plan file");
            }

            var plan = RttWorkspace.ReadObject(path);
            await using var client = await Connect(ws, cancellationToken);
            var sent = "";
            var report = await Run(parse.GetValue(applyJson), $"applying {plan["plan_id"]}",
                async () =>
                {
                    (var r, sent) = await Send(client.Cluster, ws, plan);
                    return r;
                });
            return Print(report, parse.GetValue(applyJson), rollback: false, sent);
        }));

        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the WAL)" };
        var rollbackJson = RttCommands.JsonOption();
        var rollback = new Command("rollback", "Restore the plan the applied one replaced, as a signed, logged transaction") { reason, rollbackJson };
        rollback.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            await using var client = await Connect(ws, cancellationToken);
            var report = await Run(parse.GetValue(rollbackJson), "rolling back",
                () =>
                {
                    var reconciler = client.Cluster.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
                    var why = parse.GetValue(reason) ?? "requested by the operator (rtt rollback)";
                    return Rtt.Grains.ManagementCalls.Call(ws, Rtt.Core.Tokens.ManagementTokens.Rollback, token => reconciler.Rollback(why, token), () => reconciler.Rollback(why));
                });
            return Print(report, parse.GetValue(rollbackJson), rollback: true);
        }));

        var historyJson = RttCommands.JsonOption();
        var history = new Command("history", "List the plans applied and rolled back, with their WAL indices") { historyJson };
        history.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            await using var client = await Connect(ws, cancellationToken);
            var h = await client.Cluster.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey).History();
            if (parse.GetValue(historyJson))
            {
                Console.Out.Write(PrettyJson.ToText(HistoryJson(h)));
                return RttCommands.Ok;
            }

            var table = new Table().Title($"applied plan: {Markup.Escape(h.AppliedPlanId ?? "none")}; WAL {h.WalSize} entries, root {h.WalRoot[..16]}…")
                .AddColumns("tx", "transition", "plan", "decision", "applied", "verified", "reason");
            foreach (var t in h.Transactions)
            {
                table.AddRow(Num(t.Tx), t.Transition, Markup.Escape(Short(t.PlanId)), Markup.Escape(t.Decision ?? "in doubt"),
                    t.AppliedIndex is { } a ? Num(a) : "-",
                    t.VerifiedIndex is { } v ? Num(v) : t.VerifyFailedIndex is { } f ? $"failed@{Num(f)}" : "-",
                    Markup.Escape(t.Reason ?? ""));
            }

            AnsiConsole.Write(table);
            return RttCommands.Ok;
        }));

        return [apply, rollback, history];
    }

    internal static async Task<RttClient> Connect(RttWorkspace ws, CancellationToken cancellationToken)
    {
        var options = RttClientOptions.FromWorkspace(ws) ?? throw new HostingException(ErrorCodes.NoSiloAnswers, "no silo is running on this workspace", ws.Root,
            "start one with `rtt up` (in another terminal), then run this again");
        return await RttClient.ConnectAsync(options, cancellationToken);
    }

    /// <summary>
    /// Sends <paramref name="plan"/> to the reconciler, each try with its own token (the silo checks one on every apply,
    /// docs/security.md): as its changes from the applied plan when the workspace's <c>applied.json</c> is the plan's base
    /// (docs/reconciler.md, "Plans sent as changes"; what crosses the wire follows the change), else whole. A change the
    /// silo cannot rebuild because its applied plan is another one (RTT-APPLY-007), or that does not rebuild the plan
    /// (RTT-PLAN-006, RTT-PLAN-001: applied.json changed by hand), is sent again whole, which gives the reconciler's own
    /// answer (a stale plan's RTT-APPLY-001, a tampered plan's RTT-PLAN-006). Returns the report and how the plan went: a line for people.
    /// </summary>
    internal static async Task<(ApplyReport Report, string Sent)> Send(IGrainFactory grains, RttWorkspace ws, JsonObject plan)
    {
        var reconciler = grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        if (ChangeOf(ws, plan) is { } change)
        {
            try
            {
                var report = await Rtt.Grains.ManagementCalls.Call(ws, Rtt.Core.Tokens.ManagementTokens.Apply, token => reconciler.ApplyChange(change, token), () => reconciler.ApplyChange(change));
                return (report, $"sent as a change to {change.Base} ({Bytes(System.Text.Encoding.UTF8.GetByteCount(change.Delta))})");
            }
            catch (Rtt.Grains.RttGrainException ex) when (ex.Code is ErrorCodes.ApplyChangeBase or ErrorCodes.PlanMismatch or ErrorCodes.PlanInputInvalid)
            {
                // The silo applied another plan than applied.json says (a change since, or a file not yet rewritten), or the
                // change did not rebuild the plan (applied.json edited by hand): the whole plan gets the reconciler's own answer.
            }
        }

        var text = IReconcilerGrain.PlanUtf8(plan);
        return (await Rtt.Grains.ManagementCalls.Call(ws, Rtt.Core.Tokens.ManagementTokens.Apply, token => reconciler.ApplyUtf8(text, token), () => reconciler.ApplyUtf8(text)), $"sent whole ({Bytes(text.Length)})");
    }

    /// <summary>The plan as its changes from the workspace's applied plan, when that is its base; null otherwise.</summary>
    internal static PlanChange? ChangeOf(RttWorkspace ws, JsonObject plan)
    {
        var path = new PlanStore(ws).AppliedPath;
        if ((string?)plan["base"] is not { } baseId || (string?)plan["plan_id"] is not { } planId || planId == baseId || !File.Exists(path))
        {
            return null;
        }

        JsonObject applied;
        try
        {
            applied = RttWorkspace.ReadObject(path);
        }
        catch (RttException)
        {
            return null; // unreadable (torn by a crash: the silo rewrites it): the whole plan goes
        }

        return (string?)applied["plan_id"] == baseId
            ? new PlanChange(baseId, planId, CanonicalJson.ToCanonicalString(Rtt.Reconciling.PlanDelta.Diff(applied, plan)))
            : null;
    }

    private static string Bytes(int count) => string.Create(CultureInfo.InvariantCulture, $"{count:N0} bytes");

    internal static async Task<ApplyReport> Run(bool json, string what, Func<Task<ApplyReport>> call)
    {
        try
        {
            if (json || Console.IsOutputRedirected)
            {
                return await call();
            }

            ApplyReport? report = null;
            await AnsiConsole.Status().StartAsync(what, async _ => report = await call());
            return report!;
        }
        catch (TimeoutException ex)
        {
            // The silo took the request but did not answer in time (busy host): the transaction may still be decided
            // after this process gives up. Not a bug, and not "nothing happened": say what to check.
            throw new RttException(ErrorCodes.ApplyUnanswered, $"no answer from the silo in time while {what}; it may still complete", null,
                "check the outcome before trying again: `rtt history` lists the transaction once it is decided, `rtt wal root` shows the log growing", ex);
        }
    }

    public static int Print(ApplyReport r, bool json, bool rollback, string? sent = null)
    {
        var ok = r.Outcome is "applied" or "unchanged" || (rollback && r.Outcome == "rolled-back");
        if (json)
        {
            var report = ReportJson(r, rollback);
            if (!string.IsNullOrEmpty(sent))
            {
                report["sent"] = sent;
            }

            Console.Out.Write(PrettyJson.ToText(report));
        }
        else
        {
            if (!string.IsNullOrEmpty(sent))
            {
                Console.WriteLine($"  plan {sent}");
            }

            foreach (var p in r.Phases)
            {
                Console.WriteLine($"  {p.Phase,-8} {p.Milliseconds,9:0.00} ms  {p.Detail}");
            }

            var line = $"{(CodeOf(r, rollback) is { } code ? code + " " : "")}{r.Outcome}: plan {r.PlanId ?? "none"} (tx {r.Tx}); WAL {r.WalSize} entries, root {r.WalRoot}";
            (ok ? Console.Out : Console.Error).WriteLine(r.Reason.Length > 0 ? $"{line}\n  reason: {r.Reason}" : line);
        }

        return ok ? RttCommands.Ok : NotApplied;
    }

    /// <summary>
    /// The error code of an apply that did not take (errors.md): aborted in prepare RTT-APPLY-003, committed then rolled back
    /// after a failed verify RTT-APPLY-004; null when it took (a rollback's own "rolled-back" is its success).
    /// </summary>
    public static string? CodeOf(ApplyReport r, bool rollback) => r.Outcome switch
    {
        "aborted" => ErrorCodes.ApplyAborted,
        "rolled-back" when !rollback => ErrorCodes.ApplyRolledBack,
        _ => null,
    };

    public static JsonObject ReportJson(ApplyReport r, bool rollback = false)
    {
        var json = new JsonObject
        {
            ["outcome"] = r.Outcome,
            ["plan_id"] = r.PlanId,
            ["tx"] = r.Tx,
            ["reason"] = r.Reason,
            ["phases"] = new JsonArray([.. r.Phases.Select(p => (JsonNode)new JsonObject { ["phase"] = p.Phase, ["ms"] = p.Milliseconds, ["detail"] = p.Detail })]),
            ["wal"] = new JsonObject { ["size"] = r.WalSize, ["root"] = r.WalRoot },
        };
        if (CodeOf(r, rollback) is { } code)
        {
            json["code"] = code; // only when the apply did not take, so a successful report is as before
        }

        return json;
    }

    public static JsonObject HistoryJson(ReconcilerHistory h) => new()
    {
        ["applied"] = h.AppliedPlanId,
        ["wal"] = new JsonObject { ["size"] = h.WalSize, ["root"] = h.WalRoot },
        ["recovery"] = h.Recovery,
        ["transactions"] = new JsonArray([.. h.Transactions.Select(t => (JsonNode)new JsonObject
        {
            ["tx"] = t.Tx,
            ["transition"] = t.Transition,
            ["plan_id"] = t.PlanId,
            ["base"] = t.Base,
            ["decision"] = t.Decision,
            ["decision_index"] = t.DecisionIndex,
            ["applied_index"] = t.AppliedIndex,
            ["verified_index"] = t.VerifiedIndex,
            ["verify_failed_index"] = t.VerifyFailedIndex,
            ["reason"] = t.Reason,
            ["at"] = t.At,
            ["participants"] = new JsonArray([.. t.Participants.Select(p => (JsonNode)p)]),
        })]),
        ["participants"] = new JsonArray([.. h.Participants.Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name,
            ["applied_tx"] = p.Ledger.AppliedTx,
            ["applied_plan"] = p.Ledger.AppliedPlan,
            ["reserved_tx"] = p.Ledger.ReservedTx,
            ["reserved_plan"] = p.Ledger.ReservedPlan,
        })]),
    };

    private static string Num(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Short(string? id) => id is null ? "none" : id.Length > 23 ? id[..23] + "…" : id;
}

/// <summary>The apply step of <c>rtt up --once</c>.</summary>
public static class ApplyStep
{
    public static async Task<JsonObject> RunAsync(Silo.Hosting.RttSilo silo)
    {
        var plan = RttWorkspace.ReadObject(Path.Combine(new PlanStore(silo.Workspace).Directory, "proposed.json"));
        var (report, _) = await ApplyCommands.Send(silo.Grains, silo.Workspace, plan);
        var phases = string.Join(", ", report.Phases.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Phase} {p.Milliseconds:0.0} ms")));
        return new JsonObject
        {
            ["step"] = "apply",
            ["status"] = report.Outcome is "applied" or "unchanged" ? "ok" : "fail",
            ["detail"] = $"{report.Outcome} by 2PC as tx {report.Tx} ({phases}){(report.Reason.Length > 0 ? $": {report.Reason}" : "")}; WAL {report.WalSize} entries, root {report.WalRoot}",
            ["outcome"] = ApplyCommands.ReportJson(report),
        };
    }
}
