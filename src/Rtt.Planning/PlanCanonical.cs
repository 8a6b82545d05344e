using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Planning;

/// <summary>
/// The planner's canonical bytes (RFC 8785, the same bytes <see cref="CanonicalJson.Serialize(JsonNode?)"/> gives) written
/// from pieces instead of one node tree: the inputs as members whose values are written once and reused (a route's bytes
/// by its content, a contract's by the instance), and the plan's large members (lanes, placement, routes_add) straight from
/// the planner's own values. What a piece cannot write exactly goes through the reference writer. IncrementalPlanTests
/// compare every piece with the reference on random documents.
/// </summary>
internal static class PlanCanonical
{
    // A route's canonical bytes, and what planning learned of it (RouteMemo), by everything that decides them (the route
    // passed InputShape, so these are all its members): planning again after a change to a few routes writes, looks up and
    // checks only the changed ones. Bounded; cleared when full.
    private const int RouteEntries = 200_000;
    private static readonly Dictionary<RouteKey, RouteMemo> RouteCache = [];
    private static readonly ReaderWriterLockSlim RouteLock = new(); // lookups on several threads at once; adds alone

    // A contract's canonical bytes by the instance: contracts are immutable records (their JSON parts are never changed
    // after they are made), so a process that plans again with the same catalogue writes each contract once. By reference
    // (a record's own equality would compare every member); bounded, cleared when full.
    private const int ContractEntries = 100_000;
    private static readonly Dictionary<SymbolContract, byte[]> ContractCache = new(ReferenceEqualityComparer.Instance);

    /// <summary>Everything that decides a route's canonical bytes (and all that the planner reads of it).</summary>
    internal readonly record struct RouteKey(string From, string To, string? Version, bool HasQos, double? Budget, double? Rate, double? Priority)
    {
        /// <summary>A route's members, read from its node.</summary>
        public static RouteKey Of(JsonObject route)
        {
            var qos = route["qos"] as JsonObject;
            return new RouteKey((string)route["from"]!, (string)route["to"]!, (string?)route["version"], qos is not null,
                qos?["p99_budget_us"] is JsonValue b ? PlanInputs.Number(b) : null,
                qos?["rate_hz"] is JsonValue r ? PlanInputs.Number(r) : null,
                qos?["priority"] is JsonValue p ? PlanInputs.Number(p) : null);
        }
    }

    /// <summary>
    /// Canonical bytes of each route of a routes array that <see cref="InputShape.SurelyValidRoutes"/> accepted (so its
    /// members and their kinds are known): written once per content and kept.
    /// </summary>
    public static byte[][] Routes(JsonArray routes) => [.. Routes(routes, [.. routes.Select(r => RouteKey.Of(r!.AsObject()))]).Select(m => m.Bytes)];

    /// <summary>
    /// The same as each route's memo (its bytes, and what planning learned of its content), given each route's members as
    /// read (<paramref name="keys"/>: <see cref="InputShape.SurelyValidRoutes(JsonObject, out RouteKey[])"/> reads them as it
    /// checks the routes, so they are walked once). Routes with the same content share one memo.
    /// </summary>
    public static RouteMemo[] Routes(JsonArray routes, RouteKey[] keys)
    {
        var result = new RouteMemo[routes.Count];
        Parts.All(keys.Length, (start, end) =>
        {
            RouteLock.EnterReadLock();
            try
            {
                for (var i = start; i < end; i++)
                {
                    RouteCache.TryGetValue(keys[i], out result[i]!);
                }
            }
            finally
            {
                RouteLock.ExitReadLock();
            }

            return true;
        });

        var missing = new List<int>();
        for (var i = 0; i < result.Length; i++)
        {
            if (result[i] is null)
            {
                missing.Add(i);
            }
        }

        if (missing.Count == 0)
        {
            return result;
        }

        // Numbers are written by their value (integer digits or ECMAScript form), strings by their text: equal keys, equal bytes.
        foreach (var i in missing)
        {
            result[i] = new RouteMemo(CanonicalJson.Serialize(routes[i]));
        }

        RouteLock.EnterWriteLock();
        try
        {
            if (RouteCache.Count + missing.Count > RouteEntries)
            {
                RouteCache.Clear();
            }

            foreach (var i in missing)
            {
                result[i] = RouteCache.TryAdd(keys[i], result[i]) ? result[i] : RouteCache[keys[i]]; // a repeated route: one memo
            }
        }
        finally
        {
            RouteLock.ExitWriteLock();
        }

        return result;
    }

    /// <summary>Canonical bytes of each contract's JSON (<see cref="SymbolContract.ToJson"/>), once per instance.</summary>
    public static byte[][] Contracts(IReadOnlyList<SymbolContract> contracts)
    {
        var result = new byte[contracts.Count][];
        var missing = new List<int>();
        lock (ContractCache)
        {
            for (var i = 0; i < contracts.Count; i++)
            {
                if (!ContractCache.TryGetValue(contracts[i], out result[i]!))
                {
                    missing.Add(i);
                }
            }
        }

        if (missing.Count == 0)
        {
            return result;
        }

        foreach (var i in missing)
        {
            result[i] = CanonicalJson.Serialize(contracts[i].ToJson());
        }

        lock (ContractCache)
        {
            if (ContractCache.Count + missing.Count > ContractEntries)
            {
                ContractCache.Clear();
            }

            foreach (var i in missing)
            {
                ContractCache[contracts[i]] = result[i];
            }
        }

        return result;
    }

    /// <summary>Forgets the canonical bytes written so far (benchmarks measuring a first plan in a process).</summary>
    public static void Clear()
    {
        RouteLock.EnterWriteLock();
        try
        {
            RouteCache.Clear();
        }
        finally
        {
            RouteLock.ExitWriteLock();
        }

        lock (ContractCache)
        {
            ContractCache.Clear();
        }
    }

    /// <summary>
    /// <c>sha256:</c> of a canonical object whose members write their own canonical values into the hash: the pieces are
    /// hashed as they come, never joined into one copy (the inputs of 10,000 routes are about 5 MB).
    /// </summary>
    public static string Hash(IEnumerable<KeyValuePair<string, Action<HashSink>>> members)
    {
        var sorted = members.ToArray();
        System.Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        using var sink = new HashSink();
        sink.Write("{"u8);
        var name = new ArrayBufferWriter<byte>(64);
        for (var i = 0; i < sorted.Length; i++)
        {
            if (i > 0)
            {
                sink.Write(","u8);
            }

            name.Clear();
            Name(name, sorted[i].Key);
            sink.Write(name.WrittenSpan);
            sorted[i].Value(sink);
        }

        sink.Write("}"u8);
        return sink.Finish();
    }

    /// <summary>Writes <c>[a,b,…]</c> of canonical values into a hash.</summary>
    public static void Items(HashSink sink, IReadOnlyList<byte[]> items)
    {
        sink.Write("["u8);
        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sink.Write(","u8);
            }

            sink.Write(items[i]);
        }

        sink.Write("]"u8);
    }

    /// <summary><c>[a,b,…]</c> of canonical values.</summary>
    public static byte[] Array(IReadOnlyList<byte[]> items)
    {
        var length = 2 + Math.Max(0, items.Count - 1);
        foreach (var item in items)
        {
            length += item.Length;
        }

        var result = new byte[length];
        var at = 0;
        result[at++] = (byte)'[';
        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                result[at++] = (byte)',';
            }

            items[i].CopyTo(result, at);
            at += items[i].Length;
        }

        result[at] = (byte)']';
        return result;
    }

    /// <summary>A canonical object of members given as canonical values (names distinct; sorted here).</summary>
    public static byte[] Object(IEnumerable<KeyValuePair<string, byte[]>> members)
    {
        var sorted = members.ToArray();
        System.Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
        var output = new ArrayBufferWriter<byte>(sorted.Sum(m => m.Value.Length + m.Key.Length + 4) + 2);
        output.Write("{"u8);
        for (var i = 0; i < sorted.Length; i++)
        {
            if (i > 0)
            {
                output.Write(","u8);
            }

            Name(output, sorted[i].Key);
            output.Write(sorted[i].Value);
        }

        output.Write("}"u8);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>Canonical bytes of a value node (the reference writer).</summary>
    public static byte[] Value(JsonNode? node) => CanonicalJson.Serialize(node);

    /// <summary>
    /// The plan's <c>placement</c>: <paramref name="sortedSymbols"/> (distinct, in ordinal order), each with the node at
    /// the same index of <paramref name="nodes"/>; null when a text needs the reference writer.
    /// </summary>
    public static byte[]? TryPlacement(string[] sortedSymbols, string[] nodes)
    {
        var output = new ArrayBufferWriter<byte>(Math.Max(256, sortedSymbols.Length * 48));
        output.Write("{"u8);
        for (var i = 0; i < sortedSymbols.Length; i++)
        {
            if (i > 0)
            {
                output.Write(","u8);
            }

            if (!CanonicalJson.TryWriteString(output, sortedSymbols[i]))
            {
                return null;
            }

            output.Write(":"u8);
            if (!CanonicalJson.TryWriteString(output, nodes[i]))
            {
                return null;
            }
        }

        output.Write("}"u8);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The same for symbols given by their ranks in <paramref name="catalogue"/> (ascending: ordinal order), whose names it
    /// holds written: copied, not written again.
    /// </summary>
    public static byte[]? TryPlacement(SymbolCatalogue catalogue, int[] ranks, string[] nodes)
    {
        var output = new ArrayBufferWriter<byte>(Math.Max(256, ranks.Length * 48));
        output.Write("{"u8);
        for (var i = 0; i < ranks.Length; i++)
        {
            if (i > 0)
            {
                output.Write(","u8);
            }

            var name = catalogue.NameJson(ranks[i]);
            if (name.IsEmpty)
            {
                return null;
            }

            output.Write(name);
            output.Write(":"u8);
            if (!CanonicalJson.TryWriteString(output, nodes[i]))
            {
                return null;
            }
        }

        output.Write("}"u8);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// One lane of the plan: <c>{"endpoint"?,"kind","ring_size","route":{"from","to"},"unsandboxed"?}</c> (the members
    /// Assemble gives a lane), appended to <paramref name="output"/>; false when a text needs the reference writer.
    /// </summary>
    public static bool TryLane(ArrayBufferWriter<byte> output, string from, string to, string kind, int ringSize, string? endpoint, bool unsandboxed)
    {
        output.Write("{"u8);
        if (endpoint is not null)
        {
            output.Write("\"endpoint\":"u8);
            if (!CanonicalJson.TryWriteString(output, endpoint))
            {
                return false;
            }

            output.Write(","u8);
        }

        output.Write("\"kind\":"u8);
        if (!CanonicalJson.TryWriteString(output, kind))
        {
            return false;
        }

        output.Write(",\"ring_size\":"u8);
        CanonicalJson.WriteInteger(output, ringSize);
        output.Write(",\"route\":{\"from\":"u8);
        if (!CanonicalJson.TryWriteString(output, from))
        {
            return false;
        }

        output.Write(",\"to\":"u8);
        if (!CanonicalJson.TryWriteString(output, to))
        {
            return false;
        }

        output.Write(unsandboxed ? "},\"unsandboxed\":true}"u8 : "}}"u8);
        return true;
    }

    /// <summary>One entry of <c>routes_add</c>: <c>{"from","lane","to","version"}</c>; false when a text needs the reference writer.</summary>
    public static bool TryRouteAdd(ArrayBufferWriter<byte> output, string from, string lane, string to, string version)
    {
        output.Write("{\"from\":"u8);
        var ok = CanonicalJson.TryWriteString(output, from);
        output.Write(",\"lane\":"u8);
        ok = ok && CanonicalJson.TryWriteString(output, lane);
        output.Write(",\"to\":"u8);
        ok = ok && CanonicalJson.TryWriteString(output, to);
        output.Write(",\"version\":"u8);
        ok = ok && CanonicalJson.TryWriteString(output, version);
        output.Write("}"u8);
        return ok;
    }

    private static void Name(ArrayBufferWriter<byte> output, string name)
    {
        if (!CanonicalJson.TryWriteString(output, name))
        {
            throw new InvalidOperationException($"member name {name} cannot be written canonically");
        }

        output.Write(":"u8);
    }
}

/// <summary>SHA-256 over bytes written in pieces, gathered in a small buffer so that many small pieces cost little.</summary>
internal sealed class HashSink : IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _used;

    public void Write(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > _buffer.Length - _used)
        {
            Flush();
            if (bytes.Length > _buffer.Length)
            {
                _hash.AppendData(bytes);
                return;
            }
        }

        bytes.CopyTo(_buffer.AsSpan(_used));
        _used += bytes.Length;
    }

    /// <summary>The <c>sha256:</c> hash of everything written.</summary>
    public string Finish()
    {
        Flush();
        return ContentHash.Format(_hash.GetHashAndReset());
    }

    public void Dispose() => _hash.Dispose();

    private void Flush()
    {
        _hash.AppendData(_buffer, 0, _used);
        _used = 0;
    }
}
