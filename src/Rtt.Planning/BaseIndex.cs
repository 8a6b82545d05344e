using System.Text.Json.Nodes;

namespace Rtt.Planning;

/// <summary>
/// What the planner reads of a base plan (the applied plan a new one is computed against): its placement and the routes
/// of its lanes. Read from the plan's members, or, for a plan this process sealed, taken from the values the planner
/// wrote it from, kept by plan_id (the last few plans). Keeping them by plan_id is what the planner already assumes: the
/// inputs' hash names the base by its plan_id alone, so two bases with one plan_id must plan alike.
/// </summary>
internal sealed class BaseIndex(IReadOnlyDictionary<string, string> placement, IReadOnlySet<string> routes)
{
    private const int Kept = 4;
    private static readonly List<(string PlanId, BaseIndex Index)> Recent = [];
    private static readonly BaseIndex None = new(new Dictionary<string, string>(), new HashSet<string>());

    /// <summary>Symbol → node.</summary>
    public IReadOnlyDictionary<string, string> Placement { get; } = placement;

    /// <summary><c>from -> to</c> of each lane.</summary>
    public IReadOnlySet<string> Routes { get; } = routes;

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

        return new BaseIndex(Planner.BasePlacement(basePlan), Planner.BaseRoutes(basePlan));
    }

    /// <summary>Keeps what a plan sealed here was written from (the collections are not changed afterwards).</summary>
    public static void Remember(string planId, IReadOnlyDictionary<string, string> placement, IReadOnlySet<string> routes)
    {
        lock (Recent)
        {
            Recent.RemoveAll(r => r.PlanId == planId);
            if (Recent.Count == Kept)
            {
                Recent.RemoveAt(0);
            }

            Recent.Add((planId, new BaseIndex(placement, routes)));
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
