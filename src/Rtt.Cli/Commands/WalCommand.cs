using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Reconciling.Wal;

namespace Rtt.Cli.Commands;

/// <summary>
/// <c>rtt wal root|export|proof|verify</c>: read the Merkle WAL straight from the workspace's state database
/// (works with the silo up or down; SQLite's WAL journal lets readers run beside the writer).
/// </summary>
public static class WalCommand
{
    public static Command Create()
    {
        var wal = new Command("wal", "Inspect and check the Merkle write-ahead log of applied plans");

        var rootJson = RttCommands.JsonOption();
        var root = new Command("root", "Print the log's size and Merkle root (RFC 6962)") { rootJson };
        root.SetAction(RttCommands.Guard((parse, _) =>
        {
            using var log = Open(parse);
            var (size, hash) = log.Current();
            if (parse.GetValue(rootJson))
            {
                Console.Out.Write(PrettyJson.ToText(RootJson(log)));
                return Task.FromResult(RttCommands.Ok);
            }

            Console.WriteLine($"WAL: {size} entries, root {hash}");
            if (log.Heads.Count > 0)
            {
                var head = log.Heads[^1];
                Console.WriteLine($"  last signed tree head: size {head.Size}, {head.Timestamp}, key {head.KeyId}");
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        var export = new Command("export", "Write every entry as one NDJSON line: {\"index\", \"leaf\" (base64 of the hashed bytes), \"entry\"}");
        export.SetAction(RttCommands.Guard((parse, _) =>
        {
            using var log = Open(parse);
            using var stdout = new StreamWriter(Console.OpenStandardOutput()) { NewLine = "\n", AutoFlush = false };
            foreach (var (index, leaf) in log.Read(0, log.Size))
            {
                stdout.WriteLine(ExportLine(index, leaf).ToJsonString());
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        var planIdArg = new Argument<string>("PLAN_ID") { Description = "The plan's id (sha256:…), as `rtt history` lists it" };
        var planOut = new Option<string?>("--out") { Description = "Write the plan to this file instead of standard output" };
        var plan = new Command("plan", "Rebuild a plan from the log alone (prepare entries carry whole plans or deltas on the applied one) and print it; `rtt plan verify` checks the result") { planIdArg, planOut };
        plan.SetAction(RttCommands.Guard((parse, _) =>
        {
            using var log = Open(parse);
            var id = parse.GetValue(planIdArg)!;
            var found = Rtt.Reconciling.PlanDelta.FromLog(log.Read(0, log.Size), id) ?? throw new RttException(ErrorCodes.WalPlanMissing,
                $"no prepare entry of the WAL holds plan {id}", id, "list the plans the log holds with `rtt history`");
            var text = PrettyJson.ToText(found);
            if (parse.GetValue(planOut) is { } path)
            {
                AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
            }
            else
            {
                Console.Out.Write(text);
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        var index = new Argument<long>("INDEX") { Description = "The entry (0-based)" };
        var size = new Option<long?>("--size") { Description = "The tree size the proof is for (default: the whole log)" };
        var inclusion = new Command("inclusion", "Print the audit path of an entry (RFC 6962 §2.1.1) as JSON") { index, size };
        inclusion.SetAction(RttCommands.Guard((parse, _) =>
        {
            using var log = Open(parse);
            Console.Out.Write(PrettyJson.ToText(InclusionJson(log, parse.GetValue(index), parse.GetValue(size) ?? log.Size)));
            return Task.FromResult(RttCommands.Ok);
        }));

        var first = new Argument<long>("M") { Description = "The older tree size" };
        var second = new Argument<long>("N") { Description = "The newer tree size" };
        var consistency = new Command("consistency", "Print the proof that the tree of size N extends the tree of size M (RFC 6962 §2.1.2) as JSON") { first, second };
        consistency.SetAction(RttCommands.Guard((parse, _) =>
        {
            using var log = Open(parse);
            var m = parse.GetValue(first);
            var n = parse.GetValue(second);
            var proof = log.ConsistencyProof(m, n);
            var (rootM, rootN) = (log.RootAt(m), log.RootAt(n));
            Check(Merkle.VerifyConsistency(m, n, rootM, rootN, proof), "consistency proof");
            Console.Out.Write(PrettyJson.ToText(new JsonObject
            {
                ["first"] = m,
                ["second"] = n,
                ["first_root"] = Convert.ToHexStringLower(rootM),
                ["second_root"] = Convert.ToHexStringLower(rootN),
                ["proof"] = new JsonArray([.. proof.Select(p => (JsonNode)Convert.ToHexStringLower(p))]),
            }));
            return Task.FromResult(RttCommands.Ok);
        }));

        var proof = new Command("proof", "Inclusion and consistency proofs") { inclusion, consistency };

        var verifyJson = RttCommands.JsonOption();
        var verify = new Command("verify", "Recompute every leaf and tree hash and check every signed tree head; name each fault") { verifyJson };
        verify.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            using var store = OpenStore(ws); // checking never writes rtt.db
            var report = WalVerifier.Verify(store, ws.LoadTrustStore(), WalAnchor.Of(ws));
            if (parse.GetValue(verifyJson))
            {
                Console.Out.Write(PrettyJson.ToText(new JsonObject
                {
                    ["ok"] = report.Ok,
                    ["size"] = report.Size,
                    ["root"] = report.Root,
                    ["heads_checked"] = report.HeadsChecked,
                    ["faults"] = new JsonArray([.. report.Faults.Select(f => (JsonNode)new JsonObject { ["where"] = f.Where, ["what"] = f.What })]),
                }));
            }
            else if (report.Ok)
            {
                Console.WriteLine($"WAL ok: {report.Size} entries, {report.HeadsChecked} signed tree head(s) verified, root {report.Root}");
            }
            else
            {
                foreach (var f in report.Faults)
                {
                    Console.Error.WriteLine($"fault {f.Where}: {f.What}");
                }

                Console.Error.WriteLine($"error {ErrorCodes.WalTampered}: {report.Faults.Count} fault(s) in {store.Location}");
                Console.Error.WriteLine($"  hint: {report.Hint}");
            }

            return Task.FromResult(report.Ok ? RttCommands.Ok : RttCommands.UserError);
        }));

        wal.Subcommands.Add(root);
        wal.Subcommands.Add(export);
        wal.Subcommands.Add(plan);
        wal.Subcommands.Add(proof);
        wal.Subcommands.Add(verify);
        return wal;
    }

    /// <summary>`rtt wal root --json`: the log's size and Merkle root (also the panel's /api/wal/root).</summary>
    public static JsonObject RootJson(WalLog log)
    {
        var (size, hash) = log.Current();
        return new JsonObject { ["size"] = size, ["root"] = hash };
    }

    /// <summary>One line of `rtt wal export`: the index, the hashed bytes in base64, the entry.</summary>
    public static JsonObject ExportLine(long index, byte[] leaf) =>
        new() { ["index"] = index, ["leaf"] = Convert.ToBase64String(leaf), ["entry"] = JsonNode.Parse(leaf) };

    /// <summary>`rtt wal proof inclusion INDEX --size N`: the audit path, checked here before it is shown.</summary>
    public static JsonObject InclusionJson(WalLog log, long i, long n)
    {
        var path = log.InclusionProof(i, n);
        var leafHash = log.LeafHashAt(i);
        var treeRoot = log.RootAt(n);
        Check(Merkle.VerifyInclusion(leafHash, i, n, path, treeRoot), "inclusion proof");
        return new JsonObject
        {
            ["index"] = i,
            ["size"] = n,
            ["leaf_hash"] = Convert.ToHexStringLower(leafHash),
            ["root"] = Convert.ToHexStringLower(treeRoot),
            ["path"] = new JsonArray([.. path.Select(p => (JsonNode)Convert.ToHexStringLower(p))]),
        };
    }

    /// <summary>The log opened read-only as the CLI opens it (the panel passes the silo's configuration).</summary>
    public static WalLog OpenLog(RttWorkspace ws, Microsoft.Extensions.Configuration.IConfiguration? configuration = null) =>
        WalLog.Open(OpenStore(ws, configuration), ws.LoadTrustStore(), WalAnchor.Of(ws));

    private static WalLog Open(ParseResult parse)
    {
        var ws = RttCommands.FindWorkspace(parse);
        return WalLog.Open(OpenStore(ws), ws.LoadTrustStore(), WalAnchor.Of(ws));
    }

    /// <summary>
    /// The workspace's SQLite database (read-only), or, when the configuration (appsettings.json, RTT_ variables) puts the
    /// silo in a PostgreSQL cluster (<c>Cluster:Provider=postgres</c>) or the WAL in PostgreSQL, that database's WAL.
    /// </summary>
    private static IWalStore OpenStore(RttWorkspace ws, Microsoft.Extensions.Configuration.IConfiguration? given = null)
    {
        var configuration = given ?? Rtt.Silo.Hosting.RttSiloHost.LoadConfiguration();
        if (Rtt.Silo.Hosting.RttClusterOptions.PostgresConnection(configuration) is { } cluster)
        {
            return PostgresWalStore.Open(cluster, create: false);
        }

        return string.Equals(configuration["Wal:Provider"], "postgres", StringComparison.OrdinalIgnoreCase) && configuration["Wal:ConnectionString"] is { Length: > 0 } wal
            ? PostgresWalStore.Open(wal, create: false)
            : SqliteWalStore.OpenReadOnly(ws.StateDatabasePath);
    }

    private static void Check(bool ok, string what)
    {
        if (!ok)
        {
            throw new InvalidOperationException($"the {what} just computed does not verify");
        }
    }
}
