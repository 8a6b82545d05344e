namespace Rtt.Planning;

/// <summary>
/// The greedy pass's symbols by number (<see cref="PlanInputs.SymbolNames"/>: ordinal order): demand (the largest over
/// the versions the candidates use), pin, base placement; a symbol no candidate uses has no demand and no placement.
/// </summary>
internal sealed class Symbols
{
    public Symbols(PlanInputs inputs, List<Candidate> candidates, Dictionary<string, int> nodeIndex)
    {
        Names = inputs.SymbolNames;
        Count = Names.Length;
        Cpu = new double[Count];
        Memory = new double[Count];
        Pin = new int[Count];
        Previous = new int[Count];
        PreviousName = new string?[Count];
        var used = new bool[Count];
        foreach (var c in candidates)
        {
            Add(c.Route.FromId, c.From);
            Add(c.Route.ToId, c.To);
        }

        var pins = inputs.Pins;
        var previous = inputs.BaseIndex.NodesOf(Names, used, inputs.FromCatalogue); // both in ordinal order
        for (var s = 0; s < Count; s++)
        {
            if (!used[s])
            {
                Pin[s] = Previous[s] = -1;
                continue;
            }

            Pin[s] = pins.Count > 0 && pins.TryGetValue(Names[s], out var pin) ? nodeIndex[pin] : -1;
            var prev = previous[s];
            PreviousName[s] = prev;
            Previous[s] = prev is not null && nodeIndex.TryGetValue(prev, out var p) ? p : -1;
        }

        void Add(int s, SymbolContract contract)
        {
            used[s] = true;
            Cpu[s] = Math.Max(Cpu[s], contract.CpuMillis);
            Memory[s] = Math.Max(Memory[s], contract.MemoryMb);
        }
    }

    public int Count { get; }

    public string[] Names { get; }

    public double[] Cpu { get; }

    public double[] Memory { get; }

    /// <summary>The node a symbol is pinned to, or -1.</summary>
    public int[] Pin { get; }

    /// <summary>The node the base plan put a symbol on, or -1 (none, or a node that is gone).</summary>
    public int[] Previous { get; }

    public string?[] PreviousName { get; }
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
    private readonly int[] _members; // every component's members together, each component's in the order the routes name them
    private readonly int[] _start; // by root: where its members start in _members (root + 1: where they end)
    private readonly bool[] _tried;

    public ComponentPlacer(IReadOnlyList<NumaNodeSpec> nodes, int[] byId, (int From, int To)[] ends, Symbols symbols, double[] freeCpu, double[] freeMem, int[] placed)
    {
        (_nodes, _byId, _symbols, _freeCpu, _freeMem, _placed) = (nodes, byId, symbols, freeCpu, freeMem, placed);
        var parent = new int[symbols.Count];
        for (var s = 0; s < parent.Length; s++)
        {
            parent[s] = s;
        }

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

        // Members in the order the routes name them (provider, then caller), counted by root, then laid out root by root.
        _root = new int[symbols.Count];
        _tried = new bool[symbols.Count];
        var seen = new bool[symbols.Count];
        var order = new List<int>(ends.Length * 2);
        var count = new int[symbols.Count + 1];
        foreach (var (from, to) in ends)
        {
            Member(to);
            Member(from);
        }

        void Member(int s)
        {
            var root = _root[s] = Find(s);
            if (!seen[s])
            {
                seen[s] = true;
                order.Add(s);
                count[root + 1]++;
            }

            if (symbols.Pin[s] >= 0 || symbols.PreviousName[s] is not null)
            {
                _tried[root] = true; // not new: route by route
            }
        }

        _start = count;
        for (var r = 1; r < _start.Length; r++)
        {
            _start[r] += _start[r - 1];
        }

        _members = new int[order.Count];
        var filled = new int[symbols.Count];
        foreach (var s in order)
        {
            var root = _root[s];
            _members[_start[root] + filled[root]++] = s;
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
        var members = _members.AsSpan(_start[root], _start[root + 1] - _start[root]);
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
