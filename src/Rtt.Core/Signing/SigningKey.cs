using System.Text.Json.Nodes;
using NSec.Cryptography;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Core.Signing;

/// <summary>
/// An Ed25519 private key (NSec). Its <see cref="KeyId"/> is <c>sha256:</c> of the raw 32-byte public key.
/// Private key files are JSON <c>{"alg","key_id","private_key"}</c> with the 32-byte seed in base64,
/// written with mode 0600 and kept outside the registry.
/// </summary>
public sealed class SigningKey : IDisposable
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private SigningKey(Key key)
    {
        _key = key;
        PublicKey = new TrustedKey(key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>The public half, as it goes into the trust store.</summary>
    public TrustedKey PublicKey { get; }

    public string KeyId => PublicKey.KeyId;

    /// <summary>Creates a fresh random key.</summary>
    public static SigningKey Generate() =>
        new(Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));

    /// <summary>Imports a key from its 32-byte seed.</summary>
    public static SigningKey FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != Algorithm.PrivateKeySize)
        {
            throw new ArgumentException($"an Ed25519 seed is {Algorithm.PrivateKeySize} bytes", nameof(seed));
        }

        return new(Key.Import(Algorithm, seed, KeyBlobFormat.RawPrivateKey,
            new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));
    }

    /// <summary>Signs raw bytes.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data) => Algorithm.Sign(_key, data);

    /// <summary>The private key file's JSON (contains the secret: write it with mode 0600).</summary>
    public JsonObject ToPrivateKeyJson() => new()
    {
        ["alg"] = "ed25519",
        ["key_id"] = KeyId,
        ["private_key"] = Convert.ToBase64String(_key.Export(KeyBlobFormat.RawPrivateKey)),
    };

    /// <summary>Loads a private key file, checking that its key_id matches the key it holds.</summary>
    public static SigningKey Load(string path)
    {
        if (!WorkspaceFiles.Exists(path))
        {
            throw new SigningException(ErrorCodes.KeyFileMissing, "private key file not found", path,
                "create one with `rtt keys new NAME`, or point workspace.json's signing_key at an existing key");
        }

        var node = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path, WorkspaceFiles.SmallLimit), path) as JsonObject
            ?? throw Invalid(path, "the file is not a JSON object");
        if ((string?)node["alg"] != "ed25519")
        {
            throw Invalid(path, "alg must be \"ed25519\"");
        }

        byte[] seed;
        try
        {
            seed = Convert.FromBase64String((string?)node["private_key"] ?? throw Invalid(path, "private_key is missing"));
        }
        catch (FormatException)
        {
            throw Invalid(path, "private_key is not base64");
        }

        if (seed.Length != Algorithm.PrivateKeySize)
        {
            throw Invalid(path, $"private_key must hold {Algorithm.PrivateKeySize} bytes, found {seed.Length}");
        }

        var key = FromSeed(seed);
        var declared = (string?)node["key_id"];
        if (declared != key.KeyId)
        {
            key.Dispose();
            throw Invalid(path, $"key_id {declared ?? "(missing)"} does not match the key, which is {key.KeyId}");
        }

        return key;
    }

    private static SigningException Invalid(string path, string why) =>
        new(ErrorCodes.KeyFileInvalid, $"invalid private key file: {why}", path, "restore the file from a backup or create a new key with `rtt keys new`");

    private byte[]? _macKey;

    /// <summary>
    /// The key of this key's MAC tokens (docs/tokens.md, MAC tokens): HKDF-SHA256 of the 32-byte seed, salt <c>rtt.mac/1</c>,
    /// info the key id, 32 bytes. Derived once per instance; only a holder of the private key can make it.
    /// </summary>
    internal byte[] MacKey
    {
        get
        {
            if (Volatile.Read(ref _macKey) is { } kept)
            {
                return kept;
            }

            var seed = _key.Export(KeyBlobFormat.RawPrivateKey);
            try
            {
                var derived = System.Security.Cryptography.HKDF.DeriveKey(System.Security.Cryptography.HashAlgorithmName.SHA256, seed, 32,
                    "rtt.mac/1"u8.ToArray(), System.Text.Encoding.ASCII.GetBytes(KeyId));
                return Interlocked.CompareExchange(ref _macKey, derived, null) ?? derived;
            }
            finally
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(seed);
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _macKey, null) is { } mac)
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(mac);
        }

        _key.Dispose();
    }
}

/// <summary>
/// A trusted Ed25519 public key: the trust store's <c>.pub</c> file is
/// <c>{"alg":"ed25519","key_id":"sha256:…","public_key":"&lt;base64 of the raw 32 bytes&gt;"}</c>.
/// </summary>
public sealed class TrustedKey
{
    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly PublicKey _publicKey;

    public TrustedKey(ReadOnlySpan<byte> rawPublicKey)
    {
        if (!PublicKey.TryImport(Algorithm, rawPublicKey, KeyBlobFormat.RawPublicKey, out var imported) || imported is null)
        {
            throw new ArgumentException("not a valid raw Ed25519 public key", nameof(rawPublicKey));
        }

        _publicKey = imported;
        RawPublicKey = rawPublicKey.ToArray();
        KeyId = ContentHash.Of(rawPublicKey);
    }

    public string KeyId { get; }

    public byte[] RawPublicKey { get; }

    /// <summary>True when <paramref name="signature"/> is this key's signature over <paramref name="data"/>.</summary>
    public bool Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature) =>
        signature.Length == Algorithm.SignatureSize && Algorithm.Verify(_publicKey, data, signature);

    // Signatures this key was found to make, by SHA-256 of the signed bytes and the signature: a plan presented again (an
    // apply of the applied plan, a retry) is checked by one hash instead of an Ed25519 verification. Only successes are
    // kept; a signature over given bytes verifies or not forever, so nothing here goes stale. Bounded: cleared when full.
    private readonly HashSet<(UInt128, UInt128, string)> _verified = [];
    private readonly Lock _verifiedGate = new();
    private const int VerifiedCapacity = 1024;

    /// <summary>
    /// <see cref="Verify"/> for signed objects that are presented more than once (plans): a signature that verified before over
    /// the same bytes is accepted from the hash of the bytes without verifying it again.
    /// </summary>
    public bool VerifyRemembered(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != Algorithm.SignatureSize)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(data, hash);
        var entry = (System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(hash), System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(hash[16..]), Convert.ToBase64String(signature));
        lock (_verifiedGate)
        {
            if (_verified.Contains(entry))
            {
                return true;
            }
        }

        if (!Algorithm.Verify(_publicKey, data, signature))
        {
            return false;
        }

        lock (_verifiedGate)
        {
            if (_verified.Count >= VerifiedCapacity)
            {
                _verified.Clear();
            }

            _verified.Add(entry);
        }

        return true;
    }

    public JsonObject ToJson() => new()
    {
        ["alg"] = "ed25519",
        ["key_id"] = KeyId,
        ["public_key"] = Convert.ToBase64String(RawPublicKey),
    };

    /// <summary>Reads a <c>.pub</c> file, checking its key_id against the key it holds.</summary>
    public static TrustedKey Load(string path)
    {
        var node = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path, WorkspaceFiles.SmallLimit), path) as JsonObject
            ?? throw Invalid(path, "the file is not a JSON object");
        if ((string?)node["alg"] != "ed25519")
        {
            throw Invalid(path, "alg must be \"ed25519\"");
        }

        TrustedKey key;
        try
        {
            key = new TrustedKey(Convert.FromBase64String((string?)node["public_key"] ?? throw Invalid(path, "public_key is missing")));
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw Invalid(path, "public_key is not the base64 of a raw 32-byte Ed25519 public key");
        }

        var declared = (string?)node["key_id"];
        if (declared != key.KeyId)
        {
            throw Invalid(path, $"key_id {declared ?? "(missing)"} does not match the key, which is {key.KeyId}");
        }

        return key;
    }

    private static SigningException Invalid(string path, string why) =>
        new(ErrorCodes.KeyFileInvalid, $"invalid public key file: {why}", path, "re-export the key with `rtt keys list --json` or remove the file");
}
