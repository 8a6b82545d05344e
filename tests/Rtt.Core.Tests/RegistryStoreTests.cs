using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Core.Tests;

public sealed class RegistryStoreTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private static JsonObject Obj(string id, string version, string text = "x") => new() { ["id"] = id, ["version"] = version, ["text"] = text };

    [Fact]
    public void Ingest_signs_with_the_workspace_key_and_stores_canonical_bytes_named_by_their_hash()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var result = store.Ingest(Obj("a", "1.0.0"), "a", "1.0.0", "test", signIfUnsigned: true);
        store.Save();
        Assert.True(result.Added);
        var bytes = File.ReadAllBytes(store.Cas.PathOf(result.Hash));
        Assert.Equal(result.Hash, ContentHash.Of(bytes));
        Assert.Equal(CanonicalJson.Canonicalize(bytes), bytes);
        using var key = _ws.Workspace.LoadSigningKey();
        Assert.Equal(key.KeyId, (string?)store.ReadObject(result.Hash)["sign"]!["key_id"]);
        Assert.Equal(result.Hash, RegistryIndex.Load(_ws.Workspace.IndexPath).Entries["a@1.0.0"]);
    }

    [Fact]
    public void Same_content_again_is_unchanged_and_other_content_for_the_same_id_version_is_refused_with_both_hashes()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var first = store.Ingest(Obj("a", "1.0.0"), "a", "1.0.0", "a.json", true);
        Assert.False(store.Ingest(Obj("a", "1.0.0"), "a", "1.0.0", "a.json", true).Added);
        var ex = Assert.Throws<RttException>(() => store.Ingest(Obj("a", "1.0.0", "changed"), "a", "1.0.0", "a.json", true));
        Assert.Equal(ErrorCodes.Immutable, ex.Code);
        Assert.Contains(first.Hash, ex.Message);
        Assert.Equal("a.json", ex.Location);
        Assert.True(store.Ingest(Obj("a", "1.1.0", "changed"), "a", "1.1.0", "a.json", true).Added); // a new version is fine
    }

    /// <summary>Answers only for the hashes it holds (other tests may miss objects while it is installed).</summary>
    private sealed class Remote(Dictionary<string, byte[]> objects) : IRemoteObjects
    {
        public int Fetches;

        public byte[]? Fetch(string hash)
        {
            if (!objects.TryGetValue(hash, out var bytes))
            {
                return null;
            }

            Interlocked.Increment(ref Fetches);
            return bytes;
        }
    }

    [Fact]
    public void An_object_missing_here_is_read_from_the_remote_source_checked_against_its_hash_and_kept()
    {
        string hash;
        byte[] bytes;
        using (var there = RegistryStore.Open(_ws.Workspace))
        {
            hash = there.Ingest(Obj("remote", "1.0.0", "from another silo"), "remote", "1.0.0", "r.json", signIfUnsigned: true).Hash;
            there.Save();
            bytes = there.ReadBytes(hash);
            File.Delete(there.Cas.PathOf(hash)); // as on a silo whose workspace never ingested it
        }

        var tampered = CanonicalJson.Canonicalize(Encoding.UTF8.GetBytes("{\"id\":\"remote\",\"text\":\"changed on the way\"}"));
        var tamperedName = ContentHash.Of(Encoding.UTF8.GetBytes("{\"id\":\"something else\"}"));
        var remote = new Remote(new() { [hash] = bytes, [tamperedName] = tampered });
        RegistryStore.Remote = remote;
        try
        {
            using var store = RegistryStore.Open(_ws.Workspace);
            Assert.False(store.Cas.Contains(hash));
            Assert.Equal("from another silo", (string?)store.ReadObject(hash)["text"]); // fetched, hash and signature checked
            Assert.True(store.Cas.Contains(hash)); // kept: the next read is local
            store.ReadObject(hash);
            Assert.Equal(1, remote.Fetches);

            var bad = Assert.Throws<RttException>(() => store.ReadBytes(tamperedName)); // bytes that are not what the name says
            Assert.Equal(ErrorCodes.CasHashMismatch, bad.Code);
            Assert.False(store.Cas.Contains(tamperedName));
            var missing = Assert.Throws<RttException>(() => store.ReadBytes(ContentHash.Of("nowhere"u8)));
            Assert.Equal(ErrorCodes.CasMissing, missing.Code);
        }
        finally
        {
            RegistryStore.Remote = null;
        }
    }

    [Fact]
    public void Index_json_is_in_ordinal_order_whatever_the_ingest_order()
    {
        string Build(string[] order, string root)
        {
            var ws = WorkspaceInitializer.Create(root).Workspace;
            File.Copy(_ws.Workspace.PrivateKeyPath("default"), ws.PrivateKeyPath("default"), overwrite: true);
            File.Copy(Path.Combine(_ws.Workspace.TrustKeys, "default.pub"), Path.Combine(ws.TrustKeys, "default.pub"), overwrite: true);
            using var store = RegistryStore.Open(ws);
            foreach (var id in order)
            {
                store.Ingest(Obj(id, "1.0.0"), id, "1.0.0", id, true);
            }

            store.Save();
            return File.ReadAllText(ws.IndexPath);
        }

        var a = Build(["b", "B", "a", "é"], Path.Combine(_ws.Root, "x"));
        var b = Build(["é", "a", "B", "b"], Path.Combine(_ws.Root, "y"));
        Assert.Equal(a, b);
        Assert.True(a.IndexOf("\"B@", StringComparison.Ordinal) < a.IndexOf("\"a@", StringComparison.Ordinal));
    }

    [Fact]
    public void Flipped_bit_in_a_loose_object_is_refused_naming_the_file()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var hash = store.Ingest(Obj("a", "1.0.0"), "a", "1.0.0", "t", true).Hash;
        var path = store.Cas.PathOf(hash);
        var bytes = File.ReadAllBytes(path);
        bytes[10] ^= 0x04;
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<RttException>(() => store.ReadObject(hash));
        Assert.Equal(ErrorCodes.CasHashMismatch, ex.Code);
        Assert.Equal(path, ex.Location);

        File.WriteAllBytes(path, bytes[..20]); // truncated
        Assert.Equal(ErrorCodes.CasHashMismatch, Assert.Throws<RttException>(() => store.ReadObject(hash)).Code);
    }

    [Fact]
    public void Strict_mode_refuses_unsigned_and_unknown_signers_at_ingest_and_revoked_keys_at_read()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        Assert.True(store.Strict);
        Assert.Equal(ErrorCodes.Unsigned, Assert.Throws<SigningException>(() => store.Ingest(Obj("u", "1.0.0"), "u", "1.0.0", "u", signIfUnsigned: false)).Code);

        using var stranger = SigningKey.Generate();
        var foreign = ObjectSigner.Sign(Obj("f", "1.0.0"), stranger);
        Assert.Equal(ErrorCodes.SignerUnknown, Assert.Throws<SigningException>(() => store.Ingest(foreign, "f", "1.0.0", "f", false)).Code);

        var tampered = ObjectSigner.Sign(Obj("t", "1.0.0"), _ws.Workspace.LoadSigningKey());
        tampered["text"] = "evil";
        Assert.Equal(ErrorCodes.SignatureInvalid, Assert.Throws<SigningException>(() => store.Ingest(tampered, "t", "1.0.0", "t", true)).Code);

        var good = store.Ingest(Obj("g", "1.0.0"), "g", "1.0.0", "g", true).Hash;
        store.Save();
        using var key = _ws.Workspace.LoadSigningKey();
        TrustStore.Revoke(_ws.Workspace.Trust, key.KeyId, "compromised", DateTimeOffset.UnixEpoch);
        using var reopened = RegistryStore.Open(_ws.Workspace);
        Assert.Equal(ErrorCodes.SignerRevoked, Assert.Throws<SigningException>(() => reopened.ReadObject(good)).Code);
    }

    [Fact]
    public void Non_strict_mode_accepts_unsigned_and_unknown_signers_but_never_bad_signatures()
    {
        var policy = RttWorkspace.ReadObject(_ws.Workspace.PolicyPath);
        policy["strict"] = false;
        File.WriteAllBytes(_ws.Workspace.PolicyPath, PrettyJson.ToUtf8(policy));
        using var store = RegistryStore.Open(_ws.Workspace);
        Assert.False(store.Strict);
        var unsigned = store.Ingest(Obj("u", "1.0.0"), "u", "1.0.0", "u", signIfUnsigned: false).Hash;
        Assert.Null(store.ReadObject(unsigned)["sign"]);
        using var stranger = SigningKey.Generate();
        Assert.True(store.Ingest(ObjectSigner.Sign(Obj("f", "1.0.0"), stranger), "f", "1.0.0", "f", false).Added);
        using var key = _ws.Workspace.LoadSigningKey();
        var tampered = ObjectSigner.Sign(Obj("t", "1.0.0"), key);
        tampered["text"] = "evil";
        Assert.Equal(ErrorCodes.SignatureInvalid, Assert.Throws<SigningException>(() => store.Ingest(tampered, "t", "1.0.0", "t", false)).Code);
    }

    [Fact]
    public void Resolve_takes_a_hash_or_an_id_at_version()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var hash = store.Ingest(Obj("a", "1.0.0"), "a", "1.0.0", "t", true).Hash;
        Assert.Equal(hash, store.Resolve("a@1.0.0"));
        Assert.Equal(hash, store.Resolve(hash));
        Assert.Equal(ErrorCodes.NotFound, Assert.Throws<RttException>(() => store.Resolve("a@9.9.9")).Code);
        Assert.Equal(ErrorCodes.NotFound, Assert.Throws<RttException>(() => store.Resolve("sha256:abc")).Code);
        Assert.Equal(ErrorCodes.CasMissing, Assert.Throws<RttException>(() => store.ReadObject(ContentHash.Of(Encoding.UTF8.GetBytes("nothing")))).Code);
    }
}
