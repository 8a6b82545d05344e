using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Workspace;

/// <summary>
/// A workspace: a folder holding <c>.rtt/</c> in the seed's layout. Every path the rest of RTT uses
/// comes from here, so the layout is written down once.
/// </summary>
public sealed class RttWorkspace
{
    public const string DirectoryName = ".rtt";
    public const string SettingsFileName = "workspace.json";
    public const string SettingsFormat = "rtt.workspace/1";

    private RttWorkspace(string root)
    {
        Root = Path.GetFullPath(root);
        Dir = Path.Combine(Root, DirectoryName);
    }

    /// <summary>The folder that holds <c>.rtt/</c> (agents/, overlays/ and providers/ live beside it).</summary>
    public string Root { get; }

    /// <summary>The <c>.rtt/</c> folder.</summary>
    public string Dir { get; }

    public string SettingsPath => Path.Combine(Dir, SettingsFileName);
    public string Registry => Path.Combine(Dir, "registry");
    public string Cas => Path.Combine(Registry, "cas", "sha256");
    public string Pack => Path.Combine(Registry, "pack");
    public string Trust => Path.Combine(Registry, "trust");
    public string TrustKeys => Path.Combine(Trust, "keys");
    public string IndexPath => Path.Combine(Registry, "index.json");
    public string RoutesPath => Path.Combine(Dir, "routes.json");
    public string Manifests => Path.Combine(Dir, "manifests");
    public string PolicyPath => Path.Combine(Dir, "policy.json");
    public string TopologyPath => Path.Combine(Dir, "topology.json");
    public string Tuned => Path.Combine(Dir, "tuned");
    public string Keys => Path.Combine(Dir, "keys");
    public string State => Path.Combine(Dir, "state");

    /// <summary>The SQLite database of the embedded silo.</summary>
    public string StateDatabasePath => Path.Combine(State, "rtt.db");

    /// <summary>Written by a running silo so that clients on this machine find its gateway.</summary>
    public string SiloInfoPath => Path.Combine(State, "silo.json");

    /// <summary>
    /// The lane host's Unix control socket when <c>Lanes:ControlSocket</c> is not set: <c>.rtt/state/lanes.sock</c>, or
    /// (a workspace path too long for a Unix socket, over <see cref="Rtt.Core.Lanes.LaneDefaults.MaxSocketPath"/> characters) a short path in the temp folder derived from
    /// the workspace, so each workspace has its own. The silo and its clients both use this rule.
    /// </summary>
    public string LaneControlSocket => StateSocket("lanes.sock", "rtt-lanes");

    /// <summary>
    /// A Unix socket of this workspace: <c>.rtt/state/FILE</c>, or (a path too long for a Unix socket, over <see cref="Rtt.Core.Lanes.LaneDefaults.MaxSocketPath"/> characters)
    /// <c>TEMPPREFIX-&lt;12 hex of the workspace root&gt;.sock</c> in the temp folder, so each workspace has its own.
    /// </summary>
    public string StateSocket(string fileName, string tempPrefix)
    {
        var inState = Path.Combine(State, fileName);
        if (Rtt.Core.Lanes.LaneDefaults.SocketPathFits(inState))
        {
            return inState;
        }

        var id = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Root)))[..12];
        return Path.Combine(Path.GetTempPath(), $"{tempPrefix}-{id}.sock");
    }

    /// <summary>The documents every workspace has, with the shape each must have at the top.</summary>
    public IReadOnlyList<string> Documents => [SettingsPath, IndexPath, RoutesPath, PolicyPath, TopologyPath];

    /// <summary>Opens the workspace rooted at <paramref name="root"/> (the folder holding .rtt/).</summary>
    public static RttWorkspace Open(string root)
    {
        var ws = new RttWorkspace(root);
        if (!System.IO.Directory.Exists(ws.Dir))
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceNotFound, "no RTT workspace here (no .rtt/ folder)", ws.Root,
                "create one with `rtt init` or pass --workspace DIR");
        }

        return ws;
    }

    /// <summary>
    /// Finds the workspace: <paramref name="explicitRoot"/> when given (it, or its .rtt/ folder),
    /// else the nearest folder with a .rtt/ from <paramref name="start"/> upwards.
    /// </summary>
    public static RttWorkspace Find(string? explicitRoot, string start)
    {
        if (!string.IsNullOrEmpty(explicitRoot))
        {
            var full = Path.GetFullPath(explicitRoot, start);
            if (Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar)) == DirectoryName)
            {
                full = Path.GetDirectoryName(full.TrimEnd(Path.DirectorySeparatorChar))!;
            }

            return Open(full);
        }

        for (var dir = new DirectoryInfo(Path.GetFullPath(start)); dir is not null; dir = dir.Parent)
        {
            if (System.IO.Directory.Exists(Path.Combine(dir.FullName, DirectoryName)))
            {
                return new RttWorkspace(dir.FullName);
            }
        }

        throw new WorkspaceException(ErrorCodes.WorkspaceNotFound, "no RTT workspace in this folder or any folder above it", Path.GetFullPath(start),
            "run `rtt init` here, or pass --workspace DIR");
    }

    /// <summary>Reads workspace.json.</summary>
    public WorkspaceSettings LoadSettings() => WorkspaceSettings.Parse(ReadObject(SettingsPath), SettingsPath);

    /// <summary>Loads the trust store.</summary>
    public TrustStore LoadTrustStore() => TrustStore.Load(Trust);

    /// <summary>The private key file of a key name.</summary>
    public string PrivateKeyPath(string name)
    {
        KeyNames.Validate(name);
        return Path.Combine(Keys, name + ".key");
    }

    /// <summary>The signing key kept for a process that signs often (<see cref="WorkspaceSigner"/>); one per workspace instance.</summary>
    public WorkspaceSigner Signer => LazyInitializer.EnsureInitialized(ref _signer, () => new WorkspaceSigner(this));

    private WorkspaceSigner? _signer;

    /// <summary>The signing key named in workspace.json's signing_key; a revoked (retired or compromised) one is refused, so nothing new is signed with it.</summary>
    public SigningKey LoadSigningKey()
    {
        var name = LoadSettings().SigningKey;
        var key = SigningKey.Load(PrivateKeyPath(name));
        if (LoadTrustStore().IsRevoked(key.KeyId))
        {
            key.Dispose();
            throw new SigningException(ErrorCodes.SignerRevoked, $"the workspace's signing key \"{name}\" ({key.KeyId}) is revoked, so nothing new is signed with it", SettingsPath,
                "make a new signing key with `rtt keys rotate NEW` (docs/operations.md, key rotation)");
        }

        return key;
    }

    /// <summary>Reads a workspace document that must be a JSON object, with errors that name file, line and column.</summary>
    public static JsonObject ReadObject(string path)
    {
        if (!WorkspaceFiles.Exists(path))
        {
            throw new WorkspaceException(ErrorCodes.WorkspaceFileMissing, "workspace file is missing", path,
                "restore it, or create a fresh workspace with `rtt init` and copy your files over");
        }

        return CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path), path) as JsonObject
            ?? throw new DocumentException(ErrorCodes.DocumentShape, "expected a JSON object at the top level", path, "wrap the content in { … }");
    }

    /// <summary>
    /// Checks that every workspace document parses and is an object, and that the signing key loads.
    /// Each later layer adds its own schema checks on top of this.
    /// </summary>
    public void Validate()
    {
        foreach (var path in Documents)
        {
            _ = ReadObject(path);
        }

        using var key = LoadSigningKey();
        _ = LoadTrustStore();
    }
}

/// <summary>The workspace's own settings (<c>.rtt/workspace.json</c>).</summary>
public sealed record WorkspaceSettings(string SigningKey)
{
    public static WorkspaceSettings Parse(JsonObject json, string path)
    {
        var format = (string?)json["format"];
        if (format != RttWorkspace.SettingsFormat)
        {
            throw new DocumentException(ErrorCodes.DocumentShape, $"format must be \"{RttWorkspace.SettingsFormat}\", found \"{format}\"", $"{path}: format",
                "this workspace was made by another RTT version; create a new one with `rtt init`");
        }

        var key = json["signing_key"] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : throw new DocumentException(ErrorCodes.DocumentShape, "signing_key must be a key name", $"{path}: signing_key", "set it to a key under .rtt/keys/");
        return new WorkspaceSettings(key);
    }

    public JsonObject ToJson() => new() { ["format"] = RttWorkspace.SettingsFormat, ["signing_key"] = SigningKey };
}
