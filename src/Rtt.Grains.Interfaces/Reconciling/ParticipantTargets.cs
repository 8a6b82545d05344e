using System.Buffers;
using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Hashing;

namespace Rtt.Grains.Reconciling;

/// <summary>
/// What a plan asks of one participant of a transaction (<c>Rtt.Reconciling.PlanTargets</c> computes them): a
/// <see cref="NodeTarget"/> for <c>node:&lt;id&gt;</c>, a <see cref="RouteTarget"/> for <c>route:&lt;from&gt; -&gt; &lt;to&gt;</c>.
/// They cross grain boundaries as Orleans-serialized records and compare by value; <see cref="ToJson"/> is the
/// deterministic JSON a participant's ledger stores (the form ledgers held before targets were typed, so old
/// ledgers read as they are).
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.ParticipantTarget")]
public abstract record ParticipantTarget
{
    /// <summary>The ledger's form: deterministic JSON (members in ordinal order, as <c>JsonNode.ToJsonString</c> escapes).</summary>
    /// <remarks>
    /// Written into a buffer this thread keeps (a node's target is ~150 KiB at 1,000 lanes, made at every prepare: a
    /// fresh buffer grew through every size up to it), then decoded straight from it.
    /// </remarks>
    public string ToJson()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer);
        writer.Reset(buffer);
        Write(writer);
        writer.Flush();
        var json = Encoding.UTF8.GetString(buffer.WrittenSpan);
        if (buffer.Capacity > MaxKeptBuffer)
        {
            (t_buffer, t_writer) = (null, null); // an unusually large target: not kept
        }

        return json;
    }

    private const int MaxKeptBuffer = 4 << 20;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary><see cref="ToJson"/> as UTF-8.</summary>
    public byte[] ToUtf8() => Utf8(Write);

    internal abstract void Write(Utf8JsonWriter writer);

    /// <summary>What <paramref name="write"/> writes, as UTF-8 (targets and their lanes).</summary>
    internal static byte[] Utf8(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads a ledger's target JSON for participant <paramref name="participant"/> (<c>node:…</c> or <c>route:…</c>); null for null.</summary>
    public static ParticipantTarget? Parse(string participant, string? json) =>
        json is null ? null
            : participant.StartsWith("node:", StringComparison.Ordinal) ? NodeTarget.Parse(json)
            : participant.StartsWith("route:", StringComparison.Ordinal) ? RouteTarget.Parse(json)
            : throw new ArgumentException($"unknown participant \"{participant}\"", nameof(participant));
}

/// <summary>A tuned plan's host-wide idle settings, carried on every lane (a re-tune changes every lane).</summary>
/// <param name="Park">false: the worker never sleeps on the doorbell; null: it does (only a tuning that never parks says so).</param>
[GenerateSerializer, Immutable, Alias("rtt.LaneIdle")]
public sealed record LaneIdle([property: Id(0)] int? Spins, [property: Id(1)] int? Yields, [property: Id(2)] bool? Park = null);

/// <summary>
/// One lane as a node serves it: route <see cref="From"/> → <see cref="To"/> (id <see cref="RouteId"/>), of lane
/// <see cref="Kind"/> on node <see cref="Node"/>. A served lane names its serve block by <see cref="Endpoint"/> (a hash,
/// the block in the node target's endpoints) and its <see cref="RingSize"/>; a forwarded lane (<see cref="Forward"/>: the
/// node that serves it) is the caller's node passing calls on, and has neither.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.LaneSpec")]
public sealed record LaneSpec(
    [property: Id(0)] uint RouteId,
    [property: Id(1)] string From,
    [property: Id(2)] string To,
    [property: Id(3)] string Kind,
    [property: Id(4)] string Node,
    [property: Id(5)] int? RingSize = null,
    [property: Id(6)] string? Endpoint = null,
    [property: Id(7)] LaneIdle? Idle = null,
    [property: Id(8)] bool Unsandboxed = false,
    [property: Id(9)] string? Forward = null)
{
    /// <summary>The lane's JSON, as its node target holds it.</summary>
    public string ToJson() => Encoding.UTF8.GetString(ParticipantTarget.Utf8(Write));

    /// <summary>The hash of the lane's JSON: what a route's target names, so a changed lane changes its route's target.</summary>
    public string Hash() => ContentHash.Of(ParticipantTarget.Utf8(Write));

    internal void Write(Utf8JsonWriter w)
    {
        // Members in ordinal order; a forwarded lane has neither endpoint, ring nor sandbox exemption (the target node's lane has them).
        w.WriteStartObject();
        if (Forward is not null)
        {
            w.WriteString("forward", Forward);
        }
        else if (Endpoint is not null)
        {
            w.WriteString("endpoint", Endpoint);
        }

        w.WriteString("from", From);
        if (Idle is { } idle)
        {
            w.WriteStartObject("idle");
            WriteNumber(w, "spins", idle.Spins);
            WriteNumber(w, "yields", idle.Yields);
            if (idle.Park is { } park)
            {
                w.WriteBoolean("park", park);
            }

            w.WriteEndObject();
        }

        w.WriteString("kind", Kind);
        w.WriteString("node", Node);
        if (Forward is null)
        {
            WriteNumber(w, "ring_size", RingSize);
        }

        w.WriteNumber("route_id", RouteId);
        w.WriteString("to", To);
        if (Forward is null && Unsandboxed)
        {
            w.WriteBoolean("unsandboxed", true); // only when set, so other lanes keep their bytes
        }

        w.WriteEndObject();
    }

    private static void WriteNumber(Utf8JsonWriter w, string name, int? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    /// <summary>A lane of a node target's JSON (also a route target as ledgers held it before route targets were references).</summary>
    public static LaneSpec Read(JsonObject l) => new(
        (uint)l["route_id"]!,
        (string)l["from"]!,
        (string)l["to"]!,
        (string?)l["kind"] ?? "shm",
        (string?)l["node"] ?? "",
        l["ring_size"] is JsonValue r && r.TryGetValue<int>(out var ring) ? ring : null,
        (string?)l["endpoint"],
        l["idle"] is JsonObject idle
            ? new LaneIdle(
                idle["spins"] is JsonValue s && s.TryGetValue<int>(out var spins) ? spins : null,
                idle["yields"] is JsonValue y && y.TryGetValue<int>(out var yields) ? yields : null,
                idle["park"] is JsonValue p && p.TryGetValue<bool>(out var park) ? park : null)
            : null,
        l["unsandboxed"] is JsonValue u && u.TryGetValue<bool>(out var unsandboxed) && unsandboxed,
        (string?)l["forward"]);
}

/// <summary>A serve block a node's lanes name: its hash and the block as JSON (its shape is the driver's, so it stays text).</summary>
[GenerateSerializer, Immutable, Alias("rtt.LaneEndpoint")]
public sealed record LaneEndpoint([property: Id(0)] string Hash, [property: Id(1)] string Serve);

/// <summary>
/// What a plan puts on a node: the symbols placed there (ordinal order), the lanes it serves (by route id, each lane
/// spec stored here and only here) and the serve blocks they name (by hash). Compared by value, element by element.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.NodeTarget")]
public sealed record NodeTarget(
    [property: Id(0)] string Node,
    [property: Id(1)] ImmutableArray<string> Symbols,
    [property: Id(2)] ImmutableArray<LaneSpec> Lanes,
    [property: Id(3)] ImmutableArray<LaneEndpoint> Endpoints) : ParticipantTarget
{
    public bool Equals(NodeTarget? other) =>
        ReferenceEquals(this, other) || (other is not null && Node == other.Node
            && Symbols.AsSpan().SequenceEqual(other.Symbols.AsSpan())
            && Lanes.AsSpan().SequenceEqual(other.Lanes.AsSpan())
            && Endpoints.AsSpan().SequenceEqual(other.Endpoints.AsSpan()));

    public override int GetHashCode() => HashCode.Combine(Node, Symbols.Length, Lanes.Length, Lanes.IsDefaultOrEmpty ? 0 : Lanes[0].GetHashCode());

    /// <summary>The serve block (JSON) of <paramref name="endpoint"/>, or null when this target does not hold it.</summary>
    public string? ServeOf(string? endpoint)
    {
        if (endpoint is null)
        {
            return null;
        }

        foreach (var e in Endpoints)
        {
            if (e.Hash == endpoint)
            {
                return e.Serve;
            }
        }

        return null;
    }

    internal override void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        if (Endpoints.Length > 0)
        {
            w.WriteStartObject("endpoints");
            foreach (var e in Endpoints)
            {
                w.WritePropertyName(e.Hash);
                w.WriteRawValue(e.Serve);
            }

            w.WriteEndObject();
        }

        w.WriteStartArray("lanes");
        foreach (var lane in Lanes)
        {
            lane.Write(w);
        }

        w.WriteEndArray();
        w.WriteString("node", Node);
        w.WriteStartArray("symbols");
        foreach (var s in Symbols)
        {
            w.WriteStringValue(s);
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>A node target from its ledger JSON (as <see cref="ParticipantTarget.ToJson"/> writes it, or as ledgers held it before targets were typed).</summary>
    public static NodeTarget Parse(string json)
    {
        var target = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("a node target is a JSON object");
        return new NodeTarget(
            (string?)target["node"] ?? "",
            [.. (target["symbols"] as JsonArray ?? []).Select(s => (string)s!)],
            [.. (target["lanes"] as JsonArray ?? []).OfType<JsonObject>().Select(LaneSpec.Read)],
            [.. (target["endpoints"] as JsonObject ?? []).Select(e => new LaneEndpoint(e.Key, e.Value?.ToJsonString() ?? "null"))]);
    }
}

/// <summary>
/// What a plan asks of a route: a reference to the lane that serves it (the lane spec itself is in the serving node's
/// target only): the serving <see cref="Node"/>, the route's id and lane <see cref="Kind"/>, and <see cref="Lane"/>, the
/// hash of the lane spec (<see cref="LaneSpec.Hash"/>), so a route whose lane changes (ring size, endpoint, idle
/// settings) still changes and takes part in the transaction.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.RouteTarget")]
public sealed record RouteTarget(
    [property: Id(0)] string From,
    [property: Id(1)] string To,
    [property: Id(2)] uint RouteId,
    [property: Id(3)] string Node,
    [property: Id(4)] string Kind,
    [property: Id(5)] string Lane) : ParticipantTarget
{
    /// <summary>The reference to a served lane.</summary>
    public static RouteTarget Of(LaneSpec lane) => new(lane.From, lane.To, lane.RouteId, lane.Node, lane.Kind, lane.Hash());

    internal override void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("from", From);
        w.WriteString("kind", Kind);
        w.WriteString("lane", Lane);
        w.WriteString("node", Node);
        w.WriteNumber("route_id", RouteId);
        w.WriteString("to", To);
        w.WriteEndObject();
    }

    /// <summary>
    /// A route target from its ledger JSON. A ledger written before route targets were references holds the whole lane
    /// spec: it reads as the reference to that lane (its hash is the hash of those bytes, which are the lane's JSON).
    /// </summary>
    public static RouteTarget Parse(string json)
    {
        var target = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("a route target is a JSON object");
        return new RouteTarget(
            (string?)target["from"] ?? "",
            (string?)target["to"] ?? "",
            (uint?)target["route_id"] ?? 0,
            (string?)target["node"] ?? "",
            (string?)target["kind"] ?? "shm",
            (string?)target["lane"] ?? ContentHash.Of(Encoding.UTF8.GetBytes(json)));
    }
}
