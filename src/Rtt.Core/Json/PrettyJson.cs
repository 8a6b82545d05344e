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
}
