using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Registry;

/// <summary>
/// The registry of a workspace: loose objects and the pack read through one interface, the ID@version
/// index, and the signing chain. Every object in it is signed; reads verify hash and signature.
/// </summary>
public sealed class RegistryStore : IDisposable
{
    private readonly RttWorkspace _workspace;
    private SigningKey? _signingKey;
    private PackReader? _pack;
    private bool _packOpened;

    private RegistryStore(RttWorkspace workspace, bool strict)
    {
        _workspace = workspace;
        Strict = strict;
        Cas = new CasStore(workspace.Cas);
        Index = RegistryIndex.Load(workspace.IndexPath);
        Trust = workspace.LoadTrustStore();
    }

    public CasStore Cas { get; }

    public RegistryIndex Index { get; }

    public TrustStore Trust { get; }

    /// <summary>Strict mode (policy.json <c>strict</c>, default true): unsigned objects and unknown signers are refused.</summary>
    public bool Strict { get; }

    public static RegistryStore Open(RttWorkspace workspace) => new(workspace, ReadStrict(workspace));

    private static bool ReadStrict(RttWorkspace workspace)
    {
        if (!File.Exists(workspace.PolicyPath))
        {
            return true;
        }

        var strict = RttWorkspace.ReadObject(workspace.PolicyPath)["strict"];
        return strict is null || (strict is JsonValue v && v.TryGetValue<bool>(out var b) ? b
            : throw new DocumentException(ErrorCodes.DocumentShape, "strict must be true or false", $"{workspace.PolicyPath}: /strict", "set it to true (default) or false"));
    }

    private SigningKey SigningKey => _signingKey ??= _workspace.LoadSigningKey();

    /// <summary>The pack, opened on first use (null when none was written).</summary>
    public PackReader? Pack
    {
        get
        {
            if (!_packOpened)
            {
                _pack = PackReader.OpenIfPresent(_workspace.Pack);
                _packOpened = true;
            }

            return _pack;
        }
    }

    /// <summary>
    /// Ingests one object as <paramref name="id"/>@<paramref name="version"/>. An unsigned object is signed by
    /// the workspace key when <paramref name="signIfUnsigned"/> (workspace sources), otherwise refused in strict mode;
    /// an existing signature is kept and verified. Re-ingesting the same ID@version with other content is refused.
    /// </summary>
    public IngestResult Ingest(JsonObject obj, string id, string version, string source, bool signIfUnsigned)
    {
        JsonObject signed;
        if (obj[ObjectSigner.SignMember] is null)
        {
            if (signIfUnsigned)
            {
                signed = ObjectSigner.Sign(obj, SigningKey);
            }
            else if (Strict)
            {
                throw new SigningException(ErrorCodes.Unsigned, "object is not signed, and strict mode refuses unsigned objects", source,
                    "sign it with a trusted key, or set \"strict\": false in .rtt/policy.json");
            }
            else
            {
                signed = obj;
            }
        }
        else
        {
            VerifySignature(obj, source);
            signed = obj;
        }

        var bytes = CanonicalJson.Serialize(signed);
        var hash = ContentHash.Of(bytes);
        var key = RegistryIndex.Key(id, version);
        if (ObjectIdentity.Mismatch(key, signed) is { } mismatch)
        {
            throw new RttException(ErrorCodes.IdentityMismatch, mismatch, source,
                "an object is indexed under its own ID@version: give it matching id (or address/symbol) and version members");
        }

        if (Index.TryGet(key, out var existing))
        {
            if (existing == hash)
            {
                return new IngestResult(key, hash, Added: false);
            }

            // Same content signed differently (another key) is the same definition: keep the published object.
            var published = ReadObject(existing, key);
            if (CanonicalJson.Serialize(WithoutSign(published)).AsSpan().SequenceEqual(CanonicalJson.Serialize(WithoutSign(signed))))
            {
                return new IngestResult(key, existing, Added: false);
            }

            throw new RttException(ErrorCodes.Immutable, $"{key} is already published as {existing}; this content hashes to {hash}", source,
                "a published ID@version never changes: bump the version");
        }

        Cas.Put(bytes);
        Index.Add(key, hash, source);
        return new IngestResult(key, hash, Added: true);
    }

    /// <summary>Makes the objects durable, then writes the index, so the index never names a missing object.</summary>
    public void Save()
    {
        Cas.Sync();
        Index.Save();
    }

    /// <summary>Resolves <c>sha256:…</c> or <c>ID@version</c> to a hash.</summary>
    public string Resolve(string reference)
    {
        if (reference.StartsWith(ContentHash.Prefix, StringComparison.Ordinal))
        {
            return ContentHash.IsValid(reference) ? reference
                : throw new RttException(ErrorCodes.NotFound, $"\"{reference}\" is not a full sha256 hash", null, "give sha256:<64 lowercase hex>");
        }

        return Index.TryGet(reference, out var hash) ? hash
            : throw new RttException(ErrorCodes.NotFound, $"no object {reference} in the registry", Index.Path,
                "ID@version must match index.json exactly; run `rtt scan` to ingest sources");
    }

    /// <summary>
    /// Reads the object an index entry names, hash and signature checked, and refuses it (RTT-REG-011) when the object
    /// is not that ID@version: an entry pointed at another valid, signed object is a forgery.
    /// </summary>
    public JsonObject ReadEntry(string key)
    {
        var hash = Resolve(key);
        var obj = ReadObject(hash, key);
        if (ObjectIdentity.Mismatch(key, obj) is { } mismatch)
        {
            throw new RttException(ErrorCodes.IdentityMismatch, $"{mismatch} ({hash})", Index.Path,
                "index.json was changed outside rtt: restore it from a backup, or delete it and run `rtt scan` to rebuild it");
        }

        return obj;
    }

    /// <summary>
    /// Writes the pack from every object the registry holds, wherever it is now: loose objects, the current pack's
    /// objects, and every object index.json names. An indexed object found nowhere (or damaged) refuses the whole pack
    /// before anything is written, so packing never drops what the index needs. Returns the object count.
    /// </summary>
    /// <param name="drop">Objects to leave out (key rotation drops the copies signed by a compromised key); never an indexed one.</param>
    public int WritePack(IReadOnlySet<string>? drop = null)
    {
        var hashes = new SortedSet<string>(Cas.List(), StringComparer.Ordinal);
        PackReader? pack = null;
        try
        {
            pack = Pack;
        }
        catch (RttException)
        {
            // A damaged pack: its objects cannot be trusted; whatever the index still needs must be loose (checked below).
        }

        if (pack is not null)
        {
            hashes.UnionWith(pack.Hashes());
        }

        foreach (var (key, hash) in Index.Entries)
        {
            if (!Cas.Contains(hash) && !(pack is not null && InPack(pack, hash)))
            {
                throw new RttException(ErrorCodes.CasMissing, $"{key} names {hash}, which is neither a loose object nor in a readable pack; nothing was written",
                    Index.Path, "restore the object (from a backup or by re-ingesting its source with `rtt scan`) before packing");
            }

            hashes.Add(hash);
        }

        if (drop is not null)
        {
            hashes.ExceptWith(drop.Where(h => !Index.Entries.Values.Contains(h)));
        }

        // Read everything first: a damaged object refuses the pack before the old one is replaced.
        var bytes = hashes.ToDictionary(h => h, h => ReadBytes(h), StringComparer.Ordinal);
        return Packfile.Write(hashes, h => bytes[h], _workspace.Pack);
    }

    internal static bool InPack(PackReader pack, string hash)
    {
        Span<byte> raw = stackalloc byte[32];
        return Convert.FromHexString(hash.AsSpan(ContentHash.Prefix.Length), raw, out _, out _) == System.Buffers.OperationStatus.Done
            && pack.TryGet(raw, out ReadOnlySpan<byte> _);
    }

    /// <summary>The canonical bytes of an object, from the loose store or the pack, hash checked.</summary>
    public byte[] ReadBytes(string hash, string? where = null)
    {
        if (Cas.TryRead(hash, out var loose))
        {
            return loose;
        }

        Span<byte> raw = stackalloc byte[32];
        if (Pack is { } pack && Convert.FromHexString(hash.AsSpan(ContentHash.Prefix.Length), raw, out _, out _) == System.Buffers.OperationStatus.Done
            && pack.TryGet(raw, out ReadOnlySpan<byte> packed))
        {
            CasStore.Check(hash, packed, $"{pack.PackPath} ({hash})");
            return packed.ToArray();
        }

        if (Remote is { } remote && ContentHash.IsValid(hash) && remote.Fetch(hash) is { } fetched)
        {
            // The registry everywhere (operations.md, "The registry in a cluster"): an object another silo ingested, from
            // the cluster database, checked against its name before it is kept; its signature is checked by ReadObject.
            CasStore.Check(hash, fetched, $"the cluster's object table ({hash})");
            Cas.Put(fetched);
            return fetched;
        }

        throw new RttException(ErrorCodes.CasMissing, $"object {hash} is not in the registry", where ?? Cas.PathOf(hash),
            "run `rtt scan` to ingest its source, or restore the registry");
    }

    /// <summary>
    /// Where objects missing here are looked for (the cluster database in cluster mode, set once by the silo at start;
    /// null: this workspace only). Fetched objects are hash-checked and kept in the loose store.
    /// </summary>
    public static IRemoteObjects? Remote { get; set; }

    /// <summary>Reads an object and verifies its signature (strict: a trusted, unrevoked signer is required).</summary>
    public JsonObject ReadObject(string hash, string? where = null) => ReadObject(hash, where, out _, withContent: false);

    /// <summary>The same, with the object's canonical bytes without its sign member (what its signature covers: made once, for the check and the caller).</summary>
    public JsonObject ReadObject(string hash, string? where, out byte[] content) => ReadObject(hash, where, out content, withContent: true);

    private JsonObject ReadObject(string hash, string? where, out byte[] content, bool withContent)
    {
        var location = where ?? hash;
        var obj = CanonicalJson.ParseNode(ReadBytes(hash, where), location) as JsonObject
            ?? throw new RttException(ErrorCodes.CasHashMismatch, "stored object is not a JSON object", location, "restore the registry");
        var signed = obj[ObjectSigner.SignMember] is not null;
        content = withContent || signed ? ObjectSigner.SigningPayload(obj) : [];
        if (!signed)
        {
            if (Strict)
            {
                throw new SigningException(ErrorCodes.Unsigned, "stored object is not signed, and strict mode refuses it", location,
                    "re-ingest its source with `rtt scan` so the workspace key signs it");
            }
        }
        else
        {
            VerifySignature(obj, content, location);
        }

        return obj;
    }

    /// <summary>Strict: trusted and unrevoked signer required. Not strict: an unknown signer passes; a revoked key or a bad signature never does.</summary>
    public void VerifySignature(JsonObject obj, string location) => VerifySignature(obj, ObjectSigner.SigningPayload(obj), location);

    private void VerifySignature(JsonObject obj, byte[] payload, string location)
    {
        try
        {
            Trust.Verify(obj, payload, location);
        }
        catch (SigningException ex) when (!Strict && ex.Code == ErrorCodes.SignerUnknown)
        {
        }
    }

    private static JsonObject WithoutSign(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy.Remove(ObjectSigner.SignMember);
        return copy;
    }

    public void Dispose()
    {
        _signingKey?.Dispose();
        _pack?.Dispose();
    }
}

/// <summary>What one ingest did.</summary>
public sealed record IngestResult(string Key, string Hash, bool Added);
