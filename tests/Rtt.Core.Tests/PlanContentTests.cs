using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>
/// <see cref="Planner.Content"/> makes a plan's plan_id and its signed bytes from one serialization: both must be
/// exactly what <see cref="Planner.PlanId"/> and <see cref="ObjectSigner.SigningPayload"/> make on their own, wherever
/// plan_id sorts among the members, with or without a sign block, and on objects the direct writer leaves to the
/// reference path. The plan's file form made from those bytes (<see cref="PlanContent.Pretty"/>) is the one
/// <see cref="Rtt.Core.Json.PrettyJson.ToUtf8"/> makes.
/// </summary>
public sealed class PlanContentTests
{
    [Fact]
    public void A_signed_plan_from_the_planner_gives_the_same_id_and_payload_and_its_signature_verifies()
    {
        using var key = SigningKey.Generate();
        var plan = Planner.Manual(key, null, [("rtt://a/x", "rtt://b/y", "node0"), ("rtt://c/z", "rtt://d/w", "node1")]);
        var content = Planner.Content(plan);
        Assert.Equal((string?)plan["plan_id"], content.PlanId);
        Assert.Equal(ObjectSigner.SigningPayload(plan), content.SigningPayload);
        Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(plan), content.Pretty(plan));
        var dir = Directory.CreateTempSubdirectory("rtt-plan-content-").FullName;
        try
        {
            TrustStore.WriteTrustedKey(dir, "k", key.PublicKey);
            var trust = TrustStore.Load(dir);
            Assert.Equal(key.KeyId, trust.Verify(plan, content.SigningPayload));

            // A payload that is not the plan's does not verify.
            plan["lanes"]!.AsArray().RemoveAt(0);
            Assert.Throws<SigningException>(() => trust.Verify(plan, Planner.Content(plan).SigningPayload));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("{\"plan_id\":\"x\"}")]
    [InlineData("{\"plan_id\":\"x\",\"sign\":{\"sig\":\"s\"}}")]
    [InlineData("{\"a\":1,\"plan_id\":\"x\"}")]
    [InlineData("{\"plan_id\":\"x\",\"z\":[1,2]}")]
    [InlineData("{\"a\":{\"plan_id\":\"inner\"},\"plan_id\":\"x\",\"plan_idx\":true,\"plan\":null}")]
    [InlineData("{\"a\":1}")]
    [InlineData("{}")]
    [InlineData("{\"sign\":{\"sig\":\"s\"},\"b\":\"é\\u0001\",\"plan_id\":\"x\"}")]
    [InlineData("{\"f\":1.5,\"plan_id\":\"x\",\"e\":1e3}")]
    [InlineData("{\"sign\":null,\"t\":1,\"plan_id\":\"x\"}")]
    [InlineData("{\"sign\":{\"b\":[1,{\"a\":\"\\u00e9\"}]},\"si\":0,\"signs\":0}")]
    public void Id_and_payload_are_those_made_separately(string json)
    {
        var plan = (JsonObject)JsonNode.Parse(json)!;
        var content = Planner.Content(plan);
        Assert.Equal(Planner.PlanId(plan), content.PlanId);
        Assert.Equal(ObjectSigner.SigningPayload(plan), content.SigningPayload);
        Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(plan), content.Pretty(plan));
    }

    [Fact]
    public void Random_objects_give_the_same_id_and_payload()
    {
        var random = new Random(20261203);
        string[] names = ["a", "base", "lanes", "plan", "plan_id", "plan_idz", "placement", "sign", "z", "Ä", "p"];
        for (var n = 0; n < 2000; n++)
        {
            var plan = new JsonObject();
            foreach (var name in names.OrderBy(_ => random.Next()).Take(random.Next(names.Length + 1)))
            {
                plan[name] = Value(random, 0);
            }

            var content = Planner.Content(plan);
            Assert.Equal(Planner.PlanId(plan), content.PlanId);
            Assert.Equal(ObjectSigner.SigningPayload(plan), content.SigningPayload);
            Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(plan), content.Pretty(plan)); // the plan's file form, sign put back in place
        }
    }

    [Fact]
    public void Plain_canonical_texts_are_indented_byte_by_byte_as_the_document_writer_indents_them()
    {
        // PrettyJson.TryFromCanonical (no document) against PrettyJson.ToUtf8 (a document written indented), on random
        // printable-ASCII values, and with a member put in its place among an object's members (as a plan's sign).
        var random = new Random(20261204);
        string[] names = ["", "a", "base", "lanes", "plan_id", "placement", "sign", "signs", "si", "z", "A", "_", "a b", "~"];
        var shown = 0;
        for (var n = 0; n < 3000; n++)
        {
            var value = n % 3 == 0 ? Value(random, 0) : Object(random, names);
            if (value is null)
            {
                continue; // the file form is of a node
            }

            var canonical = Rtt.Core.Json.CanonicalJson.Serialize(value);
            var expected = Rtt.Core.Json.PrettyJson.ToUtf8(value.DeepClone());
            Assert.True(Rtt.Core.Json.PrettyJson.TryFromCanonical(canonical, null, default, out var pretty) || canonical.Contains((byte)'\\'));
            if (pretty is not null)
            {
                shown++;
                Assert.Equal(System.Text.Encoding.UTF8.GetString(expected), System.Text.Encoding.UTF8.GetString(pretty));
            }

            if (value is JsonObject obj && !obj.ContainsKey("sign"))
            {
                var sign = Value(random, 1);
                var withSign = (JsonObject)obj.DeepClone();
                withSign["sign"] = sign?.DeepClone();
                if (Rtt.Core.Json.PrettyJson.TryFromCanonical(canonical, "sign", Rtt.Core.Json.CanonicalJson.Serialize(sign), out var signed))
                {
                    Assert.Equal(System.Text.Encoding.UTF8.GetString(Rtt.Core.Json.PrettyJson.ToUtf8(withSign)), System.Text.Encoding.UTF8.GetString(signed));
                }
            }
        }

        Assert.True(shown > 1200, $"{shown} texts indented without a document");
        Assert.False(Rtt.Core.Json.PrettyJson.TryFromCanonical("{\"a\":\"\u00e9\"}"u8, null, default, out _)); // not ASCII
        Assert.False(Rtt.Core.Json.PrettyJson.TryFromCanonical("{\"a\":\"x\\\"y\"}"u8, null, default, out _)); // an escape
        Assert.False(Rtt.Core.Json.PrettyJson.TryFromCanonical("[1]"u8, "sign", "1"u8, out _)); // a member for a non-object
    }

    [Fact]
    public void A_canonical_text_gives_the_id_and_payload_of_its_parsed_plan_and_any_other_text_the_same_through_the_tree()
    {
        // Planner.Content(plan, text) cuts sign and plan_id out of a plain canonical text (the silo's apply): the same
        // id and bytes as serializing the parsed plan, with sign and plan_id anywhere, nested members of those names,
        // and structural characters inside strings; a text that is not canonical goes through the tree.
        var random = new Random(20261205);
        string[] names = ["a", "base", "lanes", "plan", "plan_id", "plan_idz", "placement", "sig", "sign", "signs", "z", "~"];
        var shown = 0;
        for (var n = 0; n < 3000; n++)
        {
            var plan = new JsonObject();
            foreach (var name in names.OrderBy(_ => random.Next()).Take(random.Next(names.Length + 1)))
            {
                plan[name] = Plain(random, 0, names);
            }

            var canonical = Rtt.Core.Json.CanonicalJson.Serialize(plan);
            var parsed = (JsonObject)JsonNode.Parse(canonical)!;
            var expected = Planner.Content(parsed);
            shown += Rtt.Core.Json.CanonicalJson.IsPlainCanonical(canonical) ? 1 : 0;
            foreach (var text in new[] { canonical, System.Text.Encoding.UTF8.GetBytes(parsed.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = n % 2 == 0 })) })
            {
                var content = Planner.Content(parsed, text);
                Assert.Equal(expected.PlanId, content.PlanId);
                Assert.Equal(expected.SigningPayload, content.SigningPayload);
            }
        }

        Assert.True(shown > 2500, $"{shown} plain texts");
    }

    // Values whose canonical text is plain (printable ASCII strings without escapes, integers), with the structural
    // characters a member scan must not take for structure inside strings.
    private static JsonNode? Plain(Random random, int depth, string[] names) => random.Next(depth > 2 ? 4 : 6) switch
    {
        0 => null,
        1 => JsonValue.Create(random.Next(-100000, 100000)),
        2 => JsonValue.Create(random.Next(4) switch { 0 => "", 1 => "x}],{[:y", 2 => "sign", _ => $"rtt://a/s{random.Next(100)}" }),
        3 => JsonValue.Create(random.Next(2) == 0),
        4 => new JsonArray([.. Enumerable.Range(0, random.Next(4)).Select(_ => Plain(random, depth + 1, names))]),
        _ => new JsonObject(names.OrderBy(_ => random.Next()).Take(random.Next(4)).Select(name => KeyValuePair.Create(name, Plain(random, depth + 1, names)))),
    };

    private static JsonObject Object(Random random, string[] names)
    {
        var obj = new JsonObject();
        foreach (var name in names.OrderBy(_ => random.Next()).Take(random.Next(names.Length + 1)))
        {
            obj[name] = Value(random, 0);
        }

        return obj;
    }

    private static JsonNode? Value(Random random, int depth) => random.Next(depth > 2 ? 4 : 6) switch
    {
        0 => null,
        1 => random.Next(4) == 0 ? JsonValue.Create(random.Next(-1000, 1000) / 8.0) : JsonValue.Create(random.Next(-1000, 1000)),
        2 => JsonValue.Create(random.Next(3) == 0 ? "x\"y,\"plan_id\":" : $"s{random.Next(100)}"),
        3 => JsonValue.Create(random.Next(2) == 0),
        4 => new JsonArray([.. Enumerable.Range(0, random.Next(3)).Select(_ => Value(random, depth + 1))]),
        _ => new JsonObject(Enumerable.Range(0, random.Next(4)).Select(i => KeyValuePair.Create(i == 0 ? "plan_id" : $"k{i}", Value(random, depth + 1)))),
    };
}
