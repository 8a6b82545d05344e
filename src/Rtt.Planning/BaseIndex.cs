using System.Text.Json.Nodes;

namespace Rtt.Planning;

/// <summary>
/// What the planner reads of a base plan (the applied plan a new one is computed against): its placement, as symbols in
/// ordinal order with their nodes (walked beside the new plan's symbols, which are in the same order), and the routes of
/// its lanes. Read from the plan's members, or, for a plan this process sealed, taken from the values the planner wrote
/// it from, kept by plan_id (the last few plans). Keeping them by plan_id is what the planner already assumes: the
/// inputs' hash names the base by its plan_id alone, so two bases with one plan_id must plan alike.
/// </summary>
internal sealed class BaseIndex
{
    private const int Kept = 4;
    private static readonly List<(string PlanId, BaseIndex Index)> Recent = [];
    private static readonly BaseIndex None = new([], [], new HashSet<string>());
    private readonly Func<IReadOnlySet<string>>? _routesOf;
    private SortedPlacement? _placement;
    private IReadOnlySet<string>? _routes;

    /// <param name="symbols">Distinct, in ordinal order.</param>
    /// <param name="nodes">The node of the symbol at the same index.</param>
    public BaseIndex(string[] symbols, string[] nodes, IReadOnlySet<string> routes) => (Symbols, Nodes, _routes) = (symbols, nodes, routes);

    /// <param name="symbols">Distinct, in ordinal order.</param>
    /// <param name="nodes">The node of the symbol at the same index.</param>
    /// <param name="routes">Makes <see cref="Routes"/> when it is first read.</param>
    public BaseIndex(string[] symbols, string[] nodes, Func<IReadOnlySet<string>> routes) => (Symbols, Nodes, _routesOf) = (symbols, nodes, routes);

    /// <summary>The placed symbols in ordinal order.</summary>
    public string[] Symbols { get; }

    /// <summary>The node of each of <see cref="Symbols"/>.</summary>
    public string[] Nodes { get; }

    /// <summary>Symbol → node (its dictionary made when first read).</summary>
    public IReadOnlyDictionary<string, string> Placement => _placement ??= new SortedPlacement(Symbols, Nodes);

    /// <summary><c>from -> to</c> of each lane (made when first read, when given as a function: a plan from the same catalogue reads <see cref="RoutePairs"/> instead).</summary>
    public IReadOnlySet<string> Routes => _routes ??= _routesOf!();

    /// <summary>
    /// With <see cref="ByRank"/>: each lane's route as the ranks of its two ends in that catalogue (caller in the high 32
    /// bits), so a plan from the same catalogue tells its routes new or kept by number.
    /// </summary>
    public IReadOnlySet<long>? RoutePairs { get; init; }

    /// <summary>
    /// For a plan planned from a catalogue: that catalogue's number and the rank in it of each of <see cref="Symbols"/>
    /// (ranks are in ordinal order too), so a plan from the same catalogue walks the two by number instead of comparing texts.
    /// </summary>
    public (long Catalogue, int[] Ranks)? ByRank { get; init; }

    /// <summary>
    /// The base node of each of <paramref name="symbols"/> (in ordinal order) that <paramref name="wanted"/> marks, or null:
    /// the two ordered lists walked together, no lookups.
    /// </summary>
    /// <param name="numbered">The catalogue <paramref name="symbols"/> come from and the rank of each (optional).</param>
    public string?[] NodesOf(string[] symbols, bool[] wanted, (SymbolCatalogue Catalogue, int[] Ranks)? numbered = null)
    {
        var result = new string?[symbols.Length];
        var j = 0;
        if (numbered is var (catalogue, ranks) && ByRank is var (kept, keptRanks) && kept == catalogue.Id)
        {
            for (var s = 0; s < symbols.Length && j < keptRanks.Length; s++)
            {
                if (!wanted[s])
                {
                    continue;
                }

                while (j < keptRanks.Length && keptRanks[j] < ranks[s])
                {
                    j++;
                }

                if (j < keptRanks.Length && keptRanks[j] == ranks[s])
                {
                    result[s] = Nodes[j];
                }
            }

            return result;
        }

        for (var s = 0; s < symbols.Length && j < Symbols.Length; s++)
        {
            if (!wanted[s])
            {
                continue;
            }

            var order = -1;
            while (j < Symbols.Length && (order = string.CompareOrdinal(Symbols[j], symbols[s])) < 0)
            {
                j++;
            }

            if (order == 0)
            {
                result[s] = Nodes[j];
            }
        }

        return result;
    }

    /// <summary>The index of <paramref name="basePlan"/> (empty for none): kept, or read from its members.</summary>
    public static BaseIndex Of(JsonObject? basePlan)
    {
        if (basePlan is null)
        {
            return None;
        }

        if (basePlan["plan_id"] is JsonValue id && id.TryGetValue<string>(out var planId))
        {
            lock (Recent)
            {
                foreach (var (kept, index) in Recent)
                {
                    if (kept == planId)
                    {
                        return index;
                    }
                }
            }
        }

        var placement = basePlan["placement"] as JsonObject ?? [];
        var symbols = new string[placement.Count];
        var nodes = new string[placement.Count];
        var at = 0;
        foreach (var (symbol, node) in placement)
        {
            (symbols[at], nodes[at]) = (symbol, (string)node!);
            at++;
        }

        Array.Sort(symbols, nodes, StringComparer.Ordinal); // a JSON object's names are distinct
        return new BaseIndex(symbols, nodes, Planner.BaseRoutes(basePlan));
    }

    /// <summary>Keeps what a plan sealed here was written from (the arrays and set are not changed afterwards).</summary>
    public static void Remember(string planId, BaseIndex index)
    {
        lock (Recent)
        {
            Recent.RemoveAll(r => r.PlanId == planId);
            if (Recent.Count == Kept)
            {
                Recent.RemoveAt(0);
            }

            Recent.Add((planId, index));
        }
    }

    /// <summary>Forgets every kept index (benchmarks measuring a process's first plan).</summary>
    public static void Clear()
    {
        lock (Recent)
        {
            Recent.Clear();
        }
    }
}
