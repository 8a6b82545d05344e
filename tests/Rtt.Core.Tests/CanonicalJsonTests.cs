using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Core.Tests;

public sealed class CanonicalJsonTests
{
    private static string Canon(string json) => Encoding.UTF8.GetString(CanonicalJson.Canonicalize(json));

    [Fact]
    public void Rfc8785_section_3_2_2_example()
    {
        const string input = """
            {
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }
            """;
        const string expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        Assert.Equal(expected, Canon(input));
    }

    [Fact]
    public void Rfc8785_section_3_2_3_sorts_by_utf16_code_units()
    {
        const string input = """
            {
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }
            """;
        var node = JsonNode.Parse(Canon(input))!.AsObject();
        var keys = node.Select(p => p.Key).ToArray();
        // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB33 by code unit (not by code point).
        Assert.Equal(["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"], keys);
    }

    // RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript form.
    [Theory]
    [InlineData(0x0000000000000000UL, "0")]
    [InlineData(0x8000000000000000UL, "0")]
    [InlineData(0x0000000000000001UL, "5e-324")]
    [InlineData(0x8000000000000001UL, "-5e-324")]
    [InlineData(0x7fefffffffffffffUL, "1.7976931348623157e+308")]
    [InlineData(0xffefffffffffffffUL, "-1.7976931348623157e+308")]
    [InlineData(0x4340000000000000UL, "9007199254740992")]
    [InlineData(0xc340000000000000UL, "-9007199254740992")]
    [InlineData(0x4430000000000000UL, "295147905179352830000")]
    [InlineData(0x44b52d02c7e14af5UL, "9.999999999999997e+22")]
    [InlineData(0x44b52d02c7e14af6UL, "1e+23")]
    [InlineData(0x44b52d02c7e14af7UL, "1.0000000000000001e+23")]
    [InlineData(0x444b1ae4d6e2ef4eUL, "999999999999999700000")]
    [InlineData(0x444b1ae4d6e2ef4fUL, "999999999999999900000")]
    [InlineData(0x444b1ae4d6e2ef50UL, "1e+21")]
    [InlineData(0x3eb0c6f7a0b5ed8cUL, "9.999999999999997e-7")]
    [InlineData(0x3eb0c6f7a0b5ed8dUL, "0.000001")]
    [InlineData(0x41b3de4355555553UL, "333333333.3333332")]
    [InlineData(0x41b3de4355555554UL, "333333333.33333325")]
    [InlineData(0x41b3de4355555555UL, "333333333.3333333")]
    [InlineData(0x41b3de4355555556UL, "333333333.3333334")]
    [InlineData(0x41b3de4355555557UL, "333333333.33333343")]
    [InlineData(0xbecbf647612f3696UL, "-0.0000033333333333333333")]
    [InlineData(0x43143ff3c1cb0959UL, "1424953923781206.2")]
    public void Rfc8785_appendix_b_numbers(ulong bits, string expected)
    {
        Assert.Equal(expected, CanonicalJson.FormatNumber(BitConverter.UInt64BitsToDouble(bits)));
    }

    [Theory]
    [InlineData("1e21", "1e+21")]
    [InlineData("1e20", "100000000000000000000")]
    [InlineData("-0", "0")]
    [InlineData("-0.0", "0")]
    [InlineData("5e-324", "5e-324")]
    [InlineData("0.1", "0.1")]
    [InlineData("1.5e-7", "1.5e-7")]
    [InlineData("123456789012", "123456789012")]
    [InlineData("100", "100")]
    [InlineData("1E-6", "0.000001")]
    public void Number_literals_take_their_ecmascript_form(string literal, string expected)
    {
        Assert.Equal(expected, Canon(literal));
    }

    [Theory]
    [InlineData("NaN")]
    [InlineData("-Infinity")]
    public void Non_finite_numbers_are_refused(string kind)
    {
        var value = kind == "NaN" ? double.NaN : double.NegativeInfinity;
        var ex = Assert.Throws<DocumentException>(() => CanonicalJson.FormatNumber(value));
        Assert.Equal(ErrorCodes.JsonNumberNotFinite, ex.Code);
    }

    [Fact]
    public void Number_beyond_double_range_is_refused()
    {
        var ex = Assert.Throws<DocumentException>(() => Canon("[1e400]"));
        Assert.Equal(ErrorCodes.JsonNumberNotFinite, ex.Code);
        Assert.Equal("$[0]", ex.Location);
    }

    [Fact]
    public void Nested_arrays_and_objects_are_sorted_at_every_level_and_lose_white_space()
    {
        const string input = """{ "b": [ [ 3, { "z": 1, "a": [ ] } ], { } ], "a": { "y": null, "x": "\u0007" } }""";
        Assert.Equal("{\"a\":{\"x\":\"\\u0007\",\"y\":null},\"b\":[[3,{\"a\":[],\"z\":1}],{}]}", Canon(input));
    }

    [Fact]
    public void Unicode_keys_and_values_are_written_as_utf8_not_escaped()
    {
        var bytes = CanonicalJson.Canonicalize("""{"clé":"\u00e9\ud83d\ude00<>&/"}""");
        Assert.Equal("{\"clé\":\"é😀<>&/\"}", Encoding.UTF8.GetString(bytes));
        Assert.Equal(Encoding.UTF8.GetBytes("{\"clé\":\"é😀<>&/\"}"), bytes);
    }

    [Fact]
    public void Duplicate_member_names_are_refused()
    {
        var ex = Assert.Throws<DocumentException>(() => Canon("""{"a":1,"b":2,"a":3}"""));
        Assert.Equal(ErrorCodes.JsonDuplicateKey, ex.Code);
    }

    [Fact]
    public void Lone_surrogate_is_refused()
    {
        var ex = Assert.Throws<DocumentException>(() => Canon("""["\ud800"]"""));
        Assert.Equal(ErrorCodes.JsonLoneSurrogate, ex.Code);
    }

    [Fact]
    public void Syntax_error_names_line_and_column()
    {
        var ex = Assert.Throws<DocumentException>(() => CanonicalJson.Canonicalize("{\n  \"a\": 1,\n  \"b\": tru\n}", "topology.json"));
        Assert.Equal(ErrorCodes.JsonInvalid, ex.Code);
        Assert.StartsWith("topology.json:3:", ex.Location);
    }

    [Fact]
    public void Member_order_and_white_space_do_not_change_the_hash()
    {
        var a = ContentHash.OfCanonical(JsonNode.Parse("""{"x":1,"y":[1,2],"z":{"b":true,"a":false}}"""));
        var b = ContentHash.OfCanonical(JsonNode.Parse("""{ "z" : { "a" : false , "b" : true } , "y" : [ 1 , 2.0 ] , "x" : 1e0 }"""));
        Assert.Equal(a, b);
        Assert.True(ContentHash.IsValid(a));
    }

    [Fact]
    public void Content_hash_is_sha256_of_the_canonical_bytes()
    {
        // sha256 of the 2 bytes "{}" - computed independently with `printf '{}' | sha256sum`.
        Assert.Equal("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", ContentHash.OfCanonical(new JsonObject()));
        Assert.Equal("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ContentHash.Of([]));
    }

    [Theory]
    [InlineData("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", true)]
    [InlineData("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", false)]
    [InlineData("sha256:e3b0", false)]
    [InlineData("md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false)]
    public void Hash_syntax_is_checked(string value, bool valid)
    {
        Assert.Equal(valid, ContentHash.IsValid(value));
    }

    [Fact]
    public void Canonical_form_does_not_depend_on_culture()
    {
        var saved = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = new System.Globalization.CultureInfo("de-DE");
            Assert.Equal("[1.5,1e-7]", Canon("[1.5, 1e-7]"));
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = saved;
        }
    }
}
