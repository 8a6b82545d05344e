using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>Packing never drops an indexed object; an index or symbol entry must match its object's own ID@version.</summary>
public sealed class RegistryIntegrityTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private Dictionary<string, string> ScanTwoAgents()
    {
        _ws.Write("agents/common/alpha.agent.json", TestWorkspace.Agent("alpha"));
        _ws.Write("agents/common/beta.agent.json", TestWorkspace.Agent("beta"));
        using var store = RegistryStore.Open(_ws.Workspace);
        Assert.Empty(new Scanner(_ws.Workspace, store).Run().Errors);
        return store.Index.Entries.ToDictionary(e => e.Key, e => e.Value);
    }

    private int Pack()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        return store.WritePack();
    }

    [Fact]
    public void A_second_pack_keeps_an_object_that_is_only_in_the_first_pack()
    {
        var index = ScanTwoAgents();
        Assert.Equal(2, Pack());
        using (var store = RegistryStore.Open(_ws.Workspace))
        {
            File.Delete(store.Cas.PathOf(index["alpha@1.0.0"])); // the pack still holds it
        }

        Assert.Equal(2, Pack()); // before: "packed 1 object(s)" and alpha was gone for good
        Assert.True(RegistryVerifier.Run(_ws.Workspace).Ok);
        using var reopened = RegistryStore.Open(_ws.Workspace);
        Assert.Equal("alpha", (string?)reopened.ReadEntry("alpha@1.0.0")["id"]);
    }

    [Fact]
    public void Packing_refuses_when_an_indexed_object_is_nowhere_and_leaves_the_old_pack()
    {
        var index = ScanTwoAgents();
        Pack();
        var packPath = Path.Combine(_ws.Workspace.Pack, Packfile.PackName);
        var before = File.ReadAllBytes(packPath);
        using (var store = RegistryStore.Open(_ws.Workspace))
        {
            File.Delete(store.Cas.PathOf(index["alpha@1.0.0"]));
        }

        File.Delete(Path.Combine(_ws.Workspace.Pack, Packfile.IndexName)); // the pack can no longer be read
        var ex = Assert.Throws<RttException>(() => Pack());
        Assert.Equal(ErrorCodes.CasMissing, ex.Code);
        Assert.Contains("alpha@1.0.0", ex.Message);
        Assert.Equal(before, File.ReadAllBytes(packPath));
    }

    [Fact]
    public void An_index_entry_pointed_at_another_signed_object_is_refused_by_verify_and_cat()
    {
        var index = ScanTwoAgents();
        var text = File.ReadAllText(_ws.Workspace.IndexPath).Replace(index["alpha@1.0.0"], index["beta@1.0.0"], StringComparison.Ordinal);
        File.WriteAllText(_ws.Workspace.IndexPath, text);
        var report = RegistryVerifier.Run(_ws.Workspace);
        Assert.Contains(report.Faults, f => f.Contains(ErrorCodes.IdentityMismatch, StringComparison.Ordinal) && f.Contains("alpha@1.0.0 names an object that is beta@1.0.0", StringComparison.Ordinal));
        using var store = RegistryStore.Open(_ws.Workspace);
        Assert.Equal(ErrorCodes.IdentityMismatch, Assert.Throws<RttException>(() => store.ReadEntry("alpha@1.0.0")).Code);
    }

    [Theory]
    [InlineData("swap")]
    [InlineData("invent")]
    public void A_symbols_entry_with_a_swapped_or_invented_version_is_a_fault(string how)
    {
        ScanTwoAgents();
        var path = Path.Combine(_ws.Workspace.Registry, "symbols.json");
        var symbols = RttWorkspaceRead(path);
        var alpha = symbols["rtt://agents/agent/alpha"]!.AsArray();
        if (how == "swap")
        {
            alpha[0]!["object"] = symbols["rtt://agents/agent/beta"]![0]!["object"]!.DeepClone();
        }
        else
        {
            alpha[0]!["version"] = "9.9.9";
        }

        File.WriteAllBytes(path, PrettyJson.ToUtf8(symbols));
        var report = RegistryVerifier.Run(_ws.Workspace);
        Assert.Contains(report.Faults, f => f.Contains(ErrorCodes.IdentityMismatch, StringComparison.Ordinal) && f.Contains("rtt://agents/agent/alpha", StringComparison.Ordinal));
    }

    [Fact]
    public void Ingest_refuses_an_object_under_another_id_or_version()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var obj = new JsonObject { ["id"] = "a", ["version"] = "1.0.0" };
        Assert.Equal(ErrorCodes.IdentityMismatch, Assert.Throws<RttException>(() => store.Ingest(obj, "b", "1.0.0", "t", true)).Code);
        Assert.Equal(ErrorCodes.IdentityMismatch, Assert.Throws<RttException>(() => store.Ingest(obj, "a", "2.0.0", "t", true)).Code);
        Assert.Equal(ErrorCodes.IdentityMismatch, Assert.Throws<RttException>(() => store.Ingest(new JsonObject { ["n"] = 1 }, "a", "1.0.0", "t", true)).Code);
    }

    private static JsonObject RttWorkspaceRead(string path) => Rtt.Core.Workspace.RttWorkspace.ReadObject(path);
}
