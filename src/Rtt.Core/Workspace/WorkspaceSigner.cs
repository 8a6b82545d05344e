using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Core.Workspace;

/// <summary>
/// The workspace's signing key for a process that signs often (a silo: the WAL's signed heads, the lane probes'
/// tokens). <see cref="RttWorkspace.LoadSigningKey"/> reads workspace.json, the key file and the whole trust store and
/// derives the key from its seed each time (0.3-0.4 ms); here the loaded key is kept and used again while the bytes of
/// workspace.json, of the key file and of the trust store's <c>revoked.json</c> are the ones it was loaded from, so a
/// rotation (workspace.json names another key), a changed key file or a revocation takes effect at the next signature,
/// as before. Where the folders holding them are watched (<see cref="FolderWatch"/>: the workspace folder, the registry,
/// the trust store and the key folder, every one of them there), a call that finds no change in any of them since the
/// last one uses the kept key without reading a file (a silo signs a head twice per transaction); otherwise the three
/// files are read and compared (small reads; no time stamps, whose coarse ticks could hide a change). Errors are
/// <see cref="RttWorkspace.LoadSigningKey"/>'s (a missing or revoked key is refused every time).
/// </summary>
/// <remarks>
/// The key handed out belongs to the signer: callers must not dispose it. A key replaced after a change is left to
/// the collector rather than disposed, since another thread may still be signing with it. Thread-safe.
/// </remarks>
public sealed class WorkspaceSigner(RttWorkspace workspace)
{
    private readonly Lock _gate = new();
    private Loaded? _loaded;

    // Opened before any of the files is read: a change while they are read shows at the next call.
    private readonly FolderWatch? _watch = FolderWatch.Open(workspace.Dir, workspace.Registry, workspace.Trust, workspace.Keys);

    private sealed record Loaded(SigningKey Key, string KeyPath, byte[] Settings, byte[] KeyFile, byte[]? Revoked);

    private string RevokedPath => Path.Combine(workspace.Trust, TrustStore.RevokedFileName);

    /// <summary>The current signing key (not to be disposed by the caller).</summary>
    public SigningKey Current()
    {
        lock (_gate)
        {
            if (_loaded is { } kept && _watch is { } watch && watch.Changed() == false && watch.Complete)
            {
                return kept.Key; // nothing in the four folders changed since the key was loaded or last checked
            }

            if (_loaded is { } loaded
                && Same(WorkspaceFiles.ReadBytes(workspace.SettingsPath, WorkspaceFiles.SmallLimit), loaded.Settings)
                && Same(ReadOptional(RevokedPath), loaded.Revoked)
                && Same(ReadOptional(loaded.KeyPath), loaded.KeyFile))
            {
                return loaded.Key;
            }

            // The bytes are read before the key is loaded, so the key is never older than the bytes kept with it:
            // a change between the two reads makes the next call load again, never keeps an old key.
            _loaded = null;
            var settings = WorkspaceFiles.ReadBytes(workspace.SettingsPath, WorkspaceFiles.SmallLimit);
            var revoked = ReadOptional(RevokedPath);
            var keyPath = workspace.PrivateKeyPath(workspace.LoadSettings().SigningKey);
            var keyFile = ReadOptional(keyPath);
            var key = workspace.LoadSigningKey();
            if (keyFile is not null)
            {
                _loaded = new Loaded(key, keyPath, settings, keyFile, revoked);
            }

            return key;
        }
    }

    private static bool Same(byte[]? a, byte[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    private static byte[]? ReadOptional(string path)
    {
        if (!WorkspaceFiles.Exists(path))
        {
            return null; // the usual case of revoked.json: one status read instead of two exceptions per signature (a folder in its place is read, and refused)
        }

        try
        {
            return WorkspaceFiles.ReadBytes(path, WorkspaceFiles.SmallLimit);
        }
        catch (WorkspaceException ex) when (ex.Code == ErrorCodes.WorkspaceFileMissing)
        {
            return null;
        }
    }
}
