using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Cli.Tests;

[Collection(ProcessCollection.Name)]
public sealed class ViewCommandTests
{
    private const string ClaudeFile = "providers/claude/.claude/agents/summarize.md";


    [Fact]
    public void Diff_build_diff_clean_on_the_quickstart()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var diff = RttProcess.Run(ws, "view", "diff");
        Assert.True(diff.ExitCode == 1, diff.ToString()); // something would change
        Assert.Contains($"added      {ClaudeFile}", diff.Stdout);
        Assert.Contains("added      providers/openai/AGENTS.md", diff.Stdout);
        Assert.False(Directory.Exists(Path.Combine(ws, "providers")), "diff wrote files");

        var build = RttProcess.Run(ws, "view", "build");
        Assert.True(build.ExitCode == 0, build.ToString());
        Assert.Contains("2 view(s) for claude, openai (env none): 2 added", build.Stdout);
        var claude = File.ReadAllText(Path.Combine(ws, ClaudeFile));
        Assert.StartsWith("---\nname: summarize\ndescription: Summarises a document into a short abstract.\ntools: Read\nmodel: haiku\n---\n", claude);
        Assert.Contains("- model: gpt-5-mini", File.ReadAllText(Path.Combine(ws, "providers/openai/AGENTS.md")));

        var clean = RttProcess.Run(ws, "view", "diff");
        Assert.True(clean.ExitCode == 0, clean.ToString());
        Assert.Contains("no changes: 2 file(s) up to date", clean.Stdout);

        // The prod environment changes both files: --verbose shows a unified diff.
        var prod = RttProcess.Run(ws, "view", "diff", "--env", "prod", "--verbose");
        Assert.True(prod.ExitCode == 1, prod.ToString());
        Assert.Contains($"--- a/{ClaudeFile}\n+++ b/{ClaudeFile}\n@@ ", prod.Stdout);
        Assert.Contains("\n-Read the input and write a faithful summary of at most five sentences.\n", prod.Stdout);
        Assert.Contains("\n+Read the input and write a faithful summary of at most five sentences. Never add facts", prod.Stdout);
        Assert.Contains("\n+- temperature: 0\n", prod.Stdout);

        // A user's file beside rtt's survives a build and a clean.
        var mine = Path.Combine(ws, "providers/claude/.claude/agents/mine.md");
        File.WriteAllText(mine, "---\nname: mine\ndescription: mine\n---\nmine\n");
        Assert.Equal(0, RttProcess.Run(ws, "view", "build", "--env", "prod").ExitCode);
        Assert.Contains("Never add facts", File.ReadAllText(Path.Combine(ws, ClaudeFile)));
        var removed = RttProcess.Run(ws, "view", "clean");
        Assert.True(removed.ExitCode == 0, removed.ToString());
        Assert.Contains("removed 2 file(s)", removed.Stdout);
        Assert.False(File.Exists(Path.Combine(ws, ClaudeFile)));
        Assert.True(File.Exists(mine));

        var verify = RttProcess.Run(ws, "verify");
        Assert.True(verify.ExitCode == 0, verify.ToString()); // recorded views and overlays are signed objects
        var provenance = RttProcess.Run(ws, "view", "verify");
        Assert.True(provenance.ExitCode == 0, provenance.ToString());
        Assert.Contains("ok: 4 view(s) verified", provenance.Stdout); // claude and openai, without and with prod
    }

    [Fact]
    public void Bad_input_is_one_clear_error_and_nothing_is_written()
    {
        using var dir = TempDir.Quickstart(out var ws);
        void Refused(string code, string mention, params string[] args)
        {
            var result = RttProcess.Run(ws, args);
            Assert.True(result.ExitCode == 1, result.ToString());
            Assert.Contains($"error {code}", result.Stderr);
            Assert.Contains(mention, result.Stderr);
            Assert.DoesNotContain("   at ", result.Stderr); // no stack trace
            Assert.False(File.Exists(Path.Combine(ws, ClaudeFile)), $"{string.Join(' ', args)} wrote a file");
        }

        Refused(ErrorCodes.ViewNameInvalid, "../evil", "view", "build", "--provider", "../evil");
        Refused(ErrorCodes.ViewUnknownEnv, "prod", "view", "build", "--env", "staging");

        var unknown = Path.Combine(ws, "overlays/provider/claude/nobody.patch.json");
        File.WriteAllText(unknown, "{}");
        Refused(ErrorCodes.ViewUnknownAgent, "overlays/provider/claude/nobody.patch.json", "view", "build");
        File.Delete(unknown);

        var patch = Path.Combine(ws, "overlays/env/prod/summarize.patch.json");
        File.WriteAllText(patch, "[\"not an object\"]");
        Refused(ErrorCodes.ViewPatchInvalid, "overlays/env/prod/summarize.patch.json", "view", "diff", "--env", "prod");
        File.Delete(patch);

        Directory.CreateDirectory(Path.Combine(ws, "providers/claude/.claude/agents"));
        File.WriteAllText(Path.Combine(ws, ClaudeFile), "hand written\n");
        var notOwned = RttProcess.Run(ws, "view", "build");
        Assert.True(notOwned.ExitCode == 1, notOwned.ToString());
        Assert.Contains($"error {ErrorCodes.ViewNotOwned}", notOwned.Stderr);
        Assert.Contains(ClaudeFile, notOwned.Stderr);
        Assert.Equal("hand written\n", File.ReadAllText(Path.Combine(ws, ClaudeFile)));
        Assert.False(File.Exists(Path.Combine(ws, "providers/openai/AGENTS.md")));
    }

    [Fact]
    public void Import_then_build_gives_back_equivalent_claude_files()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var from = Path.Combine(dir.Path, "team", ".claude", "agents");
        Directory.CreateDirectory(from);
        var originals = new Dictionary<string, string>
        {
            ["writer.md"] = "---\nname: writer\ndescription: \"Writes release notes: short and plain.\"\ntools: Read, Edit\nmodel: sonnet\n---\n\nYou write release notes.\n",
            ["tester.md"] = "---\nname: tester\ndescription: Runs the tests\n---\nRun them all.\n",
        };
        foreach (var (name, text) in originals)
        {
            File.WriteAllText(Path.Combine(from, name), text);
        }

        var import = RttProcess.Run(ws, "view", "import", "--provider", "claude", Path.Combine(dir.Path, "team"));
        Assert.True(import.ExitCode == 0, import.ToString());
        Assert.Contains("wrote      agents/common/writer.agent.json", import.Stdout);
        Assert.Contains("wrote      overlays/provider/claude/writer.patch.json", import.Stdout);
        Assert.Contains("imported 2 agent(s): tester, writer", import.Stdout);

        var build = RttProcess.Run(ws, "view", "build", "--provider", "claude");
        Assert.True(build.ExitCode == 0, build.ToString());
        foreach (var (name, text) in originals)
        {
            var built = File.ReadAllText(Path.Combine(ws, "providers/claude/.claude/agents", name));
            Assert.Equal(
                CanonicalJson.ToCanonicalString(Sources.ClaudeSubagent(text, name).Object),
                CanonicalJson.ToCanonicalString(Sources.ClaudeSubagent(built, name).Object));
        }

        // The imported bases serve the other providers too, without Claude's model and tool names.
        Assert.Equal(0, RttProcess.Run(ws, "view", "build").ExitCode);
        var agentsMd = File.ReadAllText(Path.Combine(ws, "providers/openai/AGENTS.md"));
        Assert.Contains("## writer", agentsMd);
        Assert.DoesNotContain("sonnet", agentsMd);

        var refused = RttProcess.Run(ws, "view", "import", "--provider", "openai", from);
        Assert.True(refused.ExitCode == 1, refused.ToString());
        Assert.Contains($"error {ErrorCodes.ViewImportInvalid}", refused.Stderr);
    }

    [Theory]
    [InlineData("openai")]
    [InlineData("gemini")]
    public void Views_of_another_provider_imported_into_a_fresh_workspace_build_back_to_the_same_bytes(string provider)
    {
        using var dir = TempDir.Quickstart(out var source);
        File.WriteAllText(Path.Combine(source, "agents/common/triage.agent.json"), """
            {"id":"triage","version":"2.1.0","description":"Sorts incoming issues by area and urgency.",
             "instructions":"Read each issue.\n\n## Areas\n\n- fabric\n- planner\n\nAnswer with one label per issue.",
             "model":{"name":"gpt-5","temperature":0.2},"tools":["shell","browser"]}
            """);
        Directory.CreateDirectory(Path.Combine(source, "overlays", "provider", provider)); // names the provider (the quickstart has claude and openai)
        var built = RttProcess.Run(source, "view", "build", "--provider", provider);
        Assert.True(built.ExitCode == 0, built.ToString());
        var views = Path.Combine(source, "providers", provider);
        var files = Directory.GetFiles(views, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".rtt-owned.json", StringComparison.Ordinal)).ToList();

        var fresh = dir["fresh"];
        Assert.Equal(0, RttProcess.Run(dir.Path, "init", fresh).ExitCode);
        var import = RttProcess.Run(fresh, "view", "import", "--provider", provider, views);
        Assert.True(import.ExitCode == 0, import.ToString());
        Assert.Contains("imported 2 agent(s): summarize, triage", import.Stdout);
        Assert.Contains($"wrote      overlays/provider/{provider}/triage.patch.json", import.Stdout); // its model and tools are the provider's
        Assert.Null(JsonNode.Parse(File.ReadAllText(Path.Combine(fresh, "agents/common/triage.agent.json")))!["model"]);

        var rebuilt = RttProcess.Run(fresh, "view", "build", "--provider", provider);
        Assert.True(rebuilt.ExitCode == 0, rebuilt.ToString());
        foreach (var file in files)
        {
            var again = Path.Combine(fresh, "providers", provider, Path.GetRelativePath(views, file));
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(again));
        }

        // Importing the same files again changes nothing: the bases are kept and the overlays say the same.
        var twice = RttProcess.Run(fresh, "view", "import", "--provider", provider, views);
        Assert.True(twice.ExitCode == 0, twice.ToString());
        Assert.DoesNotContain("wrote", twice.Stdout);
    }

    [Fact]
    public void A_bad_agents_md_section_is_reported_at_its_line_and_the_good_ones_are_imported()
    {
        using var dir = TempDir.Quickstart(out var ws);
        var agentsMd = Path.Combine(dir.Path, "AGENTS.md");
        File.WriteAllText(agentsMd, "# Agents\n\n## good\n\nDoes good things.\n\n- version: 1.0.0\n- model: gpt-5\n\n### Instructions\n\nBe good.\n"
            + "\n## odd\n\nHas a stray line.\n\n- version: 1.0.0\n- color: red\n\n### Instructions\n\nBe odd.\n");
        var import = RttProcess.Run(ws, "view", "import", "--provider", "openai", agentsMd);
        Assert.Equal(1, import.ExitCode);
        Assert.Contains("imported 1 agent(s): good", import.Stdout);
        Assert.Contains($"error {ErrorCodes.ViewImportInvalid}", import.Stderr);
        Assert.Contains("AGENTS.md:19", import.Stderr); // the "- color: red" line
        Assert.DoesNotContain("   at ", import.Stderr);

        File.WriteAllText(agentsMd, "# Agents\n\nNothing here.\n");
        var empty = RttProcess.Run(ws, "view", "import", "--provider", "openai", agentsMd);
        Assert.Equal(1, empty.ExitCode);
        Assert.Contains("no agent sections found", empty.Stderr);
    }

    [Fact]
    public void Provider_files_are_the_same_bytes_under_any_locale_and_time_zone()
    {
        using var dir = new TempDir();
        var trees = new List<string>();
        foreach (var (name, lang, tz) in new[] { ("a", "C.UTF-8", "UTC"), ("b", "tr_TR.UTF-8", "Pacific/Kiritimati"), ("c", "de_DE.UTF-8", "America/St_Johns") })
        {
            var ws = dir[name];
            Assert.Equal(0, RttProcess.Run(dir.Path, "init", "--example", "quickstart", ws).ExitCode);
            var env = new Dictionary<string, string> { ["LANG"] = lang, ["LC_ALL"] = lang, ["TZ"] = tz };
            var build = RttProcess.RunWith(ws, env, "view", "build", "--env", "prod");
            Assert.True(build.ExitCode == 0, build.ToString());
            var providers = Path.Combine(ws, "providers");
            trees.Add(string.Join("\n", Directory.GetFiles(providers, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                .Select(f => $"{Path.GetRelativePath(providers, f)} {Convert.ToHexString(File.ReadAllBytes(f))}")));
        }

        Assert.Contains(".rtt-owned.json", trees[0]);
        Assert.Single(trees.Distinct());
    }

    [Fact]
    public void Up_once_builds_the_quickstart_views()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["RTT_ENV"] = "prod" };
        var result = RttProcess.RunWith(dir.Path, env, "up", "--example", "quickstart", "--into", dir["qs"], "--once", "--json",
            "--silo-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture), "--gateway-port", RttProcess.FreePort().ToString(CultureInfo.InvariantCulture));
        Assert.True(result.ExitCode == 0, result.ToString());
        var views = JsonNode.Parse(result.Stdout)!["steps"]!.AsArray().Single(s => (string?)s!["step"] == "views")!;
        Assert.Equal("ok", (string?)views["status"]);
        Assert.Contains("2 view(s) for claude, openai (env prod): 2 added", (string?)views["detail"]);
        Assert.Contains("Never add facts", File.ReadAllText(dir[Path.Combine("qs", ClaudeFile)]));
        Assert.Contains("- temperature: 0", File.ReadAllText(dir["qs/providers/openai/AGENTS.md"]));
    }
}
