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
    private readonly FrozenDictionary<string, (int Rank, SymbolContract[] Versions)> _byAddress; // frozen: built once, read per route; values inline

    public SymbolCatalogue(IEnumerable<SymbolContract> contracts)
    {
        _all = [.. contracts];
        var groups = new Dictionary<string, List<SymbolContract>>(StringComparer.Ordinal);
        foreach (var c in _all)
        {
            (groups.TryGetValue(c.Address, out var versions) ? versions : groups[c.Address] = []).Add(c);
        }

        var addresses = groups.Keys.ToArray();
        Array.Sort(addresses, StringComparer.Ordinal);
        var byAddress = new Dictionary<string, (int, SymbolContract[])>(addresses.Length, StringComparer.Ordinal);
        for (var rank = 0; rank < addresses.Length; rank++)
        {
            byAddress[addresses[rank]] = (rank, [.. groups[addresses[rank]].OrderBy(c => c.Version)]); // stable, as PlanInputs orders them
        }

        _byAddress = byAddress.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>How many contracts (all versions).</summary>
    public int Count => _all.Length;

    /// <summary>How many distinct addresses.</summary>
    public int Addresses => _byAddress.Count;

    public SymbolContract this[int index] => _all[index];

    /// <summary>The versions of <paramref name="address"/> ascending, and its place in ordinal address order; false when absent.</summary>
    public bool TryGet(string address, out int rank, out IReadOnlyList<SymbolContract> versions)
    {
        if (_byAddress.TryGetValue(address, out var entry))
        {
            (rank, versions) = (entry.Rank, entry.Versions);
            return true;
        }

        (rank, versions) = (-1, []);
        return false;
    }

    public IEnumerator<SymbolContract> GetEnumerator() => ((IEnumerable<SymbolContract>)_all).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

}
