using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Registry;

namespace Rtt.Core.Tests;

public sealed class PackfileTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private List<string> Fill(int count)
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var hashes = new List<string>();
        for (var i = 0; i < count; i++)
        {
            hashes.Add(store.Ingest(new JsonObject { ["id"] = $"o{i}", ["version"] = "1.0.0", ["n"] = i }, $"o{i}", "1.0.0", "t", true).Hash);
        }

        store.Save();
        return hashes;
    }

    private static byte[] Raw(string hash) => Convert.FromHexString(hash[ContentHash.Prefix.Length..]);

    [Fact]
    public void Every_object_is_found_in_the_pack_with_its_exact_bytes()
    {
        var hashes = Fill(300);
        var cas = new CasStore(_ws.Workspace.Cas);
        Assert.Equal(300, Packfile.Write(cas, _ws.Workspace.Pack));
        using var pack = PackReader.Open(_ws.Workspace.Pack);
        Assert.Equal(300, pack.Count);
        foreach (var hash in hashes)
        {
            Assert.True(pack.TryGet(Raw(hash), out ReadOnlySpan<byte> bytes));
            Assert.Equal(cas.Read(hash), bytes.ToArray());
            Assert.True(pack.TryGet(Raw(hash), out ReadOnlyMemory<byte> memory));
            Assert.Equal(hash, ContentHash.Of(memory.Span));
        }

        Assert.False(pack.TryGet(Raw(ContentHash.Of("absent"u8)), out ReadOnlySpan<byte> _));
        // Absent hashes in an object's bucket: the same first 8 bytes (the bucket and the fast compare) or the same first
        // 31, then the table's ends.
        foreach (var hash in hashes)
        {
            foreach (var at in (int[])[8, 31])
            {
                var near = Raw(hash);
                near[at] ^= 0x01;
                Assert.False(pack.TryGet(near, out ReadOnlySpan<byte> _));
            }
        }

        Assert.False(pack.TryGet(new byte[32], out ReadOnlySpan<byte> _));
        Assert.False(pack.TryGet(Enumerable.Repeat((byte)0xFF, 32).ToArray(), out ReadOnlySpan<byte> _));
        Assert.False(pack.TryGet(new byte[31], out ReadOnlySpan<byte> _));
        Assert.Empty(pack.Verify());
        Assert.Equal(hashes.Order(StringComparer.Ordinal), pack.Hashes());
    }

    [Fact]
    public void Lookups_allocate_nothing()
    {
        var hashes = Fill(64);
        Packfile.Write(new CasStore(_ws.Workspace.Cas), _ws.Workspace.Pack);
        using var pack = PackReader.Open(_ws.Workspace.Pack);
        var keys = hashes.Select(Raw).ToArray();
        var total = 0L;
        foreach (var k in keys)
        {
            pack.TryGet(k, out ReadOnlySpan<byte> warm);
            total += warm.Length;
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var round = 0; round < 100; round++)
        {
            foreach (var k in keys)
            {
                pack.TryGet(k, out ReadOnlySpan<byte> span);
                pack.TryGet(k, out ReadOnlyMemory<byte> memory);
                total += span.Length + memory.Length;
            }
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(total > 0);
    }

    [Fact]
    public void Reads_fall_back_to_the_pack_when_the_loose_object_is_gone()
    {
        var hashes = Fill(5);
        Packfile.Write(new CasStore(_ws.Workspace.Cas), _ws.Workspace.Pack);
        File.Delete(new CasStore(_ws.Workspace.Cas).PathOf(hashes[2]));
        using var store = RegistryStore.Open(_ws.Workspace);
        Assert.Equal("o2", (string?)store.ReadObject(hashes[2])["id"]);
    }

    [Fact]
    public void Damaged_index_and_pack_are_detected()
    {
        Fill(20);
        Packfile.Write(new CasStore(_ws.Workspace.Cas), _ws.Workspace.Pack);
        var indexPath = Path.Combine(_ws.Workspace.Pack, Packfile.IndexName);
        var packPath = Path.Combine(_ws.Workspace.Pack, Packfile.PackName);
        var index = File.ReadAllBytes(indexPath);
        var pack = File.ReadAllBytes(packPath);

        // A flipped bit in an entry's hash: the index checksum and the order/hash checks name it.
        var flipped = (byte[])index.Clone();
        flipped[16 + 1024 + 44 + 5] ^= 0x80;
        File.WriteAllBytes(indexPath, flipped);
        using (var reader = PackReader.Open(_ws.Workspace.Pack))
        {
            Assert.Contains(reader.Verify(), f => f.Contains("index checksum", StringComparison.Ordinal));
        }

        // Truncated index: refused at open.
        File.WriteAllBytes(indexPath, index[..(index.Length - 7)]);
        Assert.Equal(ErrorCodes.IndexCorrupt, Assert.Throws<RttException>(() => PackReader.Open(_ws.Workspace.Pack)).Code);

        // A flipped bit inside an object: the pack trailer and that object's hash fail.
        File.WriteAllBytes(indexPath, index);
        var damaged = (byte[])pack.Clone();
        damaged[40] ^= 0x01;
        File.WriteAllBytes(packPath, damaged);
        using (var reader = PackReader.Open(_ws.Workspace.Pack))
        {
            var faults = reader.Verify();
            Assert.Contains(faults, f => f.Contains("trailer", StringComparison.Ordinal));
            Assert.Contains(faults, f => f.Contains("does not match its hash", StringComparison.Ordinal));
        }

        // An index of another pack: refused at open.
        File.WriteAllBytes(packPath, pack);
        Fill(21); // one more object
        var otherPack = Path.Combine(_ws.Root, "other");
        Packfile.Write(new CasStore(_ws.Workspace.Cas), otherPack);
        File.Copy(Path.Combine(otherPack, Packfile.IndexName), indexPath, overwrite: true);
        Assert.Equal(ErrorCodes.IndexCorrupt, Assert.Throws<RttException>(() => PackReader.Open(_ws.Workspace.Pack)).Code);
    }

    [Fact]
    public void Pack_bytes_are_deterministic()
    {
        Fill(30);
        var cas = new CasStore(_ws.Workspace.Cas);
        Packfile.Write(cas, Path.Combine(_ws.Root, "p1"));
        Packfile.Write(cas, Path.Combine(_ws.Root, "p2"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(_ws.Root, "p1", Packfile.PackName)), File.ReadAllBytes(Path.Combine(_ws.Root, "p2", Packfile.PackName)));
        Assert.Equal(File.ReadAllBytes(Path.Combine(_ws.Root, "p1", Packfile.IndexName)), File.ReadAllBytes(Path.Combine(_ws.Root, "p2", Packfile.IndexName)));
    }
}
