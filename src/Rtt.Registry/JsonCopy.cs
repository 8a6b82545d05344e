using System.Text.Json;

namespace Rtt.Registry;

/// <summary>Writes a small JSON value (a symbol entry) to a writer token by token, without a JsonDocument.</summary>
internal static class JsonCopy
{
    /// <summary>
    /// Writes <paramref name="json"/> (one valid value) as <c>JsonDocument.Parse(json).RootElement.WriteTo(writer)</c>
    /// would: names and strings unescaped, then written (and escaped) by the writer. A value holding a number goes
    /// through a document: its literal is written as it is, which the public writer API cannot do in indented form.
    /// </summary>
    public static void Write(ReadOnlySpan<byte> json, Utf8JsonWriter writer)
    {
        if (HasNumber(json))
        {
            using var document = JsonDocument.Parse(json.ToArray());
            document.RootElement.WriteTo(writer);
            return;
        }

        var reader = new Utf8JsonReader(json);
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    writer.WriteStartObject();
                    break;
                case JsonTokenType.EndObject:
                    writer.WriteEndObject();
                    break;
                case JsonTokenType.StartArray:
                    writer.WriteStartArray();
                    break;
                case JsonTokenType.EndArray:
                    writer.WriteEndArray();
                    break;
                case JsonTokenType.PropertyName:
                    writer.WritePropertyName(Unescaped(ref reader));
                    break;
                case JsonTokenType.String:
                    writer.WriteStringValue(Unescaped(ref reader));
                    break;
                case JsonTokenType.True:
                case JsonTokenType.False:
                    writer.WriteBooleanValue(reader.TokenType == JsonTokenType.True);
                    break;
                case JsonTokenType.Null:
                    writer.WriteNullValue();
                    break;
                default:
                    throw new InvalidOperationException($"unexpected {reader.TokenType} in a symbol entry");
            }
        }
    }

    private static ReadOnlySpan<byte> Unescaped(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped)
        {
            return reader.ValueSpan;
        }

        var buffer = new byte[reader.ValueSpan.Length]; // rare: canonical JSON escapes only quotes, backslashes and controls
        return buffer.AsSpan(0, reader.CopyString(buffer));
    }

    private static bool HasNumber(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.Number)
            {
                return true;
            }
        }

        return false;
    }
}
