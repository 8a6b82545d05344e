namespace Rtt.Planning;

/// <summary>
/// What planning learned of one route's content (<see cref="PlanCanonical.RouteKey"/>: all its members), kept beside its
/// canonical bytes between plans in this process, so that planning again after a change to a few routes does not look up
/// and check the unchanged ones again: the ranks of its two ends in a <see cref="SymbolCatalogue"/>, and its static checks'
/// outcome when it passed them. Each is valid only for the catalogue it was found in (and the checks, for the same rules:
/// <see cref="PlanInputs.CheckRules"/>); a catalogue never changes, so the same catalogue and the same route give the same
/// contracts. Both are immutable records swapped in whole, so plans on several threads may share a memo.
/// </summary>
internal sealed class RouteMemo(byte[] bytes)
{
    /// <summary>The route's canonical bytes.</summary>
    public byte[] Bytes { get; } = bytes;

    /// <summary>Where its ends are in a catalogue (null: not looked up yet).</summary>
    public RouteEnds? Ends { get; set; }

    /// <summary>Its static checks' outcome when it passed them (null: not checked yet, or rejected: a rejection is checked again).</summary>
    public RouteChecked? Checked { get; set; }
}

/// <summary>The ranks of a route's caller and provider in catalogue <paramref name="Catalogue"/> (-1: absent).</summary>
internal sealed record RouteEnds(long Catalogue, int From, int To);

/// <summary>A route that passed the static checks against catalogue <paramref name="Catalogue"/> under <paramref name="Rules"/>: the candidate's parts.</summary>
internal sealed record RouteChecked(long Catalogue, string Rules, SymbolContract From, SymbolContract To, IReadOnlyList<string> Lanes, double? Budget);
