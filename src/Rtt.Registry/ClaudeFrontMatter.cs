using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Rtt.Core.Errors;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Rtt.Registry;

/// <summary>One front-matter key of a Claude Code subagent, in file order, with its value read into JSON.</summary>
/// <param name="Line">The file line (1-based) the key is on.</param>
/// <param name="Style">"flow" or "block" for a sequence value; "double" or "single" for a quoted scalar; null otherwise.</param>
public sealed record FrontMatterEntry(string Key, JsonNode? Value, int Line, bool IsScalar, string? Style);

/// <summary>A Claude Code subagent file split into its front matter (every key, in order) and its Markdown body.</summary>
/// <param name="LeadingNewlines">Blank lines between the closing <c>---</c> and the body's first line.</param>
/// <param name="TrailingNewlines">Newlines at the end of the file after the body's last line.</param>
public sealed record ClaudeFile(IReadOnlyList<FrontMatterEntry> Entries, string Body, int LeadingNewlines, int TrailingNewlines, IReadOnlyList<string> Warnings);

/// <summary>
/// Reads the front matter of a Claude Code subagent the way Claude Code does: YAML between a first line <c>---</c> and
/// the next line <c>---</c>. When strict YAML fails, it is read again leniently (docs/registry.md): a top-level
/// <c>key: value</c> line whose unquoted value holds what YAML forbids there (<c>": "</c>, <c>" #"</c>, a leading
/// <c>*</c>, <c>&amp;</c>, <c>!</c>, <c>%</c>, <c>@</c> or backtick) is taken as plain text, with a warning naming
/// the line. Anything still invalid is refused with the line and column.
/// </summary>
public static partial class ClaudeFrontMatter
{
    private const int MaxDepth = 32;

    public static ClaudeFile Read(string text, string source)
    {
        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            text = text[1..]; // a UTF-8 byte order mark is not part of the file's text
        }

        var normalized = text.Replace("\r\n", "\n", StringComparison.Ordinal);
        var lines = normalized.Split('\n');
        if (lines[0].TrimEnd() != "---")
        {
            var firstContent = Array.FindIndex(lines, l => l.Trim().Length > 0);
            var hint = firstContent > 0 && lines[firstContent].Trim() == "---"
                ? $"the front matter starts on line {firstContent + 1}: remove what comes before it and indent nothing (Claude Code reads front matter only from line 1)"
                : "start the file with a line ---, then name: and description:, then a line ---";
            throw new RttException(ErrorCodes.YamlInvalid, "no YAML front matter (the first line must be ---)", $"{source}:1", hint);
        }

        var close = -1;
        for (var i = 1; i < lines.Length; i++)
        {
            if (lines[i].TrimEnd() == "---")
            {
                close = i;
                break;
            }
        }

        if (close < 0)
        {
            throw new RttException(ErrorCodes.YamlInvalid, "front matter is not closed by a line ---", $"{source}:1", "close the front matter with a line --- before the body");
        }

        var yamlLines = lines[1..close];
        var warnings = new List<string>();
        var lenientLines = new Dictionary<int, bool>(); // file line -> the plain value was one line
        var root = Parse(yamlLines, source, warnings, lenientLines);

        // The body: everything after the closing line; blank lines before it and newlines after it are layout.
        var body = string.Join('\n', lines[(close + 1)..]);
        var leading = 0;
        while (leading < body.Length && body[leading] == '\n')
        {
            leading++;
        }

        var trailing = 0;
        while (trailing < body.Length - leading && body[body.Length - 1 - trailing] == '\n')
        {
            trailing++;
        }

        var core = body[leading..(body.Length - trailing)];

        var entries = new List<FrontMatterEntry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in root.Children)
        {
            var line = (int)keyNode.Start.Line + 1; // the front matter starts on the file's line 2
            if (keyNode is not YamlScalarNode { Value: { } key })
            {
                throw new RttException(ErrorCodes.YamlInvalid, "a front-matter key must be a plain name", $"{source}:{line}", "write key: value");
            }

            if (!seen.Add(key))
            {
                throw new RttException(ErrorCodes.YamlInvalid, $"key \"{key}\" appears twice in the front matter", $"{source}:{line}: /{key}", "keep one of them");
            }

            var value = ToJson(valueNode, $"{source}:{line}: /{key}", 0);
            entries.Add(new FrontMatterEntry(key, value, line, valueNode is YamlScalarNode,
                lenientLines.TryGetValue(line, out var oneLine) ? (oneLine ? "lenient" : null) : valueNode switch
                {
                    YamlSequenceNode seq => seq.Style == YamlDotNet.Core.Events.SequenceStyle.Flow ? "flow" : "block",
                    YamlScalarNode { Style: ScalarStyle.DoubleQuoted } => "double",
                    YamlScalarNode { Style: ScalarStyle.SingleQuoted } => "single",
                    _ => null,
                }));
        }

        return new ClaudeFile(entries, core, leading, trailing, warnings);
    }

    private static YamlMappingNode Parse(string[] yamlLines, string source, List<string> warnings, Dictionary<int, bool> lenientLines)
    {
        var strictError = TryLoad(string.Join('\n', yamlLines), source, out var root);
        if (strictError is null)
        {
            return root ?? throw Empty(source);
        }

        // Lenient reading: quote the values YAML refused, as Claude Code does, and say so.
        var rewritten = (string[])yamlLines.Clone();
        var lenient = new List<string>();
        for (var i = 0; i < rewritten.Length; i++)
        {
            var m = TopLevelKey().Match(rewritten[i]);
            if (!m.Success)
            {
                continue;
            }

            var value = m.Groups["value"].Value.TrimEnd();
            if (value.Length == 0 || "\"'[{|>".Contains(value[0], StringComparison.Ordinal))
            {
                continue;
            }

            // A plain value may go on over indented lines; YAML folds them with a space.
            var end = i + 1;
            var parts = new List<string> { value };
            while (end < rewritten.Length && rewritten[end].Length > 0 && char.IsWhiteSpace(rewritten[end][0]))
            {
                parts.Add(rewritten[end].Trim());
                end++;
            }

            var whole = string.Join(' ', parts.Where(p => p.Length > 0));
            if (!NeedsQuoting(whole))
            {
                continue;
            }

            rewritten[i] = $"{m.Groups["key"].Value}: '{whole.Replace("'", "''", StringComparison.Ordinal)}'";
            for (var j = i + 1; j < end; j++)
            {
                rewritten[j] = "";
            }

            lenientLines[i + 2] = end == i + 1; // the file line: its value was plain, whatever quotes the re-reading added
            lenient.Add($"{source}:{i + 2}: \"{m.Groups["key"].Value}\" is not valid YAML as written (an unquoted value holding \": \", \" #\" or a leading indicator); read as plain text, as Claude Code does. Quote the value to silence this warning");
            i = end - 1;
        }

        if (lenient.Count == 0)
        {
            throw strictError;
        }

        if (TryLoad(string.Join('\n', rewritten), source, out root) is not null)
        {
            throw strictError;
        }

        warnings.AddRange(lenient);
        return root ?? throw Empty(source);
    }

    /// <summary>
    /// True when a value written plain on one line (<c>key: value</c>) is refused by strict YAML and read back as this same
    /// text by the lenient reading, so a file Claude Code accepts can be written back as the user wrote it: it holds
    /// <c>": "</c> or starts with <c>@</c>, a backquote or <c>**</c>, and has no <c>" #"</c>, tab, line break or
    /// surrounding space (those YAML would read otherwise).
    /// </summary>
    public static bool ReadsBackLeniently(string value) =>
        value.Length > 0 && value == value.Trim() && !"\"'[{|>".Contains(value[0], StringComparison.Ordinal)
        && !value.Contains(" #", StringComparison.Ordinal) && !value.Any(c => char.IsControl(c) || c is '\u0085' or '\u2028' or '\u2029' or '\uFEFF')
        && (value.Contains(": ", StringComparison.Ordinal) || value[0] is '@' or '`' || value.StartsWith("**", StringComparison.Ordinal));

    private static bool NeedsQuoting(string value) =>
        value.Contains(": ", StringComparison.Ordinal) || value.EndsWith(':') || value.Contains(" #", StringComparison.Ordinal) || value.Contains('\t', StringComparison.Ordinal)
        || "*&!%@`".Contains(value[0], StringComparison.Ordinal) || (value.Length > 1 && "-?:".Contains(value[0], StringComparison.Ordinal) && value[1] == ' ');

    private static RttException Empty(string source) =>
        new(ErrorCodes.YamlInvalid, "front matter must be a mapping of fields", $"{source}:2", "write name: …, description: … between the --- lines");

    /// <summary>Parses the YAML: the error, or null and the root (null when it is not a mapping).</summary>
    private static RttException? TryLoad(string yaml, string source, out YamlMappingNode? root)
    {
        var stream = new YamlStream();
        root = null;
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException ex)
        {
            return new RttException(ErrorCodes.YamlInvalid, $"front matter is not valid YAML: {ex.Message}",
                $"{source}:{ex.Start.Line + 1}:{ex.Start.Column}", "fix the YAML at that position (quote a value that holds \": \" or starts with a special character)");
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return new RttException(ErrorCodes.YamlInvalid, $"front matter is not valid YAML: {ex.Message}", source, "fix the YAML");
        }

        root = stream.Documents.Count > 0 ? stream.Documents[0].RootNode as YamlMappingNode : null;
        return null;
    }

    /// <summary>A YAML value as JSON: plain scalars follow YAML 1.2's core schema (null, booleans, numbers that read back
    /// to the same text); quoted and block scalars are strings.</summary>
    private static JsonNode? ToJson(YamlNode node, string where, int depth)
    {
        if (depth > MaxDepth)
        {
            throw new RttException(ErrorCodes.YamlInvalid, $"front-matter value nests deeper than {MaxDepth} levels", where, "flatten the value");
        }

        switch (node)
        {
            case YamlScalarNode s:
                return Scalar(s);
            case YamlSequenceNode seq:
                return new JsonArray([.. seq.Children.Select(c => ToJson(c, where, depth + 1))]);
            case YamlMappingNode map:
                var obj = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    if (k is not YamlScalarNode { Value: { } key } || obj.ContainsKey(key))
                    {
                        throw new RttException(ErrorCodes.YamlInvalid, "a key inside a front-matter value is not a plain name, or appears twice", where, "write key: value, each key once");
                    }

                    obj[key] = ToJson(v, where, depth + 1);
                }

                return obj;
            default:
                throw new RttException(ErrorCodes.YamlInvalid, "unsupported YAML node", where, "write plain values, lists and mappings");
        }
    }

    private static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style is not (ScalarStyle.Plain or ScalarStyle.Any))
        {
            return JsonValue.Create(v);
        }

        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }

        // A number only when writing it back gives the same text, so a round trip keeps the value and its spelling.
        if (IntegerText().IsMatch(v) && long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)
            && l.ToString(CultureInfo.InvariantCulture) == v)
        {
            return JsonValue.Create(l);
        }

        return JsonValue.Create(v);
    }

    /// <summary>The text of a scalar as a string (a plain <c>123</c> or <c>true</c> too).</summary>
    public static string? Text(FrontMatterEntry entry) => entry.IsScalar
        ? entry.Value switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            JsonValue v => v.ToJsonString(),
            _ => null,
        }
        : null;

    [GeneratedRegex(@"^-?(0|[1-9][0-9]{0,17})$", RegexOptions.CultureInvariant)]
    private static partial Regex IntegerText();

    [GeneratedRegex(@"^(?<key>[A-Za-z_][A-Za-z0-9_-]*):[ \t]+(?<value>\S.*)$", RegexOptions.CultureInvariant)]
    private static partial Regex TopLevelKey();
}
