using System.Text.Json.Nodes;

namespace Rtt.Planning;

/// <summary>Where every symbol of the admitted routes runs, which routes are admitted, and on which lane kind.</summary>
internal sealed record PlacementResult(
    IReadOnlyDictionary<string, string> Nodes,
    List<(Candidate Candidate, string Lane)> Admitted,
    List<Rejection> Rejected,
    Dictionary<string, string> MoveReasons,
    string Solver)
{
    /// <summary>
    /// <see cref="Nodes"/> as arrays in ordinal symbol order (with the symbols' numbers), with each symbol's node in the base plan (or null), when the
    /// pass that placed them had them so (null: sort the keys and read the base plan).
    /// </summary>
    public (int[]? Ids, string[] Symbols, string[] Nodes, string?[] Previous)? Sorted { get; init; }

    /// <summary>Each numbered symbol's demand (the largest over the versions its candidates use), as the greedy pass read it (null: not read).</summary>
    public (double[] Cpu, double[] Memory)? Demand { get; init; }
}

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
        // Capacity couples every route, so a capacity failure puts the whole problem in scope. Components, demand and
        // capacity are read by symbol number (ordinal order: the sums run in symbol order).
        var count = inputs.SymbolNames.Length;
        var root = ComponentRoots(candidates, count);
        var affected = new bool[count]; // by component root
        if (greedy.Rejected.Any(r => r.Constraint == Constraint.Capacity))
        {
            foreach (var c in candidates)
            {
                affected[root[c.Route.FromId]] = true;
            }
        }
        else
        {
            var failed = greedy.Rejected.Select(r => r.Route.Index).ToHashSet();
            foreach (var c in candidates.Where(c => failed.Contains(c.Route.Index)))
            {
                affected[root[c.Route.FromId]] = true;
            }
        }

        bool Outside(int id) => !affected[root[id]];
        var inScope = candidates.Where(c => !Outside(c.Route.FromId)).ToList();
        var outside = greedy.Admitted.Where(a => Outside(a.Candidate.Route.FromId)).ToList();
        var (cpu, memory) = greedy.Demand!.Value; // demand of each symbol: the largest over the versions its routes use (Demands)

        var (ids, symbols, placedOn, _) = greedy.Sorted!.Value; // the greedy pass's placement, in symbol order
        // Capacity used outside the model, by node number, summed in symbol order.
        var nodes = inputs.Nodes;
        var (usedCpu, usedMemory) = (new double[nodes.Count], new double[nodes.Count]);
        for (var i = 0; i < symbols.Length; i++)
        {
            if (Outside(ids![i]))
            {
                var node = NodeNumber(nodes, placedOn[i]);
                (usedCpu[node], usedMemory[node]) = (usedCpu[node] + cpu[ids[i]], usedMemory[node] + memory[ids[i]]);
            }
        }

        var used = nodes.Select((n, i) => (n.Id, i)).ToDictionary(n => n.Id, n => (Cpu: usedCpu[n.i], Memory: usedMemory[n.i]), StringComparer.Ordinal);

        var ilp = Ilp.Solve(inputs, inScope, greedy, used);
        if (ilp is null)
        {
            return greedy;
        }

        // The greedy placement outside the model and the model's own (its components': none in both), merged in symbol order.
        var fromModel = ilp.Nodes.Keys.ToArray();
        Array.Sort(fromModel, StringComparer.Ordinal);
        var finalSymbols = new string[fromModel.Length + symbols.Length];
        var finalNodes = new string[finalSymbols.Length];
        var finalIds = new int[finalSymbols.Length]; // their numbers (the model's few found by search: the names are in ordinal order)
        var (at, m) = (0, 0);
        for (var i = 0; i <= symbols.Length; i++)
        {
            var outsideSymbol = i < symbols.Length && Outside(ids![i]) ? symbols[i] : null;
            if (i < symbols.Length && outsideSymbol is null)
            {
                continue;
            }

            while (m < fromModel.Length && (outsideSymbol is null || string.CompareOrdinal(fromModel[m], outsideSymbol) < 0))
            {
                (finalSymbols[at], finalNodes[at], finalIds[at]) = (fromModel[m], ilp.Nodes[fromModel[m]], Array.BinarySearch(inputs.SymbolNames, fromModel[m], StringComparer.Ordinal));
                (at, m) = (at + 1, m + 1);
            }

            if (outsideSymbol is not null)
            {
                (finalSymbols[at], finalNodes[at], finalIds[at]) = (outsideSymbol, placedOn[i], ids![i]);
                at++;
            }
        }

        Array.Resize(ref finalSymbols, at);
        Array.Resize(ref finalNodes, at);
        Array.Resize(ref finalIds, at);
        var reasons = greedy.MoveReasons.Where(r => Outside(Array.BinarySearch(inputs.SymbolNames, r.Key, StringComparer.Ordinal))).Concat(ilp.MoveReasons).ToDictionary(StringComparer.Ordinal);
        var allNumbered = finalIds.All(id => id >= 0); // route ends all are (SymbolNames)
        var numbered = inputs.FromCatalogue is var (catalogue, rankOf) && allNumbered ? (catalogue, finalIds.Select(id => rankOf[id]).ToArray()) : ((SymbolCatalogue, int[])?)null;
        var all = new bool[at];
        Array.Fill(all, true);
        var previous = inputs.BaseIndex.NodesOf(finalSymbols, all, numbered);
        return new PlacementResult(new SortedPlacement(finalSymbols, finalNodes), [.. outside, .. ilp.Admitted], ilp.Rejected, reasons, ilp.Solver)
        {
            Sorted = (allNumbered ? finalIds : null, finalSymbols, finalNodes, previous),
        };
    }

    // The number of the node with this id (one of them; string equality finds the topology's own strings by reference first).
    private static int NodeNumber(IReadOnlyList<NumaNodeSpec> nodes, string id)
    {
        for (var n = 0; n < nodes.Count; n++)
        {
            if (nodes[n].Id == id)
            {
                return n;
            }
        }

        throw new InvalidOperationException($"node {id} is not in the topology");
    }

    /// <summary>Connected components of the route graph by symbol number: each symbol's component is named by its smallest number (-1: in no candidate).</summary>
    internal static int[] ComponentRoots(List<Candidate> candidates, int count)
    {
        var parent = new int[count];
        Array.Fill(parent, -1);
        int Find(int s)
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
            var (from, to) = (c.Route.FromId, c.Route.ToId);
            parent[from] = parent[from] < 0 ? from : parent[from];
            parent[to] = parent[to] < 0 ? to : parent[to];
            var a = Find(from);
            var b = Find(to);
            if (a != b)
            {
                parent[Math.Max(a, b)] = Math.Min(a, b);
            }
        }

        for (var s = 0; s < count; s++)
        {
            parent[s] = parent[s] < 0 ? -1 : Find(s);
        }

        return parent;
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
        var admitted = new List<(Candidate, string)>(candidates.Count);
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

        var ordered = ByPriority(candidates);
        var ends = new (int From, int To)[ordered.Length]; // each route's symbols by number, looked up once
        for (var i = 0; i < ordered.Length; i++)
        {
            ends[i] = (ordered[i].Route.FromId, ordered[i].Route.ToId);
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
            for (var end = 0; end < 2; end++) // the provider, then the caller
            {
                var (s, partner) = end == 0 ? (to, from) : (from, to);
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

        var reasons = new Dictionary<string, string>(StringComparer.Ordinal);
        var placedCount = 0;
        for (var s = 0; s < count; s++)
        {
            placedCount += placed[s] >= 0 ? 1 : 0;
        }

        var sortedIds = new int[placedCount];
        var placedSymbols = new string[placedCount];
        var placedNodes = new string[placedCount];
        var sortedPrevious = new string?[placedCount];
        var at = 0;
        for (var s = 0; s < count; s++) // symbol numbers are in ordinal order
        {
            if (placed[s] < 0)
            {
                continue;
            }

            var node = nodeList[placed[s]].Id;
            var symbol = symbols.Names[s];
            (sortedIds[at], placedSymbols[at], placedNodes[at], sortedPrevious[at]) = (s, symbol, node, symbols.PreviousName[s]);
            at++;
            if (symbols.PreviousName[s] is { } prev && prev != node)
            {
                reasons[symbol] = inputs.Pins.TryGetValue(symbol, out var pin) && pin == node ? "pin"
                    : !nodeIndex.ContainsKey(prev) ? "node-removed"
                    : "capacity";
            }
        }

        return new PlacementResult(new SortedPlacement(placedSymbols, placedNodes), admitted, rejected, reasons, "greedy")
        {
            Sorted = (sortedIds, placedSymbols, placedNodes, sortedPrevious),
            Demand = (symbols.Cpu, symbols.Memory),
        };

        Dictionary<string, double> Free(double[] free) => nodeList.Select((n, i) => (n.Id, free[i])).ToDictionary(p => p.Id, p => p.Item2, StringComparer.Ordinal);
    }

    /// <summary>
    /// The candidates by priority, highest first, then by route index. They come in route order (Compute checks the routes
    /// in order), so with a few distinct priorities (routes.json's are 0-2 mostly) one stable pass per priority orders
    /// them; otherwise they are sorted.
    /// </summary>
    internal static Candidate[] ByPriority(List<Candidate> candidates)
    {
        var ordered = new Candidate[candidates.Count];
        var priorities = new List<int>(4);
        var inOrder = true;
        for (var i = 0; i < candidates.Count && inOrder; i++)
        {
            inOrder = i == 0 || candidates[i - 1].Route.Index < candidates[i].Route.Index;
            if (!priorities.Contains(candidates[i].Route.Priority))
            {
                priorities.Add(candidates[i].Route.Priority);
                inOrder &= priorities.Count <= 8;
            }
        }

        if (!inOrder)
        {
            candidates.CopyTo(ordered);
            Array.Sort(ordered, static (a, b) => a.Route.Priority != b.Route.Priority ? b.Route.Priority.CompareTo(a.Route.Priority) : a.Route.Index.CompareTo(b.Route.Index));
            return ordered;
        }

        priorities.Sort(static (a, b) => b.CompareTo(a));
        var at = 0;
        foreach (var priority in priorities)
        {
            foreach (var c in candidates)
            {
                if (c.Route.Priority == priority)
                {
                    ordered[at++] = c;
                }
            }
        }

        return ordered;
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

/// <summary>Symbol → node over two arrays in ordinal symbol order: looked up by binary search, then by a dictionary made once many lookups came.</summary>
internal sealed class SortedPlacement(string[] symbols, string[] nodes) : IReadOnlyDictionary<string, string>
{
    // The first lookups search the sorted symbols; a reader that looks up more than these gets a dictionary (20,000
    // symbols: milliseconds to make, for a model of a few routes that reads two).
    private const int Searches = 64;
    private Dictionary<string, string>? _map;
    private int _searched;

    private Dictionary<string, string> Map => _map ??= symbols.Select((s, i) => KeyValuePair.Create(s, nodes[i])).ToDictionary(StringComparer.Ordinal);

    public int Count => symbols.Length;

    public IEnumerable<string> Keys => symbols;

    public IEnumerable<string> Values => nodes;

    public string this[string key] => TryGetValue(key, out var node) ? node : throw new KeyNotFoundException($"{key} is not placed");

    public bool ContainsKey(string key) => TryGetValue(key, out _);

    public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out string value)
    {
        if (_map is null && Interlocked.Increment(ref _searched) <= Searches)
        {
            var at = Array.BinarySearch(symbols, key, StringComparer.Ordinal);
            value = at >= 0 ? nodes[at] : null;
            return at >= 0;
        }

        return Map.TryGetValue(key, out value);
    }

    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => symbols.Select((s, i) => KeyValuePair.Create(s, nodes[i])).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
