using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Registry;
using Rtt.Views;

namespace Rtt.Core.Tests;

/// <summary>Claude Code subagents as users have them: every key kept, lenient where Claude Code is, versions that follow edits.</summary>
public sealed class ClaudeFidelityTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    /// <summary>Every key Claude Code knows of, and one it does not, in a user's own order (keys inside a nested mapping
    /// come back in ordinal order, as docs/registry.md says).</summary>
    private const string Full = "---\n"
        + "name: locked-down\n"
        + "description: Reviews plans only\n"
        + "tools: []\n"
        + "disallowedTools: Write, Edit, Bash\n"
        + "permissionMode: plan\n"
        + "model: sonnet\n"
        + "color: red\n"
        + "maxTurns: 5\n"
        + "background: true\n"
        + "memory:\n"
        + "skills:\n"
        + "  - review\n"
        + "  - plan\n"
        + "mcpServers:\n"
        + "  - github\n"
        + "hooks:\n"
        + "  PreToolUse:\n"
        + "    - hooks:\n"
        + "        - command: ./check.sh\n"
        + "          type: command\n"
        + "      matcher: Bash\n"
        + "x-team: core\n"
        + "---\n"
        + "\n"
        + "You only read.\n";

    private ScanReport Scan(params string[] paths)
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        return new Scanner(_ws.Workspace, store).Run(paths);
    }

    [Fact]
    public void Every_front_matter_key_comes_back_in_its_order_with_its_value()
    {
        var parsed = Sources.ClaudeSubagent(Full, ".claude/agents/locked-down.md");
        Assert.Empty(Assert.IsType<JsonArray>(parsed.Object["tools"])); // tools: [] is no tools, not "inherit all"
        Assert.Equal(Full, Encoding.UTF8.GetString(ProviderFormats.ClaudeAgent(parsed.Object)));
    }

    [Fact]
    public void Import_then_build_writes_the_same_file_back()
    {
        _ws.Write("team/.claude/agents/locked-down.md", Full);
        _ws.Write("team/.claude/agents/sub/plain.md", "---\nname: plain\ndescription: d\n---\nbody\n"); // a subfolder, as Claude Code reads it
        var result = ViewImporter.Import(_ws.Workspace, "claude", Path.Combine(_ws.Root, "team"));
        Assert.Empty(result.Errors);
        Assert.Equal(["locked-down", "plain"], result.Agents);
        new ViewBuilder(_ws.Workspace).Build("claude", null);
        Assert.Equal(Full, File.ReadAllText(Path.Combine(_ws.Root, "providers/claude/.claude/agents/locked-down.md")));
        Assert.Equal("---\nname: plain\ndescription: d\n---\nbody\n", File.ReadAllText(Path.Combine(_ws.Root, "providers/claude/.claude/agents/plain.md")));
    }

    [Theory]
    [InlineData("---\nname: quoted\ndescription: \"Plain enough, but quoted\"\nmodel: 'sonnet'\ncolor: \"red\"\n---\nbody\n")]
    [InlineData("---\nname: listed\ndescription: d\ntools:\n  - Read\n  - Grep\n---\nbody\n")]
    [InlineData("---\nname: flow\ndescription: d\ntools: [Read, Grep]\n---\n\n\nbody")]
    public void Quoting_and_list_styles_come_back_as_written(string md)
    {
        Assert.Equal(md, Encoding.UTF8.GetString(ProviderFormats.ClaudeAgent(Sources.ClaudeSubagent(md, "x.md").Object)));
    }

    [Fact]
    public void Characters_outside_the_bmp_are_written_literally()
    {
        var parsed = Sources.ClaudeSubagent("---\nname: ship\ndescription: \"Ships it 🚀: fast\"\ncolor: \"🟥\"\n---\nGo 🚀\n", "ship.md");
        var text = Encoding.UTF8.GetString(ProviderFormats.ClaudeAgent(parsed.Object));
        Assert.Contains("description: \"Ships it 🚀: fast\"\n", text);
        Assert.Contains("color: \"🟥\"\n", text);
        Assert.DoesNotContain("\\u", text);
        Assert.Equal("\"a\\u0001b\\L\"", ProviderFormats.YamlScalar("a\u0001b\u2028"));
    }

    [Fact]
    public void Values_Claude_Code_accepts_but_strict_yaml_refuses_are_read_as_text_with_a_warning()
    {
        const string md = "---\nname: helper\ndescription: Use this agent when asked. Examples: <example>Context: the user asks</example>\n"
            + "model: sonnet\nsummary: **Bold** start\n---\nbody\n";
        var parsed = Sources.ClaudeSubagent(md, "helper.md");
        Assert.Equal("Use this agent when asked. Examples: <example>Context: the user asks</example>", (string?)parsed.Object["description"]);
        Assert.Equal(2, parsed.Warnings.Count);
        Assert.StartsWith("helper.md:3: \"description\"", parsed.Warnings[0]);
        Assert.StartsWith("helper.md:5: \"summary\"", parsed.Warnings[1]);
        Assert.Equal(md, Encoding.UTF8.GetString(ProviderFormats.ClaudeAgent(parsed.Object))); // written back as the user wrote it

        // An overlay's new value that the lenient reading would not give back the same is quoted instead.
        parsed.Object["description"] = "Use when asked: now with # a hash";
        var rewritten = Encoding.UTF8.GetString(ProviderFormats.ClaudeAgent(parsed.Object));
        Assert.Contains("description: \"Use when asked: now with # a hash\"\n", rewritten);
        Assert.Equal("Use when asked: now with # a hash", (string?)Sources.ClaudeSubagent(rewritten, "helper.md").Object["description"]);
        foreach (var value in (string[])["a: b", "@handle: x", "`code`: y", "**Bold** start", "x: y: z"])
        {
            Assert.True(ClaudeFrontMatter.ReadsBackLeniently(value), value);
            var again = Sources.ClaudeSubagent($"---\nname: n\ndescription: {value}\n---\nb\n", "n.md");
            Assert.Equal(value, (string?)again.Object["description"]);
        }

        Assert.False(ClaudeFrontMatter.ReadsBackLeniently("plain text"));
        Assert.False(ClaudeFrontMatter.ReadsBackLeniently("a: b #c"));

        // What the lenient reading cannot mend is still refused, at its line.
        var ex = Assert.Throws<RttException>(() => Sources.ClaudeSubagent("---\nname: [unclosed\n---\nbody\n", "x.md"));
        Assert.Equal(ErrorCodes.YamlInvalid, ex.Code);
        Assert.StartsWith("x.md:", ex.Location);
    }

    [Theory]
    [InlineData("tools:\n  - [Read, Grep]", "/tools")]
    [InlineData("tools:\n  Read: yes", "/tools")]
    [InlineData("model:\n  - [sonnet]", "/model")]
    [InlineData("name: [a, b]", "/name")]
    public void Nested_values_where_one_is_expected_are_refused_naming_file_and_field(string yaml, string field)
    {
        var md = $"---\n{(yaml.StartsWith("name", StringComparison.Ordinal) ? "" : "name: x\n")}description: d\n{yaml}\n---\nbody\n";
        var ex = Assert.Throws<RttException>(() => Sources.ClaudeSubagent(md, "x.md"));
        Assert.Equal(ErrorCodes.SchemaViolation, ex.Code);
        Assert.StartsWith("x.md:", ex.Location);
        Assert.EndsWith(field, ex.Location);
    }

    [Fact]
    public void Errors_point_at_the_right_place()
    {
        var name = Assert.Throws<RttException>(() => Sources.ClaudeSubagent("---\nname: Bad Name\ndescription: d\n---\nb\n", "x.md"));
        Assert.Equal("x.md:2: /name", name.Location);

        // A byte order mark is not "no front matter".
        Assert.Equal("bom", Sources.ClaudeSubagent("\uFEFF---\nname: bom\ndescription: d\n---\nb\n", "x.md").Id);
        var indented = Assert.Throws<RttException>(() => Sources.ClaudeSubagent("\n  ---\nname: x\n---\n", "x.md"));
        Assert.Contains("line 2", indented.Remedy);
    }

    [Fact]
    public void Two_files_with_one_name_are_reported_naming_the_other_file()
    {
        _ws.Write(".claude/agents/helper.md", "---\nname: helper\ndescription: d\n---\nb\n");
        _ws.Write(".claude/agents/copy-of-helper.md", "---\nname: helper\ndescription: d\n---\nb\n");
        var report = Scan();
        var error = Assert.Single(report.Errors);
        Assert.Equal(".claude/agents/helper.md", error.Path); // the first in path order keeps the name
        Assert.Equal(ErrorCodes.DuplicateAgent, error.Error.Code);
        Assert.Contains(".claude/agents/copy-of-helper.md", error.Error.Message);
    }

    [Fact]
    public void An_edited_subagent_becomes_the_next_version_and_the_previous_one_stays()
    {
        _ws.Write(".claude/agents/helper.md", "---\nname: helper\ndescription: first\n---\nb\n");
        Assert.Empty(Scan().Errors);
        _ws.Write(".claude/agents/helper.md", "---\nname: helper\ndescription: second\n---\nb\n");
        var report = Scan();
        Assert.Empty(report.Errors);
        Assert.Equal([".claude/agents/helper.md"], report.Changed);
        using var store = RegistryStore.Open(_ws.Workspace);
        Assert.Equal("first", (string?)store.ReadObject(store.Resolve("helper@1.0.0"))["description"]);
        Assert.Equal("second", (string?)store.ReadObject(store.Resolve("helper@1.0.1"))["description"]);

        // Back to the first text: the first version again, nothing new.
        _ws.Write(".claude/agents/helper.md", "---\nname: helper\ndescription: first\n---\nb\n");
        Assert.Empty(Scan().Errors);
        var symbols = JsonNode.Parse(File.ReadAllText(Path.Combine(_ws.Workspace.Registry, "symbols.json")))!;
        Assert.Equal("1.0.0", (string?)symbols["rtt://agents/agent/helper"]![0]!["version"]);
    }

    [Fact]
    public void Scan_and_view_build_of_the_same_agent_do_not_collide()
    {
        _ws.Write(".claude/agents/helper.md", "---\nname: helper\ndescription: d\ntools: Read\n---\nb\n");
        Assert.Empty(Scan().Errors);
        Assert.Empty(ViewImporter.Import(_ws.Workspace, "claude", _ws.Root).Errors);
        new ViewBuilder(_ws.Workspace).Build("claude", null);
        Assert.Empty(Scan().Errors);
        new ViewBuilder(_ws.Workspace).Build("claude", null);

        // And the other order, in a second agent: import and build first, then scan.
        _ws.Write("more/.claude/agents/other.md", "---\nname: other\ndescription: d\n---\nb\n");
        Assert.Empty(ViewImporter.Import(_ws.Workspace, "claude", Path.Combine(_ws.Root, "more")).Errors);
        new ViewBuilder(_ws.Workspace).Build("claude", null);
        Assert.Empty(Scan().Errors);
    }

    [Fact]
    public void Import_takes_every_good_file_and_reports_every_bad_one()
    {
        _ws.Write("in/a.md", "---\nname: a\ndescription: d\n---\nb\n");
        _ws.Write("in/b.md", "no front matter\n");
        _ws.Write("in/c.md", "---\nname: C D\ndescription: d\n---\nb\n");
        _ws.Write("in/d.md", "---\nname: d\ndescription: d\n---\nb\n");
        var result = ViewImporter.Import(_ws.Workspace, "claude", Path.Combine(_ws.Root, "in"));
        Assert.Equal(["a", "d"], result.Agents);
        Assert.Equal([ErrorCodes.YamlInvalid, ErrorCodes.SchemaViolation], result.Errors.Select(e => e.Error.Code));
        Assert.True(File.Exists(Path.Combine(_ws.Root, "agents/common/d.agent.json")));
    }

    [Fact]
    public void Nested_agent_folders_are_scanned()
    {
        _ws.Write(".claude/agents/team/deep/helper.md", "---\nname: helper\ndescription: d\n---\nb\n");
        Assert.Equal([".claude/agents/team/deep/helper.md"], Scan().Added);
    }

    [Fact]
    public void A_touched_file_is_read_once_then_the_cache_knows_its_new_time()
    {
        var path = _ws.Write(".claude/agents/helper.md", "---\nname: helper\ndescription: d\n---\nb\n");
        Scan();
        var later = DateTime.UtcNow.AddMinutes(5);
        File.SetLastWriteTimeUtc(path, later);
        var touched = Scan();
        Assert.Equal((0, 0, 1), (touched.Added.Count, touched.Changed.Count, touched.Unchanged));
        var cache = JsonNode.Parse(File.ReadAllText(Path.Combine(_ws.Workspace.State, "scan-cache.json")))!;
        Assert.Equal(later.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)cache["files"]![".claude/agents/helper.md"]!["mtime"]);
    }
}
