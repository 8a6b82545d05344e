using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Views;

public enum FileChangeKind
{
    Added,
    Changed,
    Removed,
}

/// <summary>One file a build would add, change or remove; <see cref="Path"/> is relative to <c>providers/&lt;provider&gt;/</c>.</summary>
public sealed record FileChange(FileChangeKind Kind, string Provider, string Path, byte[]? Before, byte[]? After)
{
    public string WorkspacePath => $"{ViewBuilder.ProvidersFolder}/{Provider}/{Path}";
}

/// <summary>What a build would do in one provider folder.</summary>
public sealed record ProviderPlan(string Provider, string Directory, OwnedFiles Before, OwnedFiles After, IReadOnlyList<FileChange> Changes, int Unchanged)
{
    /// <summary>The owned-files manifest must be (re)written or removed.</summary>
    public bool ManifestChanges =>
        After.Files.Count == 0 ? Before.Existed : !Before.Existed || !Before.Files.SequenceEqual(After.Files);
}

/// <summary>What <c>rtt view build</c> (or clean) would do: per provider, the files to add, change and remove.</summary>
public sealed record ViewPlan(string? Env, IReadOnlyList<ProviderPlan> Providers, IReadOnlyList<ComposedView> Views)
{
    public IEnumerable<FileChange> Changes => Providers.SelectMany(p => p.Changes);

    public bool HasChanges => Providers.Any(p => p.Changes.Count > 0);

    public IReadOnlyList<ViewConflict> Conflicts => [.. Views.SelectMany(v => v.Conflicts)];

    public int Unchanged => Providers.Sum(p => p.Unchanged);
}

/// <summary>What a build did.</summary>
/// <param name="Sets">The view sets recorded by this build (none when every provider's current set already matched).</param>
public sealed record ViewBuildResult(ViewPlan Plan, IReadOnlyList<IngestResult> Recorded, IReadOnlyList<ViewSet>? Sets = null);

/// <summary>
/// Materializes provider views under <c>providers/&lt;provider&gt;/</c>. Writes only files whose bytes change, removes
/// files it wrote earlier that no view produces any more, and never touches a file it does not own (it refuses and
/// names it). All new bytes are staged in a temp folder first and moved into place by rename; on any failure every
/// move is undone, so a build either happens whole or not at all.
/// </summary>
public sealed partial class ViewBuilder(RttWorkspace workspace)
{
    public const string ProvidersFolder = "providers";
    private const string StagingPrefix = ".rtt-staging-";

    public string ProvidersRoot => Path.Combine(workspace.Root, ProvidersFolder);

    /// <summary>Computes what a build (or, with <paramref name="clean"/>, a clean) would change. Reads only.</summary>
    public ViewPlan Plan(string? provider, string? env, bool clean = false)
    {
        var sources = ViewSources.Load(workspace.Root);
        if (env is not null)
        {
            ViewNames.Env(env, "--env");
            if (!clean && !sources.Envs.ContainsKey(env))
            {
                throw new RttException(ErrorCodes.ViewUnknownEnv, $"no environment \"{env}\"", $"{ViewSources.EnvOverlayFolder}/{env}",
                    sources.Envs.Count == 0 ? "this workspace has no environments: create overlays/env/<env>/" : $"environments: {string.Join(", ", sources.Envs.Keys)}");
            }
        }

        var providers = new SortedSet<string>(StringComparer.Ordinal);
        if (provider is not null)
        {
            providers.Add(ViewNames.Provider(provider, "--provider"));
            // A typo (--provider claud) would write a new providers/<typo>/ folder: only the built-in formats and
            // the providers the workspace names (an overlays/provider/<p>/ folder, or files rtt wrote) are built.
            if (!clean && provider is not (ProviderFormats.Claude or ProviderFormats.OpenAi) && !sources.Providers.Contains(provider, StringComparer.Ordinal)
                && !File.Exists(Path.Combine(ProvidersRoot, provider, OwnedFiles.FileName)))
            {
                throw new RttException(ErrorCodes.ViewUnknownEnv, $"no provider \"{provider}\"", $"{ViewSources.ProviderOverlayFolder}/{provider}",
                    $"name it with an overlays/provider/{provider}/ folder (an empty one is enough), or use one of: {string.Join(", ", new[] { ProviderFormats.Claude, ProviderFormats.OpenAi }.Concat(sources.Providers).Distinct().Order(StringComparer.Ordinal))}");
            }
        }
        else
        {
            providers.UnionWith(sources.Providers);
            if (Directory.Exists(ProvidersRoot))
            {
                // Folders holding files rtt wrote are still rtt's to clean up, even when their overlays are gone.
                foreach (var dir in Directory.GetDirectories(ProvidersRoot))
                {
                    var name = Path.GetFileName(dir);
                    if (!name.StartsWith('.') && File.Exists(Path.Combine(dir, OwnedFiles.FileName)))
                    {
                        providers.Add(ViewNames.Provider(name, dir));
                    }
                }
            }
        }

        var plans = new List<ProviderPlan>();
        var views = new List<ComposedView>();
        foreach (var p in providers)
        {
            var composed = clean ? [] : ViewEngine.ComposeAll(sources, p, env);
            views.AddRange(composed);
            plans.Add(PlanProvider(p, clean ? new SortedDictionary<string, byte[]>(StringComparer.Ordinal) : ProviderFormats.Render(p, composed)));
        }

        return new ViewPlan(env, plans, views);
    }

    private ProviderPlan PlanProvider(string provider, SortedDictionary<string, byte[]> desired)
    {
        var dir = Path.Combine(ProvidersRoot, provider);
        CheckNoLinks(dir);
        var before = OwnedFiles.Load(dir, provider);
        var after = OwnedFiles.Empty(provider);
        var changes = new List<FileChange>();
        var notOwned = new List<string>();
        var unchanged = 0;
        foreach (var (rel, bytes) in desired)
        {
            var target = Target(provider, rel);
            var hash = ContentHash.Of(bytes);
            after.Files[rel] = hash;
            if (!File.Exists(target))
            {
                if (Directory.Exists(target))
                {
                    notOwned.Add($"{ProvidersFolder}/{provider}/{rel}");
                    continue;
                }

                changes.Add(new FileChange(FileChangeKind.Added, provider, rel, null, bytes));
                continue;
            }

            var current = File.ReadAllBytes(target);
            if (current.AsSpan().SequenceEqual(bytes))
            {
                unchanged++; // identical bytes: nothing to write (a user's identical file is adopted)
            }
            else if (before.Files.ContainsKey(rel))
            {
                changes.Add(new FileChange(FileChangeKind.Changed, provider, rel, current, bytes));
            }
            else
            {
                notOwned.Add($"{ProvidersFolder}/{provider}/{rel}");
            }
        }

        if (notOwned.Count > 0)
        {
            throw new RttException(ErrorCodes.ViewNotOwned,
                $"{notOwned.Count} file(s) would be overwritten but were not written by rtt: {string.Join(", ", notOwned)}", notOwned[0],
                "move or delete them (rtt never overwrites a file it does not own), or rename the agent");
        }

        foreach (var (rel, _) in before.Files)
        {
            if (desired.ContainsKey(rel))
            {
                continue;
            }

            var target = Target(provider, rel);
            if (File.Exists(target))
            {
                changes.Add(new FileChange(FileChangeKind.Removed, provider, rel, File.ReadAllBytes(target), null));
            }
        }

        changes.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return new ProviderPlan(provider, dir, before, after, changes, unchanged);
    }

    /// <summary>
    /// Builds: plans, refuses conflicts in strict mode, records the views and each provider's view set in the registry,
    /// then writes the files (unless <paramref name="recordOnly"/>: then the providers/ folder is neither read nor written).
    /// </summary>
    public ViewBuildResult Build(string? provider, string? env, bool recordOnly = false, TimeProvider? time = null)
    {
        ViewPlan plan;
        if (recordOnly)
        {
            var sources = ViewSources.Load(workspace.Root);
            if (env is not null && !sources.Envs.ContainsKey(ViewNames.Env(env, "--env")))
            {
                throw new RttException(ErrorCodes.ViewUnknownEnv, $"no environment \"{env}\"", $"{ViewSources.EnvOverlayFolder}/{env}",
                    sources.Envs.Count == 0 ? "this workspace has no environments: create overlays/env/<env>/" : $"environments: {string.Join(", ", sources.Envs.Keys)}");
            }

            var providers = provider is not null ? [ViewNames.Provider(provider, "--provider")] : sources.Providers;
            if (provider is not null && provider is not (ProviderFormats.Claude or ProviderFormats.OpenAi) && !sources.Providers.Contains(provider, StringComparer.Ordinal))
            {
                throw new RttException(ErrorCodes.ViewUnknownEnv, $"no provider \"{provider}\"", $"{ViewSources.ProviderOverlayFolder}/{provider}",
                    $"name it with an overlays/provider/{provider}/ folder (an empty one is enough), or use one of: {string.Join(", ", new[] { ProviderFormats.Claude, ProviderFormats.OpenAi }.Concat(sources.Providers).Distinct().Order(StringComparer.Ordinal))}");
            }

            plan = new ViewPlan(env, [.. providers.Select(p => new ProviderPlan(p, Path.Combine(ProvidersRoot, p), OwnedFiles.Empty(p), OwnedFiles.Empty(p), [], 0))],
                [.. providers.SelectMany(p => ViewEngine.ComposeAll(sources, p, env))]);
        }
        else
        {
            plan = Plan(provider, env);
        }

        using var store = RegistryStore.Open(workspace);
        ThrowOnConflicts(plan, store.Strict);
        var recorded = new List<IngestResult>();
        var sets = new List<ViewSet>();
        if (plan.Views.Count > 0 || plan.Providers.Count > 0)
        {
            var memo = new Dictionary<string, string>(StringComparer.Ordinal);
            using (var key = plan.Views.Count > 0 ? workspace.LoadSigningKey() : null)
            {
                foreach (var view in plan.Views)
                {
                    recorded.Add(ViewRecorder.Record(store, key!, view, memo));
                }
            }

            var now = (time ?? TimeProvider.System).GetUtcNow();
            foreach (var p in plan.Providers)
            {
                var views = new SortedDictionary<string, string>(StringComparer.Ordinal);
                var composed = new List<ComposedView>();
                for (var i = 0; i < plan.Views.Count; i++)
                {
                    if (plan.Views[i].Provider == p.Provider)
                    {
                        views[plan.Views[i].Agent] = recorded[i].Hash;
                        composed.Add(plan.Views[i]);
                    }
                }

                if (ViewSets.Record(store, p.Provider, env, views, ProviderFormats.Render(p.Provider, composed), now) is { } set)
                {
                    sets.Add(set);
                }
            }

            if (recorded.Any(r => r.Added) || sets.Count > 0)
            {
                store.Save(); // objects made durable, then the index names them; an unchanged build writes nothing
            }
        }

        if (!recordOnly)
        {
            Apply(plan);
        }

        return new ViewBuildResult(plan, recorded, sets);
    }

    /// <summary>Removes every file rtt wrote (and the manifests); user files stay.</summary>
    public ViewPlan Clean(string? provider)
    {
        var plan = Plan(provider, env: null, clean: true);
        Apply(plan);
        return plan;
    }

    /// <summary>Strict mode refuses a build whose overlays conflict; otherwise conflicts are warnings.</summary>
    public static void ThrowOnConflicts(ViewPlan plan, bool strict)
    {
        var conflicts = plan.Conflicts;
        if (strict && conflicts.Count > 0)
        {
            throw new RttException(ErrorCodes.ViewConflict,
                $"{conflicts.Count} conflicting field(s) between overlays of the same level: {string.Join("; ", conflicts)}", conflicts[0].SecondSource,
                "make the overlays agree (or set the field in only one of them), or set \"strict\": false in .rtt/policy.json to let the later one win");
        }
    }

}
