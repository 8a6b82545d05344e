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

    public static string ToText(JsonNode node) => Encoding.UTF8.GetString(ToUtf8(node));
}
