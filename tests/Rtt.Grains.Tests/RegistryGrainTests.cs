using System.Text.Json.Nodes;
using Rtt.Core.Signing;
using Rtt.Grains.Registry;
using Rtt.Registry;

namespace Rtt.Grains.Tests;

[Collection(ClusterCollection.Name)]
public sealed class RegistryGrainTests(ClusterFixture fixture)
{
    private IRegistryGrain Registry => fixture.Cluster.Client.GetGrain<IRegistryGrain>(IRegistryGrain.WorkspaceKey);

    [Fact]
    public async Task Signed_objects_are_ingested_and_found_by_hash_and_id()
    {
        using var key = fixture.Workspace.LoadSigningKey();
        var id = $"obj-{Guid.NewGuid():N}";
        var signed = ObjectSigner.Sign(new JsonObject { ["id"] = id, ["version"] = "1.0.0", ["n"] = 1 }, key);
        var outcome = await Registry.Ingest(signed.ToJsonString(), id, "1.0.0");
        Assert.True(outcome.Added);
        Assert.False((await Registry.Ingest(signed.ToJsonString(), id, "1.0.0")).Added);

        var byHash = await Registry.GetByHash(outcome.Hash);
        Assert.NotNull(byHash);
        Assert.Equal(key.KeyId, byHash.SignerKeyId);
        Assert.Equal(byHash, await Registry.GetById($"{id}@1.0.0"));
        Assert.Null(await Registry.GetById($"{id}@9.0.0"));
    }

    [Fact]
    public async Task Unsigned_objects_from_clients_are_refused_in_strict_mode()
    {
        var ex = await Assert.ThrowsAsync<RttGrainException>(() => Registry.Ingest("""{"id":"u"}""", "u", "1.0.0"));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.Unsigned, ex.Code);
        Assert.Contains("not signed", ex.Message);
    }

    [Fact]
    public async Task Symbols_and_agents_come_from_discovery()
    {
        var name = $"g{Guid.NewGuid():N}"[..12];
        var path = Path.Combine(fixture.Workspace.Root, "agents", $"{name}.agent.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, $$$"""{"id":"{{{name}}}","version":"2.1.0","description":"test agent","instructions":"i","exports":[{"symbol":"rtt://agents/agent/{{{name}}}","input":"rtt.types/Text","output":{"type":"object"}}]}""");
        using (var store = RegistryStore.Open(fixture.Workspace))
        {
            Assert.Empty(new Scanner(fixture.Workspace, store).Run().Errors);
        }

        var versions = await Registry.ResolveSymbol($"rtt://agents/agent/{name}");
        var v = Assert.Single(versions);
        Assert.Equal(("2.1.0", "agent", "\"rtt.types/Text\""), (v.Version, v.Kind, v.InputJson));
        Assert.Empty(await Registry.ResolveSymbol("rtt://agents/agent/none"));

        var info = await fixture.Cluster.Client.GetGrain<IAgentGrain>($"{name}@2.1.0").GetInfo();
        Assert.NotNull(info);
        Assert.Equal(v.Object, info.Hash);
        Assert.True(info.SignatureValid);
        Assert.Equal([$"rtt://agents/agent/{name}"], info.Exports.ToArray());
        Assert.Null(await fixture.Cluster.Client.GetGrain<IAgentGrain>("nobody@1.0.0").GetInfo());
    }

    [Fact]
    public async Task A_symbol_resolved_before_discovery_rewrote_the_registry_is_resolved_anew_at_the_very_next_call()
    {
        // The grain keeps its answers and reads no file status between changes: the registry folder's watch must tell it,
        // from the first call after discovery's write returned (not a second later, when the stamps are read anyway).
        var name = $"w{Guid.NewGuid():N}"[..12];
        var path = Path.Combine(fixture.Workspace.Root, "agents", $"{name}.agent.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var symbol = $"rtt://agents/agent/{name}";
        for (var minor = 0; minor < 3; minor++)
        {
            File.WriteAllText(path, $$$"""{"id":"{{{name}}}","version":"1.{{{minor}}}.0","description":"test agent","instructions":"i","exports":[{"symbol":"{{{symbol}}}","input":"rtt.types/Text","output":"rtt.types/Text"}]}""");
            using (var store = RegistryStore.Open(fixture.Workspace))
            {
                Assert.Empty(new Scanner(fixture.Workspace, store).Run().Errors);
            }

            Assert.Contains($"1.{minor}.0", (await Registry.ResolveSymbol(symbol)).Select(v => v.Version));
            Assert.Contains($"1.{minor}.0", (await Registry.ResolveSymbol(symbol)).Select(v => v.Version)); // the kept answer
        }
    }
}
