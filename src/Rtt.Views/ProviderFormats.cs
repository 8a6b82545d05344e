using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>
/// Each provider's native format. Claude Code: <c>.claude/agents/&lt;name&gt;.md</c>, YAML front matter (name,
/// description, tools, model) and the instructions as the Markdown body. OpenAI/Codex: one <c>AGENTS.md</c> with a
/// section per agent in ordinal order while they fit Codex's 32 KiB, else an index and a skill per agent (ProviderFormats.Codex.cs). Any other provider: <c>&lt;name&gt;.agent.json</c>, the merged definition.
/// Output is LF-only UTF-8 without BOM, so the bytes are the same on every machine.
/// </summary>
public static partial class ProviderFormats
{
    public const string Claude = "claude";
    public const string OpenAi = "openai";
    public const string AgentsMd = "AGENTS.md";

    /// <summary>The provider's files: path relative to <c>providers/&lt;provider&gt;/</c> -> bytes.</summary>
    public static SortedDictionary<string, byte[]> Render(string provider, IReadOnlyList<ComposedView> views) =>
        Render(provider, views.Select(v => (v.Agent, v.Content)));

    /// <summary>
    /// The provider's files from merged agent definitions (agent name -> content): what <c>rtt view build</c> writes,
    /// and what a view mount serves from the recorded views' content.
    /// </summary>
    public static SortedDictionary<string, byte[]> Render(string provider, IEnumerable<(string Agent, JsonObject Content)> views)
    {
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        var ordered = views.OrderBy(v => v.Agent, StringComparer.Ordinal).ToList();
        switch (provider)
        {
            case OpenAi:
                if (ordered.Count > 0)
                {
                    RenderCodex(files, [.. ordered.Select(v => v.Content)]);
                }

                break;
            default:
                foreach (var (agent, content) in ordered)
                {
                    files[PathOf(provider, agent)] = RenderContent(provider, content);
                }

                break;
        }

        return files;
    }

    /// <summary>Where one agent's file lives under <c>providers/&lt;provider&gt;/</c> (OpenAI: the shared AGENTS.md).</summary>
    public static string PathOf(string provider, string agent) => provider switch
    {
        Claude => $".claude/agents/{agent}.md",
        OpenAi => AgentsMd,
        _ => $"{agent}.agent.json",
    };

    /// <summary>One agent in the provider's format (OpenAI: the agent's AGENTS.md section on its own).</summary>
    public static byte[] RenderAgent(ComposedView view) => RenderContent(view.Provider, view.Content);

    private static byte[] RenderContent(string provider, JsonObject content) => provider switch
    {
        Claude => ClaudeAgent(content),
        OpenAi => OpenAiAgents([content]),
        _ => PrettyJson.ToUtf8(content),
    };

    /// <summary>
    /// A Claude Code subagent file. When the agent carries <c>provider.claude.front_matter</c> (it was imported or scanned
    /// from a Claude file), the keys come back in that order: name, description, tools, model and version from the
    /// agent's members (so overlays and edits apply), every other key with its kept value. Members not listed follow;
    /// the body keeps <c>provider.claude.body_layout</c>'s blank lines.
    /// </summary>
    public static byte[] ClaudeAgent(JsonObject agent)
    {
        var claude = agent["provider"]?["claude"] as JsonObject;
        var listed = claude?["front_matter"] as JsonArray ?? [];
        var sb = new StringBuilder();
        sb.Append("---\n");
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in listed.OfType<JsonObject>())
        {
            if (item["key"] is not JsonValue k || !k.TryGetValue<string>(out var key) || !written.Add(key))
            {
                continue;
            }

            var style = (string?)item["style"];
            if (item.TryGetPropertyValue("value", out var kept) && !Sources.ClaudeMappedKeys.Contains(key))
            {
                if (kept is JsonValue v && v.TryGetValue<string>(out var text))
                {
                    sb.Append(key).Append(": ").Append(YamlWriter.Scalar(text, style)).Append('\n');
                }
                else
                {
                    YamlWriter.Entry(sb, key, kept, 0);
                }
            }
            else if (item.ContainsKey("value"))
            {
                // A mapped key kept as read (an empty tools: or model:): the member wins when an overlay set one.
                if (!ClaudeMember(sb, agent, key, style))
                {
                    YamlWriter.Entry(sb, key, kept, 0);
                }
            }
            else
            {
                ClaudeMember(sb, agent, key, style);
            }
        }

        foreach (var key in (string[])["name", "description", "tools", "model"])
        {
            if (written.Add(key))
            {
                ClaudeMember(sb, agent, key, null);
            }
        }

        sb.Append("---\n");
        var layout = claude?["body_layout"] as JsonObject;
        var leading = Count(layout, "leading_newlines", 0);
        var trailing = Count(layout, "trailing_newlines", 1);
        var body = Text(agent, "instructions").Replace("\r\n", "\n", StringComparison.Ordinal).Trim('\n');
        sb.Append('\n', leading).Append(body).Append('\n', body.Length == 0 && layout is null ? 0 : trailing);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static int Count(JsonObject? layout, string name, int fallback) =>
        layout?[name] is JsonValue v && v.TryGetValue<int>(out var n) && n is >= 0 and <= 64 ? n : fallback;

    /// <summary>Writes a front-matter line taken from the agent's members; false when the agent has no such member.</summary>
    private static bool ClaudeMember(StringBuilder sb, JsonObject agent, string key, string? style)
    {
        switch (key)
        {
            case "name":
                sb.Append("name: ").Append(YamlWriter.Scalar(Text(agent, "id"), style)).Append('\n');
                return true;
            case "description":
                sb.Append("description: ").Append(YamlWriter.Scalar(Text(agent, "description"), style)).Append('\n');
                return true;
            case "version" when agent["version"] is JsonValue:
                sb.Append("version: ").Append(YamlWriter.Scalar(Text(agent, "version"), style)).Append('\n');
                return true;
            case "model" when Model(agent) is { } model:
                sb.Append("model: ").Append(YamlWriter.Scalar(model, style)).Append('\n');
                return true;
            case "tools" when agent["tools"] is JsonArray:
                var tools = Tools(agent);
                if (style == "block" && tools.Count > 0)
                {
                    YamlWriter.Entry(sb, "tools", new JsonArray([.. tools.Select(t => (JsonNode)JsonValue.Create(t))]), 0);
                }
                else if (style is "flow" or "block" || tools.Count == 0)
                {
                    sb.Append("tools: [").Append(string.Join(", ", tools.Select(t => YamlWriter.Scalar(t, flow: true)))).Append("]\n"); // [] is no tools at all
                }
                else
                {
                    sb.Append("tools: ").Append(YamlWriter.Scalar(string.Join(", ", tools), style)).Append('\n'); // Claude Code reads a comma list
                }

                return true;
            default:
                return false;
        }
    }

    /// <summary>The Codex AGENTS.md: a heading per agent (ordinal order), its description, settings and instructions.</summary>
    public static byte[] OpenAiAgents(IEnumerable<JsonObject> agents)
    {
        var sb = new StringBuilder();
        sb.Append(Generated).Append('\n');
        sb.Append("# Agents\n");
        foreach (var agent in agents.OrderBy(a => Text(a, "id"), StringComparer.Ordinal))
        {
            sb.Append('\n');
            AppendSection(sb, agent);
        }

        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>One agent's section: <c>## id</c>, its description, the version/model/temperature/tools list, the instructions.</summary>
    private static void AppendSection(StringBuilder sb, JsonObject agent)
    {
        sb.Append("## ").Append(Text(agent, "id")).Append("\n\n");
        sb.Append(OneLine(Text(agent, "description"))).Append("\n\n");
        sb.Append("- version: ").Append(Text(agent, "version")).Append('\n');
        if (Model(agent, preferName: true) is { } model)
        {
            sb.Append("- model: ").Append(OneLine(model)).Append('\n');
        }

        if (agent["model"]?["temperature"] is JsonValue t && t.TryGetValue<double>(out var temperature))
        {
            sb.Append("- temperature: ").Append(CanonicalJson.FormatNumber(temperature)).Append('\n');
        }

        var tools = Tools(agent);
        if (tools.Count > 0)
        {
            sb.Append("- tools: ").Append(string.Join(", ", tools.Select(OneLine))).Append('\n');
        }

        sb.Append("\n### Instructions\n\n").Append(Body(agent));
    }

    /// <summary>
    /// The agents of an <c>AGENTS.md</c> as <see cref="OpenAiAgents"/> writes it: each section is a line <c>## &lt;id&gt;</c>,
    /// a blank line, the description, a blank line, <c>- version: …</c> and optional <c>- model:</c>, <c>- temperature:</c>,
    /// <c>- tools:</c> lines, then <c>### Instructions</c> and the instructions up to the next section. Each agent comes
    /// with where it starts (<c>file:line</c>); a section that does not read is returned with its error, so the others
    /// still count.
    /// </summary>
    public static IReadOnlyList<(JsonObject? Agent, string Where, RttException? Error)> ReadOpenAiAgents(string text, string source, int lineOffset = 0)
    {
        text = text.Replace("\r\n", "\n", StringComparison.Ordinal);
        var sections = AgentsMdSection().Matches(text);
        if (sections.Count == 0)
        {
            throw new RttException(ErrorCodes.ViewImportInvalid, "no agent sections found (a \"## <id>\" line, a blank line, the description, a blank line, \"- version: …\")", source,
                "give an AGENTS.md in the layout rtt view build writes for openai (docs/views.md)");
        }

        var agents = new List<(JsonObject?, string, RttException?)>();
        for (var i = 0; i < sections.Count; i++)
        {
            var m = sections[i];
            var line = 1 + lineOffset + text.AsSpan(0, m.Index).Count('\n');
            var where = $"{source}:{line.ToString(CultureInfo.InvariantCulture)}";
            var end = i + 1 < sections.Count ? sections[i + 1].Index - 1 : text.Length; // the blank line before the next heading is not the body's
            try
            {
                agents.Add((ReadSection(text, m, end, line, source, where), where, null));
            }
            catch (RttException ex)
            {
                agents.Add((null, where, ex));
            }
        }

        return agents;
    }

    private static JsonObject ReadSection(string text, System.Text.RegularExpressions.Match m, int end, int line, string source, string where)
    {
        var agent = new JsonObject
        {
            ["id"] = m.Groups["id"].Value.Trim(),
            ["version"] = m.Groups["version"].Value.Trim(),
            ["description"] = m.Groups["desc"].Value,
        };
        var model = new JsonObject();
        var rest = text[(m.Index + m.Length)..end];
        var lines = rest.Split('\n');
        var at = 0;
        for (; at < lines.Length && lines[at].StartsWith("- ", StringComparison.Ordinal); at++)
        {
            var bullet = lines[at];
            var colon = bullet.IndexOf(": ", StringComparison.Ordinal);
            var key = colon > 2 ? bullet[2..colon] : bullet[2..];
            var value = colon > 2 ? bullet[(colon + 2)..].Trim() : "";
            var bulletWhere = $"{source}:{(line + 5 + at).ToString(CultureInfo.InvariantCulture)}";
            switch (key)
            {
                case "model" when value.Length > 0:
                    model["name"] = value;
                    break;
                case "temperature" when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var t) && double.IsFinite(t):
                    model["temperature"] = t;
                    break;
                case "tools":
                    agent["tools"] = new JsonArray([.. value.Split(", ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(n => (JsonNode?)n)]);
                    break;
                default:
                    throw new RttException(ErrorCodes.ViewImportInvalid, $"agent \"{agent["id"]}\": the line \"{OneLine(bullet)}\" is not a model, temperature or tools line", bulletWhere,
                        "keep the bullet lines rtt view build writes (- model: NAME, - temperature: NUMBER, - tools: A, B)");
            }
        }

        if (at + 2 >= lines.Length || lines[at] != "" || lines[at + 1] != "### Instructions" || lines[at + 2] != "")
        {
            throw new RttException(ErrorCodes.ViewImportInvalid, $"agent \"{agent["id"]}\": no \"### Instructions\" heading after its bullet lines", where,
                "keep the layout rtt view build writes: the bullets, a blank line, ### Instructions, a blank line, the instructions");
        }

        agent["instructions"] = string.Join('\n', lines[(at + 3)..]).TrimEnd('\n');
        if (model.Count > 0)
        {
            agent["model"] = model;
        }

        return agent;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^## (?<id>[^\n]+)\n\n(?<desc>[^\n]*)\n\n- version: (?<version>[^\n]+)\n", System.Text.RegularExpressions.RegexOptions.Multiline)]
    private static partial System.Text.RegularExpressions.Regex AgentsMdSection();

    private static string Text(JsonObject agent, string name) => agent[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";

    private static List<string> Tools(JsonObject agent) =>
        agent["tools"] is JsonArray a ? [.. a.Select(t => t is JsonValue v && v.TryGetValue<string>(out var s) ? s : "").Where(s => s.Length > 0)] : [];

    /// <summary>
    /// The model a provider file names. Claude Code takes aliases (sonnet, haiku), which import reads back into the hint,
    /// so it prefers the hint; Codex wants an exact model name, so it prefers the name.
    /// </summary>
    internal static string? Model(JsonObject agent, bool preferName = false)
    {
        var hint = agent["model"]?["hint"] is JsonValue h && h.TryGetValue<string>(out var hs) && hs.Length > 0 ? hs : null;
        var name = agent["model"]?["name"] is JsonValue n && n.TryGetValue<string>(out var ns) && ns.Length > 0 ? ns : null;
        return preferName ? name ?? hint : hint ?? name;
    }

    internal static string Body(JsonObject agent)
    {
        var body = Text(agent, "instructions").Replace("\r\n", "\n", StringComparison.Ordinal).Trim('\n');
        return body.Length == 0 ? "" : body + "\n";
    }

    internal static string OneLine(string text) => text.Replace("\r\n", " ", StringComparison.Ordinal).Replace('\n', ' ').Trim();

    /// <summary>A YAML scalar (see <see cref="YamlWriter.Scalar"/>).</summary>
    public static string YamlScalar(string value) => YamlWriter.Scalar(value);
}
