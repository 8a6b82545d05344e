using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>Two overlays of the same level that set <see cref="Field"/> (a JSON Pointer) differently.</summary>
public sealed record ViewConflict(string Agent, string Field, string FirstSource, string FirstValue, string SecondSource, string SecondValue)
{
    public override string ToString() => $"{Agent} {Field}: {FirstSource} sets {FirstValue}, {SecondSource} sets {SecondValue}";
}

/// <summary>A merged view: the agent definition one provider sees in one environment, and where it came from.</summary>
public sealed record ComposedView(string Agent, string Provider, string? Env, ViewBase Base, IReadOnlyList<ViewOverlay> Overlays,
    JsonObject Content, IReadOnlyList<ViewConflict> Conflicts)
{
    public byte[] CanonicalBytes => CanonicalJson.Serialize(Content);

    public string ContentHash => Rtt.Core.Hashing.ContentHash.Of(CanonicalBytes);
}

/// <summary>
/// The merge: base, then the provider overlay, then the environment's <c>_global</c>, then the environment's
/// overlay for the agent (RFC 7386 each). A later level overrides an earlier one by design; two overlays of the
/// same level (an env's <c>_global</c> and its agent overlay) that set one field differently are a conflict,
/// reported with both sources (the later one wins unless the caller refuses conflicts). Pure: no I/O.
/// </summary>
public static class ViewComposer
{
    public static ComposedView Compose(ViewSources sources, string agent, string provider, string? env)
    {
        ViewNames.Provider(provider);
        if (!sources.Bases.TryGetValue(agent, out var baseDef))
        {
            throw new RttException(ErrorCodes.ViewUnknownAgent, $"no agent \"{agent}\"", $"{ViewSources.BaseFolder}/{agent}{ViewSources.BaseSuffix}",
                $"agents with a base: {string.Join(", ", sources.Bases.Keys)}");
        }

        var levels = new List<IReadOnlyList<ViewOverlay>>();
        if (sources.ProviderOverlays.TryGetValue(provider, out var byAgent) && byAgent.TryGetValue(agent, out var providerOverlay))
        {
            levels.Add([providerOverlay]);
        }

        if (env is not null)
        {
            ViewNames.Env(env);
            if (!sources.Envs.TryGetValue(env, out var envOverlays))
            {
                throw new RttException(ErrorCodes.ViewUnknownEnv, $"no environment \"{env}\"", $"{ViewSources.EnvOverlayFolder}/{env}",
                    sources.Envs.Count == 0 ? "this workspace has no environments: create overlays/env/<env>/" : $"environments: {string.Join(", ", sources.Envs.Keys)}");
            }

            var envLevel = new List<ViewOverlay>();
            if (envOverlays.Global is { } global)
            {
                envLevel.Add(global);
            }

            if (envOverlays.Agents.TryGetValue(agent, out var own))
            {
                envLevel.Add(own);
            }

            levels.Add(envLevel);
        }

        var conflicts = new List<ViewConflict>();
        JsonNode content = baseDef.Content;
        var applied = new List<ViewOverlay>();
        foreach (var level in levels)
        {
            for (var i = 0; i < level.Count; i++)
            {
                for (var j = i + 1; j < level.Count; j++)
                {
                    conflicts.AddRange(Conflicts(agent, level[i], level[j]));
                }
            }

            foreach (var overlay in level)
            {
                content = JsonMergePatch.Apply(content, overlay.Patch)!;
                applied.Add(overlay);
            }
        }

        var merged = (JsonObject)content;
        // The result must still be a valid agent definition (an overlay can delete a required field).
        Sources.Agent(CanonicalJson.Serialize(merged), $"view {provider}/{env ?? "-"}/{agent}");
        return new ComposedView(agent, provider, env, baseDef, applied, merged, conflicts);
    }

    /// <summary>
    /// Where two patches of one level disagree: the same field set to different values, or one replacing
    /// (or deleting) a field the other sets a member of, since then the outcome depends on their order.
    /// </summary>
    public static IEnumerable<ViewConflict> Conflicts(string agent, ViewOverlay first, ViewOverlay second)
    {
        var a = Leaves(first.Patch, "").ToList();
        var b = Leaves(second.Patch, "").ToList();
        var seen = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (pa, va) in a)
        {
            foreach (var (pb, vb) in b)
            {
                var clash = pa == pb ? !JsonMergePatch.SameJson(va, vb) : IsPrefix(pa, pb) || IsPrefix(pb, pa);
                if (clash && seen.Add(pa.Length <= pb.Length ? pa : pb))
                {
                    yield return new ViewConflict(agent, pa.Length <= pb.Length ? pa : pb, first.Path, Show(pa, va), second.Path, Show(pb, vb));
                }
            }
        }

        static bool IsPrefix(string shorter, string longer) => longer.StartsWith(shorter + "/", StringComparison.Ordinal);

        static string Show(string pointer, JsonNode? value) => $"{pointer} = {Encoding.UTF8.GetString(CanonicalJson.Serialize(value))}";
    }

    /// <summary>Each field a patch sets, as a JSON Pointer and the value (objects recurse, as merge patch does).</summary>
    private static IEnumerable<(string Pointer, JsonNode? Value)> Leaves(JsonObject patch, string prefix)
    {
        foreach (var (name, value) in patch.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            var pointer = $"{prefix}/{name.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal)}";
            if (value is JsonObject inner && inner.Count > 0)
            {
                foreach (var leaf in Leaves(inner, pointer))
                {
                    yield return leaf;
                }
            }
            else
            {
                yield return (pointer, value);
            }
        }
    }
}
