using System.Diagnostics;
using System.Text;

namespace Rtt.Cli.Tests;

/// <summary>The bad-input cases, by class. Each plants one hostile input in a fresh copy of the template workspace.</summary>
public static class BadInputs
{
    /// <summary>
    /// Cases that still fail, each a defect found by this suite and left open: run with RTT_BAD_INPUT_ALL=1 to include
    /// them. None at present.
    /// </summary>
    public static readonly HashSet<string> KnownGaps = Environment.GetEnvironmentVariable("RTT_BAD_INPUT_ALL") is "1" ? [] : [];

    /// <summary>Hostile document contents: name, bytes (null: a special file), the code any reader must give.</summary>
    private static IEnumerable<(string Name, Action<string> Plant, string Code)> Hostile(string rel)
    {
        (string, Action<string>, string) Bytes(string name, byte[] bytes, string code) => (name, ws => Write(ws, rel, bytes), code);
        (string, Action<string>, string) Text(string name, string text, string code) => Bytes(name, Encoding.UTF8.GetBytes(text), code);
        yield return Text("not JSON", "{", "RTT-JSON-001");
        yield return Text("trailing comma", "{\"a\":1,}", "RTT-JSON-001");
        yield return Text("comment", "{/* c */}", "RTT-JSON-001");
        yield return Text("empty file", "", "RTT-JSON-001");
        yield return Text("nesting 65", Nest(65), "RTT-JSON-001");
        yield return Text("nesting 256", Nest(256), "RTT-JSON-001");
        yield return Text("nesting 5000", Nest(5000), "RTT-JSON-001");
        yield return Text("duplicate key", "{\"a\":1,\"a\":2}", "RTT-JSON-003");
        yield return Text("lone surrogate", "{\"a\":\"\\ud800\"}", "RTT-JSON-004");
        yield return Bytes("invalid UTF-8", [.. "{\"a\":\""u8, 0xff, 0xfe, .. "\"}"u8], "RTT-JSON-001");
        yield return Text("NaN", "{\"a\":NaN}", "RTT-JSON-001");
        yield return Text("number beyond double", "{\"a\":1e999}", "RTT-JSON-002");
        yield return Text("top-level array", "[]", "RTT-");
        yield return Text("top-level null", "null", "RTT-");
        yield return Text("top-level string", "\"x\"", "RTT-");
        yield return Bytes("BOM then garbage", [0xEF, 0xBB, 0xBF, .. "garbage"u8], "RTT-JSON-001");
        yield return Bytes("NUL bytes", [0, 0, 0, 0], "RTT-JSON-001");
        yield return ("FIFO", ws => Fifo(Path.Combine(ws, rel)), "RTT-WS-006");
        yield return ("directory", ws => AsDirectory(Path.Combine(ws, rel)), "RTT-WS-006");
        yield return ("17 MiB", ws => Large(Path.Combine(ws, rel), 17L << 20), "RTT-WS-007");
    }

    private static readonly (string Class, string Rel, string[] Args, bool MayWrite)[] Documents =
    [
        ("planner inputs", ".rtt/routes.json", ["plan"], false),
        ("planner inputs", ".rtt/policy.json", ["plan"], false),
        ("planner inputs", ".rtt/topology.json", ["plan"], false),
        ("workspace settings", ".rtt/workspace.json", ["plan"], false),
        ("registry files", ".rtt/registry/index.json", ["cat", "summarize@1.0.0"], false),
        ("registry files", ".rtt/registry/symbols.json", ["plan"], false),
        ("keys and trust", ".rtt/registry/trust/revoked.json", ["keys", "list"], false),
        ("keys and trust", ".rtt/keys/default.key", ["plan"], false),
        ("keys and trust", ".rtt/registry/trust/keys/default.pub", ["keys", "list"], false),
        ("manifests", ".rtt/manifests/core.api.metrics.json", ["plan"], false),
        ("agents", "agents/common/summarize.agent.json", ["scan"], true),
        ("MCP tool lists", "mcp/everything.tools.json", ["scan"], true),
        ("plans", ".rtt/plans/proposed.json", ["plan", "verify", "{ws}/.rtt/plans/proposed.json"], false),
    ];

    public static IEnumerable<BadInput> All()
    {
        foreach (var (cls, rel, args, mayWrite) in Documents)
        {
            foreach (var (name, plant, code) in Hostile(rel))
            {
                yield return new BadInput(cls, $"{rel} {name}", plant, args, code, Path.GetFileName(rel), mayWrite);
            }
        }

        foreach (var c in WalCases())
        {
            yield return c;
        }

        foreach (var c in RegistryTamper())
        {
            yield return c;
        }

        foreach (var c in Cli())
        {
            yield return c;
        }

        foreach (var c in WrongKinds())
        {
            yield return c;
        }

        foreach (var c in Yaml())
        {
            yield return c;
        }

        foreach (var c in BadTokens.All())
        {
            yield return c;
        }
    }

    private static IEnumerable<BadInput> WalCases()
    {
        const string Cls = "WAL database";
        var verify = new[] { "wal", "verify" };
        foreach (var (name, plant, code) in Hostile(".rtt/state/wal-anchor.json"))
        {
            yield return new BadInput(Cls, $"anchor {name}", plant, verify, "RTT-WAL-002", "wal-anchor.json");
        }

        yield return new BadInput(Cls, "zero-byte rtt.db", ws => Write(ws, ".rtt/state/rtt.db", []), verify, "RTT-WAL-002", "anchor", MayWrite: true);
        yield return new BadInput(Cls, "rtt.db not SQLite", ws => Write(ws, ".rtt/state/rtt.db", "not a database, just text that is long enough to look like a header"u8.ToArray()), verify, "RTT-WAL-001", "rtt.db");
        yield return new BadInput(Cls, "rtt.db is a folder", ws => AsDirectory(Path.Combine(ws, ".rtt/state/rtt.db")), verify, "RTT-WAL-001", "rtt.db");
        yield return new BadInput(Cls, "entries after the first deleted", ws => Sql(ws, "DELETE FROM rtt_wal WHERE idx > 0; DELETE FROM rtt_wal_heads;"), verify, "RTT-WAL-002", "entries were removed");
        yield return new BadInput(Cls, "last entry deleted", ws => Sql(ws, "DELETE FROM rtt_wal WHERE idx = 3;"), verify, "RTT-WAL-002", "head at size 4");
        yield return new BadInput(Cls, "middle entry deleted", ws => Sql(ws, "DELETE FROM rtt_wal WHERE idx = 1;"), verify, "RTT-WAL-002", "entry 1");
        yield return new BadInput(Cls, "leaf byte changed", ws => Sql(ws, "UPDATE rtt_wal SET leaf = CAST(replace(CAST(leaf AS TEXT), 'test', 'tess') AS BLOB) WHERE idx = 2;"), verify, "RTT-WAL-002", "entry 2");
        yield return new BadInput(Cls, "leaf hash zeroed", ws => Sql(ws, "UPDATE rtt_wal SET leaf_hash = zeroblob(32) WHERE idx = 0;"), verify, "RTT-WAL-002", "entry 0");
        yield return new BadInput(Cls, "entry rewritten with its hash", ws => Rewrite(ws, 3, "{\"kind\":\"forged\"}"), verify, "RTT-WAL-002", "head at size 4");
        yield return new BadInput(Cls, "non-canonical entry with its hash", ws => Rewrite(ws, 3, "{\"n\":3, \"kind\":\"test\"}"), verify, "RTT-WAL-002", "canonical");
        yield return new BadInput(Cls, "entry not JSON with its hash", ws => Rewrite(ws, 1, "not json"), verify, "RTT-WAL-002", "entry 1");
        yield return new BadInput(Cls, "head signature changed", ws => Sql(ws, "UPDATE rtt_wal_heads SET head = replace(head, '\"timestamp\":\"1970', '\"timestamp\":\"1971') WHERE size = 2;"), verify, "RTT-WAL-002", "head at size 2");
        yield return new BadInput(Cls, "head root changed", ws => Sql(ws, "UPDATE rtt_wal_heads SET head = replace(head, '\"root\":\"', '\"root\":\"00') WHERE size = 3;"), verify, "RTT-WAL-002", "head at size 3");
        yield return new BadInput(Cls, "head not JSON", ws => Sql(ws, "UPDATE rtt_wal_heads SET head = 'x' WHERE size = 1;"), verify, "RTT-WAL-002", "head at size 1");
        yield return new BadInput(Cls, "head beyond the log", ws => Sql(ws, "INSERT INTO rtt_wal_heads (size, head) VALUES (99, '{}');"), verify, "RTT-WAL-002", "head at size 99");
        yield return new BadInput(Cls, "signer revoked", ws => Revoke(ws), verify, "RTT-WAL-002", "revoked", MayWrite: false);
        yield return new BadInput(Cls, "proof index out of range", _ => { }, ["wal", "proof", "inclusion", "99"], "RTT-WAL-004", "99");
        yield return new BadInput(Cls, "plan the log does not hold", _ => { }, ["wal", "plan", "sha256:0000000000000000000000000000000000000000000000000000000000000000"], "RTT-WAL-005", "sha256:0000");
        yield return new BadInput(Cls, "root of a workspace without a database", ws => File.Delete(Path.Combine(ws, ".rtt/state/rtt.db")), ["wal", "root"], "RTT-WAL-001", "rtt.db");
    }

    private static IEnumerable<BadInput> RegistryTamper()
    {
        const string Cls = "registry tampering";
        string Obj(string ws, string key) => Path.Combine(ws, ".rtt/registry/cas/sha256", Index(ws)[key][7..] + ".json");
        yield return new BadInput(Cls, "index entry points at another agent", ws => Point(ws, "summarize@1.0.0", "reviewer@1.0.0"), ["verify"], "RTT-REG-012", "summarize@1.0.0");
        yield return new BadInput(Cls, "cat of a forged index entry", ws => Point(ws, "summarize@1.0.0", "reviewer@1.0.0"), ["cat", "summarize@1.0.0"], "RTT-REG-012", "index.json");
        yield return new BadInput(Cls, "index entry points at a manifest", ws => Point(ws, "summarize@1.0.0", "rtt://core/api/metrics@1.2.0"), ["verify"], "RTT-REG-012", "summarize@1.0.0");
        yield return new BadInput(Cls, "index entry dangling", ws => Replace(ws, ".rtt/registry/index.json", Index(ws)["summarize@1.0.0"], "sha256:" + new string('a', 64)), ["verify"], "RTT-REG-001", "index.json");
        yield return new BadInput(Cls, "index entry not a hash", ws => Replace(ws, ".rtt/registry/index.json", Index(ws)["summarize@1.0.0"], "sha256:xyz"), ["verify"], "RTT-REG-008", "index.json");
        yield return new BadInput(Cls, "symbols entry swapped", ws => Replace(ws, ".rtt/registry/symbols.json", Index(ws)["summarize@1.0.0"], Index(ws)["reviewer@1.0.0"]), ["verify"], "RTT-REG-012", "symbols.json");
        yield return new BadInput(Cls, "symbols version invented", ws => Replace(ws, ".rtt/registry/symbols.json", "\"version\": \"1.2.0\"", "\"version\": \"9.9.9\""), ["verify"], "RTT-REG-012", "symbols.json");
        yield return new BadInput(Cls, "loose object byte changed", ws => File.AppendAllText(Obj(ws, "summarize@1.0.0"), " "), ["verify"], "RTT-REG-002", "sha256");
        yield return new BadInput(Cls, "loose object changed, cat", ws => File.AppendAllText(Obj(ws, "summarize@1.0.0"), " "), ["cat", "summarize@1.0.0"], "RTT-REG-002", "sha256");
        yield return new BadInput(Cls, "loose object signature changed", ws => Replace(ws, Path.GetRelativePath(ws, Obj(ws, "summarize@1.0.0")), "\"sig\":\"", "\"sig\":\"AA"), ["cat", "summarize@1.0.0"], "RTT-REG-002");
        yield return new BadInput(Cls, "pack byte flipped", ws => Flip(Path.Combine(ws, ".rtt/registry/pack/agents.pack"), 40), ["verify"], "RTT-REG-007", "agents.pack");
        yield return new BadInput(Cls, "pack truncated", ws => Truncate(Path.Combine(ws, ".rtt/registry/pack/agents.pack"), 20), ["verify"], "RTT-REG-007", "agents.pack");
        yield return new BadInput(Cls, "pack index truncated", ws => Truncate(Path.Combine(ws, ".rtt/registry/pack/index.lut"), 100), ["verify"], "RTT-REG-008", "index.lut");
        yield return new BadInput(Cls, "pack index byte flipped", ws => Flip(Path.Combine(ws, ".rtt/registry/pack/index.lut"), 2000), ["verify"], "RTT-REG-008", "index.lut");
        yield return new BadInput(Cls, "pack is a FIFO", ws => Fifo(Path.Combine(ws, ".rtt/registry/pack/agents.pack")), ["verify"], "RTT-REG-007", "agents.pack");
        yield return new BadInput(Cls, "stray file in the CAS", ws => File.WriteAllText(Path.Combine(ws, ".rtt/registry/cas/sha256/notahash.json"), "{}"), ["verify"], "RTT-REG-002", "notahash");
        yield return new BadInput(Cls, "MCP manifest signature changed", ws => Replace(ws, ".rtt/manifests/mcp.everything.json", "\"sig\": \"", "\"sig\": \"AA"), ["verify"], "RTT-SIGN-00", "mcp.everything.json");
        yield return new BadInput(Cls, "revoked.json kind unknown", ws => Write(ws, ".rtt/registry/trust/revoked.json", "{\"revoked\":[{\"key_id\":\"sha256:00\",\"kind\":\"maybe\"}]}"u8.ToArray()), ["verify"], "RTT-JSON-005", "kind");
    }

    /// <summary>A signed document whose "sign" member is not a sign block (issue 15, item 8): malformed, not "unsigned".</summary>
    private static IEnumerable<BadInput> WrongKinds()
    {
        var signed = new (string Class, string Rel, string[] Args)[]
        {
            ("plans", ".rtt/plans/proposed.json", ["plan", "verify", "{ws}/.rtt/plans/proposed.json"]),
            ("manifests", ".rtt/manifests/mcp.everything.json", ["verify"]),
        };
        foreach (var (cls, rel, args) in signed)
        {
            foreach (var (value, kind) in new[] { ("42", "a number"), ("\"x\"", "a string"), ("[]", "a list") })
            {
                yield return new BadInput(cls, $"{rel} sign member {kind}", ws =>
                {
                    var path = Path.Combine(ws, rel);
                    var doc = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
                    doc["sign"] = System.Text.Json.Nodes.JsonNode.Parse(value);
                    File.WriteAllText(path, doc.ToJsonString());
                }, args, "RTT-SIGN-005", Path.GetFileName(rel));
            }
        }
    }

    private static IEnumerable<BadInput> Cli()
    {
        const string Cls = "CLI arguments";
        (string, string[], string, string?)[] cases =
        [
            ("scan --bogus", ["scan", "--bogus"], "bogus", null),
            ("unknown command", ["nosuch"], "nosuch", null),
            ("cat without an object", ["cat"], "", null),
            ("cat a short hash", ["cat", "sha256:abc"], "RTT-REG-009", "sha256:abc"),
            ("cat an unknown ID", ["cat", "nosuch@1.0.0"], "RTT-REG-009", "nosuch@1.0.0"),
            ("cat an uppercase hash", ["cat", "sha256:" + new string('A', 64)], "RTT-REG-009", null),
            ("cat an absent hash", ["cat", "sha256:" + new string('0', 64)], "RTT-REG-001", null),
            ("keys new with a path", ["keys", "new", "../evil"], "RTT-KEY-005", "../evil"),
            ("keys new with a dot name", ["keys", "new", ".hidden"], "RTT-KEY-005", ".hidden"),
            ("keys new existing", ["keys", "new", "default"], "RTT-KEY-003", "default"),
            ("keys new empty name", ["keys", "new", ""], "RTT-KEY-005", null),
            ("keys revoke unknown", ["keys", "revoke", "nosuch"], "RTT-KEY-004", "nosuch"),
            ("keys trust missing file", ["keys", "trust", "/nonexistent/x.pub"], "RTT-KEY-001", "x.pub"),
            ("keys rotate with a path", ["keys", "rotate", "a/b"], "RTT-KEY-005", "a/b"),
            ("keys rotate existing", ["keys", "rotate", "default"], "RTT-KEY-003", "default"),
            ("workspace that does not exist", ["verify", "--workspace", "/nonexistent/ws"], "RTT-WS-001", "/nonexistent/ws"),
            ("init over a workspace", ["init", "{ws}"], "RTT-WS-002", null),
            ("init unknown example", ["init", "--example", "nosuch", "{ws}/other"], "RTT-WS-005", "nosuch"),
            ("plan verify missing file", ["plan", "verify", "/nonexistent/plan.json"], "RTT-", "plan.json"),
            ("wal proof inclusion negative", ["wal", "proof", "inclusion", "-1"], "", null),
            ("wal proof consistency backwards", ["wal", "proof", "consistency", "3", "1"], "RTT-WAL-004", null),
            ("wal proof inclusion not a number", ["wal", "proof", "inclusion", "x"], "", null),
            ("mcp ingest unsafe name", ["mcp", "ingest", "--name", "../x", "--from", "mcp/everything.tools.json"], "RTT-MCP-004", "../x"),
            ("mcp ingest missing file", ["mcp", "ingest", "--name", "x", "--from", "/nonexistent/tools.json"], "RTT-", "tools.json"),
            ("view build unknown provider", ["view", "build", "--provider", "nosuch"], "RTT-VIEW-008", "nosuch"),
            ("view build unsafe env", ["view", "build", "--env", "../x"], "RTT-VIEW-00", null),
            ("scan outside the workspace", ["scan", "/"], "RTT-WS-", null),
            ("apply missing plan file", ["apply", "/nonexistent/plan.json"], "RTT-", "plan.json"),
        ];
        foreach (var (name, args, code, names) in cases)
        {
            yield return new BadInput(Cls, name, _ => { }, args, code, names);
        }
    }

    private static IEnumerable<BadInput> Yaml()
    {
        const string Cls = "YAML planner inputs";
        (string, string, string)[] docs =
        [
            ("unclosed flow", "routes: [unclosed", "RTT-REG-010"),
            ("duplicate key", "routes: []\nroutes: []\n", "RTT-JSON-003"),
            ("alias bomb", Bomb(), "RTT-REG-010"),
            ("nesting 100", string.Concat(Enumerable.Repeat("[", 100)) + string.Concat(Enumerable.Repeat("]", 100)), "RTT-"),
            ("mapping as key", "? [a, b]\n: 1\n", "RTT-REG-010"),
            ("not a mapping", "- a\n- b\n", "RTT-REG-010"),
            ("tab indentation", "routes:\n\t- a\n", "RTT-REG-010"),
        ];
        foreach (var file in new[] { "routes", "policy", "topology" })
        {
            foreach (var (name, text, code) in docs)
            {
                yield return new BadInput(Cls, $"{file}.yaml {name}", ws =>
                {
                    File.Delete(Path.Combine(ws, $".rtt/{file}.json"));
                    Write(ws, $".rtt/{file}.yaml", Encoding.UTF8.GetBytes(text));
                }, ["plan"], code, $"{file}.yaml");
            }

            yield return new BadInput(Cls, $"{file}.yaml invalid UTF-8", ws =>
            {
                File.Delete(Path.Combine(ws, $".rtt/{file}.json"));
                Write(ws, $".rtt/{file}.yaml", [.. "a: "u8, 0xff, 0xfe]);
            }, ["plan"], "RTT-REG-010", $"{file}.yaml");
            yield return new BadInput(Cls, $"{file}.yaml FIFO", ws =>
            {
                File.Delete(Path.Combine(ws, $".rtt/{file}.json"));
                Fifo(Path.Combine(ws, $".rtt/{file}.yaml"));
            }, ["plan"], "RTT-WS-006", $"{file}.yaml");
        }
    }

    private static string Bomb()
    {
        var sb = new StringBuilder("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (var i = 1; i < 9; i++)
        {
            sb.Append($"{(char)('a' + i)}: &{(char)('a' + i)} [");
            sb.Append(string.Join(", ", Enumerable.Repeat($"*{(char)('a' + i - 1)}", 10)));
            sb.Append("]\n");
        }

        return sb.ToString();
    }

    private static string Nest(int depth) => "{\"a\":" + string.Concat(Enumerable.Repeat("[", depth)) + string.Concat(Enumerable.Repeat("]", depth)) + "}";

    private static void Write(string ws, string rel, byte[] bytes)
    {
        var path = Path.Combine(ws, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
    }

    private static void Fifo(string path)
    {
        File.Delete(path);
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    private static void AsDirectory(string path)
    {
        File.Delete(path);
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "inside"), "x");
    }

    private static void Large(string path, long size)
    {
        using var f = new FileStream(path, FileMode.Create);
        f.SetLength(size); // sparse: cheap to make, and no reader may load it
    }

    private static void Flip(string path, int at)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[Math.Min(at, bytes.Length - 40)] ^= 0x55;
        File.WriteAllBytes(path, bytes);
    }

    private static void Truncate(string path, int length)
    {
        using var f = new FileStream(path, FileMode.Open);
        f.SetLength(length);
    }

    private static Dictionary<string, string> Index(string ws) =>
        System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Path.Combine(ws, ".rtt/registry/index.json")))!;

    private static void Point(string ws, string key, string to) => Replace(ws, ".rtt/registry/index.json", $"\"{key}\": \"{Index(ws)[key]}\"", $"\"{key}\": \"{Index(ws)[to]}\"");

    private static void Replace(string ws, string rel, string from, string to)
    {
        var path = Path.Combine(ws, rel);
        var text = File.ReadAllText(path);
        Assert.Contains(from, text, StringComparison.Ordinal);
        File.WriteAllText(path, text.Replace(from, to, StringComparison.Ordinal));
    }

    private static void Revoke(string ws)
    {
        var id = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ws, ".rtt/registry/trust/keys/default.pub")))!["key_id"]!.ToString();
        Write(ws, ".rtt/registry/trust/revoked.json", Encoding.UTF8.GetBytes($"{{\"revoked\":[{{\"key_id\":\"{id}\",\"reason\":\"test\",\"revoked_at\":\"2000-01-01T00:00:00Z\"}}]}}"));
    }

    private static void Rewrite(string ws, int index, string leaf)
    {
        var bytes = Encoding.UTF8.GetBytes(leaf);
        Sql(ws, $"UPDATE rtt_wal SET leaf = x'{Convert.ToHexString(bytes)}', leaf_hash = x'{Convert.ToHexString(Rtt.Reconciling.Wal.Merkle.LeafHash(bytes))}' WHERE idx = {index};");
    }

    /// <summary>Tamper cases through SQL may see the database written back: `rtt wal verify` re-creates the append-only triggers.</summary>
    private static void Sql(string ws, string sql)
    {
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(ws, ".rtt/state/rtt.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                DROP TRIGGER IF EXISTS rtt_wal_no_update; DROP TRIGGER IF EXISTS rtt_wal_no_delete;
                DROP TRIGGER IF EXISTS rtt_wal_heads_no_update; DROP TRIGGER IF EXISTS rtt_wal_heads_no_delete;
                {sql}
                """;
            command.ExecuteNonQuery();
        }
    }
}
