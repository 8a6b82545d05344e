using System.Text;
using System.Text.Json.Nodes;
using Rtt.Views;

namespace Rtt.Core.Tests;

/// <summary>The OpenAI Codex views: one AGENTS.md while it fits Codex's 32 KiB, else an index and a skill per agent.</summary>
public sealed class CodexLayoutTests : IDisposable
{
    private readonly TestWorkspace _ws = new();
    private readonly TestWorkspace _fresh = new();

    public void Dispose()
    {
        _ws.Dispose();
        _fresh.Dispose();
    }

    private static JsonObject Agent(int i, int instructions, string? description = null) => new()
    {
        ["id"] = $"agent-{i:D4}",
        ["version"] = "1.0.0",
        ["description"] = description ?? $"Agent number {i} reviews 🚀 things: carefully",
        ["model"] = new JsonObject { ["name"] = "gpt-5-mini", ["temperature"] = 0.2 },
        ["tools"] = new JsonArray("shell", "apply_patch"),
        ["instructions"] = $"Agent {i}.\n\n## Not a section\n\n" + new string('x', instructions),
    };

    /// <summary>Imports these agents as an AGENTS.md into <paramref name="ws"/>, builds openai, returns providers/openai's files.</summary>
    private static SortedDictionary<string, byte[]> ImportAndBuild(TestWorkspace ws, string from)
    {
        var result = ViewImporter.Import(ws.Workspace, "openai", from);
        Assert.Empty(result.Errors);
        new ViewBuilder(ws.Workspace).Build("openai", null);
        var root = Path.Combine(ws.Root, "providers", "openai");
        return new SortedDictionary<string, byte[]>(
            Directory.GetFiles(root, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".rtt-owned.json", StringComparison.Ordinal))
                .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllBytes), StringComparer.Ordinal);
    }

    private string Source(IEnumerable<JsonObject> agents)
    {
        var path = Path.Combine(_ws.Root, "in", "AGENTS.md");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, ProviderFormats.OpenAiAgents(agents));
        return path;
    }

    [Fact]
    public void Agents_that_fit_stay_one_agents_md()
    {
        var files = ImportAndBuild(_ws, Source(Enumerable.Range(0, 10).Select(i => Agent(i, 200))));
        Assert.Equal(["AGENTS.md"], files.Keys);
        Assert.False(ProviderFormats.IsCodexIndex(Encoding.UTF8.GetString(files["AGENTS.md"])));
        Assert.Empty(ProviderFormats.CodexNotes(Enumerable.Range(0, 10).Select(i => Agent(i, 200))));
    }

    [Fact]
    public void Agents_that_do_not_fit_become_skills_with_an_index_within_the_limit_and_import_gives_the_same_bytes_back()
    {
        var agents = Enumerable.Range(0, 60).Select(i => Agent(i, 1000)).ToList(); // ~70 KiB as one AGENTS.md
        var files = ImportAndBuild(_ws, Source(agents));
        Assert.Equal(61, files.Count);
        var index = Encoding.UTF8.GetString(files["AGENTS.md"]);
        Assert.True(files["AGENTS.md"].Length <= ProviderFormats.CodexDocLimit);
        Assert.True(ProviderFormats.IsCodexIndex(index));
        Assert.Contains("- `agent-0042`: Agent number 42 reviews 🚀 things: carefully\n", index);
        var skill = Encoding.UTF8.GetString(files[".agents/skills/agent-0042/SKILL.md"]);
        Assert.StartsWith("---\nname: agent-0042\ndescription: \"Agent number 42 reviews 🚀 things: carefully\"\n---\n", skill, StringComparison.Ordinal);
        Assert.Contains("- model: gpt-5-mini\n- temperature: 0.2\n- tools: shell, apply_patch\n\n### Instructions\n\nAgent 42.\n\n## Not a section\n", skill);

        // The built folder imported into a fresh workspace builds to the same bytes, file by file.
        var again = ImportAndBuild(_fresh, Path.Combine(_ws.Root, "providers", "openai"));
        Assert.Equal(files.Keys, again.Keys);
        foreach (var (path, bytes) in files)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(again[path]), path);
        }

        var notes = ProviderFormats.CodexNotes(agents);
        Assert.Contains(notes, n => n.Contains("60 agent(s) take", StringComparison.Ordinal) && n.Contains(".agents/skills/<id>/SKILL.md", StringComparison.Ordinal));
    }

    [Fact]
    public void A_long_index_cuts_descriptions_to_the_widest_width_that_fits_and_then_lists_only_what_fits()
    {
        var many = Enumerable.Range(0, 400).Select(i => Agent(i, 10, $"Agent {i}: " + new string('d', 300))).ToList();
        var files = ProviderFormats.Render("openai", many.Select(a => ((string)a["id"]!, a)));
        var index = files["AGENTS.md"];
        Assert.True(index.Length <= ProviderFormats.CodexDocLimit);
        Assert.True(index.Length > ProviderFormats.CodexDocLimit - 400, "the width is the widest that fits, not a guess"); // one more character per line (400 lines) would not fit
        Assert.Contains("- `agent-0399`: Agent 399: ddd", Encoding.UTF8.GetString(index));
        Assert.Contains("…\n", Encoding.UTF8.GetString(index));
        Assert.Contains(ProviderFormats.CodexNotes(many), n => n.StartsWith("descriptions in the AGENTS.md index are cut to ", StringComparison.Ordinal));
        Assert.Equal(401, files.Count);

        var thousand = Enumerable.Range(0, 1000).Select(i => Agent(i, 10, $"Agent {i}: " + new string('d', 300))).ToList();
        var names = Encoding.UTF8.GetString(ProviderFormats.Render("openai", thousand.Select(a => ((string)a["id"]!, a)))["AGENTS.md"]);
        Assert.Contains("\n- `agent-0999`\n", names); // 16 characters of description each would fit: names alone say more
        Assert.DoesNotContain("`: ", names);
        Assert.Contains(ProviderFormats.CodexNotes(thousand), n => n.StartsWith("the AGENTS.md index lists the agents by name only", StringComparison.Ordinal));

        var huge = Enumerable.Range(0, 3000).Select(i => Agent(i, 10)).ToList();
        var text = Encoding.UTF8.GetString(ProviderFormats.Render("openai", huge.Select(a => ((string)a["id"]!, a)))["AGENTS.md"]);
        Assert.True(Encoding.UTF8.GetByteCount(text) <= ProviderFormats.CodexDocLimit);
        var listed = text.Split('\n').Count(l => l.StartsWith("- `agent-", StringComparison.Ordinal));
        Assert.InRange(listed, 1000, 2999);
        Assert.Contains($"- … and {3000 - listed} more under `.agents/skills/`\n", text);
        Assert.Contains(ProviderFormats.CodexNotes(huge), n => n.Contains($"lists {listed} of 3000 agents", StringComparison.Ordinal));
    }

    [Fact]
    public void A_description_longer_than_a_skill_may_have_is_cut_in_the_front_matter_and_kept_whole_in_the_body()
    {
        var agents = Enumerable.Range(0, 40).Select(i => Agent(i, 1000, i == 7 ? "Long " + new string('L', 2000) : null)).ToList();
        var skill = Encoding.UTF8.GetString(ProviderFormats.Render("openai", agents.Select(a => ((string)a["id"]!, a)))[".agents/skills/agent-0007/SKILL.md"]);
        var front = skill.Split("\n---\n")[0];
        Assert.Contains("description: Long LLL", front);
        Assert.EndsWith("…", front);
        Assert.Equal(1024, front[(front.IndexOf("description: ", StringComparison.Ordinal) + 13)..].Length);
        Assert.Contains("\n\nLong " + new string('L', 2000) + "\n\n- version: 1.0.0\n", skill);
        Assert.Contains(ProviderFormats.CodexNotes(agents), n => n.StartsWith("1 description(s) are longer than the 1024", StringComparison.Ordinal));
    }

    [Fact]
    public void A_skill_whose_name_and_heading_differ_is_refused_with_its_place()
    {
        var (agent, where, error) = ProviderFormats.ReadCodexSkill("---\nname: one\ndescription: d\n---\n\n## two\n\nd\n\n- version: 1.0.0\n\n### Instructions\n\nx\n", "s/SKILL.md");
        Assert.Null(agent);
        Assert.Equal("s/SKILL.md:6", where);
        Assert.Contains("names \"one\" but the section is \"two\"", error!.Message);
        Assert.NotNull(ProviderFormats.ReadCodexSkill("no front matter", "s/SKILL.md").Error);
        Assert.False(ProviderFormats.IsSkillName("Agent_1"));
        Assert.True(ProviderFormats.IsSkillName("code-reviewer-2"));
    }
}
