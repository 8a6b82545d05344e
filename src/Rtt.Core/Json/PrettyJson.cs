using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Rtt.Core.Json;

/// <summary>
/// Human-facing JSON for files people edit (workspace.json, policy.json, key files): indented,
/// members in canonical order, LF line ends, a final newline. Hashes never use this form.
/// </summary>
public static class PrettyJson
{
    private static readonly JsonWriterOptions Options = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NewLine = "\n",
    };

    public static byte[] ToUtf8(JsonNode node)
    {
        // Go through the canonical form first so member order is the same on every machine.
        using var doc = JsonDocument.Parse(CanonicalJson.Serialize(node));
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, Options))
        {
            doc.RootElement.WriteTo(writer);
        }

        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    /// <summary>
    /// A writer of the same form for documents written piece by piece (a large index): the caller writes members in
    /// canonical order (ordinal by UTF-16 code units) and values in canonical form; <see cref="End"/> adds the final newline.
    /// Gives the bytes <see cref="ToUtf8"/> gives for the same document.
    /// </summary>
    public static Utf8JsonWriter Writer(Stream stream) => new(stream, Options);

    /// <summary>
    /// Passes what a <see cref="Writer"/> holds on to its stream once it is 64 KiB or more: a <c>Utf8JsonWriter</c> on a
    /// stream keeps everything written until it is flushed, so a document written piece by piece without this is held
    /// whole after all (and its buffer grows by copies). Call it between members; the bytes written are the same.
    /// </summary>
    public static void Spill(Utf8JsonWriter writer)
    {
        if (writer.BytesPending >= 1 << 16)
        {
            writer.Flush();
        }
    }

    /// <summary>Flushes a <see cref="Writer"/> and writes the final newline.</summary>
    public static void End(Utf8JsonWriter writer, Stream stream)
    {
        writer.Flush();
        stream.WriteByte((byte)'\n');
    }

    public static string ToText(JsonNode node) => Encoding.UTF8.GetString(ToUtf8(node));

    /// <summary>
    /// The file form (<see cref="ToUtf8"/>'s bytes for the same value) of a canonical JSON text, re-indented byte by byte
    /// without a document, when the text is printable ASCII without a backslash: then every string and number stands in
    /// both forms as it is. With <paramref name="insertName"/> the text is an object and the member
    /// <paramref name="insertName"/> (canonical value <paramref name="insertValue"/>) is put in its canonical place among
    /// its members. False (and nothing made) for any other text: the caller goes through a document.
    /// </summary>
    public static bool TryFromCanonical(ReadOnlySpan<byte> canonical, string? insertName, ReadOnlySpan<byte> insertValue, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? pretty)
    {
        pretty = null;
        if (canonical.IsEmpty || !PlainAscii(canonical) || (insertName is not null
            && (canonical[0] != (byte)'{' || insertValue.IsEmpty || !PlainAscii(insertValue) || insertName.Any(c => c is < ' ' or > '~' or '"' or '\\'))))
        {
            return false;
        }

        var output = new ArrayBufferWriter<byte>((canonical.Length * 2) + insertValue.Length + 64);
        if (insertName is null)
        {
            Indent(canonical, 0, output);
        }
        else
        {
            IndentWithMember(canonical, Encoding.ASCII.GetBytes(insertName), insertValue, output);
        }

        output.Write("\n"u8);
        pretty = output.WrittenSpan.ToArray();
        return true;
    }

    private static bool PlainAscii(ReadOnlySpan<byte> text) => !text.ContainsAnyExceptInRange((byte)0x20, (byte)0x7E) && !text.Contains((byte)'\\');

    /// <summary>Writes one canonical value indented as Utf8JsonWriter indents it (two spaces, ": ", "[]" and "{}" when empty), nested <paramref name="depth"/> deep.</summary>
    private static void Indent(ReadOnlySpan<byte> text, int depth, ArrayBufferWriter<byte> output)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            switch (c)
            {
                case (byte)'"':
                    var end = i + 1 + text[(i + 1)..].IndexOf((byte)'"'); // no escapes: the first quote closes it
                    output.Write(text[i..(end + 1)]);
                    i = end;
                    break;
                case (byte)'{' or (byte)'[':
                    if (i + 1 < text.Length && text[i + 1] == (c == (byte)'{' ? (byte)'}' : (byte)']'))
                    {
                        output.Write(text.Slice(i, 2));
                        i++;
                        break;
                    }

                    output.Write([c]);
                    NewLine(++depth, output);
                    break;
                case (byte)'}' or (byte)']':
                    NewLine(--depth, output);
                    output.Write([c]);
                    break;
                case (byte)',':
                    output.Write([c]);
                    NewLine(depth, output);
                    break;
                case (byte)':':
                    output.Write(": "u8);
                    break;
                default:
                    var run = text[i..].IndexOfAny("\"{}[],:"u8);
                    run = run < 0 ? text.Length - i : run;
                    output.Write(text.Slice(i, run)); // a number, true, false or null
                    i += run - 1;
                    break;
            }
        }
    }

    /// <summary>An object's members indented, with one more member put in its ordinal place (names are printable ASCII here, so byte order is ordinal order).</summary>
    private static void IndentWithMember(ReadOnlySpan<byte> obj, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, ArrayBufferWriter<byte> output)
    {
        output.Write("{"u8);
        var inserted = false;
        var first = true;
        var i = 1;
        while (i < obj.Length - 1)
        {
            // A member: its name at i, its value up to the next top-level comma (or the closing brace).
            var nameEnd = i + 1 + obj[(i + 1)..].IndexOf((byte)'"');
            var valueEnd = ValueEnd(obj, nameEnd + 2);
            if (!inserted && obj[(i + 1)..nameEnd].SequenceCompareTo(name) > 0)
            {
                WriteMember(name, value, first, output);
                first = false;
                inserted = true;
            }

            WriteMember(obj[(i + 1)..nameEnd], obj[(nameEnd + 2)..valueEnd], first, output);
            first = false;
            i = valueEnd + 1; // past the comma
        }

        if (!inserted)
        {
            WriteMember(name, value, first, output);
        }

        NewLine(0, output);
        output.Write("}"u8);

        static void WriteMember(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool first, ArrayBufferWriter<byte> output)
        {
            if (!first)
            {
                output.Write(","u8);
            }

            NewLine(1, output);
            output.Write("\""u8);
            output.Write(name);
            output.Write("\": "u8);
            Indent(value, 1, output);
        }
    }

    /// <summary>Where the value starting at <paramref name="start"/> ends: the first comma or closing bracket outside strings and nested containers.</summary>
    private static int ValueEnd(ReadOnlySpan<byte> text, int start)
    {
        var depth = 0;
        for (var i = start; i < text.Length; i++)
        {
            switch (text[i])
            {
                case (byte)'"':
                    i += 1 + text[(i + 1)..].IndexOf((byte)'"');
                    break;
                case (byte)'{' or (byte)'[':
                    depth++;
                    break;
                case (byte)'}' or (byte)']':
                    if (depth-- == 0)
                    {
                        return i;
                    }

                    break;
                case (byte)',' when depth == 0:
                    return i;
            }
        }

        return text.Length;
    }

    private static void NewLine(int depth, ArrayBufferWriter<byte> output)
    {
        var span = output.GetSpan(1 + (2 * depth));
        span[0] = (byte)'\n';
        span.Slice(1, 2 * depth).Fill((byte)' ');
        output.Advance(1 + (2 * depth));
    }
}
