using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Views;

/// <summary>
/// The OpenAI Codex layout. Codex reads the AGENTS.md files from the project root down to the working directory and
/// stops at <see cref="CodexDocLimit"/> bytes in all (<c>project_doc_max_bytes</c>); it finds skills in
/// <c>.agents/skills/&lt;name&gt;/SKILL.md</c> and keeps only each skill's name and description in context until it uses one.
/// So the agents go into one AGENTS.md while they fit; when they do not, AGENTS.md becomes an index within the limit and
/// each agent becomes a skill whose body is its AGENTS.md section (nothing is lost, and import reads it back).
/// </summary>
public static partial class ProviderFormats
{
    /// <summary>How much of a project doc Codex reads by default (<c>project_doc_max_bytes</c> in ~/.codex/config.toml).</summary>
    public const int CodexDocLimit = 32 * 1024;

    /// <summary>The Agent Skills limit on a skill's description (front matter), in characters.</summary>
    public const int SkillDescriptionLimit = 1024;

    /// <summary>About how many characters of skill names and descriptions Codex keeps in its first context (then it shortens them).</summary>
    public const int CodexSkillListBudget = 8000;

    public const string CodexSkillsFolder = ".agents/skills";

    /// <summary>Descriptions cut shorter than this say nothing ("Use this agent when…"): the index then lists names only.</summary>
    public const int MinIndexWidth = 40;

    private const string Generated = "<!-- Written by `rtt view build` from agents/common and overlays/: edit those, not this file. -->\n";
    private const string IndexMarker = "<!-- rtt: codex skills index -->\n";

    /// <summary>Where an agent's skill lives under <c>providers/openai/</c> when AGENTS.md is an index.</summary>
    public static string CodexSkillPath(string agent) => $"{CodexSkillsFolder}/{agent}/SKILL.md";

    /// <summary>The agents a file under <c>providers/&lt;provider&gt;/</c> is rendered from (all of them for AGENTS.md).</summary>
    public static IEnumerable<string> AgentsOf(string provider, string path, IEnumerable<string> agents) => provider switch
    {
        OpenAi when path == AgentsMd => agents,
        OpenAi => agents.Where(a => CodexSkillPath(a) == path),
        _ => agents.Where(a => PathOf(provider, a) == path),
    };

    /// <summary>The OpenAI files: AGENTS.md with every section while it fits Codex's limit, else the index and one skill per agent.</summary>
    private static void RenderCodex(SortedDictionary<string, byte[]> files, IReadOnlyList<JsonObject> agents)
    {
        var whole = OpenAiAgents(agents);
        if (whole.Length <= CodexDocLimit)
        {
            files[AgentsMd] = whole;
            return;
        }

        files[AgentsMd] = CodexIndex(agents).Bytes;
        foreach (var agent in agents)
        {
            files[CodexSkillPath(Text(agent, "id"))] = CodexSkill(agent);
        }
    }

    /// <summary>
    /// What a user should know about the Codex files of these agents (empty when AGENTS.md holds them all): that they
    /// became skills, which descriptions the index shortened or left out, which names are not valid skill names, and
    /// when the skill list is longer than Codex keeps in context.
    /// </summary>
    public static IReadOnlyList<string> CodexNotes(IEnumerable<JsonObject> agents)
    {
        var list = agents.OrderBy(a => Text(a, "id"), StringComparer.Ordinal).ToList();
        var notes = new List<string>();
        var whole = OpenAiAgents(list);
        if (whole.Length <= CodexDocLimit)
        {
            return notes;
        }

        var index = CodexIndex(list);
        notes.Add(string.Create(CultureInfo.InvariantCulture,
            $"{list.Count} agent(s) take {whole.Length} bytes in one AGENTS.md, more than the {CodexDocLimit} Codex reads by default: each agent is written as a Codex skill ({CodexSkillsFolder}/<id>/SKILL.md) and AGENTS.md is an index of them ({index.Bytes.Length} bytes)"));
        if (index.Listed < list.Count)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"the AGENTS.md index lists {index.Listed} of {list.Count} agents by name (from \"{Text(list[index.Listed], "id")}\" on they are only skills); Codex still finds every skill"));
        }
        else if (index.Width == 0)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"the AGENTS.md index lists the agents by name only (their descriptions would have to be cut below {MinIndexWidth} characters to fit {CodexDocLimit} bytes); each SKILL.md has the whole one"));
        }
        else if (index.Width is { } width)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"descriptions in the AGENTS.md index are cut to {width} characters to stay within {CodexDocLimit} bytes; each SKILL.md has the whole one"));
        }

        var badNames = list.Select(a => Text(a, "id")).Where(id => !IsSkillName(id)).ToList();
        if (badNames.Count > 0)
        {
            notes.Add($"{badNames.Count} agent id(s) are not valid Agent Skills names (lower-case letters, digits and single hyphens, at most 64): {string.Join(", ", badNames.Take(5))}{(badNames.Count > 5 ? ", …" : "")}; Codex may skip them: rename the agent (id) to use them as skills");
        }

        var longDescriptions = list.Count(a => OneLine(Text(a, "description")).Length > SkillDescriptionLimit);
        if (longDescriptions > 0)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"{longDescriptions} description(s) are longer than the {SkillDescriptionLimit} characters a skill's description may have: the SKILL.md front matter has the first {SkillDescriptionLimit - 1} and \"…\", its body the whole one"));
        }

        var listChars = list.Sum(a => Text(a, "id").Length + Math.Min(SkillDescriptionLimit, OneLine(Text(a, "description")).Length));
        if (listChars > CodexSkillListBudget)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"the skills' names and descriptions come to {listChars} characters; Codex keeps about {CodexSkillListBudget} of them in context and shortens descriptions (or leaves skills out) beyond that: write short descriptions, or build fewer agents for openai"));
        }

        return notes;
    }

    /// <summary>The Agent Skills name rule: 1-64 of a-z, 0-9 and '-', not starting or ending with '-', no "--".</summary>
    public static bool IsSkillName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && name[0] != '-' && name[^1] != '-' && !name.Contains("--", StringComparison.Ordinal);

    /// <summary>
    /// The index AGENTS.md: every agent as <c>- `id`: description</c>, descriptions cut to the widest width that keeps
    /// the file within <see cref="CodexDocLimit"/>; below <see cref="MinIndexWidth"/> characters the names alone; when
    /// even the names do not fit, as many names as fit and a line saying how many more there are. Deterministic: the
    /// width is searched, not estimated. Width is null when nothing was cut, 0 for names only.
    /// </summary>
    private static (byte[] Bytes, int Listed, int? Width) CodexIndex(IReadOnlyList<JsonObject> agents)
    {
        var ids = agents.Select(a => Text(a, "id")).ToList();
        var descriptions = agents.Select(a => OneLine(Text(a, "description"))).ToList();
        var head = Generated + IndexMarker + "\n# Agents\n\n" + string.Create(CultureInfo.InvariantCulture,
            $"These {ids.Count} agents are Codex skills: each one's instructions are in `{CodexSkillsFolder}/<id>/SKILL.md`. Codex loads a skill when a task matches its description, or when you name it with `$<id>`.\n\n");

        string Render(int? width, int listed)
        {
            var sb = new StringBuilder(head);
            for (var i = 0; i < listed; i++)
            {
                sb.Append("- `").Append(ids[i]).Append('`');
                if (width is { } w && descriptions[i].Length > 0)
                {
                    sb.Append(": ").Append(Cut(descriptions[i], w));
                }

                sb.Append('\n');
            }

            if (listed < ids.Count)
            {
                sb.Append(string.Create(CultureInfo.InvariantCulture, $"- … and {ids.Count - listed} more under `{CodexSkillsFolder}/`\n"));
            }

            return sb.ToString();
        }

        bool Fits(string text) => Encoding.UTF8.GetByteCount(text) <= CodexDocLimit;

        var widest = descriptions.Count == 0 ? 0 : descriptions.Max(d => d.Length);
        if (Fits(Render(widest, ids.Count)))
        {
            return (Encoding.UTF8.GetBytes(Render(widest, ids.Count)), ids.Count, null);
        }

        if (Fits(Render(MinIndexWidth, ids.Count)))
        {
            int lo = MinIndexWidth, hi = widest; // lo fits, hi does not
            while (hi - lo > 1)
            {
                var mid = lo + ((hi - lo) / 2);
                if (Fits(Render(mid, ids.Count)))
                {
                    lo = mid;
                }
                else
                {
                    hi = mid;
                }
            }

            return (Encoding.UTF8.GetBytes(Render(lo, ids.Count)), ids.Count, lo);
        }

        if (Fits(Render(null, ids.Count)))
        {
            return (Encoding.UTF8.GetBytes(Render(null, ids.Count)), ids.Count, 0); // names only: shorter descriptions would say nothing
        }

        int fewest = 0, most = ids.Count; // fewest fits, most does not
        while (most - fewest > 1)
        {
            var mid = fewest + ((most - fewest) / 2);
            if (Fits(Render(null, mid)))
            {
                fewest = mid;
            }
            else
            {
                most = mid;
            }
        }

        return (Encoding.UTF8.GetBytes(Render(null, fewest)), fewest, null);
    }

    /// <summary>At most <paramref name="width"/> characters, ending in "…" when cut, never splitting a surrogate pair.</summary>
    private static string Cut(string text, int width)
    {
        if (text.Length <= width)
        {
            return text;
        }

        var keep = Math.Max(0, width - 1);
        if (keep > 0 && char.IsHighSurrogate(text[keep - 1]))
        {
            keep--;
        }

        return text[..keep].TrimEnd() + "…";
    }

    /// <summary>
    /// One agent as a Codex skill: front matter with <c>name</c> (the id) and <c>description</c> (cut to the skills limit),
    /// then the agent's AGENTS.md section, which holds everything (import reads it back).
    /// </summary>
    public static byte[] CodexSkill(JsonObject agent)
    {
        var sb = new StringBuilder();
        sb.Append("---\n");
        sb.Append("name: ").Append(YamlWriter.Scalar(Text(agent, "id"))).Append('\n');
        sb.Append("description: ").Append(YamlWriter.Scalar(Cut(OneLine(Text(agent, "description")), SkillDescriptionLimit))).Append('\n');
        sb.Append("---\n\n").Append(Generated);
        AppendSection(sb, agent);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>True when an AGENTS.md is the skills index <see cref="RenderCodex"/> writes (its agents are in the skills).</summary>
    public static bool IsCodexIndex(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Contains(IndexMarker, StringComparison.Ordinal);

    /// <summary>
    /// The agent of a SKILL.md <see cref="CodexSkill"/> wrote: the section after the front matter; the front matter's name
    /// must be the section's id.
    /// </summary>
    public static (JsonObject? Agent, string Where, RttException? Error) ReadCodexSkill(string text, string source)
    {
        text = text.Replace("\r\n", "\n", StringComparison.Ordinal);
        var end = text.StartsWith("---\n", StringComparison.Ordinal) ? text.IndexOf("\n---\n", 3, StringComparison.Ordinal) : -1;
        if (end < 0)
        {
            return (null, source, new RttException(ErrorCodes.ViewImportInvalid, "no front matter (a \"---\" line, name:, description:, a \"---\" line)", source,
                "give a SKILL.md in the layout rtt view build writes for openai (docs/views.md)"));
        }

        var name = text[4..end].Split('\n').FirstOrDefault(l => l.StartsWith("name: ", StringComparison.Ordinal))?[6..].Trim().Trim('"');
        var offset = end + 5;
        var read = ReadOpenAiAgents(text[offset..], source, text.AsSpan(0, offset).Count('\n'));
        if (read.Count != 1)
        {
            return (null, source, new RttException(ErrorCodes.ViewImportInvalid, string.Create(CultureInfo.InvariantCulture, $"{read.Count} agent sections; a skill holds one"), source,
                "give a SKILL.md in the layout rtt view build writes for openai (docs/views.md)"));
        }

        var (agent, where, error) = read[0];
        if (error is not null || agent is null)
        {
            return (null, where, error);
        }

        return name == (string?)agent["id"] ? (agent, where, null)
            : (null, where, new RttException(ErrorCodes.ViewImportInvalid, $"the front matter names \"{name}\" but the section is \"{agent["id"]}\"", source,
                "keep the name: line and the ## heading the same (the agent id)"));
    }
}
