using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Registry;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Views;

/// <summary>What an import wrote (workspace-relative paths), the files it refused and the remarks on those it took.</summary>
public sealed record ImportResult(IReadOnlyList<string> Agents, IReadOnlyList<string> Written, IReadOnlyList<string> Unchanged)
{
    public IReadOnlyList<ScanError> Errors { get; init; } = [];

    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// <c>rtt view import --provider claude PATH</c>: existing Claude Code subagent files become a base plus a provider
/// overlay. What every provider shares (id, version, description, instructions, exports) goes to the base; what
/// only makes sense to Claude Code (its model names, its tool names) goes to <c>overlays/provider/claude/</c>.
/// When a base already exists it is kept, and the overlay is the merge patch from that base to the imported file.
/// Every good file is imported and every bad one reported (as <c>rtt scan</c> does); a new base of an agent the
/// registry already holds with other content gets the next free version, so a build never collides with a scan.
/// </summary>
public static class ViewImporter
{
    /// <summary>The members of an imported Claude subagent that are Claude-specific.</summary>
    public static readonly IReadOnlyList<string> ClaudeSpecific = ["model", "tools", "provider"];

    public static ImportResult Import(RttWorkspace workspace, string provider, string path)
    {
        if (provider != ProviderFormats.Claude)
        {
            throw new RttException(ErrorCodes.ViewImportInvalid, $"import from provider \"{provider}\" is not supported", "--provider",
                "import reads Claude Code subagents: --provider claude");
        }

        var files = Find(path);
        var writes = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        var unchanged = new List<string>();
        var agents = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var errors = new List<ScanError>();
        var warnings = new List<string>();
        using var store = RegistryStore.Open(workspace);
        foreach (var file in files)
        {
            try
            {
                var (name, parsedWarnings) = ImportOne(workspace, store, provider, file, agents, writes, unchanged);
                agents[name] = file;
                warnings.AddRange(parsedWarnings);
            }
            catch (RttException ex)
            {
                errors.Add(new ScanError(file, ex));
            }
        }

        foreach (var (rel, bytes) in writes)
        {
            AtomicFile.WriteAllBytes(Path.Combine(workspace.Root, rel), bytes);
        }

        return new ImportResult([.. agents.Keys], [.. writes.Keys], [.. unchanged.Order(StringComparer.Ordinal)]) { Errors = errors, Warnings = warnings };
    }

    private static (string Name, IReadOnlyList<string> Warnings) ImportOne(RttWorkspace workspace, RegistryStore store, string provider, string file,
        SortedDictionary<string, string> agents, SortedDictionary<string, byte[]> writes, List<string> unchanged)
    {
        {
            var parsed = Sources.ClaudeSubagent(Sources.ReadText(File.ReadAllBytes(file), file), file);
            var name = ViewNames.Agent(parsed.Id, file);
            if (agents.TryGetValue(name, out var other))
            {
                throw new RttException(ErrorCodes.DuplicateAgent, $"agent \"{name}\" is also defined by {other}", $"{file}: /name", "give one of them another name, or import only one");
            }

            var imported = parsed.Object;
            if (imported["provider"] is JsonObject extras)
            {
                (extras["claude"] as JsonObject)?.Remove("file"); // the file name follows from the agent name
                if (extras["claude"] is JsonObject { Count: 0 })
                {
                    extras.Remove("claude");
                }

                if (extras.Count == 0)
                {
                    imported.Remove("provider");
                }
            }

            var baseRel = $"{ViewSources.BaseFolder}/{name}{ViewSources.BaseSuffix}";
            var basePath = Path.Combine(workspace.Root, baseRel);
            JsonObject patch;
            if (File.Exists(basePath))
            {
                var existing = (JsonObject)Sources.Agent(File.ReadAllBytes(basePath), baseRel).Object.DeepClone();
                existing.Remove(ObjectSigner.SignMember);
                patch = JsonMergePatch.Create(existing, AsClaudeSeesIt(existing, imported));
                unchanged.Add(baseRel);
            }
            else
            {
                var shared = (JsonObject)imported.DeepClone();
                if (parsed.FollowsEdits)
                {
                    shared["version"] = "1.0.0";
                    shared["version"] = EditVersions.For(store, name, WithoutClaude(shared), baseRel); // never a version the registry holds with other content
                }

                patch = new JsonObject();
                foreach (var member in ClaudeSpecific)
                {
                    if (shared.TryGetPropertyValue(member, out var value))
                    {
                        patch[member] = value?.DeepClone();
                        shared.Remove(member);
                    }
                }

                Sources.Agent(CanonicalJson.Serialize(shared), baseRel); // the base must stand on its own
                writes[baseRel] = PrettyJson.ToUtf8(shared);
            }

            if (patch.Count == 0)
            {
                return (name, parsed.Warnings);
            }

            var overlayRel = $"{ViewSources.ProviderOverlayFolder}/{provider}/{name}{ViewSources.PatchSuffix}";
            var overlayPath = Path.Combine(workspace.Root, overlayRel);
            if (File.Exists(overlayPath))
            {
                var current = ViewSources.ReadPatch(File.ReadAllBytes(overlayPath), overlayRel);
                if (!JsonMergePatch.SameJson(current, patch))
                {
                    throw new RttException(ErrorCodes.ViewImportInvalid, "an overlay with other content already exists", overlayRel,
                        "remove or merge it by hand first; import never overwrites an overlay");
                }

                unchanged.Add(overlayRel);
                return (name, parsed.Warnings);
            }

            ViewSources.ReadPatch(CanonicalJson.Serialize(patch), overlayRel); // an import never writes what a build would refuse
            writes[overlayRel] = PrettyJson.ToUtf8(patch);
            return (name, parsed.Warnings);
        }
    }

    private static JsonObject WithoutClaude(JsonObject shared)
    {
        var copy = (JsonObject)shared.DeepClone();
        foreach (var member in ClaudeSpecific)
        {
            copy.Remove(member);
        }

        return copy;
    }

    /// <summary>
    /// The base as the imported file would have it: only what a Claude Code file carries (description, instructions,
    /// model, tools) is taken from the file; everything else (version, exports, extensions) stays the base's.
    /// </summary>
    private static JsonObject AsClaudeSeesIt(JsonObject existing, JsonObject imported)
    {
        var target = (JsonObject)existing.DeepClone();
        target["description"] = imported["description"]?.DeepClone();
        target["instructions"] = imported["instructions"]?.DeepClone();
        var model = target["model"] as JsonObject ?? new JsonObject();
        model.Remove("hint");
        model.Remove("name");
        if (imported["model"]?["hint"] is { } hint)
        {
            model["hint"] = hint.DeepClone(); // the renderer writes the hint first, so the file's model comes back
        }

        target.Remove("model");
        if (model.Count > 0)
        {
            target["model"] = model;
        }

        target.Remove("tools");
        if (imported["tools"] is JsonArray tools)
        {
            target["tools"] = tools.DeepClone(); // tools: [] stays: no tools at all, not "inherit every tool"
        }

        // The file's front matter (every key, in order) and body layout come with it.
        if (imported["provider"]?["claude"] is JsonObject claude)
        {
            var providers = target["provider"] as JsonObject ?? new JsonObject();
            providers["claude"] = claude.DeepClone();
            target["provider"] = providers;
        }

        return target;
    }

    /// <summary>A .md file, a folder of them, or a folder holding .claude/agents/.</summary>
    private static IReadOnlyList<string> Find(string path)
    {
        if (File.Exists(path))
        {
            return [Path.GetFullPath(path)];
        }

        if (!Directory.Exists(path))
        {
            throw new RttException(ErrorCodes.ViewImportInvalid, "no such file or folder", path, "give a .claude/agents folder, a folder that holds one, or a .md file");
        }

        var agentsDir = Path.Combine(path, ".claude", "agents");
        var dir = Directory.Exists(agentsDir) ? agentsDir : path;
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        var found = Directory.GetFiles(dir, "*.md", options).Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList(); // subfolders too, as Claude Code reads them
        return found.Count > 0 ? found
            : throw new RttException(ErrorCodes.ViewImportInvalid, "no Claude Code subagent files (*.md) found", dir, "give the folder that holds the .md files");
    }
}
