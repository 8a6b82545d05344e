using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Registry;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Views;

/// <summary>What an import wrote: workspace-relative paths.</summary>
public sealed record ImportResult(IReadOnlyList<string> Agents, IReadOnlyList<string> Written, IReadOnlyList<string> Unchanged);

/// <summary>
/// <c>rtt view import --provider claude PATH</c>: existing Claude Code subagent files become a base plus a provider
/// overlay. What every provider shares (id, version, description, instructions, exports) goes to the base; what
/// only makes sense to Claude Code (its model names, its tool names) goes to <c>overlays/provider/claude/</c>.
/// When a base already exists it is kept, and the overlay is the merge patch from that base to the imported file.
/// Nothing is written unless every file imports.
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
        foreach (var file in files)
        {
            var parsed = Sources.ClaudeSubagent(Sources.ReadText(File.ReadAllBytes(file), file), file);
            var name = ViewNames.Agent(parsed.Id, file);
            if (agents.TryGetValue(name, out var other))
            {
                throw new RttException(ErrorCodes.ViewImportInvalid, $"two files define agent \"{name}\": {other} and {file}", file, "import one of them");
            }

            agents[name] = file;
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

            if (imported["tools"] is JsonArray { Count: 0 })
            {
                imported.Remove("tools"); // no tools line: nothing Claude-specific to keep
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
                continue;
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
                continue;
            }

            ViewSources.ReadPatch(CanonicalJson.Serialize(patch), overlayRel); // an import never writes what a build would refuse
            writes[overlayRel] = PrettyJson.ToUtf8(patch);
        }

        foreach (var (rel, bytes) in writes)
        {
            AtomicFile.WriteAllBytes(Path.Combine(workspace.Root, rel), bytes);
        }

        return new ImportResult([.. agents.Keys], [.. writes.Keys], [.. unchanged.Order(StringComparer.Ordinal)]);
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
            target["tools"] = tools.DeepClone();
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
        var found = Directory.GetFiles(dir, "*.md").Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList();
        return found.Count > 0 ? found
            : throw new RttException(ErrorCodes.ViewImportInvalid, "no Claude Code subagent files (*.md) found", dir, "give the folder that holds the .md files");
    }
}
