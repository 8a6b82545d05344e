using System.Buffers;
using System.Text.Json.Nodes;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Registry;

namespace Rtt.Planning;

/// <summary>A route that passed the static checks, with what placement must still satisfy.</summary>
internal sealed record Candidate(RouteSpec Route, SymbolContract From, SymbolContract To, IReadOnlyList<string> Lanes, double? Budget);

/// <summary>A rejected route: the constraint that binds and the values that show why.</summary>
public sealed record Rejection(RouteSpec Route, string Constraint, JsonObject Values)
{
    public JsonObject ToJson() => new()
    {
        ["route"] = new JsonObject { ["from"] = Route.From, ["to"] = Route.To, ["index"] = Route.Index },
        ["constraint"] = Constraint,
        ["values"] = Values.DeepClone(),
    };
}

/// <summary>
/// The constraint planner: static checks (type, version, ACL, QoS), then placement and admission (capacity,
/// NUMA placement, pins, churn) by a greedy pass, or by CP-SAT when the greedy pass cannot admit every route.
/// Deterministic: inputs are iterated in canonical order and the solver runs single-threaded with a fixed seed
/// and a deterministic time limit.
/// </summary>
public static class Planner
{
    /// <summary>Computes the plan body (everything but <c>plan_id</c> and <c>sign</c>).</summary>
    public static PlanOutcome Compute(PlanInputs inputs)
    {
        var rejected = new List<Rejection>();
        var candidates = new List<Candidate>();
        // Each route's first index, by the numbers of its ends (distinct addresses have distinct numbers), or by its key
        // when an end is unknown.
        var first = new Dictionary<long, int>(inputs.Routes.Count);
        Dictionary<string, int>? firstUnknown = null;
        foreach (var route in inputs.Routes)
        {
            var known = route.FromId >= 0 && route.ToId >= 0;
            if (known ? !first.TryAdd(Pair(route.FromId, route.ToId), route.Index) : !(firstUnknown ??= new(StringComparer.Ordinal)).TryAdd(route.Key, route.Index))
            {
                var index = known ? first[Pair(route.FromId, route.ToId)] : firstUnknown![route.Key];
                rejected.Add(new Rejection(route, Constraint.Duplicate, new JsonObject { ["first"] = index }));
                continue;
            }

            if (inputs.DownPins.Count > 0 && (inputs.DownPins.ContainsKey(route.From) ? route.From : inputs.DownPins.ContainsKey(route.To) ? route.To : null) is { } pinned)
            {
                rejected.Add(new Rejection(route, Constraint.NodeDown, new JsonObject { ["symbol"] = pinned, ["node"] = inputs.DownPins[pinned] }));
                continue;
            }

            var (rejection, candidate) = Checked(route, inputs);
            if (rejection is not null)
            {
                rejected.Add(rejection);
                continue;
            }

            candidates.Add(candidate!);
        }

        if (inputs.FromCatalogue is not var (catalogue, _) || catalogue.AnyAcyclic) // a catalogue knows without reading every candidate's contracts
        {
            RejectForbiddenCycles(candidates, rejected);
        }

        var placement = Placement.Solve(inputs, candidates);
        rejected.AddRange(placement.Rejected);
        rejected.Sort((a, b) => a.Route.Index.CompareTo(b.Route.Index));
        return Assemble(inputs, placement, rejected);
    }

    /// <summary>
    /// Forgets what the planner keeps between plans in this process (the canonical bytes of routes and contracts it has
    /// hashed, the placements of the plans it sealed; not the CP-SAT answers, nor what a <see cref="SymbolCatalogue"/>
    /// holds): for benchmarks that measure a process's first plan. Plans do not change.
    /// </summary>
    public static void ForgetCanonicalBytes()
    {
        PlanCanonical.Clear();
        BaseIndex.Clear();
    }

    /// <summary>Computes, hashes and signs a plan.</summary>
    public static JsonObject ComputeSigned(PlanInputs inputs, SigningKey key) => Seal(Compute(inputs), key);

    /// <summary>
    /// A signed plan in the planner's shape for lanes given by hand (shm, ring 256, both ends placed on the lane's
    /// node), without solving anything: for operators' hand-made plans, benchmarks and tests of the apply path.
    /// </summary>
    public static JsonObject Manual(SigningKey key, string? baseId, IEnumerable<(string From, string To, string Node)> lanes)
    {
        var placement = new JsonObject();
        var laneArray = new JsonArray();
        foreach (var (from, to, node) in lanes)
        {
            placement[from] = node;
            placement[to] = node;
            laneArray.Add(new JsonObject { ["kind"] = "shm", ["ring_size"] = 256, ["route"] = new JsonObject { ["from"] = from, ["to"] = to } });
        }

        return Seal(new JsonObject
        {
            ["base"] = baseId,
            ["inputs"] = "sha256:" + new string('0', 64),
            ["lanes"] = laneArray,
            ["moves"] = new JsonArray(),
            ["placement"] = placement,
            ["rejected"] = new JsonArray(),
            ["routes_add"] = new JsonArray(),
            ["routes_remove"] = new JsonArray(),
        }, key);
    }

    /// <summary><c>plan_id</c> = sha256 of the canonical plan without <c>plan_id</c> and <c>sign</c>; then the signature over the rest.</summary>
    public static JsonObject Seal(JsonObject body, SigningKey key)
    {
        var plan = (JsonObject)body.DeepClone(); // the one copy: hashed, then given its id and signed in place
        plan.Remove("plan_id");
        plan.Remove(ObjectSigner.SignMember);

        // The plan is written canonically once, as the members before "plan_id" and those after it: joined they are the
        // bytes plan_id hashes; with "plan_id" between them, the bytes the signature covers (same as ObjectSigner's payload).
        var before = CanonicalJson.SerializeMembers([.. plan.Where(m => string.CompareOrdinal(m.Key, "plan_id") < 0)]);
        var after = CanonicalJson.SerializeMembers([.. plan.Where(m => string.CompareOrdinal(m.Key, "plan_id") > 0)]);
        return SealWith(plan, before, after, key);
    }

    /// <summary>
    /// Seals a computed plan without copying it or writing it again: the canonical bytes of its members were written
    /// when it was assembled (from the planner's values, the same bytes as writing the body). The outcome's body becomes
    /// the sealed plan (it is given <c>plan_id</c> and <c>sign</c> in place) and is returned; a body changed after
    /// <see cref="Compute"/> must be sealed with <see cref="Seal(JsonObject, SigningKey)"/>.
    /// </summary>
    public static JsonObject Seal(PlanOutcome outcome, SigningKey key) => Seal(outcome, key, out _);

    /// <summary>
    /// The same, giving also the bytes the signature covers (<paramref name="content"/>, null when the body was written by
    /// the reference writer): the plan's file form is made from them (<see cref="PlanContent.Pretty"/>) without writing
    /// the plan again.
    /// </summary>
    public static JsonObject Seal(PlanOutcome outcome, SigningKey key, out PlanContent? content)
    {
        content = null;
        if (outcome.CanonicalMembers is not { } members)
        {
            return Seal(outcome.Body, key);
        }

        // The members in canonical order, each as its name and value: hashed in pieces for plan_id, then written once, with
        // "plan_id" in its place, as the bytes the signature covers (the same bytes as Seal(JsonObject) writes).
        var sorted = members.ToArray();
        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        var names = sorted.Select(m => System.Text.Encoding.UTF8.GetBytes($"\"{m.Key}\":")).ToArray(); // the planner's own names: plain ASCII
        using var sink = new HashSink();
        sink.Write("{"u8);
        for (var i = 0; i < sorted.Length; i++)
        {
            if (i > 0)
            {
                sink.Write(","u8);
            }

            sink.Write(names[i]);
            sink.Write(sorted[i].Value.Span);
        }

        sink.Write("}"u8);
        var id = sink.Finish();
        var idMember = System.Text.Encoding.UTF8.GetBytes($"\"plan_id\":\"{id}\"");
        var payload = new byte[2 + idMember.Length + sorted.Sum(m => m.Value.Length + 1) + names.Sum(n => n.Length)];
        var at = 0;
        payload[at++] = (byte)'{';
        var idWritten = false;
        for (var i = 0; i <= sorted.Length; i++)
        {
            if (!idWritten && (i == sorted.Length || string.CompareOrdinal(sorted[i].Key, "plan_id") > 0))
            {
                idWritten = true;
                Put(idMember);
            }

            if (i < sorted.Length)
            {
                Put(names[i], sorted[i].Value.Span);
            }
        }

        payload[at++] = (byte)'}';
        if (outcome.Index is { } index)
        {
            BaseIndex.Remember(id, index); // planning again against this plan reads no member of it
        }

        content = new PlanContent(id, at == payload.Length ? payload : payload[..at]);
        var signature = key.Sign(content.SigningPayload);
        var plan = outcome.Body; // read after signing: a large plan's members were parsed meanwhile
        plan.Remove("plan_id");
        plan.Remove(ObjectSigner.SignMember);
        return Signed(plan, id, signature, key);

        void Put(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value = default)
        {
            if (at > 1)
            {
                payload[at++] = (byte)',';
            }

            name.CopyTo(payload.AsSpan(at));
            at += name.Length;
            value.CopyTo(payload.AsSpan(at));
            at += value.Length;
        }
    }

    private static JsonObject SealWith(JsonObject plan, byte[] before, byte[] after, SigningKey key)
    {
        var id = ContentHash.Of(Join(before, [], after));
        return Signed(plan, id, key.Sign(Join(before, System.Text.Encoding.UTF8.GetBytes($"\"plan_id\":\"{id}\""), after)), key);
    }

    private static JsonObject Signed(JsonObject plan, string id, byte[] signature, SigningKey key)
    {
        plan["plan_id"] = id;
        plan[ObjectSigner.SignMember] = new JsonObject
        {
            ["alg"] = "ed25519",
            ["key_id"] = key.KeyId,
            ["sig"] = Convert.ToBase64String(signature),
        };
        return plan;
    }

    // {a...} + member + {b...} as one canonical object: a's members, the member (when given), b's members.
    private static byte[] Join(byte[] a, ReadOnlySpan<byte> member, byte[] b)
    {
        var result = new byte[a.Length + member.Length + b.Length + 2];
        var at = 0;
        result[at++] = (byte)'{';
        Append(result, ref at, a.AsSpan(1, a.Length - 2));
        Append(result, ref at, member);
        Append(result, ref at, b.AsSpan(1, b.Length - 2));
        result[at++] = (byte)'}';
        return result[..at];

        static void Append(byte[] result, ref int at, ReadOnlySpan<byte> part)
        {
            if (part.IsEmpty)
            {
                return;
            }

            if (at > 1)
            {
                result[at++] = (byte)',';
            }

            part.CopyTo(result.AsSpan(at));
            at += part.Length;
        }
    }

    public static string PlanId(JsonObject plan)
    {
        // The plan's members but plan_id and sign, as they are: the same bytes as a copy without them, without copying the plan.
        return ContentHash.Of(CanonicalJson.SerializeMembers([.. plan.Where(m => m.Key is not "plan_id" and not ObjectSigner.SignMember)]));
    }

    /// <summary>
    /// What checking a plan needs, from one canonical serialization instead of two: the hash of its content
    /// (<see cref="PlanId"/>) and the bytes its signature covers (<see cref="ObjectSigner.SigningPayload"/>: the plan
    /// without <c>sign</c>, which differs from the hashed content only by the <c>plan_id</c> member).
    /// </summary>
    public static PlanContent Content(JsonObject plan)
    {
        var signed = CanonicalJson.SerializeMembers([.. plan.Where(m => m.Key != ObjectSigner.SignMember)], "plan_id", out var marked);
        if (marked is not { } member)
        {
            return new PlanContent(plan.ContainsKey("plan_id") ? PlanId(plan) : ContentHash.Of(signed), signed);
        }

        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var (offset, length) = member.GetOffsetAndLength(signed.Length);
        sha.AppendData(signed, 0, offset);
        sha.AppendData(signed, offset + length, signed.Length - offset - length);
        return new PlanContent(ContentHash.Format(sha.GetHashAndReset()), signed);
    }

    /// <summary>
    /// The same, given also the UTF-8 text <paramref name="plan"/> was parsed from: when that text is already the plan's
    /// canonical form (<see cref="CanonicalJson.IsPlainCanonical"/>, as a plan written compactly in its canonical order
    /// with plain strings is), the signed bytes are the text without its <c>sign</c> member and the id its hash without
    /// <c>plan_id</c>, cut out of the text instead of serializing the parsed tree again; any other text goes through
    /// <see cref="Content(JsonObject)"/>.
    /// </summary>
    public static PlanContent Content(JsonObject plan, ReadOnlySpan<byte> text)
    {
        // One pass over the text shows it canonical and finds sign and plan_id (a search for each after it walked the
        // whole text twice more: 0.4 ms of a 1,000-route plan's 0.6 ms here).
        if (text.Length < 2 || text[0] != (byte)'{' || !CanonicalJson.IsPlainCanonical(text, "sign"u8, "plan_id"u8, out var sign, out var planId))
        {
            return Content(plan);
        }

        byte[] signed;
        if (sign is { } s)
        {
            var (offset, length) = CanonicalJson.WithSeparator(text, s).GetOffsetAndLength(text.Length);
            signed = new byte[text.Length - length];
            text[..offset].CopyTo(signed);
            text[(offset + length)..].CopyTo(signed.AsSpan(offset)); // plan_id, before sign in canonical order, keeps its place
        }
        else
        {
            signed = text.ToArray();
        }

        if (planId is not { } idMember)
        {
            return new PlanContent(ContentHash.Of(signed), signed) { Plain = true };
        }

        var id = CanonicalJson.WithSeparator(signed, idMember);
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var (at, count) = id.GetOffsetAndLength(signed.Length);
        sha.AppendData(signed, 0, at);
        sha.AppendData(signed, at + count, signed.Length - at - count);
        return new PlanContent(ContentHash.Format(sha.GetHashAndReset()), signed) { Plain = true };
    }

    /// <summary>
    /// <see cref="Check"/>, or its kept outcome: a route whose content passed the checks before in this process, against the
    /// same catalogue under the same rules, passes them again with the same contracts, lanes and budget (RouteMemo).
    /// </summary>
    private static (Rejection? Rejection, Candidate? Candidate) Checked(RouteSpec route, PlanInputs inputs)
    {
        if (inputs.Memos is not { } memos || inputs.FromCatalogue is not var (catalogue, _))
        {
            return Check(route, inputs);
        }

        var memo = memos[route.Index];
        if (memo.Checked is { } kept && kept.Catalogue == catalogue.Id && ReferenceEquals(kept.Rules, inputs.CheckRules))
        {
            return (null, new Candidate(route, kept.From, kept.To, kept.Lanes, kept.Budget));
        }

        var result = Check(route, inputs);
        if (result.Candidate is { } c)
        {
            memo.Checked = new RouteChecked(catalogue.Id, inputs.CheckRules, c.From, c.To, c.Lanes, c.Budget);
        }

        return result;
    }

    /// <summary>Checks 1-4 of the seed (plus unknown symbols): a rejection, or a candidate for placement.</summary>
    private static (Rejection? Rejection, Candidate? Candidate) Check(RouteSpec route, PlanInputs inputs)
    {
        if (route.FromId < 0 || route.ToId < 0)
        {
            var missing = route.FromId >= 0 ? route.To : route.From;
            return (new Rejection(route, Constraint.UnknownSymbol, new JsonObject { ["symbol"] = missing }), null);
        }

        var fromVersions = inputs.VersionsOf(route.FromId);
        var toVersions = inputs.VersionsOf(route.ToId);
        SymbolContract? to = null;
        for (var v = toVersions.Count - 1; v >= 0 && to is null; v--)
        {
            to = route.Range.Satisfies(toVersions[v].Version) ? toVersions[v] : null; // highest satisfying version wins
        }

        if (to is null)
        {
            return (new Rejection(route, Constraint.Version, new JsonObject
            {
                ["range"] = route.RangeText,
                ["available"] = new JsonArray([.. toVersions.Select(v => (JsonNode)JsonValue.Create(v.Version.ToFullString()))]),
            }), null);
        }

        var from = fromVersions[^1];
        if (Checks.Type(from, to) is { } type)
        {
            return (new Rejection(route, Constraint.Type, type), null);
        }

        if (Checks.Acl(route, inputs) is { } acl)
        {
            return (new Rejection(route, Constraint.Acl, acl), null);
        }

        var budget = Checks.Budget(route, inputs);
        var lanes = Checks.AllowedLanes(from, to, budget, inputs);
        if (lanes.Count == 0)
        {
            var fastest = PlanInputs.LaneKinds.Where(k => to.Lanes.Contains(k) && from.Lanes.Contains(k)).Select(k => inputs.LaneP99Us[k]).DefaultIfEmpty(double.NaN).Min();
            return (new Rejection(route, Constraint.Qos, new JsonObject
            {
                ["p99_budget_us"] = budget,
                ["best_lane_p99_us"] = double.IsNaN(fastest) ? null : fastest,
                ["provider_latency_us"] = to.LatencyUs,
            }), null);
        }

        return (null, new Candidate(route, from, to, lanes, budget));
    }

    private static void RejectForbiddenCycles(List<Candidate> candidates, List<Rejection> rejected)
    {
        if (!candidates.Exists(c => c.From.Acyclic || c.To.Acyclic))
        {
            return; // only a cycle through an x-acyclic symbol is forbidden: without one there is nothing to find
        }

        var forbidden = Cycles.Find(candidates.Select(c => (c.Route.From, c.Route.To)))
            .Where(scc => candidates.Any(c => scc.Contains(c.Route.From) && scc.Contains(c.Route.To) && (c.From.Acyclic || c.To.Acyclic)))
            .ToList();
        foreach (var scc in forbidden)
        {
            var members = new JsonArray([.. scc.Order(StringComparer.Ordinal).Select(s => (JsonNode)JsonValue.Create(s))]);
            foreach (var c in candidates.Where(c => scc.Contains(c.Route.From) && scc.Contains(c.Route.To)).ToList())
            {
                rejected.Add(new Rejection(c.Route, Constraint.Cycle, new JsonObject { ["cycle"] = members.DeepClone() }));
                candidates.Remove(c);
            }
        }
    }

    private static PlanOutcome Assemble(PlanInputs inputs, PlacementResult placement, List<Rejection> rejected)
    {
        // The large members (lanes, placement, routes_add) are written as canonical bytes straight from these values, and
        // the body holds them as nodes parsed from those bytes (System.Text.Json builds a parsed node's children only when
        // they are read): no tree of 10,000 lanes is built to be written again. The bytes are also what Seal(PlanOutcome)
        // hashes and signs. When a text needs the reference writer (not plain), the members are built as trees instead.
        var addBytes = new ArrayBufferWriter<byte>(1 << 12);
        var direct = true;
        addBytes.Write("["u8);

        var (ids, symbols, nodeOf, previousOf) = placement.Sorted ?? SortedPlacement(placement.Nodes, inputs.BasePlacement); // the base's dictionary made only here

        var admitted = InRouteOrder(placement.Admitted, inputs.Routes.Count);
        var laneRows = new LaneRow[admitted.Length];
        // The admitted routes as pairs of their ends' catalogue ranks when the plan is numbered from a catalogue (kept with
        // the plan for planning against it again), and told new or kept against the base's pairs when the base was
        // numbered from the same catalogue; else by their keys (from -> to).
        var (catalogueOf, rankOf) = inputs.FromCatalogue ?? default;
        var pairs = catalogueOf is not null ? new HashSet<long>(admitted.Length) : null;
        var basePairs = pairs is not null && inputs.BaseIndex is { ByRank: var (baseCatalogue, _), RoutePairs: { } kept } && baseCatalogue == catalogueOf!.Id ? kept : null;
        var admittedKeys = basePairs is null ? new HashSet<string>(admitted.Length, StringComparer.Ordinal) : null;
        var baseRoutes = basePairs is null ? inputs.BaseRoutes : null;
        var endpoints = new SortedDictionary<string, JsonObject>(StringComparer.Ordinal);
        var added = 0;
        for (var i = 0; i < admitted.Length; i++)
        {
            var (candidate, lane) = admitted[i];
            var route = candidate.Route;
            var pair = pairs is not null ? Pair(rankOf[route.FromId], rankOf[route.ToId]) : 0;
            pairs?.Add(pair);
            admittedKeys?.Add(route.Key);
            // A tuned profile's ring size is a floor for SHM lanes (its settings were measured on this machine).
            var ringSize = lane == "shm" && inputs.TunedSettings is { } tuned ? Math.Max(RingSize(route.RateHz), tuned.RingSize) : RingSize(route.RateHz);
            string? endpoint = null;
            var unsandboxed = false;
            if (candidate.To.Serve is { } serve)
            {
                // The endpoint the lane ends at, by hash; the block itself is in "endpoints", once per endpoint.
                endpoint = Rtt.Core.Calls.ServeSpec.Hash(serve);
                endpoints[endpoint] = serve;
                // policy allows this driver without a sandbox on a strict-mode silo
                unsandboxed = Rtt.Core.Calls.ServeSpec.RunsUnsandboxed(serve) && inputs.Unsandboxed.Any(u => Rtt.Core.Tokens.CapabilityToken.Matches(u, route.To));
            }

            var isNew = basePairs is not null ? !basePairs.Contains(pair) : !baseRoutes!.Contains(route.Key);
            laneRows[i] = new LaneRow(candidate, lane, ringSize, endpoint, unsandboxed, isNew);
            if (isNew)
            {
                if (added++ > 0)
                {
                    addBytes.Write(","u8);
                }

                direct &= PlanCanonical.TryRouteAdd(addBytes, route.From, lane, route.To, candidate.To.Version.ToFullString());
            }
        }

        addBytes.Write("]"u8);
        // The lanes (the largest member) are written beside the placement when they are many.
        var lanesWritten = admitted.Length >= 1_000 ? Beside.Start(() => WriteLanes(laneRows)) : null;
        var placementBytes = !direct ? null
            : ids is not null && inputs.FromCatalogue is var (catalogue, ranks) ? PlanCanonical.TryPlacement(catalogue, [.. ids.Select(id => ranks[id])], nodeOf) // names written once, in the catalogue
            : PlanCanonical.TryPlacement(symbols, nodeOf);
        direct &= placementBytes is not null;
        var (lanesOk, lanesBytes) = lanesWritten?.Result() ?? WriteLanes(laneRows);
        direct &= lanesOk;

        JsonNode? lanes = null, routesAdd = null, placementJson = null;
        ParsedMembers? parsing = null;
        if (direct)
        {
            // Sealing needs only the bytes: a large plan's three members are parsed beside it (the body's reader waits for
            // them, PlanOutcome.Body), a small plan's here.
            parsing = new ParsedMembers(lanesBytes.WrittenMemory, placementBytes!, addBytes.WrittenMemory);
            if (admitted.Length >= 1_000)
            {
                parsing.Start();
            }
            else
            {
                (lanes, placementJson, routesAdd) = parsing.Parse();
                parsing = null;
            }
        }
        else
        {
            lanes = new JsonArray([.. laneRows.Select(r => (JsonNode)r.ToJson())]);
            routesAdd = new JsonArray([.. laneRows.Where(r => r.New).Select(r => (JsonNode)new JsonObject
            {
                ["from"] = r.Candidate.Route.From, ["to"] = r.Candidate.Route.To, ["version"] = r.Candidate.To.Version.ToFullString(), ["lane"] = r.Lane,
            })]);
            placementJson = new JsonObject([.. symbols.Select((s, i) => KeyValuePair.Create(s, (JsonNode?)JsonValue.Create(nodeOf[i])))]);
        }

        var removed = basePairs is not null
            ? basePairs.Where(p => !pairs!.Contains(p)).Select(p => $"{catalogueOf!.AddressAt((int)(p >> 32))} -> {catalogueOf.AddressAt((int)p)}")
            : baseRoutes!.Where(k => !admittedKeys!.Contains(k));
        var routesRemove = new JsonArray([.. removed.Order(StringComparer.Ordinal).Select(k =>
        {
            var parts = k.Split(" -> ");
            return (JsonNode)new JsonObject { ["from"] = parts[0], ["to"] = parts[1] };
        })]);

        var moves = new JsonArray();
        for (var i = 0; i < symbols.Length; i++)
        {
            var (symbol, node, previous) = (symbols[i], nodeOf[i], previousOf[i]);
            if (previous is not null && previous != node)
            {
                moves.Add(new JsonObject { ["symbol"] = symbol, ["from"] = previous, ["to"] = node, ["reason"] = placement.MoveReasons.GetValueOrDefault(symbol, "admission") });
            }
        }

        var body = new JsonObject
        {
            ["base"] = (string?)inputs.Base?["plan_id"],
            ["inputs"] = inputs.Hash,
            ["lanes"] = lanes,
            ["moves"] = moves,
            ["placement"] = placementJson,
            ["rejected"] = new JsonArray([.. rejected.Select(r => (JsonNode)r.ToJson())]),
            ["routes_add"] = routesAdd,
            ["routes_remove"] = routesRemove,
        };
        if (inputs.TunedSettings is { } settings)
        {
            // The lane hosts' idle spins and yields from the profile, carried to every lane of the plan (PlanTargets), so a
            // re-tune is applied, verified (SLO gates judge every lane it changed) and rolled back like any plan.
            // "park" only when false (never sleep on the doorbell), so plans of profiles that sleep keep their bytes.
            body["tuning"] = new JsonObject { ["profile"] = inputs.TunedProfile, ["spins"] = settings.Spins, ["yields"] = settings.Yields };
            if (!settings.Park)
            {
                body["tuning"]!["park"] = false;
            }
        }

        if (endpoints.Count > 0)
        {
            body["endpoints"] = new JsonObject([.. endpoints.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value.DeepClone()))]);
        }

        // The names rtt mcp serve gives the routed MCP tools must be distinct (docs/gateway.md); the aliases travel
        // in the signed plan so the gateway serves what was planned.
        var toolSymbols = endpoints.Values.Select(e => (string?)e["tool"]?["symbol"]).OfType<string>().ToList();
        GatewayNames.Check(endpoints.Values.Where(e => e["tool"]?["symbol"] is not null)
            .Select(e => ((string)e["tool"]!["symbol"]!, Registry.McpPrimitive.Of((string?)e["tool"]!["primitive"]))), inputs.McpAliases, inputs.PolicySource);
        if (inputs.McpAliases is { } aliases && toolSymbols.Where(t => aliases.ContainsKey(t)).Order(StringComparer.Ordinal).ToList() is { Count: > 0 } aliased)
        {
            body["mcp_aliases"] = new JsonObject([.. aliased.Select(t => KeyValuePair.Create(t, (JsonNode?)aliases[t]!.DeepClone()))]);
        }

        List<KeyValuePair<string, ReadOnlyMemory<byte>>>? canonical = null;
        if (direct)
        {
            canonical = [.. body.Where(m => m.Key is not ("lanes" or "placement" or "routes_add")).Select(m => KeyValuePair.Create(m.Key, (ReadOnlyMemory<byte>)PlanCanonical.Value(m.Value)))];
            canonical.Add(KeyValuePair.Create("lanes", lanesBytes.WrittenMemory));
            canonical.Add(KeyValuePair.Create("routes_add", addBytes.WrittenMemory));
            canonical.Add(KeyValuePair.Create("placement", (ReadOnlyMemory<byte>)placementBytes));
        }

        return new PlanOutcome(body, rejected, placement.Admitted.Count, placement.Solver)
        {
            Parsing = parsing,
            CanonicalMembers = canonical,
            Index = canonical is null ? null : new BaseIndex(symbols, nodeOf, () => (IReadOnlySet<string>?)admittedKeys ?? admitted.Select(a => a.Candidate.Route.Key).ToHashSet(StringComparer.Ordinal))
            {
                ByRank = ids is not null && catalogueOf is not null ? (catalogueOf.Id, [.. ids.Select(id => rankOf[id])]) : null,
                RoutePairs = pairs,
            },
        };
    }

    // Symbols in ordinal order, each with its node and its node in the base plan (or null).
    private static (int[]? Ids, string[] Symbols, string[] Nodes, string?[] Previous) SortedPlacement(IReadOnlyDictionary<string, string> nodes, IReadOnlyDictionary<string, string> basePlacement)
    {
        var symbols = nodes.Keys.ToArray();
        Array.Sort(symbols, StringComparer.Ordinal);
        return (null, symbols, [.. symbols.Select(s => nodes[s])], [.. symbols.Select(s => basePlacement.GetValueOrDefault(s))]);
    }

    // The plan's lanes as canonical bytes (false: a text needs the reference writer).
    private static (bool Ok, ArrayBufferWriter<byte> Bytes) WriteLanes(LaneRow[] rows)
    {
        var bytes = new ArrayBufferWriter<byte>(Math.Max(256, rows.Length * 128)); // about a lane's size each
        bytes.Write("["u8);
        var ok = true;
        for (var i = 0; i < rows.Length && ok; i++)
        {
            if (i > 0)
            {
                bytes.Write(","u8);
            }

            var r = rows[i];
            ok = PlanCanonical.TryLane(bytes, r.Candidate.Route.From, r.Candidate.Route.To, r.Lane, r.RingSize, r.Endpoint, r.Unsandboxed);
        }

        bytes.Write("]"u8);
        return (ok, bytes);
    }

    // The admitted routes by route index (distinct, below the route count): placed by index, not sorted.
    private static (Candidate Candidate, string Lane)[] InRouteOrder(List<(Candidate Candidate, string Lane)> admitted, int routes)
    {
        var byIndex = new (Candidate Candidate, string Lane)[routes];
        var taken = new bool[routes];
        foreach (var a in admitted)
        {
            byIndex[a.Candidate.Route.Index] = a;
            taken[a.Candidate.Route.Index] = true;
        }

        var result = new (Candidate Candidate, string Lane)[admitted.Count];
        var at = 0;
        for (var i = 0; i < routes; i++)
        {
            if (taken[i])
            {
                result[at++] = byIndex[i];
            }
        }

        return result;
    }

    // Two numbers (symbol numbers or catalogue ranks, not negative) as one key.
    private static long Pair(int from, int to) => ((long)from << 32) | (uint)to;

    /// <summary>Ring size in frames: room for 10 ms of the route's rate, a power of two from 256 to 65,536.</summary>
    public static int RingSize(double rateHz)
    {
        var frames = (long)Math.Ceiling(rateHz * 0.010);
        var size = 256L;
        while (size < frames && size < 65_536)
        {
            size <<= 1;
        }

        return (int)size;
    }

    internal static HashSet<string> BaseRoutes(JsonObject? basePlan) =>
        (basePlan?["lanes"] as JsonArray ?? []).Select(l => $"{l!["route"]!["from"]} -> {l["route"]!["to"]}").ToHashSet(StringComparer.Ordinal);
}

/// <summary>The plan body and what it decided.</summary>
public sealed record PlanOutcome(JsonObject Body, IReadOnlyList<Rejection> Rejected, int Admitted, string Solver)
{
    /// <summary>The plan body (everything but <c>plan_id</c> and <c>sign</c>): complete when read, once its members being parsed are in.</summary>
    public JsonObject Body
    {
        get
        {
            Parsing?.Into(field);
            return field;
        }

        init;
    } = Body;

    /// <summary>The members of a large plan's body parsed beside sealing (null: the body is complete).</summary>
    internal ParsedMembers? Parsing { get; init; }

    /// <summary>The canonical bytes of the body's members as assembled (null: seal by writing the body), for <see cref="Planner.Seal(PlanOutcome, SigningKey)"/>.</summary>
    internal IReadOnlyList<KeyValuePair<string, ReadOnlyMemory<byte>>>? CanonicalMembers { get; init; }

    /// <summary>The plan's placement and lane routes as written (with <see cref="CanonicalMembers"/>), kept by plan_id when it is sealed.</summary>
    internal BaseIndex? Index { get; init; }
}

/// <summary>
/// The body's lanes, placement and routes_add as nodes parsed from their canonical bytes (System.Text.Json builds a parsed
/// node's children only when they are read), beside the sealing when <see cref="Start"/>ed (<see cref="Beside{T}"/>); put
/// into the body once, by the first reader of <see cref="PlanOutcome.Body"/> (a copy of the outcome shares this, so the
/// body is filled once).
/// </summary>
internal sealed class ParsedMembers(ReadOnlyMemory<byte> lanes, byte[] placement, ReadOnlyMemory<byte> routesAdd)
{
    private readonly Lock _gate = new();
    private Beside<(JsonNode Lanes, JsonNode Placement, JsonNode RoutesAdd)>? _parsing;
    private bool _done;

    public void Start() => _parsing = Beside.Start(Parse);

    public (JsonNode Lanes, JsonNode Placement, JsonNode RoutesAdd) Parse() =>
        (JsonNode.Parse(lanes.Span)!, JsonNode.Parse(placement)!, JsonNode.Parse(routesAdd.Span)!);

    public void Into(JsonObject body)
    {
        if (Volatile.Read(ref _done))
        {
            return;
        }

        lock (_gate)
        {
            if (_done)
            {
                return;
            }

            var (l, p, r) = _parsing is { } parsing ? parsing.Result() : Parse();
            body["lanes"] = l;
            body["placement"] = p;
            body["routes_add"] = r;
            Volatile.Write(ref _done, true);
        }
    }
}

/// <summary>One admitted route's lane as Assemble writes it.</summary>
internal readonly record struct LaneRow(Candidate Candidate, string Lane, int RingSize, string? Endpoint, bool Unsandboxed, bool New)
{
    /// <summary>The lane as a node: <c>route</c>, <c>kind</c>, <c>ring_size</c>, and <c>endpoint</c> / <c>unsandboxed</c> when set.</summary>
    public JsonObject ToJson()
    {
        var lane = new JsonObject
        {
            ["route"] = new JsonObject { ["from"] = Candidate.Route.From, ["to"] = Candidate.Route.To },
            ["kind"] = Lane,
            ["ring_size"] = RingSize,
        };
        if (Endpoint is not null)
        {
            lane["endpoint"] = Endpoint;
        }

        if (Unsandboxed)
        {
            lane["unsandboxed"] = true;
        }

        return lane;
    }
}

/// <summary>Strongly connected components of the route graph (Tarjan), deterministic: vertices in ordinal order.</summary>
internal static class Cycles
{
    public static List<HashSet<string>> Find(IEnumerable<(string From, string To)> edges)
    {
        var graph = new SortedDictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var (from, to) in edges)
        {
            (graph.TryGetValue(from, out var set) ? set : graph[from] = new SortedSet<string>(StringComparer.Ordinal)).Add(to);
            if (!graph.ContainsKey(to))
            {
                graph[to] = new SortedSet<string>(StringComparer.Ordinal);
            }
        }

        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<HashSet<string>>();
        var counter = 0;

        void Visit(string v)
        {
            index[v] = low[v] = counter++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in graph[v])
            {
                if (!index.ContainsKey(w))
                {
                    Visit(w);
                    low[v] = Math.Min(low[v], low[w]);
                }
                else if (onStack.Contains(w))
                {
                    low[v] = Math.Min(low[v], index[w]);
                }
            }

            if (low[v] == index[v])
            {
                var component = new HashSet<string>(StringComparer.Ordinal);
                string w;
                do
                {
                    w = stack.Pop();
                    onStack.Remove(w);
                    component.Add(w);
                }
                while (w != v);

                if (component.Count > 1 || graph[v].Contains(v))
                {
                    result.Add(component);
                }
            }
        }

        foreach (var v in graph.Keys)
        {
            if (!index.ContainsKey(v))
            {
                Visit(v);
            }
        }

        return result;
    }
}

/// <summary>A plan's content hash (its correct <c>plan_id</c>) and the canonical bytes its signature covers.</summary>
public sealed record PlanContent(string PlanId, byte[] SigningPayload)
{
    /// <summary>
    /// The payload is plain canonical JSON (<see cref="CanonicalJson.IsPlainCanonical"/>: cut from a plan's text that
    /// was), so its values can be compared by their bytes (<see cref="Planner.Content(JsonObject, ReadOnlySpan{byte})"/>).
    /// </summary>
    public bool Plain { get; init; }

    /// <summary>
    /// The plan's file form (<see cref="PrettyJson.ToUtf8"/>, byte for byte) from the canonical bytes already made instead
    /// of a second canonical serialization of the whole plan: the payload's members in their order, with the plan's
    /// <c>sign</c> member (the only one the payload lacks) put back in its canonical place.
    /// </summary>
    public byte[] Pretty(JsonObject plan) =>
        Pretty(plan.TryGetPropertyValue(ObjectSigner.SignMember, out var sign) ? CanonicalJson.Serialize(sign) : null);

    /// <summary>
    /// The same from the <c>sign</c> member's canonical bytes (null: the plan has none), without the plan's tree: safe to run
    /// beside code that reads the tree (a JSON node's members are made on first read, which is not thread-safe).
    /// </summary>
    public byte[] Pretty(byte[]? signCanonical)
    {
        var signed = signCanonical is not null;
        if (PrettyJson.TryFromCanonical(SigningPayload, signed ? ObjectSigner.SignMember : null, signCanonical, out var plain))
        {
            return plain; // printable ASCII throughout (a planner's plan is): re-indented without a document
        }

        using var payload = System.Text.Json.JsonDocument.Parse(SigningPayload);
        using var stream = new MemoryStream((SigningPayload.Length * 2) + 1024);
        using (var writer = PrettyJson.Writer(stream))
        {
            writer.WriteStartObject();
            foreach (var member in payload.RootElement.EnumerateObject())
            {
                if (signed && string.CompareOrdinal(member.Name, ObjectSigner.SignMember) > 0)
                {
                    WriteSign(writer, signCanonical!);
                    signed = false;
                }

                member.WriteTo(writer);
            }

            if (signed)
            {
                WriteSign(writer, signCanonical!);
            }

            writer.WriteEndObject();
        }

        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    private static void WriteSign(System.Text.Json.Utf8JsonWriter writer, byte[] signCanonical)
    {
        writer.WritePropertyName(ObjectSigner.SignMember);
        using var value = System.Text.Json.JsonDocument.Parse(signCanonical);
        value.RootElement.WriteTo(writer);
    }
}
