using System.Text;
using System.Text.Json;
using Rtt.Core.Errors;
using Rtt.Core.Json;

namespace Rtt.Core.Tests;

/// <summary>
/// <see cref="CanonicalJson.IsPlainCanonical"/>: the WAL's replay trusts its "true" without canonicalising the entry,
/// so a true for a text that is not canonical would let a changed entry through. Checked against the reference
/// (<see cref="CanonicalJson.Canonicalize(ReadOnlySpan{byte}, string?)"/>) on fixed and random texts.
/// </summary>
public sealed class PlainCanonicalTests
{
    [Theory]
    [InlineData("""{"a":1,"b":[true,false,null],"c":{"d":"x y","e":-42}}""")]
    [InlineData("""{}""")]
    [InlineData("""{"a":[],"b":{},"c":[[],{}]}""")]
    [InlineData("""{"A":0,"_":1,"a":2}""")]
    [InlineData("""{"m":-123456789012345,"n":123456789012345}""")]
    [InlineData("""{"kind":"decision","outcome":"commit","participants":["node:n0","route:a->b"],"tx":"t-1"}""")]
    public void Shows_plain_canonical_texts(string text)
    {
        Assert.Equal(text, Encoding.UTF8.GetString(CanonicalJson.Canonicalize(text)));
        Assert.True(CanonicalJson.IsPlainCanonical(Encoding.UTF8.GetBytes(text)));
    }

    [Theory]
    [InlineData("""{"a":1 }""")] // white space
    [InlineData(""" {"a":1}""")]
    [InlineData("""{"a":1}""" + "\n")]
    [InlineData("""{"a": 1}""")]
    [InlineData("""{"b":1,"a":2}""")] // order
    [InlineData("""{"a":1,"a":2}""")] // duplicate
    [InlineData("""{"a":{"y":1,"x":2}}""")] // order one level down
    [InlineData("""{"a":-0}""")] // numbers not in ECMAScript form
    [InlineData("""{"a":1.0}""")]
    [InlineData("""{"a":1e2}""")]
    [InlineData("""{"a":1E2}""")]
    [InlineData("""{"a":1234567890123456789}""")]
    [InlineData("""{"a":"\u0041"}""")] // escapes the canonical writer would not write
    [InlineData("""{"a":"\/"}""")]
    [InlineData("""{"\u0061":1}""")]
    [InlineData("""{"a":1}{"b":2}""")] // not one value
    [InlineData("""{"a":1""")] // not JSON
    [InlineData("""{"a":tru}""")]
    [InlineData("""{"a":1,}""")]
    [InlineData("")]
    public void Does_not_show_texts_that_are_not_canonical(string text)
    {
        Assert.False(CanonicalJson.IsPlainCanonical(Encoding.UTF8.GetBytes(text)));
    }

    [Theory]
    [InlineData("""{"a":"é"}""")] // canonical, but not plain: the caller must compare with the reference
    [InlineData("""{"a":0.5}""")]
    [InlineData("""{"a":"line\nbreak"}""")]
    [InlineData("""{"a":1e+30}""")]
    public void Leaves_canonical_texts_it_cannot_show_to_the_reference(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        Assert.Equal(bytes, CanonicalJson.Canonicalize(bytes));
        Assert.False(CanonicalJson.IsPlainCanonical(bytes));
    }

    [Fact]
    public void Never_shows_a_random_text_the_reference_would_write_differently()
    {
        var random = new Random(8785);
        int shown = 0, canonical = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var sb = new StringBuilder();
            Value(sb, random, 0, objectOnly: true);
            var text = Mutate(sb.ToString(), random);
            var bytes = Encoding.UTF8.GetBytes(text);
            byte[]? reference;
            try
            {
                reference = CanonicalJson.Canonicalize(bytes);
            }
            catch (RttException)
            {
                reference = null;
            }

            var isCanonical = reference is not null && reference.AsSpan().SequenceEqual(bytes);
            canonical += isCanonical ? 1 : 0;
            if (CanonicalJson.IsPlainCanonical(bytes))
            {
                shown++;
                Assert.True(isCanonical, $"shown as canonical but the reference writes it differently: {text}");
            }
        }

        // The pass must be useful, not only safe: most canonical texts of this generator are plain.
        Assert.True(canonical > 2_000, $"{canonical} canonical texts");
        Assert.True(shown > canonical / 2, $"{shown} of {canonical} canonical texts shown");
    }

    [Fact]
    public void Shows_exactly_what_the_reader_based_pass_it_replaced_showed()
    {
        // The pass was a walk of Utf8JsonReader's tokens (ReaderPass below); the grammar walk must neither lose a text
        // it showed (the replay would canonicalise it again: slower) nor show one it did not (not shown as safe).
        var random = new Random(20);
        var shown = 0;
        for (var i = 0; i < 30_000; i++)
        {
            var sb = new StringBuilder();
            Value(sb, random, 0, objectOnly: i % 4 != 0);
            var bytes = Encoding.UTF8.GetBytes(Mutate(sb.ToString(), random));
            if (random.Next(4) == 0 && bytes.Length > 0)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256); // any byte anywhere
            }

            var expected = ReaderPass(bytes);
            shown += expected ? 1 : 0;
            Assert.True(expected == CanonicalJson.IsPlainCanonical(bytes), $"reader pass {expected} for {Encoding.UTF8.GetString(bytes)}");
        }

        Assert.True(shown > 5_000, $"{shown} texts shown");
    }

    [Fact]
    public void Finds_two_top_level_members_in_the_same_pass_and_says_the_same_as_without_them()
    {
        // The members' places (Planner.Content cuts sign and plan_id out of an applied plan's text by them) against the
        // reader's: the top-level member of that name, from its name's quote to its value's end; never one nested deeper.
        var random = new Random(21);
        var found = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var sb = new StringBuilder();
            Value(sb, random, 0, objectOnly: true);
            var bytes = Encoding.UTF8.GetBytes(i % 3 == 0 ? Mutate(sb.ToString(), random) : sb.ToString());
            var (first, second) = bytes.Length > 8 && random.Next(2) == 0 ? ("a", "b") : ("b", "c");
            var shown = CanonicalJson.IsPlainCanonical(bytes, Encoding.UTF8.GetBytes(first), Encoding.UTF8.GetBytes(second), out var firstAt, out var secondAt);
            Assert.Equal(CanonicalJson.IsPlainCanonical(bytes), shown);
            if (!shown)
            {
                continue;
            }

            Assert.Equal(TopLevel(bytes, first), firstAt is { } f ? bytes[f] : null);
            Assert.Equal(TopLevel(bytes, second), secondAt is { } s ? bytes[s] : null);
            found += (firstAt is null ? 0 : 1) + (secondAt is null ? 0 : 1);
            foreach (var member in new[] { firstAt, secondAt })
            {
                if (member is { } m)
                {
                    // Without the member and its separator: still the canonical text of the object without it.
                    var cut = CanonicalJson.WithSeparator(bytes, m);
                    var (offset, length) = cut.GetOffsetAndLength(bytes.Length);
                    var rest = bytes[..offset].Concat(bytes[(offset + length)..]).ToArray();
                    Assert.True(CanonicalJson.IsPlainCanonical(rest), Encoding.UTF8.GetString(rest));
                }
            }
        }

        Assert.True(found > 400, $"{found} members found"); // 465 with this seed
    }

    /// <summary>The bytes of the top-level member <paramref name="name"/> of a JSON object (name's quote to value's end), by the reader.</summary>
    private static byte[]? TopLevel(byte[] utf8Json, string name)
    {
        var reader = new Utf8JsonReader(utf8Json);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var start = (int)reader.TokenStartIndex;
            var match = reader.ValueTextEquals(name);
            reader.Read();
            reader.Skip();
            if (match)
            {
                return utf8Json[start..((int)reader.BytesConsumed)];
            }
        }

        return null;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(CanonicalJson.MaxDepth)]
    [InlineData(CanonicalJson.MaxDepth + 1)]
    public void Shows_nesting_up_to_the_readers_depth_limit_and_no_deeper(int depth)
    {
        foreach (var (open, close, inner) in new[] { ("[", "]", ""), ("{\"a\":", "}", "1"), ("[", "]", "{}") })
        {
            var text = string.Concat(Enumerable.Repeat(open, depth)) + inner + string.Concat(Enumerable.Repeat(close, depth));
            var bytes = Encoding.UTF8.GetBytes(text);
            Assert.Equal(ReaderPass(bytes), CanonicalJson.IsPlainCanonical(bytes));
        }

        Assert.Equal(depth + 1 <= CanonicalJson.MaxDepth, CanonicalJson.IsPlainCanonical(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("[", depth)) + "{}" + string.Concat(Enumerable.Repeat("]", depth)))));
    }

    /// <summary>The pass as it was (Utf8JsonReader's tokens, with the reader's own depth limit), the reference for the one that replaced it.</summary>
    private static bool ReaderPass(ReadOnlySpan<byte> utf8Json)
    {
        if (utf8Json.IsEmpty)
        {
            return false;
        }

        var depthLimit = CanonicalJson.MaxDepth;
        Span<bool> seen = stackalloc bool[depthLimit + 2];
        Span<int> nameStart = stackalloc int[depthLimit + 2];
        Span<int> nameLength = stackalloc int[depthLimit + 2];
        var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = depthLimit });
        long expected = 0;
        var afterName = false;
        try
        {
            while (reader.Read())
            {
                var depth = reader.CurrentDepth;
                var token = reader.TokenType;
                if (token is JsonTokenType.EndObject or JsonTokenType.EndArray)
                {
                    expected++;
                    continue;
                }

                if (token == JsonTokenType.PropertyName || !afterName)
                {
                    if (depth > 0 && seen[depth])
                    {
                        expected++;
                    }

                    seen[depth] = true;
                }

                afterName = false;
                switch (token)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        seen[depth + 1] = false;
                        nameLength[depth + 1] = -1;
                        expected++;
                        break;
                    case JsonTokenType.PropertyName:
                        var name = reader.ValueSpan;
                        if (reader.ValueIsEscaped || !PlainAscii(name))
                        {
                            return false;
                        }

                        var start = (int)reader.TokenStartIndex + 1;
                        if (nameLength[depth] >= 0 && name.SequenceCompareTo(utf8Json.Slice(nameStart[depth], nameLength[depth])) <= 0)
                        {
                            return false;
                        }

                        nameStart[depth] = start;
                        nameLength[depth] = name.Length;
                        expected += name.Length + 3;
                        afterName = true;
                        break;
                    case JsonTokenType.String:
                        if (reader.ValueIsEscaped || !PlainAscii(reader.ValueSpan))
                        {
                            return false;
                        }

                        expected += reader.ValueSpan.Length + 2;
                        break;
                    case JsonTokenType.Number:
                        var number = reader.ValueSpan;
                        var digits = number[0] == (byte)'-' ? number[1..] : number;
                        if (digits.Length is 0 or > 15 || digits.ContainsAnyExceptInRange((byte)'0', (byte)'9') || (digits.Length > 1 && digits[0] == (byte)'0') ||
                            (number[0] == (byte)'-' && digits is [(byte)'0']))
                        {
                            return false;
                        }

                        expected += number.Length;
                        break;
                    case JsonTokenType.True or JsonTokenType.Null:
                        expected += 4;
                        break;
                    case JsonTokenType.False:
                        expected += 5;
                        break;
                    default:
                        return false;
                }
            }
        }
        catch (JsonException)
        {
            return false;
        }

        return expected == utf8Json.Length && reader.BytesConsumed == utf8Json.Length;

        static bool PlainAscii(ReadOnlySpan<byte> text) => !text.ContainsAnyExceptInRange((byte)0x20, (byte)0x7E) && !text.Contains((byte)'\\');
    }

    private static readonly string[] Names = ["a", "b", "B", "ab", "a b", "_", "z9", "é", "a\"", "a\\b", "kind", "tx"];
    private static readonly string[] Numbers = ["0", "1", "-1", "42", "-0", "1.0", "0.5", "1e2", "123456789012345", "1234567890123456", "9007199254740993", "1E-7"];
    private static readonly string[] Strings = ["", "x", "x y", "é", "\\n", "\\u0041", "\\/", "\\\"", "~", "tab\\t", "\\u001f"];

    private static void Value(StringBuilder sb, Random random, int depth, bool objectOnly = false)
    {
        var pick = objectOnly ? 0 : random.Next(depth > 3 ? 2 : 7);
        switch (pick)
        {
            case 0 when objectOnly || depth <= 3:
                sb.Append('{');
                var names = Names.OrderBy(_ => random.Next()).Take(random.Next(4)).ToList();
                if (random.Next(3) > 0)
                {
                    names.Sort(StringComparer.Ordinal); // mostly in order, so many texts are canonical
                }

                for (var i = 0; i < names.Count; i++)
                {
                    sb.Append(i > 0 ? "," : "").Append('"').Append(names[i].Replace("\\", "\\\\").Replace("\"", "\\\"")).Append("\":");
                    Value(sb, random, depth + 1);
                }

                sb.Append('}');
                break;
            case 1:
                sb.Append('"').Append(Strings[random.Next(Strings.Length)]).Append('"');
                break;
            case 2:
            case 3:
                sb.Append(Numbers[random.Next(Numbers.Length)]);
                break;
            case 4:
                sb.Append(random.Next(3) switch { 0 => "true", 1 => "false", _ => "null" });
                break;
            default:
                sb.Append('[');
                var n = random.Next(4);
                for (var i = 0; i < n; i++)
                {
                    sb.Append(i > 0 ? "," : "");
                    Value(sb, random, depth + 1);
                }

                sb.Append(']');
                break;
        }
    }

    // Sometimes one byte-level change: white space, a duplicated member, a trailing comma or a cut.
    private static string Mutate(string text, Random random)
    {
        var at = random.Next(text.Length + 1);
        return random.Next(8) switch
        {
            0 => text.Insert(at, " "),
            1 => text.Insert(at, "\n"),
            2 when text.Length > 2 => text[..at],
            3 => text.Replace("{\"", "{\"a\":1,\""),
            4 => text.Insert(at, ","),
            _ => text,
        };
    }
}
