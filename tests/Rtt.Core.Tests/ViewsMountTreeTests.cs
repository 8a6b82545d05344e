using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Registry;
using Rtt.Views;

namespace Rtt.Core.Tests;

/// <summary>View sets and the tree a view mount serves, without a mount: the bytes must be the ones <c>rtt view build</c> writes.</summary>
public sealed class ViewsMountTreeTests : IDisposable
{
    private static readonly DateTimeOffset T1 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset T2 = new(2026, 3, 2, 8, 30, 5, TimeSpan.Zero);
    private readonly TestWorkspace _ws = new();

    public ViewsMountTreeTests()
    {
        _ws.Write("agents/common/summarize.agent.json", TestWorkspace.Agent("summarize"));
        _ws.Write("agents/common/review.agent.json", TestWorkspace.Agent("review"));
        _ws.Write("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"sonnet"},"tools":["Read"]}""");
        _ws.Write("overlays/provider/openai/summarize.patch.json", """{"model":{"name":"gpt-5"}}""");
        _ws.Write("overlays/provider/gemini/review.patch.json", """{"description":"gemini review"}""");
        _ws.Write("overlays/env/prod/_global.patch.json", """{"model":{"temperature":0}}""");
    }

    private ViewBuilder Builder => new(_ws.Workspace);

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private ViewMountTree Tree(bool all, string provider = "claude", string? env = "prod")
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var sets = all
            ? ViewSets.Providers(store, env).Select(p => (p, ViewSets.Latest(store, p, env)!)).ToList()
            : [("", ViewSets.Latest(store, provider, env)!)];
        return ViewMountTree.Build(sets);
    }

    private Dictionary<string, byte[]> RenderAll(ViewMountTree tree)
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        return tree.All().Where(n => !n.IsDirectory).ToDictionary(n => n.Path, n => ViewMountTree.Render(n, h => store.ReadBytes(h)), StringComparer.Ordinal);
    }

    private Dictionary<string, byte[]> Materialized(string folder)
    {
        var root = Path.Combine(_ws.Root, folder);
        return Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllBytes, StringComparer.Ordinal);
    }

    [Fact]
    public void Every_mounted_file_is_byte_for_byte_what_build_writes()
    {
        Builder.Build(null, "prod", time: new FixedTime(T1));
        var all = Tree(all: true);
        Assert.Equal(["claude", "gemini", "openai"], all.Root.Children.Select(c => c.Name));
        var rendered = RenderAll(all);
        var written = Materialized("providers");
        Assert.Equal(written.Keys.Order(StringComparer.Ordinal), rendered.Keys.Order(StringComparer.Ordinal));
        foreach (var (path, bytes) in written)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(rendered[path]), path);
            Assert.Equal(bytes.LongLength, all.Find(path)!.Size);
        }

        // One provider at the root.
        var claude = Tree(all: false);
        Assert.Equal([".claude", ".rtt-owned.json"], claude.Root.Children.Select(c => c.Name));
        Assert.Equal(Materialized("providers/claude").Keys.Order(StringComparer.Ordinal), RenderAll(claude).Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Times_come_from_the_record_and_an_unchanged_build_records_no_new_set()
    {
        var first = Builder.Build(null, "prod", time: new FixedTime(T1));
        Assert.Equal(["view-set:claude/prod@1", "view-set:gemini/prod@1", "view-set:openai/prod@1"], first.Sets!.Select(s => s.Key));
        var again = Builder.Build(null, "prod", time: new FixedTime(T2));
        Assert.Empty(again.Sets!);
        Assert.All(Tree(all: true).All(), n => Assert.Equal(T1, n.ModifiedAt));

        // A changed overlay: a new set for that provider only, with its own time; the others keep theirs.
        _ws.Write("overlays/provider/claude/summarize.patch.json", """{"model":{"hint":"opus"}}""");
        var third = Builder.Build(null, "prod", recordOnly: true, time: new FixedTime(T2));
        Assert.Equal(["view-set:claude/prod@2"], third.Sets!.Select(s => s.Key));
        var tree = Tree(all: true);
        Assert.Equal(T2, tree.Find("claude/.claude/agents/summarize.md")!.ModifiedAt);
        Assert.Equal(T2, tree.Root.ModifiedAt);
        Assert.Equal(T1, tree.Find("openai/AGENTS.md")!.ModifiedAt);
        Assert.Contains("model: opus", System.Text.Encoding.UTF8.GetString(RenderAll(tree)["claude/.claude/agents/summarize.md"]));
        Assert.DoesNotContain("opus", File.ReadAllText(Path.Combine(_ws.Root, "providers/claude/.claude/agents/summarize.md"))); // record-only wrote nothing
    }

    [Fact]
    public void The_tree_is_deterministic_and_ordinal()
    {
        Builder.Build(null, "prod", time: new FixedTime(T1));
        string Listing(ViewMountTree t) => string.Join("\n", t.All().Select(n => $"{n.Path}|{n.IsDirectory}|{n.Size}|{n.Hash}|{n.ModifiedAt:O}|{n.Identity}"));
        Assert.Equal(Listing(Tree(all: true)), Listing(Tree(all: true)));
        var paths = Tree(all: true).All().Select(n => n.Path).ToList();
        Assert.Equal("", paths[0]);
        Assert.Equal(["claude", "claude/.claude", "claude/.claude/agents", "claude/.claude/agents/review.md", "claude/.claude/agents/summarize.md", "claude/.rtt-owned.json"],
            paths.Skip(1).Take(6));
    }

    [Fact]
    public void A_damaged_object_fails_only_the_files_rendered_from_it()
    {
        Builder.Build(null, "prod", time: new FixedTime(T1));
        var tree = Tree(all: true);
        var set = tree.Find("claude/.claude/agents/summarize.md")!.Set!;
        var cas = new CasStore(_ws.Workspace.Cas);
        var path = cas.PathOf(set.Views["summarize"]);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(path, bytes);

        using var store = RegistryStore.Open(_ws.Workspace);
        var ex = Assert.Throws<RttException>(() => ViewMountTree.Render(tree.Find("claude/.claude/agents/summarize.md")!, h => store.ReadBytes(h)));
        Assert.Equal(ErrorCodes.ViewMountVerify, ex.Code);
        Assert.Contains(set.Views["summarize"], ex.Message, StringComparison.Ordinal);
        foreach (var other in new[] { "claude/.claude/agents/review.md", "claude/.rtt-owned.json", "openai/AGENTS.md", "gemini/summarize.agent.json" })
        {
            Assert.NotEmpty(ViewMountTree.Render(tree.Find(other)!, h => store.ReadBytes(h)));
        }
    }

    [Fact]
    public void A_file_rendered_before_is_verified_again_at_every_render()
    {
        Builder.Build("claude", "prod", time: new FixedTime(T1));
        var tree = Tree(all: false);
        var node = tree.Find(".claude/agents/summarize.md")!;
        using var store = RegistryStore.Open(_ws.Workspace);
        var reads = new List<string>();
        byte[] Read(string h)
        {
            reads.Add(h);
            return store.ReadBytes(h);
        }

        var first = ViewMountTree.Render(node, Read);
        var second = ViewMountTree.Render(node, Read);
        Assert.Equal(first, second);
        Assert.Equal([node.Set!.Views["summarize"], node.Set.Views["summarize"]], reads);

        var path = new CasStore(_ws.Workspace.Cas).PathOf(node.Set.Views["summarize"]);
        var bytes = File.ReadAllBytes(path);
        bytes[10] ^= 0x02;
        File.WriteAllBytes(path, bytes);
        Assert.Equal(ErrorCodes.ViewMountVerify, Assert.Throws<RttException>(() => ViewMountTree.Render(node, h => store.ReadBytes(h))).Code);
        File.Delete(path);
        Assert.Equal(ErrorCodes.ViewMountVerify, Assert.Throws<RttException>(() => ViewMountTree.Render(node, h => store.ReadBytes(h))).Code);
    }

    [Fact]
    public void Rendering_that_differs_from_the_recorded_hash_is_refused()
    {
        Builder.Build("claude", "prod", time: new FixedTime(T1));
        var set = Tree(all: false).Sets[0];
        var forged = set with { Files = [.. set.Files.Select(f => f with { Hash = ContentHash.Of("other"u8) })] };
        var tree = ViewMountTree.Build([("", forged)]);
        using var store = RegistryStore.Open(_ws.Workspace);
        var ex = Assert.Throws<RttException>(() => ViewMountTree.Render(tree.Find(".claude/agents/summarize.md")!, h => store.ReadBytes(h)));
        Assert.Equal(ErrorCodes.ViewMountVerify, ex.Code);
        Assert.Contains("recorded", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_set_read_back_checks_out_and_a_forged_index_entry_is_refused()
    {
        Builder.Build(null, "prod", time: new FixedTime(T1));
        using var store = RegistryStore.Open(_ws.Workspace);
        var set = ViewSets.Latest(store, "openai", "prod")!;
        Assert.Equal(("openai", "prod", 1L, T1), (set.Provider, set.Env, set.Number, set.RecordedAt));
        Assert.Equal(["AGENTS.md"], set.Files.Select(f => f.Path));
        Assert.Equal(["review", "summarize"], set.Files[0].Agents);
        Assert.Null(ViewSets.Latest(store, "openai", null));
        Assert.Empty(RegistryVerifier.Run(_ws.Workspace).Faults);

        // An index entry pointed at another provider's (valid, signed) set is a forgery.
        store.Index.Replace("view-set:openai/prod@1", "view-set:openai/prod@1", ViewSets.Latest(store, "claude", "prod")!.Hash);
        Assert.Equal(ErrorCodes.IdentityMismatch, Assert.Throws<RttException>(() => ViewSets.Latest(store, "openai", "prod")).Code);
    }

    public void Dispose() => _ws.Dispose();
}
