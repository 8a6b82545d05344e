using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

public sealed class WorkspaceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-ws-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Init_creates_the_seed_layout_with_a_trusted_signing_key()
    {
        var result = WorkspaceInitializer.Create(_dir);
        var ws = result.Workspace;
        foreach (var dir in new[] { ws.Cas, ws.Pack, ws.TrustKeys, ws.Manifests, ws.Tuned, ws.Keys })
        {
            Assert.True(Directory.Exists(dir), dir);
        }

        foreach (var file in ws.Documents)
        {
            Assert.True(File.Exists(file), file);
        }

        using var key = ws.LoadSigningKey();
        Assert.Equal(result.KeyId, key.KeyId);
        Assert.True(ws.LoadTrustStore().IsTrusted(key.KeyId));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ws.PrivateKeyPath("default")));
        Assert.Empty(Directory.GetFiles(ws.Trust, "*.key", SearchOption.AllDirectories)); // no secret in the registry
        ws.Validate();
    }

    [Fact]
    public void Init_refuses_an_existing_workspace_and_leaves_it_untouched()
    {
        var first = WorkspaceInitializer.Create(_dir);
        var before = File.ReadAllBytes(first.Workspace.PrivateKeyPath("default"));
        var ex = Assert.Throws<WorkspaceException>(() => WorkspaceInitializer.Create(_dir));
        Assert.Equal(ErrorCodes.WorkspaceExists, ex.Code);
        Assert.Equal(before, File.ReadAllBytes(first.Workspace.PrivateKeyPath("default")));
        Assert.Single(Directory.GetFileSystemEntries(_dir)); // no staging folder left behind
    }

    [Fact]
    public void Two_workspaces_get_different_keys()
    {
        var a = WorkspaceInitializer.Create(Path.Combine(_dir, "a"));
        var b = WorkspaceInitializer.Create(Path.Combine(_dir, "b"));
        Assert.NotEqual(a.KeyId, b.KeyId);
    }

    [Fact]
    public void Find_walks_upwards_and_honours_an_explicit_path()
    {
        WorkspaceInitializer.Create(_dir);
        var deep = Directory.CreateDirectory(Path.Combine(_dir, "agents", "common")).FullName;
        Assert.Equal(Path.GetFullPath(_dir), RttWorkspace.Find(null, deep).Root);
        Assert.Equal(Path.GetFullPath(_dir), RttWorkspace.Find(Path.Combine(_dir, ".rtt"), "/").Root);
        var elsewhere = Directory.CreateTempSubdirectory("rtt-none-").FullName;
        try
        {
            var ex = Assert.Throws<WorkspaceException>(() => RttWorkspace.Find(null, elsewhere));
            Assert.Equal(ErrorCodes.WorkspaceNotFound, ex.Code);
            Assert.Equal(ErrorCodes.WorkspaceNotFound, Assert.Throws<WorkspaceException>(() => RttWorkspace.Find(elsewhere, "/")).Code);
        }
        finally
        {
            Directory.Delete(elsewhere);
        }
    }

    [Fact]
    public void Init_from_an_example_copies_its_files()
    {
        var example = Directory.CreateDirectory(Path.Combine(_dir, "example")).FullName;
        Directory.CreateDirectory(Path.Combine(example, "rtt", "manifests"));
        File.WriteAllText(Path.Combine(example, "rtt", "routes.json"), """{"routes":[{"from":"rtt://a/b/c","to":"rtt://d/e/f"}]}""");
        File.WriteAllText(Path.Combine(example, "rtt", "manifests", "x.json"), "{}");
        Directory.CreateDirectory(Path.Combine(example, "agents", "common"));
        File.WriteAllText(Path.Combine(example, "agents", "common", "s.agent.json"), "{}");

        var result = WorkspaceInitializer.Create(Path.Combine(_dir, "ws"), example);
        Assert.Contains("rtt://a/b/c", File.ReadAllText(result.Workspace.RoutesPath));
        Assert.True(File.Exists(Path.Combine(result.Workspace.Manifests, "x.json")));
        Assert.True(File.Exists(Path.Combine(result.Workspace.Root, "agents", "common", "s.agent.json")));
        Assert.Equal(["agents"], result.ExampleEntries);
        result.Workspace.Validate();
    }

    [Fact]
    public void Malformed_document_is_named_with_line_and_column()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        File.WriteAllText(ws.TopologyPath, "{\n  \"hosts\": [\n    {\"name\": \"a\",}\n  ]\n}\n");
        var ex = Assert.Throws<DocumentException>(ws.Validate);
        Assert.Equal(ErrorCodes.JsonInvalid, ex.Code);
        Assert.StartsWith(ws.TopologyPath + ":3:", ex.Location);
    }

    [Fact]
    public void Missing_signing_key_is_a_clear_error()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        File.Delete(ws.PrivateKeyPath("default"));
        var ex = Assert.Throws<SigningException>(ws.Validate);
        Assert.Equal(ErrorCodes.KeyFileMissing, ex.Code);
        Assert.Equal(ws.PrivateKeyPath("default"), ex.Location);
    }

    [Fact]
    public void The_kept_signing_key_follows_rotation_key_file_and_revocation()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        var signer = ws.Signer;
        var first = signer.Current();
        using (var loaded = ws.LoadSigningKey())
        {
            Assert.Equal(loaded.KeyId, first.KeyId);
        }

        Assert.Same(first, signer.Current()); // unchanged files: the same key, not loaded again
        Assert.Same(signer, ws.Signer);

        // No revoked.json yet: a folder in its place is refused, not read as "no revocations" like the missing file.
        var revoked = Path.Combine(ws.Trust, TrustStore.RevokedFileName);
        Directory.CreateDirectory(revoked);
        Assert.Equal(ErrorCodes.WorkspaceUnreadable, Assert.Throws<WorkspaceException>(() => signer.Current()).Code);
        Directory.Delete(revoked);
        Assert.Equal(first.KeyId, signer.Current().KeyId);

        // A rotation (workspace.json names another key) takes effect at the next call.
        var keys = new WorkspaceKeys(ws);
        var ops = keys.New("ops", use: true);
        var rotated = signer.Current();
        Assert.Equal(ops.KeyId, rotated.KeyId);
        Assert.Same(rotated, signer.Current());

        // The key file replaced under the same name: the new key, even at the same size.
        var keyPath = ws.PrivateKeyPath("ops");
        var before = File.ReadAllBytes(keyPath);
        using (var other = SigningKey.Generate())
        {
            File.WriteAllBytes(keyPath, Rtt.Core.Json.PrettyJson.ToUtf8(other.ToPrivateKeyJson()));
            Assert.Equal(before.Length, new FileInfo(keyPath).Length);
            Assert.Equal(other.KeyId, signer.Current().KeyId);
        }

        // A revoked signing key is refused at once, every time.
        File.WriteAllBytes(keyPath, before);
        Assert.Equal(ops.KeyId, signer.Current().KeyId);
        keys.Revoke("ops", "compromised", DateTimeOffset.UnixEpoch);
        Assert.Equal(ErrorCodes.SignerRevoked, Assert.Throws<SigningException>(() => signer.Current()).Code);
        Assert.Equal(ErrorCodes.SignerRevoked, Assert.Throws<SigningException>(() => signer.Current()).Code);

        // A missing key file is the loader's error, not a kept key.
        keys.New("next", use: true);
        File.Delete(ws.PrivateKeyPath("next"));
        Assert.Equal(ErrorCodes.KeyFileMissing, Assert.Throws<SigningException>(() => signer.Current()).Code);
    }

    [Fact]
    public void The_kept_signing_key_sees_a_revocation_that_arrives_with_the_trust_store_moved_back_into_place()
    {
        // The signer asks a watch of the workspace folder, the registry, the trust store and the key folder before it reads
        // anything; a trust store replaced as a whole (moved away, a revocation written into it, moved back) must count.
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        var signer = ws.Signer;
        var name = ws.LoadSettings().SigningKey;
        var revokedPath = Path.Combine(ws.Trust, TrustStore.RevokedFileName);
        new WorkspaceKeys(ws).Revoke(name, "compromised", DateTimeOffset.UnixEpoch);
        Assert.Equal(ErrorCodes.SignerRevoked, Assert.Throws<SigningException>(() => signer.Current()).Code);
        var revocation = File.ReadAllBytes(revokedPath);
        File.Delete(revokedPath);
        var key = signer.Current();
        Assert.Same(key, signer.Current()); // unchanged: kept

        var aside = Path.Combine(_dir, "trust-aside");
        Directory.Move(ws.Trust, aside);
        File.WriteAllBytes(Path.Combine(aside, TrustStore.RevokedFileName), revocation);
        Directory.Move(aside, ws.Trust);
        Assert.Equal(ErrorCodes.SignerRevoked, Assert.Throws<SigningException>(() => signer.Current()).Code);
    }

    [Fact]
    public void Keys_new_trust_revoke_and_list()
    {
        var ws = WorkspaceInitializer.Create(_dir).Workspace;
        var keys = new WorkspaceKeys(ws);
        var ops = keys.New("ops", use: true);
        Assert.Equal("ops", ws.LoadSettings().SigningKey);
        Assert.Equal(ErrorCodes.KeyExists, Assert.Throws<SigningException>(() => keys.New("ops", use: false)).Code);

        // A key from another workspace becomes trusted here.
        var other = WorkspaceInitializer.Create(Path.Combine(_dir, "other")).Workspace;
        var otherPub = Directory.GetFiles(other.TrustKeys).Single();
        var imported = keys.Trust(otherPub, "partner");
        Assert.True(ws.LoadTrustStore().IsTrusted(imported.KeyId));

        var revokedId = keys.Revoke("partner", "rotated", DateTimeOffset.UnixEpoch);
        Assert.Equal(imported.KeyId, revokedId);
        var list = keys.List();
        Assert.Equal(list.Select(k => k.KeyId).Order(StringComparer.Ordinal), list.Select(k => k.KeyId));
        Assert.True(list.Single(k => k.KeyId == imported.KeyId).Revoked);
        Assert.True(list.Single(k => k.KeyId == ops.KeyId).Signing);
        Assert.Equal(3, list.Count);

        // A revoked key cannot be trusted again.
        File.Delete(Path.Combine(ws.TrustKeys, "partner.pub"));
        Assert.Equal(ErrorCodes.SignerRevoked, Assert.Throws<SigningException>(() => keys.Trust(otherPub, "again")).Code);
        Assert.Equal(ErrorCodes.KeyUnknown, Assert.Throws<SigningException>(() => keys.Revoke("nobody", "", DateTimeOffset.UnixEpoch)).Code);
        var revokedJson = JsonNode.Parse(File.ReadAllText(ws.LoadTrustStore().RevokedPath))!;
        Assert.Equal("1970-01-01T00:00:00.000Z", (string?)revokedJson["revoked"]![0]!["revoked_at"]);
    }
}
