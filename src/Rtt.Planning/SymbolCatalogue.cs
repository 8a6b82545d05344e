using System.Collections;
using System.Collections.Frozen;

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
    }

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

    /// <summary>The address at <paramref name="rank"/>.</summary>
    public string AddressAt(int rank) => _addresses[rank];

    /// <summary>The versions of the address at <paramref name="rank"/>, ascending.</summary>
    public IReadOnlyList<SymbolContract> VersionsAt(int rank) => _versions[rank];

    public IEnumerator<SymbolContract> GetEnumerator() => ((IEnumerable<SymbolContract>)_all).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
