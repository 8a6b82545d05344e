using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NuGet.Versioning;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Planning;

/// <summary>A desired route, as routes.json states it (index = its position, for error locations).</summary>
public sealed record RouteSpec(int Index, string From, string To, string RangeText, VersionRange Range, double? BudgetUs, double RateHz, int Priority)
{
    /// <summary>
    /// <c>from -> to</c>: the route's identity in a plan (written when first read: routes whose ends the planner has numbered
    /// are told apart by their numbers, <see cref="FromId"/> and <see cref="ToId"/>, and most plans never read it).
    /// </summary>
    public string Key => field ??= $"{From} -> {To}";

    /// <summary>The number <see cref="PlanInputs.SymbolNames"/> gives the caller, or -1 when no contract has its address.</summary>
    public int FromId { get; internal set; } = -1;

    /// <summary>The number <see cref="PlanInputs.SymbolNames"/> gives the provider, or -1 when no contract has its address.</summary>
    public int ToId { get; internal set; } = -1;

    /// <summary>Equal routes have equal members and numbers (<see cref="Key"/>, written when first read, is not compared).</summary>
    public bool Equals(RouteSpec? other) => ReferenceEquals(this, other) || (other is not null && Index == other.Index && From == other.From
        && To == other.To && RangeText == other.RangeText && Equals(Range, other.Range) && BudgetUs == other.BudgetUs
        && RateHz.Equals(other.RateHz) && Priority == other.Priority && FromId == other.FromId && ToId == other.ToId);

    /// <summary>Of the members that do not change once the route is read (not its numbers).</summary>
    public override int GetHashCode() => HashCode.Combine(Index, From, To, RangeText, BudgetUs, RateHz, Priority);
}

/// <summary>What the planner knows of one version of a symbol.</summary>
public sealed record SymbolContract(
    string Address, NuGetVersion Version, string Kind, JsonNode? Input, JsonNode? Output, IReadOnlyList<string> CompatibleWith,
    IReadOnlyList<string> Lanes, double LatencyUs, double CpuMillis, double MemoryMb, bool Acyclic, JsonObject? Serve = null)
{
    public JsonObject ToJson()
    {
        var json = Fields();
        if (Serve is not null)
        {
            json["serve"] = Serve.DeepClone(); // only when declared, so inputs without serve blocks hash as before
        }

        return json;
    }

    private JsonObject Fields() => new()
    {
        ["address"] = Address,
        ["version"] = Version.ToFullString(),
        ["kind"] = Kind,
        ["input"] = Input?.DeepClone(),
        ["output"] = Output?.DeepClone(),
        ["compatible_with"] = new JsonArray([.. CompatibleWith.Select(c => (JsonNode)JsonValue.Create(c))]),
        ["lanes"] = new JsonArray([.. Lanes.Select(c => (JsonNode)JsonValue.Create(c))]),
        ["latency_us"] = LatencyUs,
        ["cpu_millis"] = CpuMillis,
        ["memory_mb"] = MemoryMb,
        ["acyclic"] = Acyclic,
    };
}

public sealed record NumaNodeSpec(string Id, string Host, double CpuMillis, double MemoryMb);

public sealed record AclRule(bool Allow, string From, string To);

public sealed record QosRule(string Match, double BudgetUs);

/// <summary>Everything a plan is computed from, validated, in canonical order.</summary>
public sealed class PlanInputs
{
    public static readonly string[] LaneKinds = ["shm", "uds", "tcp"];

    public required IReadOnlyList<RouteSpec> Routes { get; init; }

    /// <summary>Contracts by address, versions ascending (the symbols that routes and pins name).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<SymbolContract>> Contracts =>
        _contracts ??= SymbolNames.Select((name, id) => KeyValuePair.Create(name, VersionsOf(id))).ToDictionary(StringComparer.Ordinal);

    private Dictionary<string, IReadOnlyList<SymbolContract>>? _contracts;

    /// <summary>The symbols that routes and pins name and that have contracts, in ordinal order: a symbol's number is its index.</summary>
    internal string[] SymbolNames { get; private init; } = [];

    /// <summary>The catalogue the contracts came from, and each numbered symbol's rank in it (null: given as a list).</summary>
    internal (SymbolCatalogue Catalogue, int[] Ranks)? FromCatalogue { get; private init; }

    /// <summary>
    /// A numbered symbol's contracts, versions ascending: from the catalogue by the symbol's rank, or as given. Read when a
    /// route is checked, not copied out for every symbol when the inputs are built (each copy's type check touched a list
    /// that a kept route check never reads: a cache miss per symbol).
    /// </summary>
    internal IReadOnlyList<SymbolContract> VersionsOf(int id) => FromCatalogue is var (catalogue, ranks) ? catalogue.VersionsAt(ranks[id]) : _versionsOf[id];

    private IReadOnlyList<SymbolContract>[] _versionsOf = [];

    public required IReadOnlyList<NumaNodeSpec> Nodes { get; init; }

    public required IReadOnlyDictionary<string, double> LaneP99Us { get; init; }

    /// <summary><see cref="LaneP99Us"/> in <see cref="LaneKinds"/> order, read once.</summary>
    internal double[] LaneP99ByKind => _laneP99ByKind ??= [.. LaneKinds.Select(k => LaneP99Us[k])];

    private double[]? _laneP99ByKind;

    /// <summary>Each route's memo by route index (null: routes not read through <see cref="PlanCanonical.Routes(JsonArray, PlanCanonical.RouteKey[])"/>).</summary>
    internal RouteMemo[]? Memos { get; private init; }

    /// <summary>
    /// Everything but the route and its contracts that the static checks of a route that passes them read: strict mode, the
    /// ACL, the QoS rules and the lanes' p99s, as one text (the same rules, the same text; the same instance as the last
    /// inputs' when equal, so that comparing it is a reference check). A route's kept check (<see cref="RouteMemo.Checked"/>)
    /// holds for inputs with the same text.
    /// </summary>
    internal string CheckRules => _checkRules ??= SameAsLast(string.Create(CultureInfo.InvariantCulture,
        $"{Strict} {Acl.Count} {string.Concat(Acl.Select(a => $"{a.Allow} {Text(a.From)}{Text(a.To)}"))}{Qos.Count} {string.Concat(Qos.Select(q => $"{Text(q.Match)}{q.BudgetUs:R} "))}{string.Join(' ', LaneP99ByKind.Select(p => p.ToString("R", CultureInfo.InvariantCulture)))}"));

    private static string Text(string s) => $"{s.Length}:{s} "; // length first: no text can pass for two

    private string? _checkRules;
    private static string? s_lastCheckRules;

    private static string SameAsLast(string rules)
    {
        var last = Volatile.Read(ref s_lastCheckRules);
        if (string.Equals(last, rules, StringComparison.Ordinal))
        {
            return last!;
        }

        Volatile.Write(ref s_lastCheckRules, rules);
        return rules;
    }

    public required bool Strict { get; init; }

    public required IReadOnlyList<AclRule> Acl { get; init; }

    public required IReadOnlyList<QosRule> Qos { get; init; }

    public required IReadOnlyDictionary<string, string> Pins { get; init; }

    /// <summary>Nodes left out because their silo is dead (sorted; empty for a plan made by hand).</summary>
    public IReadOnlyList<string> Down { get; init; } = [];

    /// <summary>Symbols pinned to a node that is down, and that node: their routes are rejected as <c>node-down</c>.</summary>
    public IReadOnlyDictionary<string, string> DownPins { get; init; } = new Dictionary<string, string>();

    /// <summary>policy.json <c>auto_replan</c>: a silo's death makes the survivors plan without its node (docs/operations.md).</summary>
    public bool AutoReplan { get; init; }

    /// <summary>policy.json <c>mcp_aliases</c> (symbol → the name <c>rtt mcp serve</c> gives the tool), or null.</summary>
    public JsonObject? McpAliases { get; init; }

    /// <summary>
    /// policy.json <c>unsandboxed</c>: symbol patterns (exact, or a prefix ending in <c>*</c>) whose <c>process</c> and
    /// <c>mcp-stdio</c> drivers a strict-mode silo may run without a sandbox (docs/security.md). Sorted, distinct.
    /// </summary>
    public IReadOnlyList<string> Unsandboxed { get; init; } = [];

    /// <summary>Where the policy was read from (named by planning errors).</summary>
    public string PolicySource { get; init; } = "policy.json";

    /// <summary>The applied plan this one is computed against, or null.</summary>
    public JsonObject? Base { get; init; }

    /// <summary>The base plan's placement (symbol → node), read once.</summary>
    internal IReadOnlyDictionary<string, string> BasePlacement => BaseIndex.Placement;

    /// <summary>The base plan's placement and lane routes, read once.</summary>
    internal BaseIndex BaseIndex => _baseIndex ??= BaseIndex.Of(Base);

    /// <summary>The base plan's routes (<c>from -> to</c> of its lanes), read once.</summary>
    internal IReadOnlySet<string> BaseRoutes => BaseIndex.Routes;

    private BaseIndex? _baseIndex;

    /// <summary><c>sha256:</c> of the canonical inputs (independent of file names, order and signing keys).</summary>
    public string Hash => HashWork.Result();

    private Beside<string> HashWork { get; init; } = null!;

    /// <summary><c>sha256:</c> of the tuned profile whose lane p99s were used, or null (docs/autotune.md).</summary>
    public string? TunedProfile { get; init; }

    /// <summary>
    /// The tuned profile's lane settings when one is used: the planner gives SHM lanes at least its ring size and puts its
    /// idle spins and yields in the plan's <c>tuning</c>, so a re-tune reaches the lanes through a signed plan (autotune.md).
    /// </summary>
    public Rtt.Core.Autotune.TuneSettings? TunedSettings { get; init; }

    /// <summary>Why the workspace's tuned profile was not used (made on another machine), or null.</summary>
    public string? TunedIgnored { get; private set; }

    /// <summary>Reads a workspace: routes, policy, topology, and contracts from the registry (symbols.json + signed objects).</summary>
    /// <param name="down">Nodes of the topology that cannot take anything (their silo is dead: policy <c>auto_replan</c>,
    /// docs/operations.md); nothing is placed on them and routes of symbols pinned to them are rejected as <c>node-down</c>.</param>
    public static PlanInputs Load(RttWorkspace workspace, JsonObject? basePlan = null, IReadOnlyCollection<string>? down = null)
    {
        var routesJson = ReadDocument(workspace.RoutesPath, SchemaValidator.Routes, InputShape.SurelyValidRoutes);
        var policyJson = ReadDocument(workspace.PolicyPath, SchemaValidator.Policy, InputShape.SurelyValidPolicy);
        var topologyJson = ReadDocument(workspace.TopologyPath, SchemaValidator.Topology, InputShape.SurelyValidTopology);
        var strict = policyJson["strict"] is not JsonValue sv || sv.GetValue<bool>();
        var needed = (routesJson["routes"] as JsonArray ?? []).SelectMany(r => new[] { (string?)r?["from"], (string?)r?["to"] })
            .Concat((policyJson["pins"] as JsonObject ?? []).Select(p => p.Key)).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var contracts = LoadContracts(workspace, strict, needed);
        // A tuned profile made on this machine gives measured lane p99s (one made elsewhere is not used; a bad one is refused).
        var tuned = Rtt.Core.Autotune.TunedProfile.Load(workspace, Rtt.Core.Autotune.MachineKey.Local(), out var mismatch);
        var inputs = Build(routesJson, policyJson, topologyJson, contracts, basePlan, workspace.RoutesPath, workspace.PolicyPath, workspace.TopologyPath, tuned, down);
        inputs.TunedIgnored = mismatch;
        return inputs;
    }

    /// <summary>
    /// The slots in the order of their ranks: the ranks (distinct, each below <paramref name="rankCount"/>) marked in a bit
    /// set and read back in order, a pass over the catalogue's ranks instead of a comparison sort of the slots.
    /// </summary>
    internal static int[] SlotsByRank(List<int> ranks, Dictionary<int, int> slotOfRank, int rankCount)
    {
        var marked = new ulong[(rankCount + 63) / 64];
        foreach (var rank in ranks)
        {
            marked[rank >> 6] |= 1UL << (rank & 63);
        }

        var order = new int[ranks.Count];
        var at = 0;
        for (var w = 0; w < marked.Length; w++)
        {
            for (var bits = marked[w]; bits != 0; bits &= bits - 1)
            {
                order[at++] = slotOfRank[(w << 6) + System.Numerics.BitOperations.TrailingZeroCount(bits)];
            }
        }

        return order;
    }

    /// <summary>Builds inputs from parsed documents (used by Load, tests and the benchmark).</summary>
    public static PlanInputs Build(JsonObject routesJson, JsonObject policyJson, JsonObject topologyJson, IEnumerable<SymbolContract> contracts,
        JsonObject? basePlan, string routesSource = "routes.json", string policySource = "policy.json", string topologySource = "topology.json",
        Rtt.Core.Autotune.TunedProfile? tuned = null, IReadOnlyCollection<string>? down = null)
    {
        // The shapes of routes and topology are checked by one walk over the nodes; the schema judges what that walk is not sure of.
        if (!InputShape.SurelyValidRoutes(routesJson, out var keys))
        {
            Validate(SchemaValidator.Routes, routesJson, routesSource);
        }

        if (!InputShape.SurelyValidPolicy(policyJson))
        {
            Validate(SchemaValidator.Policy, policyJson, policySource);
        }
        if (!InputShape.SurelyValidTopology(topologyJson))
        {
            Validate(SchemaValidator.Topology, topologyJson, topologySource);
        }

        var list = routesJson["routes"]!.AsArray();
        var routes = new List<RouteSpec>(list.Count);
        // Each route's canonical bytes, for the hash (written once per content and kept: PlanCanonical), and its members
        // as the shape's walk read them (a surely valid route has no others), so the routes are walked once.
        var memos = keys is not null ? PlanCanonical.Routes(list, keys) : null;
        var routeBytes = memos?.Select(m => m.Bytes).ToArray();
        var ranges = new Dictionary<string, VersionRange>(StringComparer.Ordinal); // routes repeat a few range texts: each parsed once
        for (var i = 0; i < list.Count; i++)
        {
            var key = keys is not null ? keys[i] : PlanCanonical.RouteKey.Of(list[i]!.AsObject());
            var rangeText = key.Version ?? "*";
            if (!ranges.TryGetValue(rangeText, out var range))
            {
                ranges[rangeText] = range = ParseRange(rangeText, $"{routesSource}: /routes/{i}/version");
            }

            routes.Add(new RouteSpec(i, key.From, key.To, rangeText, range, key.Budget, key.Rate ?? 0, key.Priority is { } p ? (int)p : 0));
        }

        var nodes = new List<NumaNodeSpec>();
        foreach (var host in topologyJson["hosts"]!.AsArray())
        {
            foreach (var n in host!["numa_nodes"]!.AsArray())
            {
                nodes.Add(new NumaNodeSpec((string)n!["id"]!, (string)host["name"]!, Number(n["cpu_millis"]), Number(n["memory_mb"])));
            }
        }

        if (nodes.Count == 0 && routes.Count > 0)
        {
            throw new RttException(ErrorCodes.PlanTopologyInvalid, "the topology has no NUMA node to place symbols on", $"{topologySource}: /hosts",
                "declare at least one host with one NUMA node");
        }

        var duplicate = nodes.GroupBy(n => n.Id, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new RttException(ErrorCodes.PlanTopologyInvalid, $"node id \"{duplicate.Key}\" appears more than once", $"{topologySource}: /hosts",
                "node ids must be unique across hosts");
        }

        nodes.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        var allNodes = nodes.Select(n => n.Id).ToHashSet(StringComparer.Ordinal);
        List<string> downNodes = [.. (down ?? []).Where(allNodes.Contains).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (downNodes.Count > 0)
        {
            nodes.RemoveAll(n => downNodes.Contains(n.Id, StringComparer.Ordinal));
            if (nodes.Count == 0 && routes.Count > 0)
            {
                throw new RttException(ErrorCodes.PlanTopologyInvalid, $"every NUMA node of the topology is down ({string.Join(", ", downNodes)})", $"{topologySource}: /hosts",
                    "start a silo for at least one node, then plan again");
            }
        }

        var lanes = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var kind in LaneKinds)
        {
            lanes[kind] = topologyJson["lanes"]?[kind]?["p99_us"] is JsonValue v ? Number(v) // set by hand: wins
                : tuned is not null && tuned.LaneP99Us.TryGetValue(kind, out var measured) ? measured // measured by rtt autotune
                : kind switch { "shm" => 50, "uds" => 300, _ => 10_000 }; // the seed's targets when nothing is measured
        }

        var acl = (policyJson["acl"] as JsonArray ?? []).Select(e =>
        {
            var allow = e!["allow"] is JsonObject;
            var rule = (e["allow"] ?? e["deny"])!;
            return new AclRule(allow, (string)rule["from"]!, (string)rule["to"]!);
        }).ToList();
        var qosRules = (policyJson["qos"] as JsonArray ?? []).Select(q => new QosRule((string)q!["match"]!, Number(q["p99_budget_us"]))).ToList();
        var pins = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var downPins = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (symbol, node) in policyJson["pins"] as JsonObject ?? [])
        {
            var id = (string)node!;
            if (downNodes.Contains(id, StringComparer.Ordinal))
            {
                downPins[symbol] = id; // its routes are rejected as node-down (Planner)
                continue;
            }

            if (!nodes.Any(n => n.Id == id))
            {
                throw new RttException(ErrorCodes.PlanPinUnknownNode, $"pin of {symbol} names node \"{id}\", which the topology does not have", $"{policySource}: /pins/{symbol}",
                    $"use one of: {string.Join(", ", nodes.Select(n => n.Id))}");
            }

            pins[symbol] = id;
        }

        // Only the symbols that routes and pins name can change the plan: only they are kept and hashed,
        // so a catalogue of 100,000 symbols costs nothing for a plan of 100 routes.
        // Each such symbol gets a number: its place in ordinal order, so the planner reads its contracts, placement and
        // demand from arrays, and walking the numbers walks the symbols in the order the plan writes them.
        string[] addresses;
        IReadOnlyList<SymbolContract>[] versionsOf = []; // given as a list only; a catalogue's are read from it (VersionsOf)
        (SymbolCatalogue, int[])? fromCatalogue = null;
        if (contracts is SymbolCatalogue catalogue)
        {
            // Each end looked up by name (on every core: the lookups are independent reads of the frozen index, and most of
            // their time is waiting for memory), then numbered by rank: ordinal order without comparing texts.
            // A route whose content was looked up in this catalogue before (its memo) is not looked up again.
            var endRank = new int[routes.Count * 2];
            var lookUp = new List<int>();
            for (var i = 0; i < routes.Count; i++)
            {
                if (memos?[i].Ends is { } ends && ends.Catalogue == catalogue.Id)
                {
                    (endRank[2 * i], endRank[(2 * i) + 1]) = (ends.From, ends.To);
                }
                else
                {
                    lookUp.Add(i);
                }
            }

            var parts = Math.Min(Environment.ProcessorCount, Math.Max(1, lookUp.Count / 2048)); // a few thousand routes a part at least
            Parallel.For(0, parts, new ParallelOptions { TaskScheduler = TaskScheduler.Default }, part => // the pool's threads, whatever scheduler the caller runs on
            {
                for (var j = part * lookUp.Count / parts; j < (part + 1) * lookUp.Count / parts; j++)
                {
                    var i = lookUp[j];
                    endRank[2 * i] = catalogue.Rank(routes[i].From);
                    endRank[(2 * i) + 1] = catalogue.Rank(routes[i].To);
                    if (memos is not null)
                    {
                        memos[i].Ends = new RouteEnds(catalogue.Id, endRank[2 * i], endRank[(2 * i) + 1]);
                    }
                }
            });

            var slotOfRank = new Dictionary<int, int>((routes.Count * 2) + pins.Count);
            var ranks = new List<int>(slotOfRank.EnsureCapacity(0));
            int Slot(int rank)
            {
                if (rank < 0)
                {
                    return -1;
                }

                if (!slotOfRank.TryGetValue(rank, out var slot))
                {
                    slotOfRank[rank] = slot = ranks.Count;
                    ranks.Add(rank);
                }

                return slot;
            }

            var routeSlots = new int[endRank.Length];
            for (var e = 0; e < endRank.Length; e++)
            {
                routeSlots[e] = Slot(endRank[e]);
            }

            foreach (var pinned in pins.Keys)
            {
                Slot(catalogue.Rank(pinned));
            }

            var order = SlotsByRank(ranks, slotOfRank, catalogue.AddressCount);
            var idOfSlot = new int[order.Length];
            addresses = new string[order.Length];
            var rankOf = new int[order.Length];
            for (var id = 0; id < order.Length; id++)
            {
                idOfSlot[order[id]] = id;
                rankOf[id] = ranks[order[id]];
                addresses[id] = catalogue.AddressAt(rankOf[id]);
            }

            fromCatalogue = (catalogue, rankOf);

            for (var i = 0; i < routes.Count; i++)
            {
                routes[i].FromId = routeSlots[2 * i] < 0 ? -1 : idOfSlot[routeSlots[2 * i]];
                routes[i].ToId = routeSlots[(2 * i) + 1] < 0 ? -1 : idOfSlot[routeSlots[(2 * i) + 1]];
            }
        }
        else
        {
            var relevant = routes.SelectMany(r => new[] { r.From, r.To }).Concat(pins.Keys).ToHashSet(StringComparer.Ordinal);
            var found = new Dictionary<string, List<SymbolContract>>(StringComparer.Ordinal);
            foreach (var c in contracts)
            {
                if (relevant.Contains(c.Address))
                {
                    (found.TryGetValue(c.Address, out var versions) ? versions : found[c.Address] = []).Add(c);
                }
            }

            addresses = [.. found.Keys];
            Array.Sort(addresses, StringComparer.Ordinal);
            versionsOf = new IReadOnlyList<SymbolContract>[addresses.Length];
            var idOf = new Dictionary<string, int>(addresses.Length, StringComparer.Ordinal);
            for (var id = 0; id < addresses.Length; id++)
            {
                versionsOf[id] = [.. found[addresses[id]].OrderBy(c => c.Version)]; // stable: equal versions keep their order
                idOf[addresses[id]] = id;
            }

            foreach (var r in routes)
            {
                r.FromId = idOf.GetValueOrDefault(r.From, -1);
                r.ToId = idOf.GetValueOrDefault(r.To, -1);
            }
        }

        // The hash covers meaning, not layout: nodes, ACL rules and contracts in a fixed order (their order in the
        // files means nothing); routes and QoS rules as given (order breaks priority ties / picks the first match).
        // Built as members so that routes.json is written where it is, not copied (Hash below; same bytes as one object).
        var canonical = new JsonObject
        {
            ["policy"] = new JsonObject
            {
                ["strict"] = policyJson["strict"] is not JsonValue st || st.GetValue<bool>(),
                ["acl"] = new JsonArray([.. acl.Select(a => $"{(a.Allow ? "allow" : "deny")} {a.From} {a.To}").Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(a => (JsonNode)JsonValue.Create(a))]),
                ["qos"] = new JsonArray([.. qosRules.Select(q => (JsonNode)new JsonObject { ["match"] = q.Match, ["p99_budget_us"] = q.BudgetUs })]),
                ["pins"] = policyJson["pins"]?.DeepClone(),
            },
            ["nodes"] = new JsonArray([.. nodes.Select(n => (JsonNode)new JsonObject { ["id"] = n.Id, ["host"] = n.Host, ["cpu_millis"] = n.CpuMillis, ["memory_mb"] = n.MemoryMb })]),
            ["lanes"] = new JsonObject([.. lanes.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)JsonValue.Create(l.Value)))]),
            ["base"] = (string?)basePlan?["plan_id"],
        };
        if (tuned is not null)
        {
            canonical["tuned"] = tuned.Hash; // only with a profile, so plans without one hash as before; a re-tune shows in `inputs`
        }

        if (downNodes.Count > 0)
        {
            canonical["down"] = new JsonArray([.. downNodes.Select(d => (JsonNode)JsonValue.Create(d))]); // only when some are, so other plans hash as before
        }

        if (policyJson["mcp_aliases"] is JsonObject { Count: > 0 } aliases)
        {
            canonical["mcp_aliases"] = aliases.DeepClone(); // only when given, so plans without aliases hash as before
        }

        List<string> unsandboxed = [.. (policyJson["unsandboxed"] as JsonArray ?? []).Select(u => (string)u!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (unsandboxed.Count > 0)
        {
            canonical["unsandboxed"] = new JsonArray([.. unsandboxed.Select(u => (JsonNode)JsonValue.Create(u))]); // only when given, as above
        }

        // The members written once each and joined (PlanCanonical): the same bytes as one object holding them all. Everything
        // that reads the documents and contracts is written here; only hashing the bytes (megabytes for 10,000 routes) runs
        // beside the planning that follows, which needs the hash only when it writes the plan.
        List<KeyValuePair<string, byte[]>> members = [.. canonical.Select(m => KeyValuePair.Create(m.Key, PlanCanonical.Value(m.Value)))];
        var contractBytes = fromCatalogue is var (source, rankOfId) ? CatalogueBytes(source, rankOfId) : PlanCanonical.Contracts([.. versionsOf.SelectMany(v => v)]);
        var wholeRoutes = routeBytes is null ? PlanCanonical.Value(routesJson) : null;
        string Hash() => PlanCanonical.Hash([
            .. members.Select(m => KeyValuePair.Create<string, Action<HashSink>>(m.Key, sink => sink.Write(m.Value))),
            KeyValuePair.Create<string, Action<HashSink>>("contracts", sink => PlanCanonical.Items(sink, contractBytes)),
            KeyValuePair.Create<string, Action<HashSink>>("routes", sink =>
            {
                if (wholeRoutes is not null)
                {
                    sink.Write(wholeRoutes);
                    return;
                }

                sink.Write("{\"routes\":"u8); // InputShape: "routes" is its one member
                PlanCanonical.Items(sink, routeBytes!);
                sink.Write("}"u8);
            }),
        ]);
        var hash = Beside.Start(Hash); // hashed beside the planning that follows, or when the hash is first read

        return new PlanInputs
        {
            Routes = routes,
            SymbolNames = addresses,
            FromCatalogue = fromCatalogue,
            _versionsOf = versionsOf,
            Nodes = nodes,
            LaneP99Us = lanes,
            Strict = policyJson["strict"] is not JsonValue s || s.GetValue<bool>(),
            Acl = acl,
            Qos = qosRules,
            Pins = pins,
            Down = downNodes,
            DownPins = downPins,
            AutoReplan = policyJson["auto_replan"] is JsonValue ar && ar.GetValue<bool>(),
            Base = basePlan,
            McpAliases = policyJson["mcp_aliases"] is JsonObject { Count: > 0 } a ? (JsonObject)a.DeepClone() : null,
            Unsandboxed = unsandboxed,
            PolicySource = policySource,
            TunedProfile = tuned?.Hash,
            TunedSettings = tuned?.Settings,
            HashWork = hash,
            Memos = memos,
        };
    }

    // The canonical bytes of every version of the symbols at these ranks, in order.
    private static byte[][] CatalogueBytes(SymbolCatalogue catalogue, int[] ranks)
    {
        var count = 0;
        foreach (var rank in ranks)
        {
            count += catalogue.VersionsAt(rank).Count;
        }

        var result = new byte[count][];
        var at = 0;
        foreach (var rank in ranks)
        {
            foreach (var bytes in catalogue.ContractBytes(rank))
            {
                result[at++] = bytes;
            }
        }

        return result;
    }

    /// <summary>A contract from a service manifest object (the manifest schema's fields).</summary>
    public static SymbolContract FromManifest(JsonObject m) => new(
        (string)m["address"]!, NuGetVersion.Parse((string)m["version"]!), "service", m["input"]?.DeepClone(), m["output"]?.DeepClone(),
        [.. (m["compatible_with"] as JsonArray ?? []).Select(c => (string)c!).Order(StringComparer.Ordinal)],
        [.. (m["lanes"] as JsonArray ?? new JsonArray("shm", "uds", "tcp")).Select(c => (string)c!).Order(StringComparer.Ordinal)],
        m["latency_us"] is JsonValue l ? Number(l) : 0,
        m["demand"]?["cpu_millis"] is JsonValue c ? Number(c) : 0,
        m["demand"]?["memory_mb"] is JsonValue mem ? Number(mem) : 0,
        m["x-acyclic"] is JsonValue a && a.GetValue<bool>(),
        m["serve"] is { } serve ? Rtt.Core.Calls.ServeSpec.Normalize(serve, (string)m["address"]!) : null);

    private static IEnumerable<SymbolContract> LoadContracts(RttWorkspace workspace, bool strict, IReadOnlySet<string> needed)
    {
        var contracts = new List<SymbolContract>();
        using var store = RegistryStore.Open(workspace);
        var symbolsPath = Path.Combine(workspace.Registry, "symbols.json");
        var symbols = WorkspaceFiles.Exists(symbolsPath) ? RttWorkspace.ReadObject(symbolsPath) : [];
        var mcpServers = new Dictionary<string, (JsonObject? Serve, int PinFormat)>(StringComparer.Ordinal);
        var read = new Dictionary<string, byte[]>(StringComparer.Ordinal); // the service objects read (and signature-checked) below: their content without sign, by hash, for the manifest files' check

        // What routes and pins name, in symbols.json's order. The service objects among them are read and signature-checked
        // on every core (an Ed25519 check each: the bulk of reading a large workspace); the first failure in this order is
        // the one reported, as when they were read one by one.
        var entries = new List<(string Address, string Kind, JsonNode Entry)>();
        foreach (var (address, versions) in symbols)
        {
            if (!needed.Contains(address))
            {
                continue; // only what routes and pins name is read (and signature-checked)
            }

            foreach (var v in versions!.AsArray())
            {
                entries.Add((address, (string)v!["kind"]!, v));
            }
        }

        var hashes = entries.Select(e => e.Kind == "service" ? (string)e.Entry["object"]! : null).ToArray();
        var contents = new byte[]?[entries.Count];
        var services = new SymbolContract?[entries.Count];
        var failures = new System.Runtime.ExceptionServices.ExceptionDispatchInfo?[entries.Count];
        _ = store.Pack; // opened once here, not by the first readers at the same time
        Parallel.For(0, entries.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            if (hashes[i] is not { } hash)
            {
                return;
            }

            try
            {
                services[i] = FromManifest(store.ReadObject(hash, entries[i].Address, out var content));
                contents[i] = content;
            }
            catch (Exception ex)
            {
                failures[i] = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
            }
        });

        for (var i = 0; i < entries.Count; i++)
        {
            failures[i]?.Throw();
            var (address, kind, v) = entries[i];
            if (services[i] is { } service)
            {
                read[hashes[i]!] = contents[i]!;
                contracts.Add(service);
            }
            else
            {
                // Agents and MCP tools: types and version from discovery; they run where their driver is and need no capacity.
                // An MCP tool whose server manifest says how to reach it (mcp.serve) is served by its own endpoint.
                var serve = McpPrimitive.IsMcpKind(kind) && (string?)v["object"] is { } tool ? McpCatalog.ServeOfTool(workspace, store, tool, mcpServers) : null;
                contracts.Add(new SymbolContract(address, NuGetVersion.Parse((string)v["version"]!), kind, v["input"]?.DeepClone(), v["output"]?.DeepClone(),
                    [], ["shm", "tcp", "uds"], 0, 0, 0, false, serve));
            }
        }

        // Every manifest file must be what the registry signed (strict), or is read as it is (not strict).
        if (Directory.Exists(workspace.Manifests))
        {
            foreach (var file in WorkspaceFiles.Entries(workspace.Manifests, "*.json"))
            {
                if (Path.GetFileName(file).StartsWith("mcp.", StringComparison.Ordinal))
                {
                    continue;
                }

                var manifest = Sources.Manifest(WorkspaceFiles.ReadBytes(file), file);
                var key = RegistryIndex.Key(manifest.Id, manifest.Version);
                var signed = store.Index.TryGet(key, out var hash) && SameContent(read.GetValueOrDefault(hash) ?? Content(store, hash, key), manifest.Object);
                if (signed)
                {
                    continue;
                }

                if (strict)
                {
                    throw new RttException(ErrorCodes.PlanManifestUnsigned, $"manifest {key} is not in the registry as a signed object (new or changed since the last scan)", file,
                        "run `rtt scan` to ingest and sign it, or set \"strict\": false in .rtt/policy.json");
                }

                contracts.RemoveAll(c => c.Address == manifest.Id && c.Version.ToFullString() == manifest.Version);
                contracts.Add(FromManifest(manifest.Object));
            }
        }

        return contracts;
    }

    // A stored object's content without sign (read and signature-checked).
    private static byte[] Content(RegistryStore store, string hash, string key)
    {
        store.ReadObject(hash, key, out var content);
        return content;
    }

    // The stored object's content (without sign) is the manifest file's, canonical bytes compared.
    private static bool SameContent(byte[] stored, JsonObject file) =>
        stored.AsSpan().SequenceEqual(CanonicalJson.SerializeMembers([.. file.Where(m => m.Key != ObjectSigner.SignMember)]));

    /// <param name="surelyValid">A fast shape check (InputShape) whose "surely valid" spares the schema's evaluation.</param>
    private static JsonObject ReadDocument(string path, Lazy<global::Json.Schema.JsonSchema> schema, Func<JsonObject, bool>? surelyValid = null)
    {
        var yaml = Path.ChangeExtension(path, ".yaml");
        var json = WorkspaceFiles.Exists(path);
        var doc = !json && WorkspaceFiles.Exists(yaml) ? YamlDocuments.ReadObject(yaml) : RttWorkspace.ReadObject(path);
        if (surelyValid is null || !surelyValid(doc))
        {
            Validate(schema, doc, json ? path : yaml);
        }

        return doc;
    }

    private static void Validate(Lazy<global::Json.Schema.JsonSchema> schema, JsonObject doc, string source)
    {
        using var parsed = JsonDocument.Parse(CanonicalJson.Serialize(doc));
        try
        {
            SchemaValidator.Validate(schema, parsed.RootElement, source);
        }
        catch (RttException ex) when (ex.Code == ErrorCodes.SchemaViolation)
        {
            throw new RttException(ErrorCodes.PlanInputInvalid, ex.Message, ex.Location, ex.Remedy);
        }
    }

    /// <summary>NuGet.Versioning ranges, plus the npm-style ^ and ~ that people write in routes.</summary>
    public static VersionRange ParseRange(string text, string location)
    {
        var t = text.Trim();
        if (t is "*" or "")
        {
            return VersionRange.All;
        }

        if ((t.StartsWith('^') || t.StartsWith('~')) && NuGetVersion.TryParse(t[1..], out var v))
        {
            var upper = t[0] == '^'
                ? (v.Major > 0 ? new NuGetVersion(v.Major + 1, 0, 0) : v.Minor > 0 ? new NuGetVersion(0, v.Minor + 1, 0) : new NuGetVersion(0, 0, v.Patch + 1))
                : new NuGetVersion(v.Major, v.Minor + 1, 0);
            return new VersionRange(v, includeMinVersion: true, upper, includeMaxVersion: false);
        }

        if (VersionRange.TryParse(t, out var range))
        {
            // A bare version in NuGet means "at least"; in a route it means exactly that version.
            return NuGetVersion.TryParse(t, out var exact) ? new VersionRange(exact, true, exact, true) : range;
        }

        throw new RttException(ErrorCodes.PlanRangeInvalid, $"\"{text}\" is not a version range", location,
            "use 1.2.0, ^1.0.0, ~1.2.0, [1.0.0,2.0.0) or *");
    }

    /// <summary>A JSON number as a double, whatever CLR type the node was built from.</summary>
    public static double Number(JsonNode? node) => node is JsonValue v
        ? v.TryGetValue<double>(out var d) ? d
        : v.TryGetValue<long>(out var l) ? l
        : v.TryGetValue<int>(out var i) ? i
        : double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture)
        : throw new InvalidOperationException("not a number");

    internal static string Format(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
