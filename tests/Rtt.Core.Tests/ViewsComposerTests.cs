using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Registry;
using Rtt.Views;

namespace Rtt.Core.Tests;

public sealed class ViewsComposerTests
{
    private static readonly string Base = TestWorkspace.Agent("summarize");

    private static Dictionary<string, byte[]> Files(params (string Path, string Text)[] files) =>
        files.ToDictionary(f => f.Path, f => Encoding.UTF8.GetBytes(f.Text), StringComparer.Ordinal);

    private static (string, string) Agent(string name, string? text = null) => ($"agents/common/{name}.agent.json", text ?? TestWorkspace.Agent(name));

    [Fact]
    public void Overlays_apply_in_order_base_provider_env_global_env_agent()
    {
        var sources = ViewSources.FromFiles(Files(
            Agent("summarize"),
            ("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"sonnet"},"description":"claude desc","tools":["Read"]}"""),
            ("overlays/env/prod/_global.patch.json", """{"model":{"hint":"opus","temperature":0}}"""),
            ("overlays/env/prod/summarize.patch.json", """{"description":"prod desc"}""")));

        var plain = ViewComposer.Compose(sources, "summarize", "claude", null);
        Assert.Equal("sonnet", (string?)plain.Content["model"]!["hint"]);
        Assert.Equal("claude desc", (string?)plain.Content["description"]);
        Assert.Equal(["overlays/provider/claude/summarize.patch.json"], plain.Overlays.Select(o => o.Path));

        var prod = ViewComposer.Compose(sources, "summarize", "claude", "prod");
        Assert.Equal("opus", (string?)prod.Content["model"]!["hint"]); // env overrides provider
        Assert.Equal(0, (double)prod.Content["model"]!["temperature"]!);
        Assert.Equal("prod desc", (string?)prod.Content["description"]); // the agent's env overlay comes after _global
        Assert.Equal(["Read"], prod.Content["tools"]!.AsArray().Select(t => (string)t!));
        Assert.Equal(
            ["overlays/provider/claude/summarize.patch.json", "overlays/env/prod/_global.patch.json", "overlays/env/prod/summarize.patch.json"],
            prod.Overlays.Select(o => o.Path));
        Assert.Empty(prod.Conflicts); // different levels override by design

        // Another provider has no overlay: it sees the base plus the env.
        var openai = ViewComposer.Compose(sources, "summarize", "openai", "prod");
        Assert.Equal("opus", (string?)openai.Content["model"]!["hint"]);
        Assert.Equal(["read"], openai.Content["tools"]!.AsArray().Select(t => (string)t!));
    }

    [Fact]
    public void Same_level_overlays_that_disagree_are_reported_with_both_sources()
    {
        var sources = ViewSources.FromFiles(Files(
            Agent("summarize"),
            ("overlays/env/prod/_global.patch.json", """{"model":{"hint":"a","temperature":1},"description":"same"}"""),
            ("overlays/env/prod/summarize.patch.json", """{"model":{"hint":"b","temperature":1},"description":"same","tools":null}""")));

        var view = ViewComposer.Compose(sources, "summarize", "claude", "prod");
        var conflict = Assert.Single(view.Conflicts); // temperature and description agree: not conflicts
        Assert.Equal("/model/hint", conflict.Field);
        Assert.Equal("overlays/env/prod/_global.patch.json", conflict.FirstSource);
        Assert.Equal("overlays/env/prod/summarize.patch.json", conflict.SecondSource);
        Assert.Contains("\"a\"", conflict.FirstValue);
        Assert.Contains("\"b\"", conflict.SecondValue);
        Assert.Equal("b", (string?)view.Content["model"]!["hint"]); // not strict: the later one wins

        var plan = new ViewPlan("prod", [], [view]);
        var ex = Assert.Throws<RttException>(() => ViewBuilder.ThrowOnConflicts(plan, strict: true));
        Assert.Equal(ErrorCodes.ViewConflict, ex.Code);
        Assert.Contains("_global.patch.json", ex.Message);
        Assert.Contains("prod/summarize.patch.json", ex.Message);
        ViewBuilder.ThrowOnConflicts(plan, strict: false);
    }

    [Fact]
    public void Replacing_a_field_another_overlay_sets_a_member_of_is_a_conflict()
    {
        var sources = ViewSources.FromFiles(Files(
            Agent("summarize"),
            ("overlays/env/prod/_global.patch.json", """{"model":null}"""),
            ("overlays/env/prod/summarize.patch.json", """{"model":{"hint":"b"}}""")));
        var conflict = Assert.Single(ViewComposer.Compose(sources, "summarize", "claude", "prod").Conflicts);
        Assert.Equal("/model", conflict.Field);
    }

    [Fact]
    public void A_base_shared_by_several_provider_overlays_is_fine()
    {
        var sources = ViewSources.FromFiles(Files(
            Agent("summarize"),
            ("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"sonnet"}}"""),
            ("overlays/provider/openai/summarize.patch.json", """{"model":{"hint":"gpt-5"}}""")));
        Assert.Equal(["claude", "openai"], sources.Providers);
        Assert.Equal("sonnet", (string?)ViewComposer.Compose(sources, "summarize", "claude", null).Content["model"]!["hint"]);
        Assert.Equal("gpt-5", (string?)ViewComposer.Compose(sources, "summarize", "openai", null).Content["model"]!["hint"]);
        Assert.Empty(ViewComposer.Compose(sources, "summarize", "claude", null).Conflicts);
    }

    [Theory]
    [InlineData("overlays/provider/claude/nobody.patch.json", """{"description":"x"}""", ErrorCodes.ViewUnknownAgent)]
    [InlineData("overlays/env/prod/nobody.patch.json", """{"description":"x"}""", ErrorCodes.ViewUnknownAgent)]
    [InlineData("overlays/provider/claude/summarize.patch.json", """["not","an","object"]""", ErrorCodes.ViewPatchInvalid)]
    [InlineData("overlays/provider/claude/summarize.patch.json", "\"text\"", ErrorCodes.ViewPatchInvalid)]
    [InlineData("overlays/provider/claude/summarize.patch.json", """{"id":"other"}""", ErrorCodes.ViewPatchInvalid)]
    [InlineData("overlays/provider/claude/summarize.patch.json", """{"version":"9.9.9"}""", ErrorCodes.ViewPatchInvalid)]
    [InlineData("overlays/provider/claude/summarize.patch.json", """{"description":""", ErrorCodes.JsonInvalid)]
    [InlineData("overlays/provider/Claude Code/summarize.patch.json", """{}""", ErrorCodes.ViewNameInvalid)]
    [InlineData("overlays/provider/claude/deep/summarize.patch.json", """{}""", ErrorCodes.ViewNameInvalid)]
    public void Bad_overlays_are_refused_naming_the_file(string path, string text, string code)
    {
        var ex = Assert.ThrowsAny<RttException>(() => ViewSources.FromFiles(Files(Agent("summarize"), (path, text))));
        Assert.Equal(code, ex.Code);
        Assert.Contains(path, ex.Location);
    }

    [Fact]
    public void An_overlay_that_breaks_the_definition_is_refused()
    {
        var sources = ViewSources.FromFiles(Files(Agent("summarize"), ("overlays/provider/claude/summarize.patch.json", """{"description":null}""")));
        var ex = Assert.Throws<RttException>(() => ViewComposer.Compose(sources, "summarize", "claude", null));
        Assert.Equal(ErrorCodes.SchemaViolation, ex.Code);
        Assert.Contains("view claude/-/summarize", ex.Location);
    }

    [Fact]
    public void Unknown_agent_env_and_provider_names_are_refused()
    {
        var sources = ViewSources.FromFiles(Files(Agent("summarize")));
        Assert.Equal(ErrorCodes.ViewUnknownAgent, Assert.Throws<RttException>(() => ViewComposer.Compose(sources, "nobody", "claude", null)).Code);
        Assert.Equal(ErrorCodes.ViewUnknownEnv, Assert.Throws<RttException>(() => ViewComposer.Compose(sources, "summarize", "claude", "prod")).Code);
        foreach (var bad in new[] { "../x", "a/b", "a\\b", "..", ".hidden", "", "UPPER" })
        {
            Assert.Equal(ErrorCodes.ViewNameInvalid, Assert.Throws<RttException>(() => ViewComposer.Compose(sources, "summarize", bad, null)).Code);
        }

        var mismatch = Assert.Throws<RttException>(() => ViewSources.FromFiles(Files(("agents/common/other.agent.json", Base))));
        Assert.Equal(ErrorCodes.ViewNameInvalid, mismatch.Code);
    }

    [Fact]
    public void Claude_files_read_back_as_the_same_definition()
    {
        var sources = ViewSources.FromFiles(Files(
            Agent("summarize"),
            ("overlays/provider/claude/summarize.patch.json",
                """{"description":"Summarises: fast, # and 'quoted'","model":{"hint":"sonnet"},"tools":["Read","Grep"],"instructions":"Line one.\n\n## Heading\nyes\n"}""")));
        var bytes = ViewEngine.RenderAgent(sources, "summarize", "claude", null);
        var text = Encoding.UTF8.GetString(bytes);
        Assert.StartsWith("---\nname: summarize\ndescription: \"Summarises: fast, # and 'quoted'\"\ntools: Read, Grep\nmodel: sonnet\n---\n", text);
        var back = Sources.ClaudeSubagent(text, ".claude/agents/summarize.md").Object;
        Assert.Equal("Summarises: fast, # and 'quoted'", (string?)back["description"]);
        Assert.Equal("Line one.\n\n## Heading\nyes\n", (string?)back["instructions"]);
        Assert.Equal("sonnet", (string?)back["model"]!["hint"]);
        Assert.Equal(["Read", "Grep"], back["tools"]!.AsArray().Select(t => (string)t!));
    }

    [Theory]
    [InlineData("true")]
    [InlineData("1.5")]
    [InlineData("null")]
    [InlineData("a: b")]
    [InlineData("- item")]
    [InlineData(" leading")]
    [InlineData("line\nbreak")]
    public void Yaml_scalars_that_could_be_misread_are_quoted_and_read_back(string value)
    {
        var scalar = ProviderFormats.YamlScalar(value);
        Assert.StartsWith("\"", scalar);
        var back = Sources.ClaudeSubagent($"---\nname: x\ndescription: {scalar}\n---\nbody\n", "x.md").Object;
        Assert.Equal(value, (string?)back["description"]);
    }

    [Fact]
    public void Agents_md_has_one_section_per_agent_in_ordinal_order_and_generic_json_is_the_definition()
    {
        var sources = ViewSources.FromFiles(Files(Agent("zeta"), Agent("alpha"), Agent("mid")));
        var tree = ViewEngine.RenderTree(sources, "openai", null);
        var md = Encoding.UTF8.GetString(Assert.Single(tree, f => f.Key == "AGENTS.md").Value);
        var positions = new[] { "## alpha", "## mid", "## zeta" }.Select(h => md.IndexOf(h, StringComparison.Ordinal)).ToList();
        Assert.All(positions, p => Assert.True(p >= 0));
        Assert.Equal(positions.Order(), positions);
        Assert.Contains("You are mid.", md);

        var generic = ViewEngine.RenderTree(sources, "gemini", null);
        Assert.Equal(["alpha.agent.json", "mid.agent.json", "zeta.agent.json"], generic.Keys);
        var parsed = Sources.Agent(generic["mid.agent.json"], "mid.agent.json");
        Assert.Equal("mid", parsed.Id);
        Assert.Equal(
            CanonicalJson.ToCanonicalString(JsonNode.Parse(TestWorkspace.Agent("mid"))),
            CanonicalJson.ToCanonicalString(parsed.Object));
    }

    [Fact]
    public void Views_are_the_same_bytes_whatever_the_file_order_and_locale()
    {
        var files = new[]
        {
            Agent("zeta"), Agent("alpha"), Agent("istanbul"),
            ("overlays/provider/claude/istanbul.patch.json", """{"description":"İstanbul ıI","model":{"temperature":0.1}}"""),
            ("overlays/provider/openai/alpha.patch.json", """{"model":{"name":"gpt-5","temperature":1e-7}}"""),
            ("overlays/env/prod/_global.patch.json", """{"x-env":"prod"}"""),
            ("overlays/env/prod/zeta.patch.json", """{"tools":["b","a"]}"""),
        };
        var culture = CultureInfo.CurrentCulture;
        var outputs = new List<string>();
        try
        {
            foreach (var (order, cultureName) in new[] { (0, "en-US"), (1, "tr-TR"), (2, "de-DE"), (3, "ja-JP") })
            {
                CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo(cultureName);
                var shuffled = order switch
                {
                    0 => files,
                    1 => files.Reverse().ToArray(),
                    2 => files.OrderBy(f => f.Item1.Length).ToArray(),
                    _ => files.OrderByDescending(f => f.Item2, StringComparer.Ordinal).ToArray(),
                };
                var sources = ViewSources.FromFiles(Files(shuffled));
                var all = new StringBuilder();
                foreach (var provider in new[] { "claude", "openai", "other" })
                {
                    foreach (var (path, bytes) in ViewEngine.RenderTree(sources, provider, "prod"))
                    {
                        all.Append(provider).Append('/').Append(path).Append('\n').Append(Convert.ToHexString(bytes)).Append('\n');
                    }
                }

                outputs.Add(all.ToString());
            }
        }
        finally
        {
            CultureInfo.CurrentCulture = culture;
        }

        Assert.Single(outputs.Distinct());
        Assert.Contains(Convert.ToHexString(Encoding.UTF8.GetBytes("- temperature: 1e-7\n")), outputs[0]); // ECMAScript number form, not 1E-07
    }
}
