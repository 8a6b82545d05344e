using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Json;

namespace Rtt.Views;

/// <summary>
/// Writes JSON values as YAML block mappings and sequences (two-space indents), for provider files with YAML front
/// matter. Text is written literally as UTF-8 (emoji included, never as surrogate escapes); a scalar is plain when no
/// YAML reader could take it for something else, otherwise double-quoted. Deterministic: same value, same bytes.
/// </summary>
public static class YamlWriter
{
    /// <summary><c>key: value</c> at <paramref name="indent"/>, a nested mapping or sequence on the lines below.</summary>
    public static void Entry(StringBuilder sb, string key, JsonNode? value, int indent)
    {
        sb.Append(' ', indent).Append(Key(key)).Append(':');
        switch (value)
        {
            case null:
                sb.Append('\n'); // an empty value, as the file had it
                break;
            case JsonObject { Count: 0 }:
                sb.Append(" {}\n");
                break;
            case JsonArray { Count: 0 }:
                sb.Append(" []\n");
                break;
            case JsonObject obj:
                sb.Append('\n');
                foreach (var (k, v) in obj)
                {
                    Entry(sb, k, v, indent + 2);
                }

                break;
            case JsonArray list:
                sb.Append('\n');
                Items(sb, list, indent + 2);
                break;
            default:
                sb.Append(' ').Append(Value((JsonValue)value)).Append('\n');
                break;
        }
    }

    private static void Items(StringBuilder sb, JsonArray list, int indent)
    {
        foreach (var item in list)
        {
            switch (item)
            {
                case JsonObject { Count: > 0 } obj:
                    // "- " then the mapping's first key on the same line, the rest under it.
                    var inner = new StringBuilder();
                    foreach (var (k, v) in obj)
                    {
                        Entry(inner, k, v, indent + 2);
                    }

                    sb.Append(' ', indent).Append("- ").Append(inner.ToString(indent + 2, inner.Length - indent - 2));
                    break;
                case JsonArray { Count: > 0 } nested:
                    sb.Append(' ', indent).Append("-\n");
                    Items(sb, nested, indent + 2);
                    break;
                case JsonObject:
                    sb.Append(' ', indent).Append("- {}\n");
                    break;
                case JsonArray:
                    sb.Append(' ', indent).Append("- []\n");
                    break;
                case null:
                    sb.Append(' ', indent).Append("- null\n");
                    break;
                default:
                    sb.Append(' ', indent).Append("- ").Append(Value((JsonValue)item)).Append('\n');
                    break;
            }
        }
    }

    private static string Value(JsonValue value)
    {
        if (value.TryGetValue<string>(out var s))
        {
            return Scalar(s);
        }

        if (value.TryGetValue<bool>(out var b))
        {
            return b ? "true" : "false";
        }

        return value.TryGetValue<long>(out var l) ? l.ToString(CultureInfo.InvariantCulture)
            : value.TryGetValue<double>(out var d) ? CanonicalJson.FormatNumber(d) : Scalar(value.ToJsonString());
    }

    private static string Key(string key) => key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-') && char.IsAsciiLetter(key[0]) ? key : Quoted(key);

    /// <summary>
    /// A YAML scalar: plain when it cannot be misread (starts with a letter, '.', '/', '_', '$', '(' or '&lt;', no <c>": "</c> or <c>" #"</c>, no line
    /// break, not a YAML 1.1/1.2 boolean, null or number; in a flow list also no <c>,[]{}</c>), otherwise
    /// double-quoted with YAML escapes for control characters only.
    /// </summary>
    public static string Scalar(string value, bool flow = false) => IsPlainSafe(value, flow) ? value : Quoted(value);

    /// <summary>A scalar in the style the file had: "double" always double-quoted, "single" single-quoted when
    /// that style can hold it, "lenient" plain as the user wrote it when only the lenient reading takes it (and reads it back
    /// the same), otherwise as <see cref="Scalar(string, bool)"/>.</summary>
    public static string Scalar(string value, string? style) => style switch
    {
        "double" => Quoted(value),
        "lenient" when Registry.ClaudeFrontMatter.ReadsBackLeniently(value) => value, // as the user wrote it; Claude Code and the lenient reading take it
        "single" when value.All(c => !char.IsControl(c) && c is not ('\u2028' or '\u2029' or '\uFEFF' or '\uFFFE' or '\uFFFF')) => $"'{value.Replace("'", "''", StringComparison.Ordinal)}'",
        _ => Scalar(value),
    };

    private static bool IsPlainSafe(string value, bool flow)
    {
        if (value.Length == 0 || !(char.IsLetter(value[0]) || value[0] is '.' or '/' or '_' or '$' or '(' or '<') || value[^1] is ' ' or ':'
            || value.Contains(": ", StringComparison.Ordinal) || value.Contains(" #", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in value)
        {
            if (char.IsControl(c) || c is '\u2028' or '\u2029' or '\uFEFF' or '\uFFFE' or '\uFFFF' || (flow && c is ',' or '[' or ']' or '{' or '}'))
            {
                return false;
            }
        }

        var lower = value.ToLowerInvariant();
        return lower is not ("true" or "false" or "yes" or "no" or "on" or "off" or "y" or "n" or "null" or ".inf" or ".nan")
            && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _);
    }

    /// <summary>A double-quoted YAML scalar: only <c>"</c>, <c>\</c> and characters YAML cannot hold literally are escaped.</summary>
    public static string Quoted(string value)
    {
        var sb = new StringBuilder(value.Length + 2).Append('"');
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\t': sb.Append("\\t"); break;
                case '\r': sb.Append("\\r"); break;
                case '\0': sb.Append("\\0"); break;
                case '\u0085': sb.Append("\\N"); break;
                case '\u2028': sb.Append("\\L"); break;
                case '\u2029': sb.Append("\\P"); break;
                default:
                    if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
                    {
                        sb.Append(c).Append(value[++i]); // a character outside the BMP, literally (UTF-8 on disk)
                    }
                    else if (char.IsControl(c) || char.IsSurrogate(c) || c is '\uFEFF' or '\uFFFE' or '\uFFFF')
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.Append('"').ToString();
    }
}
