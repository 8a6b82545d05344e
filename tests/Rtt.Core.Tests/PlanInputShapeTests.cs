using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Rtt.Core.Json;
using Rtt.Planning;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>
/// The planner's fast shape check of routes.json and topology.json never calls valid what the schema refuses, and
/// does call the usual documents valid (so the schema is not evaluated for them).
/// </summary>
public sealed class PlanInputShapeTests
{
    private static bool SchemaSays(Lazy<global::Json.Schema.JsonSchema> schema, JsonObject doc)
    {
        using var parsed = JsonDocument.Parse(CanonicalJson.SerializeByRoundTrip(doc));
        try
        {
            SchemaValidator.Validate(schema, parsed.RootElement, "x");
            return true;
        }
        catch (Rtt.Core.Errors.RttException)
        {
            return false;
        }
    }

    private static readonly JsonNode?[] Odd =
    [
        null, "", "x", "rtt://a/b/c", "rtt://A/b/c", "rtt://a/b/", "rtt://a-/b/c.d_e-f", "rtt://-a/b/c", "rtt://a/b/c\n", "rtt://a/b/c/d", "rtt://é/b/c", "1.0.0", "\ud800",
        0, 1, -1, 9, 10, 1.5, 1.0, 0.0, -0.5, 1e300, long.MaxValue, true, new JsonObject(), new JsonArray(), "n0", "n.0_-x", "_n", new string('a', 64), new string('a', 65),
    ];

    private static JsonNode? Pick(Random rnd) => Odd[rnd.Next(Odd.Length)]?.DeepClone();

    private static JsonObject Routes(Random rnd)
    {
        var routes = new JsonArray();
        for (var i = rnd.Next(4); i > 0; i--)
        {
            var r = new JsonObject { ["from"] = "rtt://a/b/c", ["to"] = "rtt://a-1/b2/C.d_e-f" };
            if (rnd.Next(2) == 0) r["version"] = "^1.0.0";
            if (rnd.Next(2) == 0) r["qos"] = new JsonObject { ["p99_budget_us"] = 10, ["rate_hz"] = 0, ["priority"] = 9 };
            switch (rnd.Next(8))
            {
                case 0: r[new[] { "from", "to", "version", "extra" }[rnd.Next(4)]] = Pick(rnd); break;
                case 1: r.Remove(rnd.Next(2) == 0 ? "from" : "to"); break;
                case 2: r["qos"] = new JsonObject { [new[] { "p99_budget_us", "rate_hz", "priority", "other" }[rnd.Next(4)]] = Pick(rnd) }; break;
                case 3: r["qos"] = Pick(rnd); break;
            }

            routes.Add(rnd.Next(20) == 0 ? Pick(rnd) : r);
        }

        var doc = new JsonObject { ["routes"] = routes };
        if (rnd.Next(10) == 0) doc["extra"] = 1;
        if (rnd.Next(20) == 0) doc["routes"] = Pick(rnd);
        return doc;
    }

    private static JsonObject Topology(Random rnd)
    {
        var hosts = new JsonArray();
        for (var i = rnd.Next(3); i > 0; i--)
        {
            var nodes = new JsonArray();
            for (var j = rnd.Next(3); j > 0; j--)
            {
                var n = new JsonObject { ["id"] = $"n{j}", ["cpu_millis"] = 1000, ["memory_mb"] = 512.5 };
                if (rnd.Next(3) == 0) n[new[] { "id", "cpu_millis", "memory_mb", "other" }[rnd.Next(4)]] = Pick(rnd);
                nodes.Add(n);
            }

            var h = new JsonObject { ["name"] = $"h{i}", ["numa_nodes"] = nodes };
            if (rnd.Next(6) == 0) h[new[] { "name", "numa_nodes", "x" }[rnd.Next(3)]] = Pick(rnd);
            hosts.Add(h);
        }

        var doc = new JsonObject { ["hosts"] = hosts };
        if (rnd.Next(6) == 0) doc["lanes"] = new JsonObject { ["shm"] = new JsonObject { ["p99_us"] = 5 } };
        if (rnd.Next(10) == 0) doc.Remove("hosts");
        return doc;
    }

    [Fact]
    public void Routes_called_valid_are_valid_by_the_schema()
    {
        var fast = 0;
        Gen.Int.Sample(seed =>
        {
            var doc = Routes(new Random(seed));
            if (InputShape.SurelyValidRoutes(doc))
            {
                fast++;
                Assert.True(SchemaSays(SchemaValidator.Routes, doc), doc.ToJsonString());
            }
        }, iter: 3000, threads: 1);
        Assert.True(fast > 100, $"only {fast} documents took the fast path");
    }

    [Fact]
    public void The_members_the_shape_walk_reads_are_the_ones_the_planner_reads_of_each_route()
    {
        // The planner takes each surely valid route's members from the shape's walk (one walk, not two): they must be what
        // RouteKey.Of reads, for nodes made in code and for nodes parsed from text (numbers backed by their JSON text).
        var fast = 0;
        Gen.Int.Sample(seed =>
        {
            var rnd = new Random(seed);
            var made = Routes(rnd);
            foreach (var route in (made["routes"] as JsonArray ?? []).OfType<JsonObject>())
            {
                if (route["qos"] is JsonObject qos && rnd.Next(2) == 0)
                {
                    qos["p99_budget_us"] = new[] { 1500, 0.25, 1e6, 3 }[rnd.Next(4)];
                    qos["rate_hz"] = new[] { 0, 100, 2.5 }[rnd.Next(3)];
                }
            }

            foreach (var doc in new[] { made, JsonNode.Parse(made.ToJsonString())!.AsObject() })
            {
                if (InputShape.SurelyValidRoutes(doc, out var keys))
                {
                    fast++;
                    var routes = doc["routes"]!.AsArray();
                    Assert.Equal(routes.Count, keys!.Length);
                    for (var i = 0; i < routes.Count; i++)
                    {
                        Assert.Equal(PlanCanonical.RouteKey.Of(routes[i]!.AsObject()), keys[i]);
                    }
                }
                else
                {
                    Assert.Null(keys);
                }
            }
        }, iter: 3000, threads: 1);
        Assert.True(fast > 200, $"only {fast} documents took the fast path");
    }

    [Fact]
    public void Many_routes_walked_in_two_halves_give_each_routes_members_and_a_fault_in_either_half_is_seen()
    {
        // From Parts.From routes the walk runs in two halves on two threads; parsed documents too (their nodes are made
        // when first read, here by both threads at once).
        var count = Parts.From + 1_001;
        var made = new JsonObject
        {
            ["routes"] = new JsonArray([.. Enumerable.Range(0, count).Select(i => (JsonNode)new JsonObject
            {
                ["from"] = $"rtt://big/svc/s{i}",
                ["to"] = $"rtt://big/svc/s{(i * 7) % count}",
                ["version"] = "^1.0.0",
                ["qos"] = new JsonObject { ["p99_budget_us"] = 100 + i, ["rate_hz"] = i % 3 == 0 ? 2.5 : 1000, ["priority"] = i % 3 },
            })]),
        };
        foreach (var doc in new[] { made, JsonNode.Parse(made.ToJsonString())!.AsObject() })
        {
            Assert.True(InputShape.SurelyValidRoutes(doc, out var keys));
            var routes = doc["routes"]!.AsArray();
            Assert.Equal(count, keys!.Length);
            for (var i = 0; i < count; i++)
            {
                Assert.Equal(PlanCanonical.RouteKey.Of(routes[i]!.AsObject()), keys[i]);
            }
        }

        foreach (var at in new[] { 3, count / 2, count - 1 })
        {
            var odd = JsonNode.Parse(made.ToJsonString())!.AsObject();
            odd["routes"]![at]!["extra"] = 1; // not in the schema: not surely valid, wherever it is
            Assert.False(InputShape.SurelyValidRoutes(odd, out var none));
            Assert.Null(none);
        }
    }

    [Fact]
    public void Topologies_called_valid_are_valid_by_the_schema()
    {
        var fast = 0;
        Gen.Int.Sample(seed =>
        {
            var doc = Topology(new Random(seed));
            if (InputShape.SurelyValidTopology(doc))
            {
                fast++;
                Assert.True(SchemaSays(SchemaValidator.Topology, doc), doc.ToJsonString());
            }
        }, iter: 3000, threads: 1);
        Assert.True(fast > 100, $"only {fast} documents took the fast path");
    }

    private static JsonObject Policy(Random rnd)
    {
        var doc = new JsonObject();
        if (rnd.Next(2) == 0) doc["strict"] = rnd.Next(2) == 0;
        if (rnd.Next(3) == 0) doc["auto_replan"] = true;
        var acl = new JsonArray();
        for (var i = rnd.Next(4); i > 0; i--)
        {
            var rule = new JsonObject { ["from"] = "rtt://ui/**", ["to"] = "rtt://core/api/*" };
            var entry = new JsonObject { [rnd.Next(2) == 0 ? "allow" : "deny"] = rule };
            switch (rnd.Next(8))
            {
                case 0: rule[new[] { "from", "to", "other" }[rnd.Next(3)]] = Pick(rnd); break;
                case 1: rule.Remove(rnd.Next(2) == 0 ? "from" : "to"); break;
                case 2: entry[new[] { "allow", "deny", "other" }[rnd.Next(3)]] = new JsonObject { ["from"] = "a", ["to"] = "b" }; break;
                case 3: entry.Clear(); break;
            }

            acl.Add(rnd.Next(20) == 0 ? Pick(rnd) : entry);
        }

        if (rnd.Next(4) != 0) doc["acl"] = acl;
        if (rnd.Next(2) == 0)
        {
            var q = new JsonObject { ["match"] = "rtt://core/**", ["p99_budget_us"] = 1500 };
            if (rnd.Next(4) == 0) q[new[] { "match", "p99_budget_us", "other" }[rnd.Next(3)]] = Pick(rnd);
            if (rnd.Next(8) == 0) q.Remove("match");
            doc["qos"] = new JsonArray(q);
        }

        if (rnd.Next(2) == 0) doc["pins"] = new JsonObject { ["rtt://core/api/upper"] = rnd.Next(6) == 0 ? Pick(rnd) : "node0" };
        if (rnd.Next(8) == 0) doc[new[] { "strict", "auto_replan", "acl", "qos", "pins", "slo", "unsandboxed", "other" }[rnd.Next(8)]] = Pick(rnd);
        return doc;
    }

    [Fact]
    public void Policies_called_valid_are_valid_by_the_schema()
    {
        var (fast, refused) = FastWalk.Compare(Policy, InputShape.SurelyValidPolicy, doc => SchemaSays(SchemaValidator.Policy, doc), doc => doc.ToJsonString());
        Assert.True(fast > 500, $"only {fast} policies took the fast path");
        Assert.True(refused > 300, $"only {refused} generated policies were invalid");
    }

    [Fact]
    public void Parsed_documents_take_the_fast_path_and_bad_ones_keep_their_schema_error()
    {
        Assert.True(InputShape.SurelyValidRoutes(JsonNode.Parse("""{"routes":[{"from":"rtt://a/b/c","to":"rtt://a/b/d","version":"^1.0.0","qos":{"p99_budget_us":1500,"rate_hz":1000,"priority":2}}]}""")!.AsObject()));
        Assert.True(InputShape.SurelyValidTopology(JsonNode.Parse("""{"hosts":[{"name":"h","numa_nodes":[{"id":"node0","cpu_millis":1000,"memory_mb":2048}]}]}""")!.AsObject()));
        var quickstartPolicy = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "examples", "quickstart", "rtt", "policy.json");
        Assert.True(InputShape.SurelyValidPolicy(JsonNode.Parse(File.ReadAllText(quickstartPolicy))!.AsObject()));
        var badPolicy = JsonNode.Parse("""{"acl":[{"allow":{"from":"rtt://a/**"}}]}""")!.AsObject();
        var policyError = Assert.Throws<Rtt.Core.Errors.RttException>(() => PlanInputs.Build(new JsonObject { ["routes"] = new JsonArray() }, badPolicy, new JsonObject { ["hosts"] = new JsonArray() }, [], null));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanInputInvalid, policyError.Code);
        Assert.Contains("/acl/0/allow", policyError.Location, StringComparison.Ordinal);
        var bad = JsonNode.Parse("""{"routes":[{"from":"rtt://a/b/c","to":"rtt://a/b/d","qos":{"priority":12}}]}""")!.AsObject();
        var error = Assert.Throws<Rtt.Core.Errors.RttException>(() => PlanInputs.Build(bad, new JsonObject(), new JsonObject { ["hosts"] = new JsonArray() }, [], null));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanInputInvalid, error.Code);
        Assert.Contains("/routes/0/qos/priority", error.Location, StringComparison.Ordinal);
    }
}

/// <summary>
/// The fast shape check of symbol manifests never calls valid what manifest.schema.json refuses, calls the usual
/// manifests valid, and a bad manifest still gets the schema's error naming the member.
/// </summary>
public sealed class ManifestShapeTests
{
    private static readonly JsonNode?[] Odd =
    [
        null, "", "x", "rtt://a/b/c", "rtt://A/b/c", "rtt://a/b/", "rtt://a-/b/c.d_e-f", "rtt://-a/b/c", "rtt://a/b/c\n", "rtt://a/b/c/d", "rtt://é/b/c", "1.0.0",
        0, 1, -1, 1.5, -0.5, 1e300, long.MaxValue, true, false, new JsonObject(), new JsonArray(), new JsonArray("shm"), new JsonArray("shm", "shm"),
        new JsonArray("shm", "uds", "tcp"), new JsonArray("rdma"), new JsonArray(1), new JsonObject { ["cpu_millis"] = 1 }, new JsonObject { ["cpu"] = 1 },
        new JsonObject { ["memory_mb"] = -1 }, new JsonObject { ["cpu_millis"] = "1" }, "rtt.types/Text",
    ];

    private static readonly string[] Members =
        ["address", "version", "input", "output", "description", "compatible_with", "lanes", "latency_us", "demand", "serve", "sign", "x-note", "other"];

    private static JsonObject Manifest(Random rnd)
    {
        var m = new JsonObject
        {
            ["address"] = "rtt://load/src-1/i1.a_b-C",
            ["version"] = "1.0.0",
            ["input"] = "rtt.types/Text",
            ["output"] = rnd.Next(2) == 0 ? "rtt.types/Text" : new JsonObject { ["type"] = "object" },
        };
        if (rnd.Next(2) == 0) m["description"] = "load test";
        if (rnd.Next(2) == 0) m["lanes"] = new JsonArray("shm", "uds", "tcp");
        if (rnd.Next(2) == 0) m["latency_us"] = rnd.Next(3) == 0 ? 0.5 : 50;
        if (rnd.Next(2) == 0) m["demand"] = new JsonObject { ["cpu_millis"] = 1, ["memory_mb"] = 16.5 };
        if (rnd.Next(3) == 0) m["compatible_with"] = new JsonArray("^1.0.0");
        if (rnd.Next(3) == 0) m["serve"] = new JsonObject { ["kind"] = "process", ["command"] = new JsonArray("cat") };
        if (rnd.Next(4) == 0) m["sign"] = new JsonObject { ["key_id"] = "k" };
        for (var i = rnd.Next(3); i > 0; i--)
        {
            switch (rnd.Next(3))
            {
                case 0: m[Members[rnd.Next(Members.Length)]] = Odd[rnd.Next(Odd.Length)]?.DeepClone(); break;
                case 1: m.Remove(Members[rnd.Next(Members.Length)]); break;
            }
        }

        return m;
    }

    private static bool SchemaSays(JsonElement root)
    {
        try
        {
            SchemaValidator.Validate(SchemaValidator.Manifest, root, "x");
            return true;
        }
        catch (Rtt.Core.Errors.RttException)
        {
            return false;
        }
    }

    [Fact]
    public void Manifests_called_valid_are_valid_by_the_schema()
    {
        var (fast, refused) = FastWalk.Compare(rnd => JsonDocument.Parse(Manifest(rnd).ToJsonString()), doc => ManifestShape.SurelyValid(doc.RootElement),
            doc => SchemaSays(doc.RootElement), doc => doc.RootElement.GetRawText());
        Assert.True(fast > 500, $"only {fast} manifests took the fast path");
        Assert.True(refused > 300, $"only {refused} generated manifests were invalid: the mutations do not reach the schema's edges");
    }

    [Fact]
    public void Workspace_manifests_take_the_fast_path_and_a_bad_one_keeps_its_schema_error()
    {
        var examples = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "examples", "quickstart", "rtt", "manifests");
        var files = Directory.GetFiles(examples, "*.json");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            Assert.True(ManifestShape.SurelyValid(doc.RootElement), file);
        }

        var bad = """{"address":"rtt://a/b/c","version":"1.0.0","input":"t","output":"t","demand":{"cpu_millis":-1}}"""u8.ToArray();
        var error = Assert.Throws<Rtt.Core.Errors.RttException>(() => Sources.Manifest(bad, "bad.json"));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.SchemaViolation, error.Code);
        Assert.Contains("/demand/cpu_millis", error.Location, StringComparison.Ordinal);
    }
}

/// <summary>A fast "surely valid" walk against its schema on 3,000 random documents.</summary>
internal static class FastWalk
{
    /// <summary>Every document the walk calls valid must be valid by the schema; returns how many took the walk and how many the schema refused.</summary>
    public static (int Fast, int Refused) Compare<T>(Func<Random, T> make, Func<T, bool> walk, Func<T, bool> schema, Func<T, string> show)
    {
        var (fast, refused) = (0, 0);
        Gen.Int.Sample(seed =>
        {
            var doc = make(new Random(seed));
            try
            {
                if (walk(doc))
                {
                    fast++;
                    Assert.True(schema(doc), show(doc));
                }
                else if (!schema(doc))
                {
                    refused++;
                }
            }
            finally
            {
                (doc as IDisposable)?.Dispose();
            }
        }, iter: 3000, threads: 1);
        return (fast, refused);
    }
}
