using System.Text.Json.Nodes;
using Google.OrTools.Sat;

namespace Rtt.Core.Planning;

/// <summary>Where every symbol of the admitted routes runs, which routes are admitted, and on which lane kind.</summary>
internal sealed record PlacementResult(
    SortedDictionary<string, string> Nodes,
    List<(Candidate Candidate, string Lane)> Admitted,
    List<Rejection> Rejected,
    Dictionary<string, string> MoveReasons,
    string Solver);

/// <summary>
/// Constraints 5 and 6: capacity per NUMA node, NUMA-aware placement (same node: shm; same host: uds; else tcp),
/// pins, and churn (a placement from the applied plan is kept while it stays feasible). A greedy pass decides the
/// easy cases (new components whole on one node first, then route by route); when it cannot admit every route, CP-SAT decides admission by priority, then lane quality and churn.
/// </summary>
internal static class Placement
{
    public static PlacementResult Solve(PlanInputs inputs, List<Candidate> candidates)
    {
        var greedy = Greedy(inputs, candidates);
        if (greedy.Rejected.Count == 0 || candidates.Count == 0)
        {
            return greedy;
        }

        // The ILP decides the routes connected (through shared symbols) to a route the greedy pass could not
        // admit; every other component keeps the greedy answer and its capacity use, which the model subtracts.
        // Capacity couples every route, so a capacity failure puts the whole problem in scope.
        var component = Components(candidates);
        var failed = greedy.Rejected.Select(r => r.Route.Index).ToHashSet();
        var affected = greedy.Rejected.Any(r => r.Constraint == Constraint.Capacity)
            ? component.Values.ToHashSet(StringComparer.Ordinal)
            : candidates.Where(c => failed.Contains(c.Route.Index)).Select(c => component[c.From.Address]).ToHashSet(StringComparer.Ordinal);
        var inScope = candidates.Where(c => affected.Contains(component[c.From.Address])).ToList();
        var outside = greedy.Admitted.Where(a => !affected.Contains(component[a.Candidate.From.Address])).ToList();
        var demand = Demands(candidates);
        var used = inputs.Nodes.ToDictionary(n => n.Id, _ => (Cpu: 0.0, Memory: 0.0), StringComparer.Ordinal);
        foreach (var (symbol, node) in greedy.Nodes.Where(p => !affected.Contains(component[p.Key])))
        {
            used[node] = (used[node].Cpu + demand[symbol].Cpu, used[node].Memory + demand[symbol].Memory);
        }

        var ilp = Ilp.Solve(inputs, inScope, greedy, used);
        if (ilp is null)
        {
            return greedy;
        }

        var nodes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (symbol, node) in greedy.Nodes.Where(p => !affected.Contains(component[p.Key])))
        {
            nodes[symbol] = node;
        }

        foreach (var (symbol, node) in ilp.Nodes)
        {
            nodes[symbol] = node;
        }

        var reasons = greedy.MoveReasons.Where(r => !affected.Contains(component[r.Key])).Concat(ilp.MoveReasons).ToDictionary(StringComparer.Ordinal);
        return new PlacementResult(nodes, [.. outside, .. ilp.Admitted], ilp.Rejected, reasons, ilp.Solver);
    }

    /// <summary>Connected components of the route graph: symbol -> the smallest symbol of its component.</summary>
    internal static Dictionary<string, string> Components(List<Candidate> candidates)
    {
        var parent = new Dictionary<string, string>(StringComparer.Ordinal);
        string Find(string s)
        {
            while (parent[s] != s)
            {
                parent[s] = parent[parent[s]];
                s = parent[s];
            }

            return s;
        }

        foreach (var c in candidates)
        {
            parent.TryAdd(c.From.Address, c.From.Address);
            parent.TryAdd(c.To.Address, c.To.Address);
            var a = Find(c.From.Address);
            var b = Find(c.To.Address);
            if (a != b)
            {
                // The ordinally smaller root wins, so components are named the same way on every run.
                if (string.CompareOrdinal(a, b) < 0)
                {
                    parent[b] = a;
                }
                else
                {
                    parent[a] = b;
                }
            }
        }

        return parent.Keys.ToDictionary(k => k, Find, StringComparer.Ordinal);
    }

    /// <summary>Demand of each symbol: the largest over the versions its routes use.</summary>
    internal static Dictionary<string, (double Cpu, double Memory)> Demands(IEnumerable<Candidate> candidates)
    {
        var demand = new Dictionary<string, (double Cpu, double Memory)>(StringComparer.Ordinal);
        foreach (var c in candidates)
        {
            Add(c.From);
            Add(c.To);
        }

        return demand;

        void Add(SymbolContract contract)
        {
            var current = demand.GetValueOrDefault(contract.Address);
            demand[contract.Address] = (Math.Max(current.Cpu, contract.CpuMillis), Math.Max(current.Memory, contract.MemoryMb));
        }
    }

    /// <summary>The best lane kind two placements allow for a route, or null.</summary>
    internal static string? Lane(Candidate c, NumaNodeSpec from, NumaNodeSpec to)
    {
        if (from.Id == to.Id && c.Lanes.Contains("shm"))
        {
            return "shm";
        }

        if (from.Host == to.Host && c.Lanes.Contains("uds"))
        {
            return "uds";
        }

        return c.Lanes.Contains("tcp") ? "tcp" : null;
    }

    private static PlacementResult Greedy(PlanInputs inputs, List<Candidate> candidates)
    {
        var nodes = inputs.Nodes.ToDictionary(n => n.Id, StringComparer.Ordinal);
        var freeCpu = inputs.Nodes.ToDictionary(n => n.Id, n => n.CpuMillis, StringComparer.Ordinal);
        var freeMem = inputs.Nodes.ToDictionary(n => n.Id, n => n.MemoryMb, StringComparer.Ordinal);
        var demand = Demands(candidates);
        var previous = inputs.BasePlacement;
        var placed = new Dictionary<string, string>(StringComparer.Ordinal); // sorted once at the end
        var admitted = new List<(Candidate, string)>();
        var rejected = new List<Rejection>();
        var reasons = new Dictionary<string, string>(StringComparer.Ordinal);

        bool Fits(string node, string symbol) => freeCpu[node] >= demand[symbol].Cpu && freeMem[node] >= demand[symbol].Memory;

        string? Choose(string symbol, string? partnerNode)
        {
            if (inputs.Pins.TryGetValue(symbol, out var pin))
            {
                return Fits(pin, symbol) ? pin : null;
            }

            if (previous.TryGetValue(symbol, out var prev) && nodes.ContainsKey(prev) && Fits(prev, symbol))
            {
                return prev; // churn: keep what still fits
            }

            if (partnerNode is not null && Fits(partnerNode, symbol))
            {
                return partnerNode; // co-locate for an shm lane
            }

            var pool = inputs.Nodes.Where(n => Fits(n.Id, symbol));
            if (partnerNode is not null && pool.Any(n => n.Host == nodes[partnerNode].Host))
            {
                pool = pool.Where(n => n.Host == nodes[partnerNode].Host); // same host: a uds lane
            }

            // Most free CPU first; node id breaks ties so the choice is the same everywhere.
            return pool.OrderByDescending(n => freeCpu[n.Id]).ThenBy(n => n.Id, StringComparer.Ordinal).Select(n => n.Id).FirstOrDefault();
        }

        var ordered = candidates.OrderByDescending(c => c.Route.Priority).ThenBy(c => c.Route.Index).ToList();
        var components = new ComponentPlacer(inputs, ordered, demand, previous, freeCpu, freeMem, placed);
        foreach (var c in ordered)
        {
            components.Place(c);
            var fresh = new List<string>();
            Rejection? failure = null;
            foreach (var (symbol, partner) in new[] { (c.To.Address, c.From.Address), (c.From.Address, c.To.Address) })
            {
                if (placed.ContainsKey(symbol))
                {
                    continue;
                }

                var node = Choose(symbol, placed.GetValueOrDefault(partner));
                if (node is null)
                {
                    failure = CapacityRejection(c, symbol, demand[symbol], freeCpu, freeMem, inputs.Pins.GetValueOrDefault(symbol));
                    break;
                }

                placed[symbol] = node;
                freeCpu[node] -= demand[symbol].Cpu;
                freeMem[node] -= demand[symbol].Memory;
                fresh.Add(symbol);
            }

            var lane = failure is null ? Lane(c, nodes[placed[c.From.Address]], nodes[placed[c.To.Address]]) : null;
            if (failure is null && lane is null)
            {
                failure = new Rejection(c.Route, Constraint.Placement, new JsonObject
                {
                    ["from_node"] = placed[c.From.Address],
                    ["to_node"] = placed[c.To.Address],
                    ["allowed_lanes"] = new JsonArray([.. c.Lanes.Select(l => (JsonNode)JsonValue.Create(l))]),
                });
            }

            if (failure is not null)
            {
                foreach (var symbol in fresh)
                {
                    freeCpu[placed[symbol]] += demand[symbol].Cpu;
                    freeMem[placed[symbol]] += demand[symbol].Memory;
                    placed.Remove(symbol);
                }

                rejected.Add(failure);
                continue;
            }

            admitted.Add((c, lane!));
        }

        // A symbol placed with its component whose routes were all rejected (for another reason) is not placed.
        var used = admitted.SelectMany(a => new[] { a.Item1.From.Address, a.Item1.To.Address }).ToHashSet(StringComparer.Ordinal);
        foreach (var symbol in components.Placed.Where(s => !used.Contains(s)))
        {
            freeCpu[placed[symbol]] += demand[symbol].Cpu;
            freeMem[placed[symbol]] += demand[symbol].Memory;
            placed.Remove(symbol);
        }

        foreach (var (symbol, node) in placed)
        {
            if (previous.TryGetValue(symbol, out var prev) && prev != node)
            {
                reasons[symbol] = inputs.Pins.TryGetValue(symbol, out var pin) && pin == node ? "pin"
                    : !nodes.ContainsKey(prev) ? "node-removed"
                    : "capacity";
            }
        }

        return new PlacementResult(new SortedDictionary<string, string>(placed, StringComparer.Ordinal), admitted, rejected, reasons, "greedy");
    }

    internal static Rejection CapacityRejection(Candidate c, string symbol, (double Cpu, double Memory) need, IReadOnlyDictionary<string, double> freeCpu,
        IReadOnlyDictionary<string, double> freeMem, string? pin) => new(c.Route, Constraint.Capacity, new JsonObject
        {
            ["symbol"] = symbol,
            ["cpu_millis"] = need.Cpu,
            ["memory_mb"] = need.Memory,
            ["node"] = pin,
            ["free_cpu_millis"] = pin is null ? freeCpu.Values.Max() : freeCpu[pin],
            ["free_memory_mb"] = pin is null ? freeMem.Values.Max() : freeMem[pin],
        });
}

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
        var previous = inputs.BasePlacement;
        var symbols = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var c in candidates)
        {
            Num(c.Route.Index);
            Num(c.Route.Priority);
            foreach (var end in (SymbolContract[])[c.From, c.To])
            {
                Add(end.Address);
                Num(end.CpuMillis);
                Num(end.MemoryMb);
                symbols.Add(end.Address);
            }

            Add(string.Join(',', c.Lanes));
            Add(greedyLanes.GetValueOrDefault(c.Route.Index));
        }

        foreach (var s in symbols)
        {
            Add(s);
            Add(inputs.Pins.GetValueOrDefault(s));
            Add(previous.GetValueOrDefault(s));
            Add(greedy.Nodes.GetValueOrDefault(s));
        }

        return Hashing.ContentHash.Of(System.Text.Encoding.UTF8.GetBytes(text.ToString()));
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

/// <summary>
/// Places a connected component of new symbols (none pinned, none placed by the base plan) whole on one NUMA node when
/// the greedy pass reaches its most important route (priority, then file order), so every route inside it gets the best
/// lane: on the node with most free CPU that holds all of it (node id breaks ties). A component that fits on no single
/// node, or holds a pinned or already placed symbol, is left to the route-by-route pass.
/// </summary>
internal sealed class ComponentPlacer
{
    private readonly PlanInputs _inputs;
    private readonly Dictionary<string, (double Cpu, double Memory)> _demand;
    private readonly Dictionary<string, double> _freeCpu;
    private readonly Dictionary<string, double> _freeMem;
    private readonly Dictionary<string, string> _placed;
    private readonly Dictionary<string, string> _component = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _members = new(StringComparer.Ordinal);
    private readonly HashSet<string> _tried = new(StringComparer.Ordinal);

    public ComponentPlacer(PlanInputs inputs, List<Candidate> ordered, Dictionary<string, (double Cpu, double Memory)> demand,
        IReadOnlyDictionary<string, string> previous, Dictionary<string, double> freeCpu, Dictionary<string, double> freeMem, Dictionary<string, string> placed)
    {
        (_inputs, _demand, _freeCpu, _freeMem, _placed) = (inputs, demand, freeCpu, freeMem, placed);
        var roots = Placement.Components(ordered);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in ordered)
        {
            foreach (var symbol in (string[])[c.To.Address, c.From.Address])
            {
                var root = roots[symbol];
                _component[symbol] = root;
                if (!_members.TryGetValue(root, out var list))
                {
                    _members[root] = list = [];
                }

                if (seen.Add(symbol))
                {
                    list.Add(symbol);
                }

                if (inputs.Pins.ContainsKey(symbol) || previous.ContainsKey(symbol))
                {
                    _tried.Add(root); // not new: route by route
                }
            }
        }
    }

    /// <summary>The symbols placed with their component.</summary>
    public List<string> Placed { get; } = [];

    /// <summary>Places the component of <paramref name="c"/> whole, the first time one of its routes comes up.</summary>
    public void Place(Candidate c)
    {
        var root = _component[c.From.Address];
        if (!_tried.Add(root))
        {
            return;
        }

        var symbols = _members[root];
        double cpu = 0, memory = 0;
        foreach (var symbol in symbols)
        {
            cpu += _demand[symbol].Cpu;
            memory += _demand[symbol].Memory;
        }

        string? best = null;
        foreach (var node in _inputs.Nodes)
        {
            if (_freeCpu[node.Id] >= cpu && _freeMem[node.Id] >= memory
                && (best is null || _freeCpu[node.Id] > _freeCpu[best] || (_freeCpu[node.Id] == _freeCpu[best] && string.CompareOrdinal(node.Id, best) < 0)))
            {
                best = node.Id;
            }
        }

        if (best is null)
        {
            return;
        }

        foreach (var symbol in symbols)
        {
            _placed[symbol] = best;
            Placed.Add(symbol);
        }

        _freeCpu[best] -= cpu;
        _freeMem[best] -= memory;
    }
}
