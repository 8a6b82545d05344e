using System.Text.Json.Nodes;
using Google.OrTools.Sat;

namespace Rtt.Core.Planning;

/// <summary>Where every symbol of the admitted routes runs, which routes are admitted, and on which lane kind.</summary>
internal sealed record PlacementResult(
    IReadOnlyDictionary<string, string> Nodes,
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
        foreach (var (symbol, node) in greedy.Nodes.Where(p => !affected.Contains(component[p.Key])).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            used[node] = (used[node].Cpu + demand[symbol].Cpu, used[node].Memory + demand[symbol].Memory); // summed in symbol order
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
        // Symbols and nodes by number, so the pass over 10,000 routes does array reads, not string lookups. Decisions are
        // those of the rules in docs/planner.md, in the same order, with the same arithmetic (sums in the same order).
        var nodeList = inputs.Nodes;
        var nodeCount = nodeList.Count;
        var nodeIndex = new Dictionary<string, int>(nodeCount, StringComparer.Ordinal);
        for (var n = 0; n < nodeCount; n++)
        {
            nodeIndex[nodeList[n].Id] = n;
        }

        var byId = Enumerable.Range(0, nodeCount).ToArray(); // node numbers in ordinal id order: ties go to the smaller id
        Array.Sort(byId, (a, b) => string.CompareOrdinal(nodeList[a].Id, nodeList[b].Id));
        var freeCpu = new double[nodeCount];
        var freeMem = new double[nodeCount];
        for (var n = 0; n < nodeCount; n++)
        {
            freeCpu[n] = nodeList[n].CpuMillis;
            freeMem[n] = nodeList[n].MemoryMb;
        }

        var symbols = new Symbols(inputs, candidates, nodeIndex);
        var count = symbols.Count;
        var placed = new int[count];
        Array.Fill(placed, -1);
        var admitted = new List<(Candidate, string)>();
        var rejected = new List<Rejection>();

        bool Fits(int node, int s) => freeCpu[node] >= symbols.Cpu[s] && freeMem[node] >= symbols.Memory[s];

        int Choose(int s, int partnerNode)
        {
            if (symbols.Pin[s] >= 0)
            {
                return Fits(symbols.Pin[s], s) ? symbols.Pin[s] : -1;
            }

            if (symbols.Previous[s] >= 0 && Fits(symbols.Previous[s], s))
            {
                return symbols.Previous[s]; // churn: keep what still fits
            }

            if (partnerNode >= 0 && Fits(partnerNode, s))
            {
                return partnerNode; // co-locate for an shm lane
            }

            var host = partnerNode >= 0 ? nodeList[partnerNode].Host : null;
            var sameHost = false;
            if (host is not null)
            {
                foreach (var n in byId)
                {
                    if (Fits(n, s) && nodeList[n].Host == host)
                    {
                        sameHost = true; // same host: a uds lane
                        break;
                    }
                }
            }

            // Most free CPU first; node id breaks ties so the choice is the same everywhere.
            var best = -1;
            foreach (var n in byId)
            {
                if (Fits(n, s) && (!sameHost || nodeList[n].Host == host) && (best < 0 || freeCpu[n] > freeCpu[best]))
                {
                    best = n;
                }
            }

            return best;
        }

        var ordered = candidates.ToArray();
        Array.Sort(ordered, static (a, b) => a.Route.Priority != b.Route.Priority ? b.Route.Priority.CompareTo(a.Route.Priority) : a.Route.Index.CompareTo(b.Route.Index));
        var ends = new (int From, int To)[ordered.Length]; // each route's symbols by number, looked up once
        for (var i = 0; i < ordered.Length; i++)
        {
            ends[i] = (symbols.Of(ordered[i].From.Address), symbols.Of(ordered[i].To.Address));
        }

        var components = new ComponentPlacer(nodeList, byId, ends, symbols, freeCpu, freeMem, placed);
        var fresh = new List<int>(2);
        var admittedAt = new bool[ordered.Length];
        for (var i = 0; i < ordered.Length; i++)
        {
            var c = ordered[i];
            var (from, to) = ends[i];
            components.Place(from);
            fresh.Clear();
            Rejection? failure = null;
            foreach (var (s, partner) in ((int, int)[])[(to, from), (from, to)])
            {
                if (placed[s] >= 0)
                {
                    continue;
                }

                var node = Choose(s, placed[partner]);
                if (node < 0)
                {
                    failure = CapacityRejection(c, symbols.Names[s], (symbols.Cpu[s], symbols.Memory[s]), Free(freeCpu), Free(freeMem), inputs.Pins.GetValueOrDefault(symbols.Names[s]));
                    break;
                }

                placed[s] = node;
                freeCpu[node] -= symbols.Cpu[s];
                freeMem[node] -= symbols.Memory[s];
                fresh.Add(s);
            }

            var lane = failure is null ? Lane(c, nodeList[placed[from]], nodeList[placed[to]]) : null;
            if (failure is null && lane is null)
            {
                failure = new Rejection(c.Route, Constraint.Placement, new JsonObject
                {
                    ["from_node"] = nodeList[placed[from]].Id,
                    ["to_node"] = nodeList[placed[to]].Id,
                    ["allowed_lanes"] = new JsonArray([.. c.Lanes.Select(l => (JsonNode)JsonValue.Create(l))]),
                });
            }

            if (failure is not null)
            {
                foreach (var s in fresh)
                {
                    freeCpu[placed[s]] += symbols.Cpu[s];
                    freeMem[placed[s]] += symbols.Memory[s];
                    placed[s] = -1;
                }

                rejected.Add(failure);
                continue;
            }

            admitted.Add((c, lane!));
            admittedAt[i] = true;
        }

        // A symbol placed with its component whose routes were all rejected (for another reason) is not placed.
        var used = new bool[count];
        for (var i = 0; i < ordered.Length; i++)
        {
            if (admittedAt[i])
            {
                used[ends[i].From] = true;
                used[ends[i].To] = true;
            }
        }

        foreach (var s in components.Placed)
        {
            if (!used[s])
            {
                freeCpu[placed[s]] += symbols.Cpu[s];
                freeMem[placed[s]] += symbols.Memory[s];
                placed[s] = -1;
            }
        }

        var nodes = new Dictionary<string, string>(count, StringComparer.Ordinal);
        var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var s = 0; s < count; s++)
        {
            if (placed[s] < 0)
            {
                continue;
            }

            var node = nodeList[placed[s]].Id;
            var symbol = symbols.Names[s];
            nodes[symbol] = node;
            if (symbols.PreviousName[s] is { } prev && prev != node)
            {
                reasons[symbol] = inputs.Pins.TryGetValue(symbol, out var pin) && pin == node ? "pin"
                    : !nodeIndex.ContainsKey(prev) ? "node-removed"
                    : "capacity";
            }
        }

        return new PlacementResult(nodes, admitted, rejected, reasons, "greedy");

        Dictionary<string, double> Free(double[] free) => nodeList.Select((n, i) => (n.Id, free[i])).ToDictionary(p => p.Id, p => p.Item2, StringComparer.Ordinal);
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

/// <summary>The greedy pass's symbols by number: demand (the largest over the versions in use), pin, base placement.</summary>
internal sealed class Symbols
{
    private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

    public Symbols(PlanInputs inputs, List<Candidate> candidates, Dictionary<string, int> nodeIndex)
    {
        foreach (var c in candidates)
        {
            Add(c.From);
            Add(c.To);
        }

        Count = Names.Count;
        Pin = new int[Count];
        Previous = new int[Count];
        PreviousName = new string?[Count];
        for (var s = 0; s < Count; s++)
        {
            Pin[s] = inputs.Pins.TryGetValue(Names[s], out var pin) ? nodeIndex[pin] : -1;
            var prev = inputs.BasePlacement.GetValueOrDefault(Names[s]);
            PreviousName[s] = prev;
            Previous[s] = prev is not null && nodeIndex.TryGetValue(prev, out var p) ? p : -1;
        }

        void Add(SymbolContract contract)
        {
            if (!_index.TryGetValue(contract.Address, out var s))
            {
                _index[contract.Address] = s = Names.Count;
                Names.Add(contract.Address);
                Cpu.Add(0);
                Memory.Add(0);
            }

            Cpu[s] = Math.Max(Cpu[s], contract.CpuMillis);
            Memory[s] = Math.Max(Memory[s], contract.MemoryMb);
        }
    }

    public int Count { get; }

    public List<string> Names { get; } = [];

    public List<double> Cpu { get; } = [];

    public List<double> Memory { get; } = [];

    /// <summary>The node a symbol is pinned to, or -1.</summary>
    public int[] Pin { get; }

    /// <summary>The node the base plan put a symbol on, or -1 (none, or a node that is gone).</summary>
    public int[] Previous { get; }

    public string?[] PreviousName { get; }

    public int Of(string symbol) => _index[symbol];
}

/// <summary>
/// Places a connected component of new symbols (none pinned, none placed by the base plan) whole on one NUMA node when
/// the greedy pass reaches its most important route (priority, then file order), so every route inside it gets the best
/// lane: on the node with most free CPU that holds all of it (node id breaks ties). A component that fits on no single
/// node, or holds a pinned or already placed symbol, is left to the route-by-route pass.
/// </summary>
internal sealed class ComponentPlacer
{
    private readonly IReadOnlyList<NumaNodeSpec> _nodes;
    private readonly int[] _byId;
    private readonly Symbols _symbols;
    private readonly double[] _freeCpu;
    private readonly double[] _freeMem;
    private readonly int[] _placed;
    private readonly int[] _root;
    private readonly List<int>?[] _members;
    private readonly bool[] _tried;

    public ComponentPlacer(IReadOnlyList<NumaNodeSpec> nodes, int[] byId, (int From, int To)[] ends, Symbols symbols, double[] freeCpu, double[] freeMem, int[] placed)
    {
        (_nodes, _byId, _symbols, _freeCpu, _freeMem, _placed) = (nodes, byId, symbols, freeCpu, freeMem, placed);
        var parent = Enumerable.Range(0, symbols.Count).ToArray();
        int Find(int s)
        {
            while (parent[s] != s)
            {
                parent[s] = parent[parent[s]];
                s = parent[s];
            }

            return s;
        }

        foreach (var (from, to) in ends)
        {
            var a = Find(from);
            var b = Find(to);
            if (a != b)
            {
                parent[Math.Max(a, b)] = Math.Min(a, b);
            }
        }

        _root = new int[symbols.Count];
        _members = new List<int>?[symbols.Count];
        _tried = new bool[symbols.Count];
        var seen = new bool[symbols.Count];
        foreach (var (from, to) in ends)
        {
            Member(to);
            Member(from);
        }

        void Member(int s)
        {
            var root = _root[s] = Find(s);
            var list = _members[root] ??= [];
            if (!seen[s])
            {
                seen[s] = true;
                list.Add(s);
            }

            if (symbols.Pin[s] >= 0 || symbols.PreviousName[s] is not null)
            {
                _tried[root] = true; // not new: route by route
            }
        }
    }

    /// <summary>The symbols placed with their component.</summary>
    public List<int> Placed { get; } = [];

    /// <summary>Places the component of a route (given by its caller's symbol) whole, the first time one of its routes comes up.</summary>
    public void Place(int from)
    {
        var root = _root[from];
        if (_tried[root])
        {
            return;
        }

        _tried[root] = true;
        var members = _members[root]!;
        double cpu = 0, memory = 0;
        foreach (var s in members)
        {
            cpu += _symbols.Cpu[s];
            memory += _symbols.Memory[s];
        }

        var best = -1;
        foreach (var node in _byId)
        {
            if (_freeCpu[node] >= cpu && _freeMem[node] >= memory && (best < 0 || _freeCpu[node] > _freeCpu[best]))
            {
                best = node;
            }
        }

        if (best < 0)
        {
            return;
        }

        foreach (var s in members)
        {
            _placed[s] = best;
            Placed.Add(s);
        }

        _freeCpu[best] -= cpu;
        _freeMem[best] -= memory;
    }
}
