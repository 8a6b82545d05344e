using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Core.Json;

/// <summary>
/// RFC 8785 (JSON Canonicalization Scheme) writer. Every hash and signature in RTT is taken over
/// these bytes, so an implementation in any language can recompute them:
/// object members sorted by their UTF-16 code units, no insignificant white space, numbers in
/// ECMAScript's Number-to-String form, strings with only the escapes the RFC requires.
/// </summary>
public static class CanonicalJson
{
    private static readonly JsonDocumentOptions ParseOptions = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = MaxDepth,
    };

    /// <summary>
    /// Deepest nesting of objects and arrays RTT reads (System.Text.Json's own default): a deeper document is RTT-JSON-001.
    /// Documented in docs/errors.md with the other input limits.
    /// </summary>
    public const int MaxDepth = 64;

    // Strict UTF-8: a lone surrogate is an error rather than a silent U+FFFD.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Canonical bytes of a JSON text. Throws <see cref="DocumentException"/> for invalid JSON.</summary>
    public static byte[] Canonicalize(ReadOnlySpan<byte> utf8Json, string? source = null)
    {
        using var doc = Parse(utf8Json, source);
        return Serialize(doc.RootElement);
    }

    /// <summary>
    /// True when <paramref name="utf8Json"/> is certainly canonical (RFC 8785), shown by one pass over the bytes that
    /// allocates nothing: no whitespace, strings and member names of printable ASCII without escapes, names in strictly
    /// increasing order (no duplicates), numbers that are integer literals of at most 15 digits (not <c>-0</c>), at
    /// most <see cref="MaxDepth"/> containers open at once. False means only "not shown": a text with other strings or
    /// numbers may still be canonical, and the caller compares it with <see cref="Canonicalize(ReadOnlySpan{byte}, string?)"/>
    /// (the WAL's replay and verifier do, for every entry this pass cannot show). PlainCanonicalTests check on random
    /// texts that true is never wrong and that it shows what the reader-based pass it replaced showed.
    /// </summary>
    /// <remarks>
    /// A grammar walk of its own rather than <see cref="Utf8JsonReader"/>: the reader's string scanning runs through
    /// vectorised library code that a process compiles on first use, unoptimised at first, which made the first WAL
    /// replay after a start half as fast again as the later ones; this loop is compiled optimised at once and only
    /// reads what the plain form allows.
    /// </remarks>
    public static bool IsPlainCanonical(ReadOnlySpan<byte> utf8Json) => Scan(utf8Json, default, default, track: false, out _, out _);

    /// <summary>
    /// <see cref="IsPlainCanonical(ReadOnlySpan{byte})"/> for an object text, finding in the same pass where its top-level
    /// members <paramref name="first"/> and <paramref name="second"/> sit (from the opening quote of the name to the end
    /// of the value, without a separator; <see cref="WithSeparator"/> adds one; null when there is no such member). The
    /// ranges are meaningful only when the answer is true.
    /// </summary>
    public static bool IsPlainCanonical(ReadOnlySpan<byte> utf8Json, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, out Range? firstMember, out Range? secondMember) =>
        Scan(utf8Json, first, second, track: true, out firstMember, out secondMember);

    /// <summary>
    /// A member of a plain canonical object (as <see cref="IsPlainCanonical(ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, out Range?, out Range?)"/>
    /// found it) with one of its separating commas, as <see cref="SerializeMembers(IReadOnlyList{KeyValuePair{string, JsonNode?}}, string?, out Range?)"/>
    /// marks one: the comma before it, or after it when it is the first member, none when it is the only one. The object's
    /// text without that range is the canonical object without the member.
    /// </summary>
    public static Range WithSeparator(ReadOnlySpan<byte> plainObject, Range member)
    {
        var (start, length) = member.GetOffsetAndLength(plainObject.Length);
        var end = start + length;
        return plainObject[start - 1] == (byte)',' ? new Range(start - 1, end) : plainObject[end] == (byte)',' ? new Range(start, end + 1) : new Range(start, end);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Scan(ReadOnlySpan<byte> utf8Json, ReadOnlySpan<byte> nameA, ReadOnlySpan<byte> nameB, bool track, out Range? firstMember, out Range? secondMember)
    {
        firstMember = null;
        secondMember = null;
        var found = 0; // the top-level member whose value is being read: 1 first, 2 second, 0 neither
        var foundAt = 0;

        // Per open container (by depth): object or array, and where the last member name is in the text (-1: none yet).
        Span<bool> isObject = stackalloc bool[MaxDepth];
        Span<int> nameStart = stackalloc int[MaxDepth];
        Span<int> nameLength = stackalloc int[MaxDepth];
        var length = utf8Json.Length;
        var depth = 0; // containers open
        var i = 0;
        while (true)
        {
            // A value starts at i.
            if (i >= length)
            {
                return false;
            }

            switch (utf8Json[i])
            {
                case (byte)'{':
                case (byte)'[':
                    if (depth == MaxDepth)
                    {
                        return false;
                    }

                    var opensObject = utf8Json[i] == (byte)'{';
                    i++;
                    if (i < length && utf8Json[i] == (opensObject ? (byte)'}' : (byte)']'))
                    {
                        i++; // empty
                        break;
                    }

                    isObject[depth] = opensObject;
                    nameLength[depth] = -1;
                    depth++;
                    if (opensObject)
                    {
                        var at = i;
                        if (!Member(utf8Json, ref i, ref nameStart[depth - 1], ref nameLength[depth - 1]))
                        {
                            return false;
                        }

                        if (track && depth == 1)
                        {
                            (found, foundAt) = (Which(utf8Json, at, i, nameA, nameB), at);
                        }
                    }

                    continue; // the first item's value
                case (byte)'"':
                    var end = PlainString(utf8Json, i);
                    if (end < 0)
                    {
                        return false;
                    }

                    i = end;
                    break;
                case (byte)'t' or (byte)'f' or (byte)'n':
                    var literal = utf8Json[i] == (byte)'t' ? "true"u8 : utf8Json[i] == (byte)'f' ? "false"u8 : "null"u8;
                    if (!utf8Json[i..].StartsWith(literal))
                    {
                        return false;
                    }

                    i += literal.Length;
                    break;
                default:
                    var negative = utf8Json[i] == (byte)'-';
                    var first = negative ? i + 1 : i;
                    var last = first;
                    while (last < length && (uint)(utf8Json[last] - '0') <= 9)
                    {
                        last++;
                    }

                    var digits = last - first;
                    if (digits is 0 or > 15 || (digits > 1 && utf8Json[first] == (byte)'0') || (negative && digits == 1 && utf8Json[first] == (byte)'0'))
                    {
                        return false;
                    }

                    i = last;
                    break;
            }

            // After a value: the text's end, the next item, or the end of containers.
            while (true)
            {
                if (found != 0 && depth == 1)
                {
                    // A top-level member's value ends here.
                    if (found == 1)
                    {
                        firstMember = new Range(foundAt, i);
                    }
                    else
                    {
                        secondMember = new Range(foundAt, i);
                    }

                    found = 0;
                }

                if (depth == 0)
                {
                    return i == length;
                }

                if (i >= length)
                {
                    return false;
                }

                var c = utf8Json[i];
                if (c == (byte)',')
                {
                    i++;
                    if (isObject[depth - 1])
                    {
                        var at = i;
                        if (!Member(utf8Json, ref i, ref nameStart[depth - 1], ref nameLength[depth - 1]))
                        {
                            return false;
                        }

                        if (track && depth == 1)
                        {
                            (found, foundAt) = (Which(utf8Json, at, i, nameA, nameB), at);
                        }
                    }

                    break; // the next value
                }

                if (c != (isObject[depth - 1] ? (byte)'}' : (byte)']'))
                {
                    return false;
                }

                i++;
                depth--;
            }
        }
    }

    /// <summary>Which of two names (1, 2, or 0 for neither) the member name whose quote is at <paramref name="at"/> is, the value starting at <paramref name="value"/> (after the colon).</summary>
    private static int Which(ReadOnlySpan<byte> text, int at, int value, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var name = text[(at + 1)..(value - 2)];
        return name.SequenceEqual(first) ? 1 : name.SequenceEqual(second) ? 2 : 0;
    }

    /// <summary>
    /// A member name at <paramref name="i"/> and its colon: plain, and after the container's last name in byte order
    /// (the order of UTF-16 units for printable ASCII). Moves <paramref name="i"/> to the value.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Member(ReadOnlySpan<byte> text, ref int i, ref int lastStart, ref int lastLength)
    {
        if (i >= text.Length || text[i] != (byte)'"')
        {
            return false;
        }

        var end = PlainString(text, i);
        if (end < 0 || end >= text.Length || text[end] != (byte)':')
        {
            return false;
        }

        var name = text.Slice(i + 1, end - i - 2);
        if (lastLength >= 0 && name.SequenceCompareTo(text.Slice(lastStart, lastLength)) <= 0)
        {
            return false; // out of order or a duplicate
        }

        lastStart = i + 1;
        lastLength = name.Length;
        i = end + 1;
        return true;
    }

    /// <summary>
    /// The end (one past the closing quote) of the string whose opening quote is at <paramref name="quote"/>, when it
    /// is printable ASCII without escapes (written as itself by the canonical writer); -1 otherwise.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int PlainString(ReadOnlySpan<byte> text, int quote)
    {
        for (var i = quote + 1; i < text.Length; i++)
        {
            var c = text[i];
            if (c == (byte)'"')
            {
                return i + 1;
            }

            if (c is < 0x20 or > 0x7E or (byte)'\\')
            {
                return -1;
            }
        }

        return -1;
    }

    /// <summary>Canonical bytes of a JSON text given as a string.</summary>
    public static byte[] Canonicalize(string json, string? source = null) => Canonicalize(Encoding.UTF8.GetBytes(json), source);

    /// <summary>Canonical bytes of a parsed element.</summary>
    public static byte[] Serialize(JsonElement element)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        Write(buffer, element, new JsonPath());
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Where the writer is, kept as a stack of member names and array indices and turned into text
    /// (<c>$.a[2].b</c>) only when an error needs it: building the text for every value made canonicalisation
    /// of large documents several times slower.
    /// </summary>
    private sealed class JsonPath
    {
        private readonly List<(string? Name, int Index)> _steps = [];

        public void Push(string name) => _steps.Add((name, -1));

        public void Push(int index) => _steps.Add((null, index));

        public void Pop() => _steps.RemoveAt(_steps.Count - 1);

        public override string ToString()
        {
            var sb = new StringBuilder("$");
            foreach (var (name, index) in _steps)
            {
                if (name is null)
                {
                    sb.Append('[').Append(index.ToString(CultureInfo.InvariantCulture)).Append(']');
                }
                else
                {
                    sb.Append('.').Append(name);
                }
            }

            return sb.ToString();
        }
    }

    /// <summary>Canonical bytes of a node tree (null means the JSON literal <c>null</c>).</summary>
    public static byte[] Serialize(JsonNode? node)
    {
        // Straight from the nodes (no text round trip) when every value is one the direct writer knows exactly;
        // anything else (an unusual CLR value, a lone surrogate, a deep tree) goes the round trip below, which
        // is the reference: both give the same bytes (CanonicalJsonTests compare them on random trees).
        var buffer = new ArrayBufferWriter<byte>(4096);
        return TryWriteNode(buffer, node, 0) ? buffer.WrittenSpan.ToArray() : SerializeByRoundTrip(node);
    }

    /// <summary>
    /// Canonical bytes of an object given as its members, whose values may belong to other trees: nothing is copied
    /// (a 10,000-route routes.json hashed as one member of the planner's inputs). Same bytes as an object holding them.
    /// </summary>
    public static byte[] SerializeMembers(IReadOnlyList<KeyValuePair<string, JsonNode?>> members) => SerializeMembers(members, null, out _);

    /// <summary>
    /// As above, and where member <paramref name="mark"/> sits in the result: <paramref name="marked"/> covers the member
    /// with one of its separating commas, so the bytes without that range are the canonical object without the member
    /// (null when the object has no such member, or when the bytes came from the reference path).
    /// </summary>
    public static byte[] SerializeMembers(IReadOnlyList<KeyValuePair<string, JsonNode?>> members, string? mark, out Range? marked)
    {
        marked = null;
        var sorted = members.ToArray();
        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        var buffer = new ArrayBufferWriter<byte>(4096);
        var ok = true;
        buffer.Write("{"u8);
        for (var i = 0; ok && i < sorted.Length; i++)
        {
            if (i > 0)
            {
                ok = !string.Equals(sorted[i - 1].Key, sorted[i].Key, StringComparison.Ordinal);
                buffer.Write(","u8);
            }

            var start = buffer.WrittenCount;
            ok = ok && TryWriteString(buffer, sorted[i].Key);
            buffer.Write(":"u8);
            ok = ok && TryWriteNode(buffer, sorted[i].Value, 1);
            if (mark is not null && string.Equals(sorted[i].Key, mark, StringComparison.Ordinal))
            {
                // With the comma before it, or after it when it is the first member (none when it is the only one).
                marked = i > 0 ? new Range(start - 1, buffer.WrittenCount) : sorted.Length > 1 ? new Range(start, buffer.WrittenCount + 1) : new Range(start, buffer.WrittenCount);
            }
        }

        buffer.Write("}"u8);
        if (ok)
        {
            return buffer.WrittenSpan.ToArray();
        }

        marked = null;

        var copy = new JsonObject();
        foreach (var (name, value) in members)
        {
            copy[name] = value?.DeepClone(); // the reference path (and its errors) on a copy
        }

        return Serialize(copy);
    }

    /// <summary>
    /// The reference form: the node written by System.Text.Json, parsed with RTT's rules and written canonically.
    /// JsonNode has no stable view of raw number text, so this rounds through its own writer once.
    /// </summary>
    internal static byte[] SerializeByRoundTrip(JsonNode? node)
    {
        var raw = node is null ? "null"u8.ToArray() : JsonSerializer.SerializeToUtf8Bytes(node);
        return Canonicalize(raw);
    }

    /// <summary>
    /// Writes a node tree canonically without a text round trip; false (with partial output) when a value is one it
    /// cannot write exactly as the round trip would, so the caller falls back to it.
    /// </summary>
    internal static bool TryWriteNode(ArrayBufferWriter<byte> output, JsonNode? node, int depth)
    {
        if (depth >= MaxDepth - 1)
        {
            return false; // the round trip decides what a tree this deep does
        }

        switch (node)
        {
            case null:
                output.Write("null"u8);
                return true;
            case JsonObject obj:
            {
                var count = obj.Count;
                var members = new KeyValuePair<string, JsonNode?>[count];
                var i = 0;
                var sorted = true;
                foreach (var member in obj)
                {
                    sorted &= i == 0 || string.CompareOrdinal(members[i - 1].Key, member.Key) < 0;
                    members[i++] = member;
                }

                if (!sorted)
                {
                    Array.Sort(members, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
                }

                output.Write("{"u8);
                for (i = 0; i < count; i++)
                {
                    if (i > 0)
                    {
                        if (string.Equals(members[i - 1].Key, members[i].Key, StringComparison.Ordinal))
                        {
                            return false;
                        }

                        output.Write(","u8);
                    }

                    if (!TryWriteString(output, members[i].Key))
                    {
                        return false;
                    }

                    output.Write(":"u8);
                    if (!TryWriteNode(output, members[i].Value, depth + 1))
                    {
                        return false;
                    }
                }

                output.Write("}"u8);
                return true;
            }

            case JsonArray array:
                output.Write("["u8);
                for (var i = 0; i < array.Count; i++)
                {
                    if (i > 0)
                    {
                        output.Write(","u8);
                    }

                    if (!TryWriteNode(output, array[i], depth + 1))
                    {
                        return false;
                    }
                }

                output.Write("]"u8);
                return true;
            case JsonValue value:
                return TryWriteValue(output, value);
            default:
                return false;
        }
    }

    private static bool TryWriteValue(ArrayBufferWriter<byte> output, JsonValue value)
    {
        if (value.TryGetValue<JsonElement>(out var element))
        {
            // A parsed value: only the primitives are written here (the element's own text is the reference).
            switch (element.ValueKind)
            {
                case JsonValueKind.String:
                    string? parsedText;
                    try
                    {
                        parsedText = element.GetString();
                    }
                    catch (InvalidOperationException)
                    {
                        return false; // an escaped lone surrogate: the round trip names it
                    }

                    return parsedText is not null && TryWriteString(output, parsedText);
                case JsonValueKind.Number:
                    if (element.TryGetInt64(out var parsed) && parsed is > -MaxSafeInteger and < MaxSafeInteger)
                    {
                        WriteInteger(output, parsed);
                        return true;
                    }

                    return element.TryGetDouble(out var d) && double.IsFinite(d) && TryWriteDouble(output, d);
                case JsonValueKind.True:
                    output.Write("true"u8);
                    return true;
                case JsonValueKind.False:
                    output.Write("false"u8);
                    return true;
                case JsonValueKind.Null:
                    output.Write("null"u8);
                    return true;
                default:
                    return false;
            }
        }

        if (value.TryGetValue<string>(out var text))
        {
            return TryWriteString(output, text);
        }

        if (value.TryGetValue<bool>(out var flag))
        {
            output.Write(flag ? "true"u8 : "false"u8);
            return true;
        }

        if (value.TryGetValue<int>(out var small))
        {
            WriteInteger(output, small);
            return true;
        }

        if (value.TryGetValue<long>(out var integer))
        {
            if (integer is > -MaxSafeInteger and < MaxSafeInteger)
            {
                WriteInteger(output, integer);
                return true;
            }

            return false;
        }

        if (value.TryGetValue<double>(out var number))
        {
            return double.IsFinite(number) && TryWriteDouble(output, number);
        }

        return false; // another CLR type: the round trip knows how System.Text.Json writes it
    }

    internal static void WriteInteger(ArrayBufferWriter<byte> output, long integer)
    {
        var room = output.GetSpan(20);
        integer.TryFormat(room, out var written, default, CultureInfo.InvariantCulture);
        output.Advance(written);
    }

    // A finite double: the round trip writes its shortest round-tripping digits and reads the same double back, which
    // is written as its integer digits (below 2^53) or in ECMAScript form, both what FormatNumber gives.
    internal static bool TryWriteDouble(ArrayBufferWriter<byte> output, double number)
    {
        if (number == Math.Floor(number) && Math.Abs(number) < MaxSafeInteger)
        {
            WriteInteger(output, (long)number);
            return true;
        }

        WriteAscii(output, FormatNumber(number));
        return true;
    }

    // A string with only what RFC 8785 escapes; false for one holding a lone surrogate (the round trip's error).
    internal static bool TryWriteString(ArrayBufferWriter<byte> output, string value)
    {
        // Printable ASCII without '"' or '\' (most texts: addresses, node ids) is found by two vectorised scans.
        var plain = value.AsSpan().IndexOfAnyExceptInRange(' ', '~') < 0 ? value.AsSpan().IndexOfAny('"', '\\') < 0 : IsPlain(value);

        if (!plain)
        {
            for (var i = 0; i < value.Length; i++)
            {
                if (char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                {
                    i++;
                }
                else if (char.IsSurrogate(value[i]))
                {
                    return false;
                }
            }

            WriteString(output, value, EmptyPath);
            return true;
        }

        output.Write("\""u8);
        var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(value.Length));
        output.Advance(Encoding.UTF8.GetBytes(value, span));
        output.Write("\""u8);
        return true;
    }

    private static readonly JsonPath EmptyPath = new();

    // No control character, '"', '\' or surrogate: the text is written between quotes as it is.
    private static bool IsPlain(string value)
    {
        foreach (var c in value)
        {
            if (c < ' ' || c == '"' || c == '\\' || char.IsSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Canonical bytes of any value System.Text.Json can serialize with the given options.</summary>
    public static byte[] SerializeValue<T>(T value, JsonSerializerOptions options) =>
        Canonicalize(JsonSerializer.SerializeToUtf8Bytes(value, options));

    /// <summary>Canonical text (UTF-8 decoded) - for display and tests.</summary>
    public static string ToCanonicalString(JsonNode? node) => Encoding.UTF8.GetString(Serialize(node));

    /// <summary>Parses JSON with RTT's rules, turning a syntax error into an error that names line and column.</summary>
    public static JsonDocument Parse(ReadOnlySpan<byte> utf8Json, string? source = null)
    {
        // Tolerate a UTF-8 BOM: editors add one, and it carries no meaning.
        if (utf8Json.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            utf8Json = utf8Json[3..];
        }

        var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions
        {
            AllowTrailingCommas = ParseOptions.AllowTrailingCommas,
            CommentHandling = ParseOptions.CommentHandling,
            MaxDepth = ParseOptions.MaxDepth,
        });
        JsonDocument doc;
        try
        {
            doc = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException ex)
        {
            var where = source ?? "input";
            var at = ex.LineNumber is { } line ? $"{where}:{line + 1}:{(ex.BytePositionInLine ?? 0) + 1}" : where;
            throw new DocumentException(ErrorCodes.JsonInvalid, $"not valid JSON: {FirstSentence(ex.Message)}", at,
                "fix the JSON syntax at the position shown");
        }

        try
        {
            Validate(doc.RootElement, new JsonPath(), source);
            return doc;
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }

    /// <summary>
    /// What the reader leaves to the first use of a value, checked once for the whole document so that no later
    /// access fails with a .NET exception: duplicate member names (RTT-JSON-003), lone surrogates (RTT-JSON-004) and
    /// invalid UTF-8 (RTT-JSON-001) in names and strings. Errors name the file and the JSON path.
    /// </summary>
    private static void Validate(JsonElement element, JsonPath path, string? source)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                HashSet<string>? names = null;
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException ex)
                    {
                        throw Undecodable(ex, path, source);
                    }

                    names ??= new HashSet<string>(StringComparer.Ordinal);
                    if (!names.Add(name))
                    {
                        throw new DocumentException(ErrorCodes.JsonDuplicateKey, $"duplicate member name \"{name}\"", At(source, path),
                            "remove one of the two members: canonical JSON has no duplicate names");
                    }

                    path.Push(name);
                    Validate(property.Value, path, source);
                    path.Pop();
                }

                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    path.Push(index++);
                    Validate(item, path, source);
                    path.Pop();
                }

                break;
            case JsonValueKind.String:
                try
                {
                    element.GetString();
                }
                catch (InvalidOperationException ex)
                {
                    throw Undecodable(ex, path, source);
                }

                break;
            case JsonValueKind.Number:
                // A literal beyond double range (1e999) is not an RFC 8785 number: refuse it here, naming the file,
                // rather than at the first canonicalisation (which knows no file) or never (a value no one reads).
                if (!element.TryGetDouble(out var number) || !double.IsFinite(number))
                {
                    throw new DocumentException(ErrorCodes.JsonNumberNotFinite, "number is beyond the range of a double", At(source, path),
                        "JSON numbers must be finite IEEE 754 doubles (at most about 1.8e308)");
                }

                break;
        }
    }

    private static string At(string? source, JsonPath path) => source is null ? path.ToString() : $"{source}: {path}";

    private static DocumentException Undecodable(InvalidOperationException ex, JsonPath path, string? source) =>
        ex.Message.Contains("UTF-8", StringComparison.Ordinal)
            ? new(ErrorCodes.JsonInvalid, "a string is not valid UTF-8", At(source, path), "save the file as UTF-8")
            : new(ErrorCodes.JsonLoneSurrogate, "string holds a lone UTF-16 surrogate", At(source, path), "strings must be valid Unicode; pair or remove the surrogate");

    /// <summary>Parses JSON into a mutable node tree with RTT's rules.</summary>
    public static JsonNode ParseNode(ReadOnlySpan<byte> utf8Json, string? source = null)
    {
        using var doc = Parse(utf8Json, source);
        return JsonNode.Parse(doc.RootElement.GetRawText())
            ?? throw new DocumentException(ErrorCodes.DocumentShape, "the document is the JSON literal null", source, "write a JSON object");
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut].TrimEnd('.') : message.TrimEnd('.');
    }

    private static void Write(ArrayBufferWriter<byte> output, JsonElement element, JsonPath path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                WriteObject(output, element, path);
                break;
            case JsonValueKind.Array:
                output.Write("["u8);
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (index > 0)
                    {
                        output.Write(","u8);
                    }

                    path.Push(index);
                    Write(output, item, path);
                    path.Pop();
                    index++;
                }

                output.Write("]"u8);
                break;
            case JsonValueKind.String:
                WriteString(output, Text(element, path), path);
                break;
            case JsonValueKind.Number:
                if (element.TryGetInt64(out var integer) && integer is > -MaxSafeInteger and < MaxSafeInteger)
                {
                    // An integer literal below 2^53 is exact as a double, and ECMAScript prints it as its digits.
                    var room = output.GetSpan(20);
                    integer.TryFormat(room, out var written, default, CultureInfo.InvariantCulture);
                    output.Advance(written);
                    break;
                }

                // RFC 8785 numbers are IEEE 754 doubles; a literal beyond double range is not representable.
                WriteAscii(output, FormatNumber(element.TryGetDouble(out var number) ? number : double.PositiveInfinity, path.ToString()));
                break;
            case JsonValueKind.True:
                output.Write("true"u8);
                break;
            case JsonValueKind.False:
                output.Write("false"u8);
                break;
            case JsonValueKind.Null:
                output.Write("null"u8);
                break;
            default:
                throw new DocumentException(ErrorCodes.JsonInvalid, $"unexpected JSON value kind {element.ValueKind}", path.ToString());
        }
    }

    private const long MaxSafeInteger = 1L << 53;

    private static void WriteObject(ArrayBufferWriter<byte> output, JsonElement element, JsonPath path)
    {
        var members = new List<(string Name, JsonElement Value)>();
        var sorted = true;
        foreach (var property in element.EnumerateObject())
        {
            var name = PropertyName(property, path);
            sorted &= members.Count == 0 || string.CompareOrdinal(members[^1].Name, name) < 0;
            members.Add((name, property.Value));
        }

        // RFC 8785 3.2.3: sort by the UTF-16 code units of the names, which is exactly ordinal order.
        if (!sorted)
        {
            members.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        }
        output.Write("{"u8);
        for (var i = 0; i < members.Count; i++)
        {
            var name = members[i].Name;
            if (i > 0)
            {
                if (string.Equals(members[i - 1].Name, name, StringComparison.Ordinal))
                {
                    throw new DocumentException(ErrorCodes.JsonDuplicateKey, $"duplicate member name \"{name}\"", path.ToString(),
                        "remove one of the two members: canonical JSON has no duplicate names");
                }

                output.Write(","u8);
            }

            WriteString(output, name, path);
            output.Write(":"u8);
            path.Push(name);
            Write(output, members[i].Value, path);
            path.Pop();
        }

        output.Write("}"u8);
    }

    // System.Text.Json refuses to decode an escaped lone surrogate; report it as RTT's own error.
    private static string Text(JsonElement element, JsonPath path)
    {
        try
        {
            return element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw LoneSurrogate(path);
        }
    }

    private static string PropertyName(JsonProperty property, JsonPath path)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException)
        {
            throw LoneSurrogate(path);
        }
    }

    private static DocumentException LoneSurrogate(JsonPath path) =>
        new(ErrorCodes.JsonLoneSurrogate, "string holds a lone UTF-16 surrogate", path.ToString(), "strings must be valid Unicode; pair or remove the surrogate");

    private static void WriteString(ArrayBufferWriter<byte> output, string value, JsonPath path)
    {
        output.Write("\""u8);
        var start = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            string? escape = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\b' => "\\b",
                '\f' => "\\f",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => $"\\u{(int)c:x4}",
                _ => null,
            };
            if (escape is null)
            {
                continue;
            }

            WriteUtf8(output, value.AsSpan(start, i - start), path);
            WriteAscii(output, escape);
            start = i + 1;
        }

        WriteUtf8(output, value.AsSpan(start), path);
        output.Write("\""u8);
    }

    private static void WriteUtf8(ArrayBufferWriter<byte> output, ReadOnlySpan<char> text, JsonPath path)
    {
        if (text.IsEmpty)
        {
            return;
        }

        try
        {
            var span = output.GetSpan(StrictUtf8.GetMaxByteCount(text.Length));
            output.Advance(StrictUtf8.GetBytes(text, span));
        }
        catch (EncoderFallbackException)
        {
            throw LoneSurrogate(path);
        }
    }

    private static void WriteAscii(ArrayBufferWriter<byte> output, string ascii)
    {
        var span = output.GetSpan(ascii.Length);
        for (var i = 0; i < ascii.Length; i++)
        {
            span[i] = (byte)ascii[i];
        }

        output.Advance(ascii.Length);
    }

    /// <summary>
    /// ECMAScript Number::toString for a finite double (ECMA-262, 7.1.12.1), which RFC 8785 adopts.
    /// .NET's "R" format yields the shortest round-tripping digits; only the layout differs.
    /// </summary>
    public static string FormatNumber(double value, string path = "$")
    {
        if (!double.IsFinite(value))
        {
            throw new DocumentException(ErrorCodes.JsonNumberNotFinite, "number is not finite", path, "JSON numbers must be finite");
        }

        if (value == 0)
        {
            return "0"; // covers -0 as well
        }

        var negative = value < 0;
        var r = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);

        // Split "R" output into significant digits and a decimal exponent n, with value = 0.d1d2... * 10^n.
        var ePos = r.IndexOfAny(['E', 'e']);
        var mantissa = ePos >= 0 ? r[..ePos] : r;
        var exponent = ePos >= 0 ? int.Parse(r[(ePos + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) : 0;
        var dot = mantissa.IndexOf('.');
        var intPart = dot >= 0 ? mantissa[..dot] : mantissa;
        var fracPart = dot >= 0 ? mantissa[(dot + 1)..] : string.Empty;
        var digits = (intPart + fracPart).TrimStart('0');
        var leadingZeros = (intPart + fracPart).Length - digits.Length;
        var n = intPart.Length + exponent - leadingZeros;
        digits = digits.TrimEnd('0');
        var k = digits.Length;

        var sb = new StringBuilder(32);
        if (negative)
        {
            sb.Append('-');
        }

        if (k <= n && n <= 21)
        {
            sb.Append(digits).Append('0', n - k);
        }
        else if (0 < n && n <= 21)
        {
            sb.Append(digits, 0, n).Append('.').Append(digits, n, k - n);
        }
        else if (-6 < n && n <= 0)
        {
            sb.Append("0.").Append('0', -n).Append(digits);
        }
        else
        {
            sb.Append(digits[0]);
            if (k > 1)
            {
                sb.Append('.').Append(digits, 1, k - 1);
            }

            var e = n - 1;
            sb.Append('e').Append(e >= 0 ? '+' : '-').Append(Math.Abs(e).ToString(CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }
}
