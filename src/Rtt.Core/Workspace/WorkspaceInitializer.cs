using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Workspace;

/// <summary>
/// Creates a workspace: the seed's <c>.rtt/</c> layout, a fresh signing key that the workspace trusts,
/// and optionally the files of a bundled example. Everything is built in a temp folder and renamed into
/// place, so a failure leaves nothing half-written.
/// </summary>
public static class WorkspaceInitializer
{
    public const string DefaultKeyName = "default";
    private const UnixFileMode PrivateFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Creates <c>&lt;root&gt;/.rtt</c>. <paramref name="exampleDirectory"/>, when given, is an example's folder:
    /// its <c>rtt/</c> subfolder is copied into <c>.rtt/</c>, everything else into the root.
    /// </summary>
    public static InitResult Create(string root, string? exampleDirectory = null)
    {
        root = Path.GetFullPath(root);
        var target = Path.Combine(root, RttWorkspace.DirectoryName);
        if (Directory.Exists(target) || File.Exists(target))
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceExists, "a workspace already exists here; it was left untouched", target,
                "use it as it is, or choose another folder");
        }

        if (exampleDirectory is not null && !Directory.Exists(exampleDirectory))
        {
            throw new WorkspaceException(ErrorCodes.ExampleNotFound, "example folder not found", exampleDirectory, "reinstall rtt");
        }

        if (exampleDirectory is not null)
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(exampleDirectory))
            {
                var name = Path.GetFileName(entry);
                if (name != "rtt" && Path.Exists(Path.Combine(root, name)))
                {
                    throw new WorkspaceException(ErrorCodes.WorkspaceExists, $"the example would overwrite \"{name}\"", Path.Combine(root, name),
                        "choose an empty folder for an example workspace");
                }
            }
        }

        try
        {
            Directory.CreateDirectory(root);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceUnwritable, $"cannot create the folder: {ex.Message}", root, "choose a folder you can write to", ex);
        }

        var staging = Path.Combine(root, $".rtt.init-{Guid.NewGuid():N}");
        try
        {
            var ws = Layout(staging);
            if (exampleDirectory is not null && Directory.Exists(Path.Combine(exampleDirectory, "rtt")))
            {
                CopyTree(Path.Combine(exampleDirectory, "rtt"), staging);
            }

            using var key = SigningKey.Generate();
            AtomicFile.WriteAllBytes(Path.Combine(staging, "keys", DefaultKeyName + ".key"), PrettyJson.ToUtf8(key.ToPrivateKeyJson()), PrivateFileMode);
            TrustStore.WriteTrustedKey(Path.Combine(staging, "registry", "trust"), DefaultKeyName, key.PublicKey);
            AtomicFile.WriteAllBytes(Path.Combine(staging, RttWorkspace.SettingsFileName), PrettyJson.ToUtf8(new WorkspaceSettings(DefaultKeyName).ToJson()));

            WorkspaceModes.LockDown(staging); // 0700 folders, 0600 files, whatever the umask (docs/security.md)
            Directory.Move(staging, target);
            var copied = new List<string>();
            if (exampleDirectory is not null)
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(exampleDirectory).Order(StringComparer.Ordinal))
                {
                    var name = Path.GetFileName(entry);
                    if (name == "rtt")
                    {
                        continue;
                    }

                    if (Directory.Exists(entry))
                    {
                        CopyTree(entry, Path.Combine(root, name));
                    }
                    else
                    {
                        File.Copy(entry, Path.Combine(root, name));
                    }

                    copied.Add(name);
                }
            }

            return new InitResult(RttWorkspace.Open(root), key.KeyId, copied);
        }
        catch
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            throw;
        }

        static string Layout(string dir)
        {
            foreach (var sub in new[] { "registry/cas/sha256", "registry/pack", "registry/trust/keys", "manifests", "tuned", "keys", "state" })
            {
                Directory.CreateDirectory(Path.Combine(dir, sub));
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(Path.Combine(dir, "keys"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            WriteIfMissing(Path.Combine(dir, "registry", "index.json"), new JsonObject());
            WriteIfMissing(Path.Combine(dir, "routes.json"), new JsonObject { ["routes"] = new JsonArray() });
            WriteIfMissing(Path.Combine(dir, "policy.json"), new JsonObject
            {
                ["strict"] = true,
                ["acl"] = new JsonArray(),
                ["qos"] = new JsonArray(),
                ["pins"] = new JsonObject(),
            });
            WriteIfMissing(Path.Combine(dir, "topology.json"), LocalTopology());
            // Private keys and the silo's state never belong in version control.
            File.WriteAllText(Path.Combine(dir, ".gitignore"), "keys/\nstate/\n");
            return dir;
        }
    }

    /// <summary>
    /// This machine as the planner's topology: one host, a node per NUMA node (<c>node&lt;N&gt;</c>, the id its silo
    /// registers with), 1000 CPU millis per core and the node's memory. Edit it, or fill it from a cluster.
    /// </summary>
    public static JsonObject LocalTopology()
    {
        var machine = Nodes.MachineTopology.ReadLocal();
        var nodes = new JsonArray();
        foreach (var n in machine.NumaNodes)
        {
            var memory = n.MemoryBytes > 0 ? n.MemoryBytes : machine.MemoryBytes / Math.Max(1, machine.NumaNodes.Count);
            nodes.Add(new JsonObject
            {
                ["id"] = $"node{n.Id}",
                ["cpu_millis"] = Math.Max(1, n.Cpus.Count) * 1000,
                ["memory_mb"] = Math.Max(1, memory / (1024 * 1024)),
            });
        }

        return new JsonObject { ["hosts"] = new JsonArray(new JsonObject { ["name"] = machine.HostName, ["numa_nodes"] = nodes }) };
    }

    private static void WriteIfMissing(string path, JsonObject content)
    {
        if (!File.Exists(path))
        {
            AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(content));
        }
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }

        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            // Example files overwrite the empty defaults of the layout.
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)), overwrite: true);
        }
    }
}

/// <summary>What <c>rtt init</c> made.</summary>
public sealed record InitResult(RttWorkspace Workspace, string KeyId, IReadOnlyList<string> ExampleEntries);
