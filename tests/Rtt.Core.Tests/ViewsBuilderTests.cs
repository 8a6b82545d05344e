using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Registry;
using Rtt.Views;

namespace Rtt.Core.Tests;

public sealed class ViewsBuilderTests : IDisposable
{
    private readonly TestWorkspace _ws = new();
    private readonly List<string> _immutable = [];

    public ViewsBuilderTests()
    {
        _ws.Write("agents/common/summarize.agent.json", TestWorkspace.Agent("summarize"));
        _ws.Write("agents/common/review.agent.json", TestWorkspace.Agent("review"));
        _ws.Write("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"sonnet"},"tools":["Read"]}""");
        _ws.Write("overlays/provider/openai/summarize.patch.json", """{"model":{"name":"gpt-5"}}""");
        _ws.Write("overlays/provider/gemini/review.patch.json", """{"description":"gemini review"}""");
        _ws.Write("overlays/env/prod/_global.patch.json", """{"model":{"temperature":0}}""");
    }

    private ViewBuilder Builder => new(_ws.Workspace);

    private string P(string rel) => Path.Combine(_ws.Root, rel);

    [Fact]
    public void Build_writes_each_provider_format_then_nothing_when_nothing_changed()
    {
        var result = Builder.Build(null, "prod");
        Assert.Equal(
            ["providers/claude/.claude/agents/review.md", "providers/claude/.claude/agents/summarize.md", "providers/gemini/review.agent.json",
             "providers/gemini/summarize.agent.json", "providers/openai/AGENTS.md"],
            result.Plan.Changes.Select(c => c.WorkspacePath).Order(StringComparer.Ordinal));
        Assert.All(result.Plan.Changes, c => Assert.Equal(FileChangeKind.Added, c.Kind));
        Assert.StartsWith("---\nname: summarize\n", File.ReadAllText(P("providers/claude/.claude/agents/summarize.md")));
        Assert.Contains("model: sonnet", File.ReadAllText(P("providers/claude/.claude/agents/summarize.md")));
        Assert.Contains("## summarize", File.ReadAllText(P("providers/openai/AGENTS.md")));
        Assert.Equal("gemini review", (string?)JsonNode.Parse(File.ReadAllText(P("providers/gemini/review.agent.json")))!["description"]);

        var owned = OwnedFiles.Load(P("providers/claude"), "claude");
        Assert.Equal([".claude/agents/review.md", ".claude/agents/summarize.md"], owned.Files.Keys);

        var stamp = File.GetLastWriteTimeUtc(P("providers/claude/.claude/agents/summarize.md"));
        var manifestStamp = File.GetLastWriteTimeUtc(P("providers/claude/.rtt-owned.json"));
        var again = Builder.Plan(null, "prod");
        Assert.False(again.HasChanges);
        Assert.Equal(5, again.Unchanged);
        Builder.Build(null, "prod");
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(P("providers/claude/.claude/agents/summarize.md")));
        Assert.Equal(manifestStamp, File.GetLastWriteTimeUtc(P("providers/claude/.rtt-owned.json")));

        // One overlay changes: only that provider's file changes.
        _ws.Write("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"opus"}}""");
        var change = Assert.Single(Builder.Plan(null, "prod").Changes);
        Assert.Equal((FileChangeKind.Changed, "providers/claude/.claude/agents/summarize.md"), (change.Kind, change.WorkspacePath));
    }

    [Fact]
    public void User_files_survive_build_and_clean_and_stale_files_are_removed()
    {
        _ws.Write("providers/claude/.claude/agents/mine.md", "---\nname: mine\ndescription: the user's own\n---\nmine\n");
        _ws.Write("providers/openai/NOTES.md", "user notes\n");
        Builder.Build(null, null);
        Assert.True(File.Exists(P("providers/claude/.claude/agents/review.md")));

        File.Delete(P("agents/common/review.agent.json"));
        File.Delete(P("overlays/provider/gemini/review.patch.json"));
        var plan = Builder.Plan(null, null);
        Assert.Equal(
            [("providers/claude/.claude/agents/review.md", FileChangeKind.Removed), ("providers/gemini/review.agent.json", FileChangeKind.Removed), ("providers/openai/AGENTS.md", FileChangeKind.Changed)],
            plan.Changes.Select(c => (c.WorkspacePath, c.Kind)).Order());
        Builder.Build(null, null);
        Assert.False(File.Exists(P("providers/claude/.claude/agents/review.md")));
        Assert.True(File.Exists(P("providers/claude/.claude/agents/summarize.md")));

        Builder.Clean(null);
        Assert.False(File.Exists(P("providers/claude/.claude/agents/summarize.md")));
        Assert.False(File.Exists(P("providers/claude/.rtt-owned.json")));
        Assert.False(File.Exists(P("providers/openai/AGENTS.md")));
        Assert.False(Directory.Exists(P("providers/gemini"))); // it held only rtt's files
        Assert.Equal("---\nname: mine\ndescription: the user's own\n---\nmine\n", File.ReadAllText(P("providers/claude/.claude/agents/mine.md")));
        Assert.Equal("user notes\n", File.ReadAllText(P("providers/openai/NOTES.md")));
        Assert.Empty(Directory.GetDirectories(P("providers"), ".rtt-staging-*"));
    }

    [Fact]
    public void A_file_rtt_does_not_own_is_named_and_nothing_is_written()
    {
        _ws.Write("providers/claude/.claude/agents/summarize.md", "hand written\n");
        var ex = Assert.Throws<RttException>(() => Builder.Build(null, null));
        Assert.Equal(ErrorCodes.ViewNotOwned, ex.Code);
        Assert.Contains("providers/claude/.claude/agents/summarize.md", ex.Message);
        Assert.Equal("hand written\n", File.ReadAllText(P("providers/claude/.claude/agents/summarize.md")));
        Assert.False(File.Exists(P("providers/claude/.claude/agents/review.md")));
        Assert.False(Directory.Exists(P("providers/openai")));

        // A user's file with exactly the bytes rtt would write is adopted, not refused.
        var bytes = ViewEngine.RenderAgent(ViewSources.Load(_ws.Root), "summarize", "claude", null);
        File.WriteAllBytes(P("providers/claude/.claude/agents/summarize.md"), bytes);
        Builder.Build(null, null);
        Assert.Contains(".claude/agents/summarize.md", OwnedFiles.Load(P("providers/claude"), "claude").Files.Keys);
    }

    [Fact]
    public void A_provider_folder_that_links_outside_the_workspace_is_refused()
    {
        var outside = Directory.CreateTempSubdirectory("rtt-outside-").FullName;
        try
        {
            Directory.CreateDirectory(P("providers"));
            Directory.CreateSymbolicLink(P("providers/claude"), outside);
            var ex = Assert.Throws<RttException>(() => Builder.Build(null, null));
            Assert.Equal(ErrorCodes.ViewTargetOutside, ex.Code);
            Assert.Contains("providers/claude", ex.Message);
            Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
            Assert.False(File.Exists(P("providers/openai/AGENTS.md")));
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public void A_tampered_manifest_cannot_make_a_build_delete_outside_its_folder()
    {
        var victim = _ws.Write("victim.txt", "keep me\n");
        _ws.Write("providers/claude/.rtt-owned.json",
            """{"format":"rtt.view-owned/1","provider":"claude","files":{"../../victim.txt":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}}""");
        var ex = Assert.Throws<RttException>(() => Builder.Build(null, null));
        Assert.Equal(ErrorCodes.ViewOwnedInvalid, ex.Code);
        Assert.Equal("keep me\n", File.ReadAllText(victim));
    }

    [Theory]
    [InlineData("../evil")]
    [InlineData("a/b")]
    [InlineData("..")]
    public void Provider_names_with_separators_are_refused(string provider)
    {
        var ex = Assert.Throws<RttException>(() => Builder.Build(provider, null));
        Assert.Equal(ErrorCodes.ViewNameInvalid, ex.Code);
        Assert.False(Directory.Exists(P("providers")));
        Assert.False(Directory.Exists(P("evil")));
    }

    [Fact]
    public void A_read_only_target_folder_fails_cleanly_and_changes_nothing()
    {
        Builder.Build(null, null);
        var agentsDir = P("providers/claude/.claude/agents");
        var before = File.ReadAllBytes(P("providers/claude/.claude/agents/summarize.md"));
        var manifestBefore = File.ReadAllBytes(P("providers/claude/.rtt-owned.json"));
        var agentsMdBefore = File.ReadAllBytes(P("providers/openai/AGENTS.md"));
        MakeReadOnly(agentsDir);

        _ws.Write("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"opus"}}""");
        _ws.Write("overlays/provider/openai/summarize.patch.json", """{"model":{"name":"gpt-6"}}""");
        var ex = Assert.Throws<RttException>(() => Builder.Build(null, null));
        Assert.Equal(ErrorCodes.ViewWriteFailed, ex.Code);
        Assert.Equal(before, File.ReadAllBytes(P("providers/claude/.claude/agents/summarize.md")));
        Assert.Equal(manifestBefore, File.ReadAllBytes(P("providers/claude/.rtt-owned.json")));
        Assert.Equal(agentsMdBefore, File.ReadAllBytes(P("providers/openai/AGENTS.md"))); // the other provider was rolled back too
        Assert.Empty(Directory.GetDirectories(P("providers"), ".rtt-staging-*"));
    }

    [Fact]
    public void Views_are_recorded_signed_with_provenance_that_verifies()
    {
        var result = Builder.Build("claude", "prod");
        using var store = RegistryStore.Open(_ws.Workspace);
        var key = Assert.Single(store.Index.Entries.Keys, k => k.StartsWith("view:claude/prod/summarize@1.0.0+v.", StringComparison.Ordinal));
        var hash = store.Index.Entries[key];
        var content = ViewRecorder.VerifyProvenance(store, hash);
        Assert.Equal("sonnet", (string?)content["model"]!["hint"]);
        Assert.Equal(0, (double)content["model"]!["temperature"]!);

        var view = store.ReadObject(hash); // signature checked by the trust store
        Assert.Equal(store.Index.Entries["summarize@1.0.0"], (string?)view["base"]);
        Assert.Equal(["overlays/provider/claude/summarize.patch.json", "overlays/env/prod/_global.patch.json"],
            view["overlays"]!.AsArray().Select(o => (string)o!["path"]!));

        // The same build records nothing new; a forged view (content changed, re-signed) fails provenance.
        var count = store.Index.Count;
        Builder.Build("claude", "prod");
        Assert.Equal(count, RegistryStore.Open(_ws.Workspace).Index.Count);
        using var signingKey = _ws.Workspace.LoadSigningKey();
        var forged = (JsonObject)view.DeepClone();
        forged["content"]!["model"]!["hint"] = "opus";
        var forgedHash = store.Cas.Put(CanonicalJson.Serialize(ObjectSigner.Sign(forged, signingKey)));
        Assert.Equal(ErrorCodes.ViewProvenance, Assert.Throws<RttException>(() => ViewRecorder.VerifyProvenance(store, forgedHash)).Code);
        Assert.True(RegistryVerifier.Run(_ws.Workspace).Ok);
    }

    [Fact]
    public void Strict_mode_refuses_conflicting_overlays_and_writes_nothing()
    {
        _ws.Write("overlays/env/prod/summarize.patch.json", """{"model":{"temperature":1}}""");
        var ex = Assert.Throws<RttException>(() => Builder.Build(null, "prod"));
        Assert.Equal(ErrorCodes.ViewConflict, ex.Code);
        Assert.Contains("/model/temperature", ex.Message);
        Assert.False(Directory.Exists(P("providers")));

        var policy = RttWorkspaceJson(_ws.Workspace.PolicyPath);
        policy["strict"] = false;
        File.WriteAllBytes(_ws.Workspace.PolicyPath, PrettyJson.ToUtf8(policy));
        var result = Builder.Build(null, "prod");
        Assert.NotEmpty(result.Plan.Conflicts);
        Assert.Contains("temperature: 1", File.ReadAllText(P("providers/openai/AGENTS.md")));
    }

    [Fact]
    public void Import_then_build_gives_back_equivalent_claude_files()
    {
        var from = Directory.CreateTempSubdirectory("rtt-import-").FullName;
        try
        {
            var originals = new Dictionary<string, string>
            {
                ["helper.md"] = "---\nname: helper\ndescription: \"Helps: with anything\"\ntools: Read, Grep, Glob\nmodel: haiku\n---\n\nYou help.\n\nBe kind.\n",
                ["plain.md"] = "---\nname: plain\ndescription: No tools, no model\n---\nJust text.\n",
                ["summarize.md"] = "---\nname: summarize\ndescription: Claude's own summary wording\ntools: Read\nmodel: opus\n---\nSummarise well.\n",
            };
            Directory.CreateDirectory(Path.Combine(from, ".claude", "agents"));
            foreach (var (name, text) in originals)
            {
                File.WriteAllText(Path.Combine(from, ".claude", "agents", name), text);
            }

            File.Delete(P("overlays/provider/claude/summarize.patch.json"));
            var result = ViewImporter.Import(_ws.Workspace, "claude", from);
            Assert.Equal(["helper", "plain", "summarize"], result.Agents);
            Assert.Contains("agents/common/helper.agent.json", result.Written);
            Assert.DoesNotContain("agents/common/summarize.agent.json", result.Written); // the existing base is kept

            // The base holds what every provider shares; Claude's model and tool names go to its overlay.
            var helperBase = JsonNode.Parse(File.ReadAllText(P("agents/common/helper.agent.json")))!;
            Assert.Null(helperBase["model"]);
            Assert.Null(helperBase["tools"]);
            Assert.Equal("haiku", (string?)JsonNode.Parse(File.ReadAllText(P("overlays/provider/claude/helper.patch.json")))!["model"]!["hint"]);
            Assert.Equal("small", (string?)JsonNode.Parse(File.ReadAllText(P("agents/common/summarize.agent.json")))!["model"]!["hint"]);

            Builder.Build("claude", null);
            foreach (var (name, text) in originals)
            {
                var built = File.ReadAllText(P($"providers/claude/.claude/agents/{name}"));
                Assert.Equal(Normal(Sources.ClaudeSubagent(text, name).Object), Normal(Sources.ClaudeSubagent(built, name).Object));
            }

            // Importing again changes nothing.
            var again = ViewImporter.Import(_ws.Workspace, "claude", from);
            Assert.Empty(again.Written);
        }
        finally
        {
            Directory.Delete(from, recursive: true);
        }

        static string Normal(JsonObject o) => CanonicalJson.ToCanonicalString(o);
    }

    [Fact]
    public void Import_refuses_other_providers_empty_folders_and_a_different_existing_overlay()
    {
        var from = Directory.CreateTempSubdirectory("rtt-import-").FullName;
        try
        {
            Assert.Equal(ErrorCodes.ViewImportInvalid, Assert.Throws<RttException>(() => ViewImporter.Import(_ws.Workspace, "openai", from)).Code);
            Assert.Equal(ErrorCodes.ViewImportInvalid, Assert.Throws<RttException>(() => ViewImporter.Import(_ws.Workspace, "claude", from)).Code);
            File.WriteAllText(Path.Combine(from, "summarize.md"), "---\nname: summarize\ndescription: other\nmodel: opus\n---\nx\n");
            var ex = Assert.Single(ViewImporter.Import(_ws.Workspace, "claude", from).Errors).Error; // reported, the other files go on
            Assert.Equal(ErrorCodes.ViewImportInvalid, ex.Code);
            Assert.Equal("overlays/provider/claude/summarize.patch.json", ex.Location);
        }
        finally
        {
            Directory.Delete(from, recursive: true);
        }
    }

    private static JsonObject RttWorkspaceJson(string path) => (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;

    /// <summary>chmod 0555, and when running as root (which ignores modes) the immutable attribute as well.</summary>
    private void MakeReadOnly(string dir)
    {
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        if (CanWrite(dir))
        {
            RunChattr("+i", dir);
            _immutable.Add(dir);
        }

        Assert.False(CanWrite(dir), $"could not make {dir} read-only (chmod and chattr +i both failed)");
    }

    private static bool CanWrite(string dir)
    {
        var probe = Path.Combine(dir, ".probe");
        try
        {
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void RunChattr(string flag, string path)
    {
        using var p = Process.Start(new ProcessStartInfo("chattr", [flag, path]) { RedirectStandardError = true, UseShellExecute = false })!;
        p.WaitForExit();
    }

    public void Dispose()
    {
        foreach (var dir in _immutable)
        {
            RunChattr("-i", dir);
        }

        foreach (var dir in Directory.Exists(_ws.Root) ? Directory.GetDirectories(_ws.Root, "*", SearchOption.AllDirectories) : [])
        {
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        _ws.Dispose();
    }
}
