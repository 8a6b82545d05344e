using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Reconciling;
using Rtt.Reconciling.Wal;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>Key rotation: retired and compromised keys, the WAL countersigned, nothing half-made.</summary>
public sealed class KeyRotationTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private RttWorkspace Ws => _ws.Workspace;

    /// <summary>A scanned registry, a pack, and a WAL with two signed heads by the current key.</summary>
    private void Populate()
    {
        _ws.Write("agents/common/alpha.agent.json", TestWorkspace.Agent("alpha"));
        using (var store = RegistryStore.Open(Ws))
        {
            Assert.Empty(new Scanner(Ws, store).Run().Errors);
            store.WritePack();
        }

        using var key = Ws.LoadSigningKey();
        using var log = WalLog.Open(SqliteWalStore.Open(Ws.StateDatabasePath), Ws.LoadTrustStore(), WalAnchor.Of(Ws));
        log.Append(new JsonObject { ["kind"] = "test", ["n"] = 1 });
        log.SignHead(key, DateTimeOffset.UtcNow.AddMinutes(-2));
        log.Append(new JsonObject { ["kind"] = "test", ["n"] = 2 });
        log.SignHead(key, DateTimeOffset.UtcNow.AddMinutes(-1));
    }

    private WalVerifyReport VerifyWal()
    {
        using var store = SqliteWalStore.Open(Ws.StateDatabasePath, create: false);
        return WalVerifier.Verify(store, Ws.LoadTrustStore(), WalAnchor.Of(Ws));
    }

    [Fact]
    public void Revoking_the_signing_key_after_a_new_one_bricked_the_workspace_and_rotate_repairs_it()
    {
        Populate();
        new WorkspaceKeys(Ws).New("ops", use: true);
        new WorkspaceKeys(Ws).Revoke("default", "rotated", DateTimeOffset.UtcNow); // compromised: the reproduction
        Assert.False(RegistryVerifier.Run(Ws).Ok);
        var broken = VerifyWal();
        Assert.False(broken.Ok);
        Assert.Contains("keys rotate", broken.Hint, StringComparison.Ordinal); // not "changed outside RTT"

        var report = KeyRotation.Rotate(Ws, "ops2", compromised: true, "", DateTimeOffset.UtcNow);
        Assert.True(report.Resigned > 0);
        Assert.Equal(3, report.WalSize); // a key-rotation entry, countersigned by the new key
        Assert.True(RegistryVerifier.Run(Ws).Ok, string.Join("\n", RegistryVerifier.Run(Ws).Faults));
        Assert.True(VerifyWal().Ok, string.Join("\n", VerifyWal().Faults.Select(f => $"{f.Where}: {f.What}")));
        using var store = RegistryStore.Open(Ws);
        Assert.Equal("alpha", (string?)store.ReadEntry("alpha@1.0.0")["id"]);
    }

    [Fact]
    public void A_retired_key_keeps_its_past_signatures_and_signs_nothing_new()
    {
        Populate();
        string oldKeyId;
        using (var old = Ws.LoadSigningKey())
        {
            oldKeyId = old.KeyId;
        }

        var report = KeyRotation.Rotate(Ws, "next", compromised: false, "", DateTimeOffset.UtcNow);
        Assert.Equal(Revocation.Retired, report.Kind);
        Assert.Equal(0, report.Resigned);
        Assert.True(RegistryVerifier.Run(Ws).Ok); // objects it signed stay valid
        Assert.True(VerifyWal().Ok);              // heads it signed before the retirement too

        // A head it signs after its retirement is refused.
        using var stale = SigningKey.Load(Ws.PrivateKeyPath("default"));
        Assert.Equal(oldKeyId, stale.KeyId);
        using (var log = WalLog.Open(SqliteWalStore.Open(Ws.StateDatabasePath), null, null))
        {
            log.Append(new JsonObject { ["kind"] = "test", ["n"] = 9 });
            log.SignHead(stale, DateTimeOffset.UtcNow.AddHours(1));
        }

        Assert.Contains(VerifyWal().Faults, f => f.What.Contains("after its retirement", StringComparison.Ordinal));
    }

    [Fact]
    public void A_revoked_signing_key_is_refused_at_once_so_a_running_silo_stops_signing_with_it()
    {
        new WorkspaceKeys(Ws).Revoke("default", "leaked", DateTimeOffset.UtcNow);
        var ex = Assert.Throws<SigningException>(() => Ws.LoadSigningKey()); // the WAL grain loads the key at every head
        Assert.Equal(ErrorCodes.SignerRevoked, ex.Code);
        Assert.Contains("keys rotate", ex.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_keys_new_leaves_no_trusted_key_without_its_private_key()
    {
        // The trust folder cannot take the new .pub (a file where its folder should be; works as root too).
        Directory.Delete(Ws.TrustKeys, recursive: true);
        File.WriteAllText(Ws.TrustKeys, "not a folder");
        var ex = Assert.ThrowsAny<RttException>(() => new WorkspaceKeys(Ws).New("second", use: true));
        Assert.Equal(ErrorCodes.WorkspaceUnwritable, ex.Code);
        Assert.False(File.Exists(Ws.PrivateKeyPath("second")));
        Assert.Equal("default", Ws.LoadSettings().SigningKey);
    }
}
