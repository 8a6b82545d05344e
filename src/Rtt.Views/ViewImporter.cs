using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>What an import wrote (workspace-relative paths), the files it refused and the remarks on those it took.</summary>
public sealed record ImportResult(IReadOnlyList<string> Agents, IReadOnlyList<string> Written, IReadOnlyList<string> Unchanged)
{
    public IReadOnlyList<ScanError> Errors { get; init; } = [];

    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// <c>rtt view import --provider P PATH</c>: existing provider files become a base plus a provider overlay. Claude Code
/// subagents (<c>.md</c>), an OpenAI/Codex <c>AGENTS.md</c> (one section per agent, as <c>rtt view build</c> writes it),
/// or the merged definitions any other provider's view holds (<c>&lt;name&gt;.agent.json</c>). What every provider
/// shares (id, version, description, instructions, exports) goes to the base; what is the provider's own (its model,
/// its tool names, its file's layout) goes to <c>overlays/provider/&lt;provider&gt;/</c>. When a base already exists it
/// is kept, and the overlay is the merge patch from that base to what the file says. Every good file (section) is
/// imported and every bad one reported (as <c>rtt scan</c> does); a new base of an agent the registry already holds
/// with other content gets the next free version, so a build never collides with a scan.
/// </summary>
public static class ViewImporter
{
    /// <summary>The members of an imported agent that are the provider's own, kept in its overlay.</summary>
    public static readonly IReadOnlyList<string> ProviderSpecific = ["model", "tools", "provider"];

    /// <summary>One agent read from a provider file: its definition as that provider sees it, and where it was.</summary>
    private sealed record Imported(JsonObject Object, string Id, string Where, bool FollowsEdits, IReadOnlyList<string> Warnings)
    {
        /// <summary>Why this part of the file could not be read (the file's other agents still are).</summary>
        public RttException? Error { get; init; }
    }

    public static ImportResult Import(RttWorkspace workspace, string provider, string path)
    {
        ViewNames.Provider(provider, "--provider");
        var files = Find(provider, path);
        var writes = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        var unchanged = new List<string>();
        var agents = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var errors = new List<ScanError>();
        var warnings = new List<string>();
        using var store = RegistryStore.Open(workspace);
        foreach (var file in files)
        {
            IReadOnlyList<Imported> read;
            try
            {
                read = Read(provider, file);
            }
            catch (RttException ex)
            {
                errors.Add(new ScanError(file, ex));
                continue;
            }

            foreach (var one in read)
            {
                if (one.Error is { } unread)
                {
                    errors.Add(new ScanError(one.Where, unread));
                    continue;
                }

                try
                {
                    var name = ImportOne(workspace, store, provider, one, agents, writes, unchanged);
                    agents[name] = one.Where;
                    warnings.AddRange(one.Warnings);
                }
                catch (RttException ex)
                {
                    errors.Add(new ScanError(one.Where, ex));
                }
            }
        }

        foreach (var (rel, bytes) in writes)
        {
            AtomicFile.WriteAllBytes(Path.Combine(workspace.Root, rel), bytes);
        }

        return new ImportResult([.. agents.Keys], [.. writes.Keys], [.. unchanged.Order(StringComparer.Ordinal)]) { Errors = errors, Warnings = warnings };
    }

    /// <summary>The agents one provider file holds.</summary>
    private static IReadOnlyList<Imported> Read(string provider, string file)
    {
        var bytes = WorkspaceFiles.ReadBytes(file);
        switch (provider)
        {
            case ProviderFormats.Claude:
            {
                var parsed = Sources.ClaudeSubagent(Sources.ReadText(bytes, file), file);
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

                return [new Imported(imported, parsed.Id, file, parsed.FollowsEdits, parsed.Warnings)];
            }

            case ProviderFormats.OpenAi when Path.GetFileName(file) == "SKILL.md":
            {
                var (agent, where, error) = ProviderFormats.ReadCodexSkill(Sources.ReadText(bytes, file), file);
                return [error is not null ? new Imported([], "", where, false, []) { Error = error } : new Imported(agent!, (string)agent!["id"]!, where, false, [])];
            }

            case ProviderFormats.OpenAi:
                return [.. ProviderFormats.ReadOpenAiAgents(Sources.ReadText(bytes, file), file).Select(a => a.Error is { } error
                    ? new Imported([], "", a.Where, false, []) { Error = error }
                    : new Imported(a.Agent!, (string)a.Agent!["id"]!, a.Where, false, []))];
            default:
            {
                var parsed = Sources.Agent(bytes, file);
                var imported = parsed.Object;
                imported.Remove(ObjectSigner.SignMember);
                return [new Imported(imported, parsed.Id, file, false, parsed.Warnings)];
            }
        }
    }

    private static string ImportOne(RttWorkspace workspace, RegistryStore store, string provider, Imported one,
        SortedDictionary<string, string> agents, SortedDictionary<string, byte[]> writes, List<string> unchanged)
    {
        {
            var file = one.Where;
            var name = ViewNames.Agent(one.Id, file);
            if (agents.TryGetValue(name, out var other))
            {
                throw new RttException(ErrorCodes.DuplicateAgent, $"agent \"{name}\" is also defined by {other}", $"{file}: /name", "give one of them another name, or import only one");
            }

            var imported = one.Object;
            var baseRel = $"{ViewSources.BaseFolder}/{name}{ViewSources.BaseSuffix}";
            var basePath = Path.Combine(workspace.Root, baseRel);
            JsonObject patch;
            if (File.Exists(basePath))
            {
                var existing = (JsonObject)Sources.Agent(File.ReadAllBytes(basePath), baseRel).Object.DeepClone();
                existing.Remove(ObjectSigner.SignMember);
                patch = JsonMergePatch.Create(existing, AsProviderSeesIt(provider, existing, imported));
                unchanged.Add(baseRel);
            }
            else
            {
                var shared = (JsonObject)imported.DeepClone();
                if (one.FollowsEdits)
                {
                    shared["version"] = "1.0.0";
                    shared["version"] = EditVersions.For(store, name, WithoutProviderSpecific(shared), baseRel); // never a version the registry holds with other content
                }

                patch = new JsonObject();
                foreach (var member in ProviderSpecific)
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
                return name;
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
                return name;
            }

            ViewSources.ReadPatch(CanonicalJson.Serialize(patch), overlayRel); // an import never writes what a build would refuse
            writes[overlayRel] = PrettyJson.ToUtf8(patch);
            return name;
        }
    }

    private static JsonObject WithoutProviderSpecific(JsonObject shared)
    {
        var copy = (JsonObject)shared.DeepClone();
        foreach (var member in ProviderSpecific)
        {
            copy.Remove(member);
        }

        return copy;
    }

    /// <summary>The base as the imported file would have it (its id and version stay the base's).</summary>
    private static JsonObject AsProviderSeesIt(string provider, JsonObject existing, JsonObject imported) => provider switch
    {
        ProviderFormats.Claude => AsClaudeSeesIt(existing, imported),
        ProviderFormats.OpenAi => AsAgentsMdSeesIt(existing, imported),
        _ => AsDefinition(existing, imported),
    };

    /// <summary>A merged definition (<c>&lt;name&gt;.agent.json</c>) says everything but the base's id and version.</summary>
    private static JsonObject AsDefinition(JsonObject existing, JsonObject imported)
    {
        var target = (JsonObject)imported.DeepClone();
        target["id"] = existing["id"]?.DeepClone();
        target["version"] = existing["version"]?.DeepClone();
        return target;
    }

    /// <summary>
    /// An <c>AGENTS.md</c> section carries the description (one line), the instructions, the model (the name Codex is
    /// given, or the hint when the agent names no model), its temperature and the tool names: only those come from it.
    /// </summary>
    private static JsonObject AsAgentsMdSeesIt(JsonObject existing, JsonObject imported)
    {
        var target = (JsonObject)existing.DeepClone();
        if (ProviderFormats.OneLine((string?)existing["description"] ?? "") != (string?)imported["description"])
        {
            target["description"] = imported["description"]?.DeepClone();
        }

        if (ProviderFormats.Body(existing) != ProviderFormats.Body(imported))
        {
            target["instructions"] = imported["instructions"]?.DeepClone();
        }

        var model = target["model"] as JsonObject ?? new JsonObject();
        var name = (string?)imported["model"]?["name"];
        if (name != ProviderFormats.Model(existing, preferName: true))
        {
            model.Remove("name");
            if (name is not null)
            {
                model["name"] = name;
            }
        }

        if (imported["model"]?["temperature"] is { } temperature)
        {
            model["temperature"] = temperature.DeepClone();
        }
        else
        {
            model.Remove("temperature");
        }

        target.Remove("model");
        if (model.Count > 0)
        {
            target["model"] = model;
        }

        var tools = imported["tools"] as JsonArray ?? [];
        var had = existing["tools"] as JsonArray ?? [];
        if (!JsonNode.DeepEquals(new JsonArray([.. had.Where(t => ((string?)t)?.Length > 0).Select(t => (JsonNode?)ProviderFormats.OneLine((string)t!))]), tools))
        {
            target.Remove("tools");
            if (tools.Count > 0)
            {
                target["tools"] = tools.DeepClone();
            }
        }

        return target;
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

    /// <summary>
    /// An AGENTS.md, or the skills beside it when it is the index rtt view build writes for many agents
    /// (<c>.agents/skills/&lt;id&gt;/SKILL.md</c>, docs/views.md).
    /// </summary>
    private static IReadOnlyList<string> CodexFiles(string agentsMd)
    {
        if (!ProviderFormats.IsCodexIndex(Sources.ReadText(WorkspaceFiles.ReadBytes(agentsMd), agentsMd)))
        {
            return [agentsMd];
        }

        var skills = Path.Combine(Path.GetDirectoryName(agentsMd)!, ProviderFormats.CodexSkillsFolder);
        var found = Directory.Exists(skills)
            ? Directory.GetFiles(skills, "SKILL.md", new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 1, AttributesToSkip = FileAttributes.ReparsePoint })
                .Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList()
            : [];
        return found.Count > 0 ? found
            : throw new RttException(ErrorCodes.ViewImportInvalid, $"this {ProviderFormats.AgentsMd} is an index of Codex skills, but there is no {ProviderFormats.CodexSkillsFolder}/<id>/SKILL.md beside it", agentsMd,
                $"give the folder rtt view build wrote for openai, with its {ProviderFormats.CodexSkillsFolder} folder");
    }

    /// <summary>
    /// The files to read. Claude: a .md file, a folder of them, or a folder holding .claude/agents/ (subfolders too).
    /// OpenAI: an AGENTS.md, or a folder holding one. Any other provider: a .agent.json file or a folder of them.
    /// </summary>
    private static IReadOnlyList<string> Find(string provider, string path)
    {
        if (File.Exists(path))
        {
            return provider == ProviderFormats.OpenAi && Path.GetFileName(path) == ProviderFormats.AgentsMd ? CodexFiles(Path.GetFullPath(path)) : [Path.GetFullPath(path)];
        }

        var (what, pattern) = provider switch
        {
            ProviderFormats.Claude => ("Claude Code subagent files (*.md)", "*.md"),
            ProviderFormats.OpenAi => ("AGENTS.md", ProviderFormats.AgentsMd),
            _ => ($"{provider} agent definitions (*.agent.json)", "*.agent.json"),
        };
        if (!Directory.Exists(path))
        {
            throw new RttException(ErrorCodes.ViewImportInvalid, "no such file or folder", path, $"give a file or a folder holding {what}");
        }

        if (provider == ProviderFormats.OpenAi)
        {
            var agentsMd = Path.Combine(path, ProviderFormats.AgentsMd);
            return File.Exists(agentsMd) ? CodexFiles(Path.GetFullPath(agentsMd))
                : throw new RttException(ErrorCodes.ViewImportInvalid, $"no {ProviderFormats.AgentsMd} here", path, $"give the {ProviderFormats.AgentsMd} file or the folder that holds it");
        }

        var agentsDir = Path.Combine(path, ".claude", "agents");
        var dir = provider == ProviderFormats.Claude && Directory.Exists(agentsDir) ? agentsDir : path;
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        var found = Directory.GetFiles(dir, pattern, options).Select(Path.GetFullPath).Order(StringComparer.Ordinal).ToList();
        return found.Count > 0 ? found
            : throw new RttException(ErrorCodes.ViewImportInvalid, $"no {what} found", dir, $"give the folder that holds the {what}");
    }
}
