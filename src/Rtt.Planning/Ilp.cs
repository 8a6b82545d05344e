using System.Text.Json.Nodes;
using Google.OrTools.Sat;

namespace Rtt.Planning;

/// <summary>The CP-SAT model for the hard cases: deterministic (1 worker, fixed seed, deterministic time limit).</summary>
internal static class Ilp
{
    private const string Parameters = "num_workers:1 random_seed:17 max_deterministic_time:5 log_search_progress:false";

    /// <summary>True when the last solve on this thread was answered from the cache (for tests).</summary>
    [ThreadStatic]
    internal static bool LastFromCache;

    // Answers of models already solved, by the hash of everything a model is built from (IlpKey): the solver is
    // deterministic, so a contested set that did not change gets the same answer without solving it again (a planner
    // grain re-planning, a plan recomputed to verify it). A model without an answer in its budget is kept too (null).
    private const int CacheEntries = 64;
    private static readonly Dictionary<string, IlpAnswer?> Cache = new(StringComparer.Ordinal);
    private static readonly Queue<string> CacheOrder = new();

    /// <summary>Which lane each candidate (in order) was admitted on (null: left out), and the nodes of the admitted routes' symbols.</summary>
    private sealed record IlpAnswer(string?[] Lanes, Dictionary<string, string> Nodes);

    public static PlacementResult? Solve(PlanInputs inputs, List<Candidate> candidates, PlacementResult greedy, IReadOnlyDictionary<string, (double Cpu, double Memory)> used)
    {
        var key = Key(inputs, candidates, greedy, used);
        IlpAnswer? answer;
        bool cached;
        lock (Cache)
        {
            cached = Cache.TryGetValue(key, out answer);
        }

        LastFromCache = cached;
        if (!cached)
        {
            answer = SolveModel(inputs, candidates, greedy, used);
            lock (Cache)
            {
                if (Cache.TryAdd(key, answer))
                {
                    CacheOrder.Enqueue(key);
                    if (CacheOrder.Count > CacheEntries)
                    {
                        Cache.Remove(CacheOrder.Dequeue()); // oldest out first
                    }
                }
            }
        }

        if (answer is null)
        {
            return null;
        }

        var demand = Placement.Demands(candidates);
        var previous = inputs.BasePlacement;
        var placed = new SortedDictionary<string, string>(answer.Nodes, StringComparer.Ordinal);
        var admitted = new List<(Candidate, string)>();
        var rejected = new List<Rejection>();
        for (var i = 0; i < candidates.Count; i++)
        {
            if (answer.Lanes[i] is { } lane)
            {
                admitted.Add((candidates[i], lane));
            }
        }

        for (var i = 0; i < candidates.Count; i++)
        {
            if (answer.Lanes[i] is null)
            {
                rejected.Add(Diagnose(inputs, candidates[i], placed, demand, used));
            }
        }

        var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (s, node) in placed)
        {
            if (previous.TryGetValue(s, out var prev) && prev != node)
            {
                reasons[s] = inputs.Pins.TryGetValue(s, out var pin) && pin == node ? "pin"
                    : inputs.Nodes.All(n => n.Id != prev) ? "node-removed"
                    : "admission"; // moved so that more (or higher-priority) routes fit
            }
        }

        return new PlacementResult(placed, admitted, rejected, reasons, "cp-sat");
    }

    /// <summary>
    /// sha256 over everything SolveModel reads: the nodes, the capacity used outside the model, each candidate in order
    /// (index, priority, ends with their demand, allowed lanes), the pins and base placements of its symbols, the greedy
    /// hint, and the solver's parameters. Numbers in round-trip form, texts length-prefixed, invariant culture.
    /// </summary>
    private static string Key(PlanInputs inputs, List<Candidate> candidates, PlacementResult greedy, IReadOnlyDictionary<string, (double Cpu, double Memory)> used)
    {
        var text = new System.Text.StringBuilder();
        void Add(string? value) => text.Append(value?.Length ?? -1).Append(':').Append(value).Append(';');
        void Num(double value) => Add(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        Add(Parameters);
        foreach (var n in inputs.Nodes)
        {
            Add(n.Id);
            Add(n.Host);
            Num(n.CpuMillis);
            Num(n.MemoryMb);
            Num(used[n.Id].Cpu);
            Num(used[n.Id].Memory);
        }

        var greedyLanes = greedy.Admitted.ToDictionary(g => g.Candidate.Route.Index, g => g.Lane);
        var names = inputs.SymbolNames;
        var inModel = new bool[names.Length]; // the model's symbols by number: in ordinal order
        foreach (var c in candidates)
        {
            Num(c.Route.Index);
            Num(c.Route.Priority);
            foreach (var end in (SymbolContract[])[c.From, c.To])
            {
                Add(end.Address);
                Num(end.CpuMillis);
                Num(end.MemoryMb);
            }

            inModel[c.Route.FromId] = inModel[c.Route.ToId] = true;
            Add(string.Join(',', c.Lanes));
            Add(greedyLanes.GetValueOrDefault(c.Route.Index));
        }

        // Their base and greedy placements, read by walking the ordered lists (symbol numbers, base symbols), not by lookups.
        var previous = inputs.BaseIndex.NodesOf(names, inModel, inputs.FromCatalogue);
        var greedyNode = new string?[names.Length];
        if (greedy.Sorted is (int[] ids, _, var nodes, _))
        {
            for (var i = 0; i < ids.Length; i++)
            {
                greedyNode[ids[i]] = nodes[i];
            }
        }
        else
        {
            for (var s = 0; s < names.Length; s++)
            {
                greedyNode[s] = inModel[s] ? greedy.Nodes.GetValueOrDefault(names[s]) : null;
            }
        }

        for (var s = 0; s < names.Length; s++)
        {
            if (!inModel[s])
            {
                continue;
            }

            Add(names[s]);
            Add(inputs.Pins.Count > 0 ? inputs.Pins.GetValueOrDefault(names[s]) : null);
            Add(previous[s]);
            Add(greedyNode[s]);
        }

        return Rtt.Core.Hashing.ContentHash.Of(System.Text.Encoding.UTF8.GetBytes(text.ToString()));
    }

    private static IlpAnswer? SolveModel(PlanInputs inputs, List<Candidate> candidates, PlacementResult greedy, IReadOnlyDictionary<string, (double Cpu, double Memory)> used)
    {
        var demand = Placement.Demands(candidates);
        var symbols = demand.Keys.Order(StringComparer.Ordinal).ToList(); // variables in ordinal order: the model is the same on every run
        var nodes = inputs.Nodes;
        var hosts = nodes.Select(n => n.Host).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var previous = inputs.BasePlacement;
        var model = new CpModel();

        var x = new Dictionary<(string, string), BoolVar>();
        var placedVar = new Dictionary<string, BoolVar>(StringComparer.Ordinal);
        foreach (var s in symbols)
        {
            var p = model.NewBoolVar($"p|{s}");
            placedVar[s] = p;
            var row = new List<ILiteral>();
            foreach (var n in nodes)
            {
                var v = model.NewBoolVar($"x|{s}|{n.Id}");
                x[(s, n.Id)] = v;
                row.Add(v);
                if (inputs.Pins.TryGetValue(s, out var pin) && pin != n.Id)
                {
                    model.Add(v == 0);
                }
            }

            model.Add(LinearExpr.Sum(row.Cast<BoolVar>()) == p);
        }

        foreach (var n in nodes)
        {
            model.Add(LinearExpr.WeightedSum(symbols.Select(s => x[(s, n.Id)]), symbols.Select(s => (long)Math.Ceiling(demand[s].Cpu))) <= (long)Math.Floor(n.CpuMillis - used[n.Id].Cpu));
            model.Add(LinearExpr.WeightedSum(symbols.Select(s => x[(s, n.Id)]), symbols.Select(s => (long)Math.Ceiling(demand[s].Memory))) <= (long)Math.Floor(n.MemoryMb - used[n.Id].Memory));
        }

        var admit = new List<BoolVar>();
        var laneVars = new List<Dictionary<string, BoolVar>>();
        var laneScore = new List<(BoolVar Var, long Score)>();
        foreach (var c in candidates)
        {
            var a = model.NewBoolVar($"a|{c.Route.Index}");
            admit.Add(a);
            var f = c.From.Address;
            var t = c.To.Address;
            model.AddImplication(a, placedVar[f]);
            model.AddImplication(a, placedVar[t]);
            var y = new Dictionary<string, BoolVar>(StringComparer.Ordinal);
            foreach (var kind in c.Lanes)
            {
                y[kind] = model.NewBoolVar($"y|{c.Route.Index}|{kind}");
            }

            model.Add(LinearExpr.Sum(y.Values) == a);
            if (y.TryGetValue("shm", out var shm))
            {
                var same = new List<BoolVar>();
                foreach (var n in nodes)
                {
                    var z = model.NewBoolVar($"same|{c.Route.Index}|{n.Id}");
                    model.AddImplication(z, x[(f, n.Id)]);
                    model.AddImplication(z, x[(t, n.Id)]);
                    same.Add(z);
                }

                model.Add(shm <= LinearExpr.Sum(same));
                laneScore.Add((shm, 2));
            }

            if (y.TryGetValue("uds", out var uds))
            {
                var sameHost = new List<BoolVar>();
                foreach (var h in hosts)
                {
                    var w = model.NewBoolVar($"host|{c.Route.Index}|{h}");
                    var onHost = nodes.Where(n => n.Host == h).ToList();
                    model.Add(w <= LinearExpr.Sum(onHost.Select(n => x[(f, n.Id)])));
                    model.Add(w <= LinearExpr.Sum(onHost.Select(n => x[(t, n.Id)])));
                    sameHost.Add(w);
                }

                model.Add(uds <= LinearExpr.Sum(sameHost));
                laneScore.Add((uds, 1));
            }

            laneVars.Add(y);
        }

        // Start from the greedy answer: a deterministic hint that the solver improves on.
        // A complete hint (admission, placement, lanes): the greedy answer is always a feasible start.
        var greedyLanes = greedy.Admitted.ToDictionary(g => g.Candidate.Route.Index, g => g.Lane);
        for (var i = 0; i < candidates.Count; i++)
        {
            var lane = greedyLanes.GetValueOrDefault(candidates[i].Route.Index);
            model.AddHint(admit[i], lane is null ? 0 : 1);
            foreach (var (kind, y) in laneVars[i])
            {
                model.AddHint(y, kind == lane ? 1 : 0);
            }
        }

        foreach (var s in symbols)
        {
            var node = greedy.Nodes.GetValueOrDefault(s);
            model.AddHint(placedVar[s], node is null ? 0 : 1);
            foreach (var n in nodes)
            {
                model.AddHint(x[(s, n.Id)], n.Id == node ? 1 : 0);
            }
        }

        var solver = new CpSolver { StringParameters = Parameters };

        // Admission is lexicographic by priority: maximise the highest level, fix it, go down.
        foreach (var level in candidates.Select(c => c.Route.Priority).Distinct().OrderDescending())
        {
            var atLevel = candidates.Select((c, i) => (c, i)).Where(p => p.c.Route.Priority == level).Select(p => admit[p.i]).ToList();
            model.Maximize(LinearExpr.Sum(atLevel));
            var status = solver.Solve(model);
            if (status is not (CpSolverStatus.Optimal or CpSolverStatus.Feasible))
            {
                return null;
            }

            model.Add(LinearExpr.Sum(atLevel) >= (long)Math.Round(solver.ObjectiveValue));
        }

        // Then keep placements (churn), then lane quality: keeping one symbol outweighs every lane gain.
        var keepWeight = (2L * candidates.Count) + 1;
        var terms = new List<BoolVar>();
        var weights = new List<long>();
        foreach (var s in symbols)
        {
            if (previous.TryGetValue(s, out var prev) && x.TryGetValue((s, prev), out var keep))
            {
                terms.Add(keep);
                weights.Add(keepWeight);
            }
        }

        foreach (var (v, score) in laneScore)
        {
            terms.Add(v);
            weights.Add(score);
        }

        if (terms.Count > 0)
        {
            model.Maximize(LinearExpr.WeightedSum(terms, weights));
        }

        var final = solver.Solve(model);
        if (final is not (CpSolverStatus.Optimal or CpSolverStatus.Feasible))
        {
            return null;
        }

        var nodesOf = new Dictionary<string, string>(StringComparer.Ordinal);
        var lanes = new string?[candidates.Count];
        for (var i = 0; i < candidates.Count; i++)
        {
            var c = candidates[i];
            if (!solver.BooleanValue(admit[i]))
            {
                continue;
            }

            foreach (var s in new[] { c.From.Address, c.To.Address })
            {
                nodesOf[s] = nodes.First(n => solver.BooleanValue(x[(s, n.Id)])).Id;
            }

            lanes[i] = laneVars[i].First(kv => solver.BooleanValue(kv.Value)).Key;
        }

        return new IlpAnswer(lanes, nodesOf);
    }

    /// <summary>Why a route the model left out could not join the solution: the binding constraint with its values.</summary>
    private static Rejection Diagnose(PlanInputs inputs, Candidate c, SortedDictionary<string, string> placed, Dictionary<string, (double Cpu, double Memory)> demand,
        IReadOnlyDictionary<string, (double Cpu, double Memory)> used)
    {
        var freeCpu = inputs.Nodes.ToDictionary(n => n.Id, n => n.CpuMillis - used[n.Id].Cpu - placed.Where(p => p.Value == n.Id).Sum(p => demand[p.Key].Cpu), StringComparer.Ordinal);
        var freeMem = inputs.Nodes.ToDictionary(n => n.Id, n => n.MemoryMb - used[n.Id].Memory - placed.Where(p => p.Value == n.Id).Sum(p => demand[p.Key].Memory), StringComparer.Ordinal);
        foreach (var s in new[] { c.To.Address, c.From.Address })
        {
            if (placed.ContainsKey(s))
            {
                continue;
            }

            var pin = inputs.Pins.GetValueOrDefault(s);
            var fits = pin is null
                ? inputs.Nodes.Any(n => freeCpu[n.Id] >= demand[s].Cpu && freeMem[n.Id] >= demand[s].Memory)
                : freeCpu[pin] >= demand[s].Cpu && freeMem[pin] >= demand[s].Memory;
            if (!fits)
            {
                return Placement.CapacityRejection(c, s, demand[s], freeCpu, freeMem, pin);
            }
        }

        if (placed.TryGetValue(c.From.Address, out var fn) && placed.TryGetValue(c.To.Address, out var tn))
        {
            var nodes = inputs.Nodes.ToDictionary(n => n.Id, StringComparer.Ordinal);
            if (Placement.Lane(c, nodes[fn], nodes[tn]) is null)
            {
                return new Rejection(c.Route, Constraint.Placement, new JsonObject
                {
                    ["from_node"] = fn,
                    ["to_node"] = tn,
                    ["allowed_lanes"] = new JsonArray([.. c.Lanes.Select(l => (JsonNode)JsonValue.Create(l))]),
                });
            }
        }

        return new Rejection(c.Route, Constraint.Admission, new JsonObject
        {
            ["priority"] = c.Route.Priority,
            ["detail"] = "capacity went to routes of higher priority or earlier in routes.json",
        });
    }
}
