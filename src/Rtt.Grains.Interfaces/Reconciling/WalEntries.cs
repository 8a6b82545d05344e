using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Json;

// The WAL's entries live here, beside the grain interfaces, so the WAL grain takes them typed (IWalGrain.Append); their
// namespace is the WAL's (Rtt.Reconciling.Wal), where the log, its stores and its readers are.
namespace Rtt.Reconciling.Wal;

/// <summary>The <c>kind</c> of each WAL entry (docs/reconciler.md, "WAL format").</summary>
public static class WalEntryKind
{
    public const string Prepare = "prepare";
    public const string Commit = "commit";
    public const string Abort = "abort";
    public const string Applied = "applied";
    public const string Verified = "verified";
    public const string VerifyFailed = "verify-failed";
    public const string KeyRotation = "key-rotation";
}

/// <summary>
/// One WAL entry, typed: the one schema the coordinator writes, recovery reads, and `rtt wal plan` rebuilds plans from.
/// <see cref="ToJson"/> is the one writer (the leaf is its RFC 8785 canonical bytes, <see cref="ToLeaf"/>) and
/// <see cref="Parse(ReadOnlySpan{byte}, bool)"/> the one parser. The bytes are a persisted, hashed format: a member
/// written as null stays written as null, an absent one stays absent (WalEntryTests pins them against entries
/// captured before the entries were typed). The parser reads old entries as before: members missing from them take
/// the defaults recovery always gave them. The records cross the grain boundary to the WAL grain as Orleans-serialized
/// records (a plan or delta as its JSON text, <see cref="JsonObjectSurrogate"/>); the grain stores <see cref="ToLeaf"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.WalEntry")]
public abstract record WalEntry([property: Id(0)] string At)
{
    /// <summary>The transition of a prepare entry that names none (entries written before rollbacks were logged): an apply.</summary>
    public const string DefaultTransition = "apply";

    public abstract string Kind { get; }

    /// <summary>The entry as a JSON object, members in the order they were always written.</summary>
    public abstract JsonObject ToJson();

    /// <summary>The bytes stored and hashed: the canonical form of <see cref="ToJson"/>.</summary>
    public byte[] ToLeaf() => CanonicalJson.Serialize(ToJson());

    /// <summary>The form of <c>at</c>: UTC with milliseconds (<c>2026-11-26T05:36:21.519Z</c>).</summary>
    public static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>
    /// Reads a stored entry (its leaf). Null for an entry of another kind (tests and tools may log their own) or one
    /// that lacks what its kind needs (a decision or outcome without <c>tx</c>). With <paramref name="plans"/> false,
    /// a prepare entry's plan and delta are not read (recovery needs only whether it is a delta).
    /// </summary>
    public static WalEntry? Parse(ReadOnlySpan<byte> leaf, bool plans = true)
    {
        var reader = new Utf8JsonReader(leaf);
        using var doc = JsonDocument.ParseValue(ref reader);
        return Parse(doc.RootElement, plans);
    }

    /// <inheritdoc cref="Parse(ReadOnlySpan{byte}, bool)"/>
    public static WalEntry? Parse(JsonElement e, bool plans = true)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var at = Str(e, "at") ?? "";
        var kind = Str(e, "kind");
        if (kind == WalEntryKind.Prepare)
        {
            var delta = e.TryGetProperty("delta", out var d) && d.ValueKind == JsonValueKind.Object ? d : (JsonElement?)null;
            var plan = e.TryGetProperty("plan", out var p) && p.ValueKind == JsonValueKind.Object ? p : (JsonElement?)null;
            return new PrepareEntry(
                at,
                Str(e, "base"),
                e.TryGetProperty("participants", out var ps) ? [.. ps.EnumerateArray().Select(x => x.GetString()!)] : [],
                plans && plan is { } whole ? Node(whole) : null,
                plans && delta is { } changes ? Node(changes) : null,
                Str(e, "plan_id"),
                Str(e, "transition") ?? DefaultTransition,
                Str(e, "reason"))
            {
                IsDelta = delta is not null,
                PlansRead = plans,
            };
        }

        if (kind == WalEntryKind.KeyRotation)
        {
            return new KeyRotationEntry(at, Str(e, "from") ?? "", Str(e, "revocation") ?? "", Str(e, "to") ?? "");
        }

        if (kind is null || !e.TryGetProperty("tx", out var txe) || !txe.TryGetInt64(out var tx))
        {
            return null;
        }

        return kind switch
        {
            WalEntryKind.Commit or WalEntryKind.Abort => new DecisionEntry(at, tx, kind == WalEntryKind.Commit, Str(e, "plan_id"),
                e.TryGetProperty("votes", out var vs) && vs.ValueKind == JsonValueKind.Array
                    ? [.. vs.EnumerateArray().Select(v => new WalVote(Str(v, "participant") ?? "", Str(v, "reason"), v.TryGetProperty("yes", out var y) && y.ValueKind == JsonValueKind.True))]
                    : [],
                Str(e, "reason")),
            WalEntryKind.Applied => new AppliedEntry(at, tx),
            WalEntryKind.Verified => new VerifiedEntry(at, tx, Str(e, "checks") ?? ""),
            WalEntryKind.VerifyFailed => new VerifyFailedEntry(at, tx, Str(e, "reason")),
            _ => null,
        };
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static JsonObject Node(JsonElement e) => JsonObject.Create(e.Clone())!;

    /// <summary>The first members of every entry of a transaction after its prepare: <c>at</c>, <c>kind</c>, <c>tx</c>.</summary>
    private protected JsonObject Head(long tx) => new() { ["at"] = At, ["kind"] = Kind, ["tx"] = tx };
}

/// <summary>
/// <c>prepare</c>: opens transaction (its index is the transaction id). The plan goes as a delta on the applied plan
/// (<see cref="Delta"/>, <c>PlanDelta</c>) or whole (<see cref="Plan"/>; null: no plan, written as <c>"plan": null</c>).
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.PrepareEntry")]
public sealed record PrepareEntry(
    string At,
    [property: Id(0)] string? Base,
    [property: Id(1)] ImmutableArray<string> Participants,
    [property: Id(2)] JsonObject? Plan,
    [property: Id(3)] JsonObject? Delta,
    [property: Id(4)] string? PlanId,
    [property: Id(5)] string Transition,
    [property: Id(6)] string? Reason)
    : WalEntry(At)
{
    public override string Kind => WalEntryKind.Prepare;

    /// <summary>Whether the entry carries a delta (set by the parser even when the plans were not read).</summary>
    [Id(7)]
    public bool IsDelta { get; init; }

    /// <summary>False when parsed without the plan and delta: such an entry cannot be written again.</summary>
    [Id(8)]
    public bool PlansRead { get; init; } = true;

    public override JsonObject ToJson()
    {
        if (!PlansRead)
        {
            throw new InvalidOperationException("a prepare entry read without its plan cannot be written");
        }

        var o = new JsonObject
        {
            ["at"] = At,
            ["base"] = Base,
            ["kind"] = Kind,
            ["participants"] = new JsonArray([.. Participants.Select(k => (JsonNode)k)]),
        };
        if (Delta is not null)
        {
            o["delta"] = Delta.DeepClone();
        }
        else
        {
            o["plan"] = Plan?.DeepClone();
        }

        o["plan_id"] = PlanId;
        o["transition"] = Transition;
        if (Reason is not null)
        {
            o["reason"] = Reason;
        }

        return o;
    }
}

/// <summary>A participant's vote as a decision entry records it.</summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.WalVote")]
public sealed record WalVote([property: Id(0)] string Participant, [property: Id(1)] string? Reason, [property: Id(2)] bool Yes);

/// <summary><c>commit</c> / <c>abort</c>: the decision, with every vote and (abort) the reason.</summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.DecisionEntry")]
public sealed record DecisionEntry(string At, [property: Id(0)] long Tx, [property: Id(1)] bool Commit, [property: Id(2)] string? PlanId, [property: Id(3)] ImmutableArray<WalVote> Votes, [property: Id(4)] string? Reason) : WalEntry(At)
{
    public override string Kind => Commit ? WalEntryKind.Commit : WalEntryKind.Abort;

    public override JsonObject ToJson()
    {
        var o = Head(Tx);
        o["plan_id"] = PlanId;
        o["votes"] = new JsonArray([.. Votes.Select(v => (JsonNode)new JsonObject { ["participant"] = v.Participant, ["reason"] = v.Reason, ["yes"] = v.Yes })]);
        if (Reason is not null)
        {
            o["reason"] = Reason;
        }

        return o;
    }
}

/// <summary><c>applied</c>: every participant acknowledged the commit.</summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.AppliedEntry")]
public sealed record AppliedEntry(string At, [property: Id(0)] long Tx) : WalEntry(At)
{
    public override string Kind => WalEntryKind.Applied;

    public override JsonObject ToJson() => Head(Tx);
}

/// <summary><c>verified</c>: the post-conditions held; <c>checks</c> says what each node answered.</summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.VerifiedEntry")]
public sealed record VerifiedEntry(string At, [property: Id(0)] long Tx, [property: Id(1)] string Checks) : WalEntry(At)
{
    public override string Kind => WalEntryKind.Verified;

    public override JsonObject ToJson()
    {
        var o = Head(Tx);
        o["checks"] = Checks;
        return o;
    }
}

/// <summary><c>verify-failed</c>: a post-condition failed, and why.</summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.VerifyFailedEntry")]
public sealed record VerifyFailedEntry(string At, [property: Id(0)] long Tx, [property: Id(1)] string? Reason) : WalEntry(At)
{
    public override string Kind => WalEntryKind.VerifyFailed;

    public override JsonObject ToJson()
    {
        var o = Head(Tx);
        o["reason"] = Reason;
        return o;
    }
}

/// <summary><c>key-rotation</c>: `rtt keys rotate` with the silo stopped (<c>KeyRotation</c>); no transaction.</summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.KeyRotationEntry")]
public sealed record KeyRotationEntry(string At, [property: Id(0)] string From, [property: Id(1)] string Revocation, [property: Id(2)] string To) : WalEntry(At)
{
    public override string Kind => WalEntryKind.KeyRotation;

    public override JsonObject ToJson() => new()
    {
        ["at"] = At,
        ["from"] = From,
        ["kind"] = Kind,
        ["revocation"] = Revocation,
        ["to"] = To,
    };
}

/// <summary>
/// A plan or delta (<see cref="JsonObject"/>, which Orleans has no codec for) on the wire: its JSON text. The WAL grain
/// stores the entry's canonical bytes, which do not depend on how the text was written.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.wal.JsonObject")]
public struct JsonObjectSurrogate
{
    [Id(0)]
    public string Json;
}

/// <summary>Converts a <see cref="JsonObject"/> to and from <see cref="JsonObjectSurrogate"/>.</summary>
[RegisterConverter]
public sealed class JsonObjectSurrogateConverter : IConverter<JsonObject, JsonObjectSurrogate>
{
    public JsonObject ConvertFromSurrogate(in JsonObjectSurrogate surrogate) =>
        JsonNode.Parse(surrogate.Json) as JsonObject ?? throw new FormatException("a serialized JSON object is not an object");

    public JsonObjectSurrogate ConvertToSurrogate(in JsonObject value) => new() { Json = value.ToJsonString() };
}
