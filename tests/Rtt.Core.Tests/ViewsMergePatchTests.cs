using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Views;

namespace Rtt.Core.Tests;

public sealed class ViewsMergePatchTests
{
    // RFC 7386 Appendix A, every row: original, patch, result.
    [Theory]
    [InlineData("""{"a":"b"}""", """{"a":"c"}""", """{"a":"c"}""")]
    [InlineData("""{"a":"b"}""", """{"b":"c"}""", """{"a":"b","b":"c"}""")]
    [InlineData("""{"a":"b"}""", """{"a":null}""", """{}""")]
    [InlineData("""{"a":"b","b":"c"}""", """{"a":null}""", """{"b":"c"}""")]
    [InlineData("""{"a":["b"]}""", """{"a":"c"}""", """{"a":"c"}""")]
    [InlineData("""{"a":"c"}""", """{"a":["b"]}""", """{"a":["b"]}""")]
    [InlineData("""{"a":{"b":"c"}}""", """{"a":{"b":"d","c":null}}""", """{"a":{"b":"d"}}""")]
    [InlineData("""{"a":[{"b":"c"}]}""", """{"a":[1]}""", """{"a":[1]}""")]
    [InlineData("""["a","b"]""", """["c","d"]""", """["c","d"]""")]
    [InlineData("""{"a":"b"}""", """["c"]""", """["c"]""")]
    [InlineData("""{"a":"foo"}""", "null", "null")]
    [InlineData("""{"a":"foo"}""", "\"bar\"", "\"bar\"")]
    [InlineData("""{"e":null}""", """{"a":1}""", """{"e":null,"a":1}""")]
    [InlineData("[1,2]", """{"a":"b","c":null}""", """{"a":"b"}""")]
    [InlineData("{}", """{"a":{"bb":{"ccc":null}}}""", """{"a":{"bb":{}}}""")]
    public void Apply_matches_the_rfc_appendix(string original, string patch, string expected)
    {
        var result = JsonMergePatch.Apply(JsonNode.Parse(original), JsonNode.Parse(patch));
        Assert.Equal(CanonicalJson.ToCanonicalString(JsonNode.Parse(expected)), CanonicalJson.ToCanonicalString(result));
    }

    [Fact]
    public void Apply_matches_the_rfc_section_3_example_and_leaves_its_inputs_alone()
    {
        var target = JsonNode.Parse("""
            { "title": "Goodbye!", "author": { "givenName": "John", "familyName": "Doe" },
              "tags": [ "example", "sample" ], "content": "This will be unchanged" }
            """);
        var patch = JsonNode.Parse("""
            { "title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": { "familyName": null }, "tags": [ "example" ] }
            """);
        var before = CanonicalJson.ToCanonicalString(target);
        var result = JsonMergePatch.Apply(target, patch);
        var expected = JsonNode.Parse("""
            { "title": "Hello!", "author": { "givenName": "John" }, "tags": [ "example" ],
              "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890" }
            """);
        Assert.Equal(CanonicalJson.ToCanonicalString(expected), CanonicalJson.ToCanonicalString(result));
        Assert.Equal(before, CanonicalJson.ToCanonicalString(target));
    }

    [Theory]
    [InlineData("""{"a":1,"b":{"c":2,"d":[1]}}""", """{"a":1,"b":{"c":3},"e":"x"}""")]
    [InlineData("""{"a":{"b":{"c":1}}}""", """{"a":"flat"}""")]
    [InlineData("""{"a":"flat"}""", """{"a":{"b":{"c":1}}}""")]
    [InlineData("""{"x":[1,2]}""", """{"x":[1,2]}""")]
    public void Create_gives_a_patch_that_turns_source_into_target(string source, string target)
    {
        var s = JsonNode.Parse(source)!.AsObject();
        var t = JsonNode.Parse(target)!.AsObject();
        var patch = JsonMergePatch.Create(s, t);
        Assert.Equal(CanonicalJson.ToCanonicalString(t), CanonicalJson.ToCanonicalString(JsonMergePatch.Apply(s, patch)));
        if (source == target)
        {
            Assert.Empty(patch);
        }
    }
}
