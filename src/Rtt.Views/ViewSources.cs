using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>A base agent definition: <c>agents/common/&lt;name&gt;.agent.json</c>, as written (it may carry a sign block).</summary>
public sealed record ViewBase(string Name, string Path, JsonObject Definition)
{
    /// <summary>The definition without its <c>sign</c> block: what overlays apply to.</summary>
    public JsonObject Content
    {
        get
        {
            var copy = (JsonObject)Definition.DeepClone();
            copy.Remove(ObjectSigner.SignMember);
            return copy;
        }
    }
}

/// <summary>One overlay file. <see cref="Level"/> is <c>provider</c> or <c>env</c>; <see cref="Scope"/> the provider or env name;
/// <see cref="Target"/> the agent name, or <c>_global</c> for an env overlay that applies to every agent.</summary>
public sealed record ViewOverlay(string Level, string Scope, string Target, string Path, JsonObject Patch)
{
    public const string ProviderLevel = "provider";
    public const string EnvLevel = "env";

    /// <summary><c>sha256:</c> of the patch's canonical bytes.</summary>
    public string Hash => ContentHash.OfCanonical(Patch);
}

/// <summary>The overlays of one environment.</summary>
public sealed record EnvOverlays(string Env, ViewOverlay? Global, IReadOnlyDictionary<string, ViewOverlay> Agents);

/// <summary>
/// Everything a view is computed from: the bases and every overlay, read and checked once. Built from a
/// map of workspace-relative path to bytes (<see cref="FromFiles"/>), so the same inputs give the same
/// sources whatever order the files were listed in; <see cref="Load"/> reads that map from a workspace.
/// </summary>
public sealed class ViewSources
{
    public const string BaseFolder = "agents/common";
    public const string ProviderOverlayFolder = "overlays/provider";
    public const string EnvOverlayFolder = "overlays/env";
    public const string BaseSuffix = ".agent.json";
    public const string PatchSuffix = ".patch.json";

    private ViewSources(
        SortedDictionary<string, ViewBase> bases,
        SortedDictionary<string, IReadOnlyDictionary<string, ViewOverlay>> providers,
        SortedDictionary<string, EnvOverlays> envs)
    {
        Bases = bases;
        ProviderOverlays = providers;
        Envs = envs;
    }

    /// <summary>Bases by agent name, in ordinal order.</summary>
    public IReadOnlyDictionary<string, ViewBase> Bases { get; }

    /// <summary>Provider overlays: provider -> agent -> overlay. A provider folder with no file still names the provider.</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, ViewOverlay>> ProviderOverlays { get; }

    /// <summary>Environments by name.</summary>
    public IReadOnlyDictionary<string, EnvOverlays> Envs { get; }

    /// <summary>The providers named in the workspace (an <c>overlays/provider/&lt;p&gt;/</c> folder), in ordinal order.</summary>
    public IReadOnlyList<string> Providers => [.. ProviderOverlays.Keys];

    /// <summary>Reads the bases and overlays of the workspace rooted at <paramref name="root"/>.</summary>
    public static ViewSources Load(string root)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var folders = new List<string>();
        void Read(string relFolder, string pattern, bool subfolders)
        {
            var dir = System.IO.Path.Combine(root, relFolder);
            if (!Directory.Exists(dir))
            {
                return;
            }

            if (subfolders)
            {
                foreach (var sub in Directory.GetDirectories(dir))
                {
                    var rel = $"{relFolder}/{System.IO.Path.GetFileName(sub)}";
                    folders.Add(rel);
                    foreach (var file in Directory.GetFiles(sub, pattern))
                    {
                        files[$"{rel}/{System.IO.Path.GetFileName(file)}"] = File.ReadAllBytes(file);
                    }
                }
            }
            else
            {
                foreach (var file in Directory.GetFiles(dir, pattern))
                {
                    files[$"{relFolder}/{System.IO.Path.GetFileName(file)}"] = File.ReadAllBytes(file);
                }
            }
        }

        Read(BaseFolder, "*" + BaseSuffix, subfolders: false);
        Read(ProviderOverlayFolder, "*" + PatchSuffix, subfolders: true);
        Read(EnvOverlayFolder, "*" + PatchSuffix, subfolders: true);
        return FromFiles(files, folders);
    }

    /// <summary>
    /// Builds the sources from workspace-relative paths (with <c>/</c>) and their bytes. <paramref name="folders"/> lists
    /// overlay folders that exist even when empty (an empty provider folder still names a provider).
    /// </summary>
    public static ViewSources FromFiles(IReadOnlyDictionary<string, byte[]> files, IEnumerable<string>? folders = null)
    {
        var bases = new SortedDictionary<string, ViewBase>(StringComparer.Ordinal);
        var providers = new SortedDictionary<string, SortedDictionary<string, ViewOverlay>>(StringComparer.Ordinal);
        var envs = new SortedDictionary<string, (ViewOverlay? Global, SortedDictionary<string, ViewOverlay> Agents)>(StringComparer.Ordinal);

        foreach (var folder in (folders ?? []).Order(StringComparer.Ordinal))
        {
            var parts = folder.Split('/');
            if (parts.Length == 3 && $"{parts[0]}/{parts[1]}" == ProviderOverlayFolder)
            {
                providers.TryAdd(ViewNames.Provider(parts[2], folder), new(StringComparer.Ordinal));
            }
            else if (parts.Length == 3 && $"{parts[0]}/{parts[1]}" == EnvOverlayFolder)
            {
                envs.TryAdd(ViewNames.Env(parts[2], folder), (null, new(StringComparer.Ordinal)));
            }
        }

        // Ordinal order: which file is reported first never depends on how the folder was listed.
        foreach (var (rel, bytes) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var parts = rel.Split('/');
            var fileName = parts[^1];
            if (rel.StartsWith(BaseFolder + "/", StringComparison.Ordinal) && parts.Length == 3 && fileName.EndsWith(BaseSuffix, StringComparison.Ordinal))
            {
                var name = ViewNames.Agent(fileName[..^BaseSuffix.Length], rel);
                var parsed = Sources.Agent(bytes, rel);
                if (parsed.Id != name)
                {
                    throw new RttException(ErrorCodes.ViewNameInvalid, $"the base's id is \"{parsed.Id}\" but its file is named \"{name}\"", $"{rel}: /id",
                        $"rename the file to {parsed.Id}{BaseSuffix} or set id to \"{name}\": overlays find their base by file name");
                }

                bases[name] = new ViewBase(name, rel, parsed.Object);
                continue;
            }

            var isProvider = rel.StartsWith(ProviderOverlayFolder + "/", StringComparison.Ordinal);
            var isEnv = rel.StartsWith(EnvOverlayFolder + "/", StringComparison.Ordinal);
            if (!isProvider && !isEnv)
            {
                continue;
            }

            if (parts.Length != 4 || !fileName.EndsWith(PatchSuffix, StringComparison.Ordinal))
            {
                throw new RttException(ErrorCodes.ViewNameInvalid, "an overlay must be <folder>/<name>.patch.json directly in its provider or environment folder", rel,
                    "move it to overlays/provider/<provider>/<agent>.patch.json or overlays/env/<env>/<agent>.patch.json");
            }

            var target = fileName[..^PatchSuffix.Length];
            var patch = ReadPatch(bytes, rel);
            if (isProvider)
            {
                var provider = ViewNames.Provider(parts[2], rel);
                var agent = ViewNames.Agent(target, rel);
                var map = providers.TryGetValue(provider, out var m) ? m : providers[provider] = new(StringComparer.Ordinal);
                map[agent] = new ViewOverlay(ViewOverlay.ProviderLevel, provider, agent, rel, patch);
            }
            else
            {
                var env = ViewNames.Env(parts[2], rel);
                var entry = envs.TryGetValue(env, out var e) ? e : (null, new SortedDictionary<string, ViewOverlay>(StringComparer.Ordinal));
                if (target == ViewNames.Global)
                {
                    entry.Global = new ViewOverlay(ViewOverlay.EnvLevel, env, target, rel, patch);
                }
                else
                {
                    entry.Agents[ViewNames.Agent(target, rel)] = new ViewOverlay(ViewOverlay.EnvLevel, env, target, rel, patch);
                }

                envs[env] = entry;
            }
        }

        // An overlay for an agent with no base is a typo or a leftover: say so rather than ignore it.
        var overlays = providers.Values.SelectMany(p => p.Values).Concat(envs.Values.SelectMany(e => e.Agents.Values));
        foreach (var overlay in overlays.OrderBy(o => o.Path, StringComparer.Ordinal))
        {
            if (!bases.ContainsKey(overlay.Target))
            {
                throw new RttException(ErrorCodes.ViewUnknownAgent, $"overlay for agent \"{overlay.Target}\", which has no base", overlay.Path,
                    $"create {BaseFolder}/{overlay.Target}{BaseSuffix}, or rename or remove the overlay");
            }
        }

        return new ViewSources(
            bases,
            new SortedDictionary<string, IReadOnlyDictionary<string, ViewOverlay>>(providers.ToDictionary(p => p.Key, p => (IReadOnlyDictionary<string, ViewOverlay>)p.Value), StringComparer.Ordinal),
            new SortedDictionary<string, EnvOverlays>(envs.ToDictionary(e => e.Key, e => new EnvOverlays(e.Key, e.Value.Global, e.Value.Agents)), StringComparer.Ordinal));
    }

    /// <summary>A patch file: JSON, an object, and not touching what identifies the base.</summary>
    public static JsonObject ReadPatch(byte[] bytes, string rel)
    {
        var node = CanonicalJson.ParseNode(bytes, rel);
        if (node is not JsonObject patch)
        {
            throw new RttException(ErrorCodes.ViewPatchInvalid, $"an overlay must be a JSON object (a merge patch), found {node.GetValueKind().ToString().ToLowerInvariant()}", rel,
                "write { \"field\": value, … }; null deletes a field");
        }

        foreach (var reserved in new[] { "id", "version", ObjectSigner.SignMember })
        {
            if (patch.ContainsKey(reserved))
            {
                throw new RttException(ErrorCodes.ViewPatchInvalid, $"an overlay may not set \"{reserved}\"", $"{rel}: /{reserved}",
                    "change the base (and bump its version) instead; overlays only adjust a base");
            }
        }

        return patch;
    }
}
