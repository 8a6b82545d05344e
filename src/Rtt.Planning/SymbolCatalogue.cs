using System.Buffers;
using System.Collections;
using System.Collections.Frozen;
using Rtt.Core.Json;

namespace Rtt.Planning;

/// <summary>
/// A catalogue of contracts that does not change, indexed once: by address, each address with its versions ascending
/// (equal versions in the order given) and its place in ordinal address order. <see cref="PlanInputs.Build"/> given a
/// catalogue looks up only the symbols that routes and pins name, instead of passing over every contract, so a planner
/// that plans many times against one catalogue (a service holding the registry in memory) pays for the index once.
/// The plan is the same as with the same contracts in a list.
/// </summary>
public sealed class SymbolCatalogue : IReadOnlyList<SymbolContract>
{
    private readonly SymbolContract[] _all;
    private readonly FrozenDictionary<string, int> _rank; // frozen: built once, read per route
    private readonly string[] _addresses; // by rank
    private readonly SymbolContract[][] _versions; // by rank
    private readonly byte[] _names; // each address as a canonical JSON string, in rank order (a plan's placement is written in that order)
    private readonly int[] _nameAt; // rank → where its name starts in _names (rank + 1: where it ends); -1: one the planner's writer cannot write
    private readonly byte[][]?[] _contractBytes; // by rank, each version's canonical bytes: written when first asked for, kept

    public SymbolCatalogue(IEnumerable<SymbolContract> contracts)
    {
        _all = [.. contracts];
        var groups = new Dictionary<string, List<SymbolContract>>(StringComparer.Ordinal);
        foreach (var c in _all)
        {
            (groups.TryGetValue(c.Address, out var versions) ? versions : groups[c.Address] = []).Add(c);
        }

        _addresses = [.. groups.Keys];
        Array.Sort(_addresses, StringComparer.Ordinal);
        _versions = [.. _addresses.Select(a => groups[a].OrderBy(c => c.Version).ToArray())]; // stable, as PlanInputs orders them
        _rank = _addresses.Select((a, rank) => KeyValuePair.Create(a, rank)).ToFrozenDictionary(StringComparer.Ordinal);
        var names = new ArrayBufferWriter<byte>(_addresses.Sum(a => a.Length + 2));
        _nameAt = new int[_addresses.Length + 1];
        for (var rank = 0; rank < _addresses.Length; rank++)
        {
            var start = names.WrittenCount;
            _nameAt[rank] = CanonicalJson.TryWriteString(names, _addresses[rank]) ? start : -1;
            _nameAt[rank + 1] = names.WrittenCount;
        }

        _names = names.WrittenSpan.ToArray();
        _contractBytes = new byte[][]?[_addresses.Length];
        AnyAcyclic = Array.Exists(_all, c => c.Acyclic);
    }

    /// <summary>Whether any contract is <c>x-acyclic</c> (without one, no cycle of routes through it can be forbidden).</summary>
    internal bool AnyAcyclic { get; }

    private static long s_catalogues;

    /// <summary>This catalogue's number in this process (a route's memo names the catalogue it was looked up in by it, not by a reference that would keep it alive).</summary>
    internal long Id { get; } = Interlocked.Increment(ref s_catalogues);

    /// <summary>How many contracts (all versions).</summary>
    public int Count => _all.Length;

    /// <summary>How many distinct addresses.</summary>
    public int Addresses => _addresses.Length;

    public SymbolContract this[int index] => _all[index];

    /// <summary>The versions of <paramref name="address"/> ascending, and its place in ordinal address order; false when absent.</summary>
    public bool TryGet(string address, out int rank, out IReadOnlyList<SymbolContract> versions)
    {
        rank = Rank(address);
        versions = rank < 0 ? [] : _versions[rank];
        return rank >= 0;
    }

    /// <summary>The place of <paramref name="address"/> in ordinal address order, or -1 when the catalogue lacks it.</summary>
    public int Rank(string address) => _rank.TryGetValue(address, out var rank) ? rank : -1;

    /// <summary>How many addresses there are: ranks run from 0 to one below this.</summary>
    public int AddressCount => _addresses.Length;

    /// <summary>The address at <paramref name="rank"/>.</summary>
    public string AddressAt(int rank) => _addresses[rank];

    /// <summary>The versions of the address at <paramref name="rank"/>, ascending.</summary>
    public IReadOnlyList<SymbolContract> VersionsAt(int rank) => _versions[rank];

    /// <summary>The address at <paramref name="rank"/> as canonical JSON (with its quotes), or empty when it needs the reference writer.</summary>
    internal ReadOnlySpan<byte> NameJson(int rank) => _nameAt[rank] < 0 ? default : _names.AsSpan(_nameAt[rank], _nameAt[rank + 1] - _nameAt[rank]);

    /// <summary>
    /// The canonical bytes of each version at <paramref name="rank"/> (<see cref="SymbolContract.ToJson"/>), in
    /// <see cref="VersionsAt"/>'s order: written the first time they are asked for and kept (contracts do not change;
    /// two threads asking at once write the same bytes).
    /// </summary>
    internal byte[][] ContractBytes(int rank) => _contractBytes[rank] ??= [.. _versions[rank].Select(c => CanonicalJson.Serialize(c.ToJson()))];

    public IEnumerator<SymbolContract> GetEnumerator() => ((IEnumerable<SymbolContract>)_all).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
