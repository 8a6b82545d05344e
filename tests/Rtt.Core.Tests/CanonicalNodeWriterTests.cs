using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Rtt.Core.Json;

namespace Rtt.Core.Tests;

/// <summary>
/// The direct node writer (CanonicalJson.Serialize of a JsonNode) against the reference round trip it replaced
/// (System.Text.Json text, parsed and written canonically): the same bytes for random trees of built and parsed
/// values, so every hash and plan id stays what it was.
/// </summary>
public sealed class CanonicalNodeWriterTests
{
    private static readonly string[] Texts =
        ["", "a", "rtt://bench/svc/s1", "é€😀", "tab\there", "quote\"back\\slash", "\u0001\u001f", "line\nfeed", "\u2028", "<>&'", "ÿ", "z"];

    private static JsonNode? Value(Random rnd) => rnd.Next(14) switch
    {
        0 => null,
        1 => JsonValue.Create(rnd.Next(2) == 0),
        2 => JsonValue.Create(rnd.Next(int.MinValue, int.MaxValue)),
        3 => JsonValue.Create(rnd.NextInt64() >> rnd.Next(64)),
        4 => JsonValue.Create((1L << 53) + rnd.Next(-3, 4) * (rnd.Next(2) == 0 ? 1 : -1)),
        5 => JsonValue.Create(BitConverter.Int64BitsToDouble(rnd.NextInt64()) is var d && double.IsFinite(d) ? d : 0.5),
        6 => JsonValue.Create(Math.Round(rnd.NextDouble() * 10_000, rnd.Next(4))),
        7 => JsonValue.Create(rnd.Next(-1_000_000, 1_000_000) * Math.Pow(10, rnd.Next(-30, 30))),
        8 => JsonValue.Create((double)rnd.Next(-100_000, 100_000)),
        9 => JsonValue.Create(-0.0),
        10 => JsonValue.Create(rnd.Next(3) switch { 0 => 1e21, 1 => 1e-7, _ => 9007199254740993.0 }),
        11 => JsonValue.Create(1.5m), // another CLR type: falls back to the round trip
        _ => JsonValue.Create(Texts[rnd.Next(Texts.Length)] + Texts[rnd.Next(Texts.Length)]),
    };

    private static JsonNode? Tree(Random rnd, int depth)
    {
        if (depth > 4 || rnd.Next(3) == 0)
        {
            return Value(rnd);
        }

        if (rnd.Next(2) == 0)
        {
            var array = new JsonArray();
            for (var i = rnd.Next(5); i > 0; i--)
            {
                array.Add(Tree(rnd, depth + 1));
            }

            return array;
        }

        var obj = new JsonObject();
        for (var i = rnd.Next(6); i > 0; i--)
        {
            obj[Texts[rnd.Next(Texts.Length)] + rnd.Next(3)] = Tree(rnd, depth + 1);
        }

        return obj;
    }

    [Fact]
    public void Built_trees_give_the_round_trips_bytes()
    {
        Gen.Int.Sample(seed =>
        {
            var tree = Tree(new Random(seed), 0);
            Assert.Equal(Encoding.UTF8.GetString(CanonicalJson.SerializeByRoundTrip(tree)), Encoding.UTF8.GetString(CanonicalJson.Serialize(tree)));
        }, iter: 2000);
    }

    [Fact]
    public void Parsed_trees_give_the_round_trips_bytes()
    {
        Gen.Int.Sample(seed =>
        {
            var tree = Tree(new Random(seed), 0);
            var text = CanonicalJson.SerializeByRoundTrip(tree);
            // Parsed values keep their literal text (and escapes) as System.Text.Json read it: a mix of both kinds.
            var parsed = JsonNode.Parse(Encoding.UTF8.GetString(text).Replace("1.5", "1.50", StringComparison.Ordinal).Replace("\"a", "\"\\u0061", StringComparison.Ordinal));
            var mixed = new JsonObject { ["parsed"] = parsed, ["built"] = Tree(new Random(seed ^ 7), 0) };
            Assert.Equal(Encoding.UTF8.GetString(CanonicalJson.SerializeByRoundTrip(mixed)), Encoding.UTF8.GetString(CanonicalJson.Serialize(mixed)));
        }, iter: 2000);
    }

    [Fact]
    public void Literal_number_forms_give_the_round_trips_bytes()
    {
        foreach (var literal in new[] { "1.0", "1e2", "-0", "1E+30", "4.50", "2e-3", "9007199254740993", "-9007199254740992", "123456789012345678901234", "0.1", "1e-7", "333333333.33333329" })
        {
            var node = JsonNode.Parse($"{{\"n\":[{literal}]}}");
            Assert.Equal(Encoding.UTF8.GetString(CanonicalJson.SerializeByRoundTrip(node)), Encoding.UTF8.GetString(CanonicalJson.Serialize(node)));
        }
    }

    [Fact]
    public void A_lone_surrogate_is_the_same_error_as_before()
    {
        var node = new JsonObject { ["s"] = "a\ud800b" };
        var reference = Record.Exception(() => CanonicalJson.SerializeByRoundTrip(node));
        var direct = Record.Exception(() => CanonicalJson.Serialize(node));
        Assert.Equal(reference?.GetType(), direct?.GetType());
        Assert.Equal(reference?.Message, direct?.Message);
    }
}
