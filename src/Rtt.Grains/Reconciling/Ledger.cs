using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Rtt.Grains.Reconciling;

/// <summary>
/// A participant's persisted 2PC state: what it applied, what it reserved, its last vote. Transaction ids are
/// nullable (null: none) rather than -1, because grain storage may drop members holding a type's default value.
/// </summary>
[GenerateSerializer, Alias("rtt.LedgerState")]
public sealed class LedgerState
{
    [Id(0)] public long? AppliedTx { get; set; }
    [Id(1)] public string? AppliedPlan { get; set; }
    [Id(2)] public string? AppliedTarget { get; set; }
    [Id(3)] public long? ReservedTx { get; set; }
    [Id(4)] public string? ReservedPlan { get; set; }
    [Id(5)] public string? ReservedTarget { get; set; }
    [Id(6)] public long? LastAbortedTx { get; set; }
    [Id(7)] public long? VoteTx { get; set; }
    [Id(8)] public bool VoteYes { get; set; }
    [Id(9)] public string? VoteReason { get; set; }

    /// <summary>The target applied before <see cref="AppliedTarget"/> (null: none, or a ledger older than this field): the SLO gates judge only what changed.</summary>
    [Id(10)] public string? PreviousTarget { get; set; }

    public ParticipantLedgerView View() => new(AppliedTx ?? -1, AppliedPlan, AppliedTarget, ReservedTx ?? -1, ReservedPlan);
}

/// <summary>
/// The participant side of the protocol, outside any grain so tests call it directly. Every method says whether
/// the state changed; the grain persists a changed commit or abort before answering, and keeps a prepare's vote and
/// reservation in memory, to go out with the commit or abort: the decision is durable in the WAL before any participant
/// hears it and the commit carries the target, so a participant that lost them (its silo restarted between prepare and
/// commit) follows the decision all the same, and a prepare repeated after such a restart is checked again. Messages are idempotent by (tx, phase); the
/// coordinator runs one transaction at a time, so a reservation older than an incoming prepare belongs to a
/// transaction that was aborted (a decided commit always reaches every participant before the next prepare).
/// </summary>
public static class TxLedger
{
    /// <summary>Prepare with a target as its ledger JSON (what the ledger stores).</summary>
    public static (TxVote Vote, bool Changed) Prepare(LedgerState s, long tx, string planId, string? target, Func<string?, string?> validate) =>
        Prepare(s, tx, planId, () => target, () => validate(target));

    /// <summary>Prepare with a typed target: validated as it is, written as its JSON (<see cref="ParticipantTarget.ToJson"/>) only when reserved.</summary>
    public static (TxVote Vote, bool Changed) Prepare(LedgerState s, long tx, string planId, ParticipantTarget? target, Func<ParticipantTarget?, string?> validate) =>
        Prepare(s, tx, planId, () => target?.ToJson(), () => validate(target));

    private static (TxVote Vote, bool Changed) Prepare(LedgerState s, long tx, string planId, Func<string?> target, Func<string?> validate)
    {
        if (tx <= s.AppliedTx)
        {
            return (new TxVote(true, "already applied"), false);
        }

        if (tx == s.VoteTx)
        {
            return (new TxVote(s.VoteYes, s.VoteReason ?? ""), false); // a repeated prepare gets the same answer
        }

        if (tx <= s.LastAbortedTx)
        {
            return (new TxVote(false, $"transaction {tx} was aborted"), false);
        }

        if (s.ReservedTx > tx)
        {
            return (new TxVote(false, $"reserved by a newer transaction {s.ReservedTx}"), false);
        }

        if (s.ReservedTx is { } older)
        {
            s.LastAbortedTx = Math.Max(s.LastAbortedTx ?? -1, older); // an older, unresolved reservation: its transaction was aborted
            Release(s);
        }

        var problem = validate();
        s.VoteTx = tx;
        s.VoteYes = problem is null;
        s.VoteReason = problem ?? "reserved";
        if (problem is null)
        {
            s.ReservedTx = tx;
            s.ReservedPlan = planId;
            s.ReservedTarget = target();
        }

        return (new TxVote(s.VoteYes, s.VoteReason), true);
    }

    /// <summary>
    /// Applies the decided transaction. Normally it applies the reservation; a participant that has none for this
    /// transaction (its state was written with synchronous=NORMAL and a power cut took it) applies the target the
    /// decision carries: the decision is durable in the WAL, so the participant must follow it.
    /// </summary>
    public static bool Commit(LedgerState s, long tx, string planId, string? target) => Commit(s, tx, planId, () => target);

    /// <summary>Commit with a typed target, written as its JSON only when there is no reservation to apply.</summary>
    public static bool Commit(LedgerState s, long tx, string planId, ParticipantTarget? target) => Commit(s, tx, planId, () => target?.ToJson());

    private static bool Commit(LedgerState s, long tx, string planId, Func<string?> target)
    {
        if (s.AppliedTx >= tx)
        {
            return false; // already applied: a repeated commit changes nothing
        }

        var reserved = s.ReservedTx == tx;
        s.PreviousTarget = s.AppliedTarget;
        s.AppliedTx = tx;
        s.AppliedPlan = reserved ? s.ReservedPlan : planId;
        s.AppliedTarget = reserved ? s.ReservedTarget : target();
        Release(s);
        return true;
    }

    public static bool Abort(LedgerState s, long tx)
    {
        if (s.LastAbortedTx >= tx && s.ReservedTx != tx)
        {
            return false;
        }

        s.LastAbortedTx = Math.Max(s.LastAbortedTx ?? -1, tx);
        if (s.ReservedTx == tx)
        {
            Release(s);
        }

        return true;
    }

    private static void Release(LedgerState s)
    {
        s.ReservedTx = null;
        s.ReservedPlan = null;
        s.ReservedTarget = null;
    }
}

/// <summary>
/// A ledger's stored text (the ledger stores' <c>ledger</c> column): the members of <see cref="LedgerState"/> by name,
/// with its targets (applied, reserved, previous: a node's carries every lane it serves) written as JSON values in
/// place rather than as strings holding JSON. A node target of 1,000 lanes is about 150 KB; as a string it was escaped
/// (every quote) on each of a transaction's two ledger writes, three targets at a time. Reads both forms: rows written
/// before (targets as strings) and rows written now. A target's text reads back byte for byte as it was written.
/// </summary>
public static class LedgerJson
{
    /// <summary>
    /// Target texts already checked to be one JSON object, by instance: a ledger writes the same target strings again and
    /// again (the applied target on every prepare and commit, the reserved one again as applied, then as previous), so
    /// each is read through once, not on every write.
    /// </summary>
    private static readonly ConditionalWeakTable<string, object> Checked = new();

    /// <summary>Targets of at least this many characters are stored in rows of their own by <see cref="Rows"/> (a node's: its lanes).</summary>
    public const int SeparateTargetChars = 4096;

    /// <summary>The member a ledger row holds in place of a target stored in a row of its own: <c>{"$target": "sha256:…"}</c>.</summary>
    public const string TargetReference = "$target";

    /// <summary>The hashes of target texts already computed, by instance (the same strings come back as reserved, applied, previous).</summary>
    private static readonly ConditionalWeakTable<string, string> Hashes = new();

    public static string Write(LedgerState s) => Write(s, null, null);

    /// <summary>
    /// A ledger as rows: its own, where each target of <see cref="SeparateTargetChars"/> or more is a reference
    /// (<see cref="TargetReference"/>, the hash of its text), and one row per such target under <see cref="TargetKey"/>.
    /// A target is then written once, when it is reserved, and not again as it becomes applied and previous: a
    /// single-route change to a node serving 1,000 lanes wrote about 450 KB of targets at prepare and 300 KB at commit.
    /// The store keeps exactly the target rows the ledger row refers to (<see cref="References"/> of the row it replaces
    /// says which to drop).
    /// </summary>
    public static LedgerRows Rows(string key, LedgerState s)
    {
        var targets = new List<(string Key, string Text)>(3);
        return new LedgerRows(Write(s, key, targets), targets);
    }

    /// <summary>The row key of a target stored apart: the participant's key cannot start with U+0001, so no ledger row has it.</summary>
    public static string TargetKey(string key, string hash) => $"\u0001{hash}\u0001{key}";

    /// <summary>The target row keys a stored ledger row refers to (none for a row written before targets were stored apart).</summary>
    public static IReadOnlyList<string> References(string key, string? text)
    {
        var keys = new List<string>(3);
        if (text is null || !text.Contains($"\"{TargetReference}\"", StringComparison.Ordinal))
        {
            return keys; // no reference (a route's row, or one written before): nothing to parse
        }

        using var doc = JsonDocument.Parse(text);
        if (doc.RootElement.ValueKind == JsonValueKind.Object)
        {
            foreach (var name in (ReadOnlySpan<string>)["AppliedTarget", "ReservedTarget", "PreviousTarget"])
            {
                if (doc.RootElement.TryGetProperty(name, out var v) && Reference(v) is { } hash && !keys.Contains(TargetKey(key, hash)))
                {
                    keys.Add(TargetKey(key, hash));
                }
            }
        }

        return keys;
    }

    private static string Write(LedgerState s, string? key, List<(string Key, string Text)>? separate)
    {
        var inPlace = separate is null ? s.AppliedTarget?.Length ?? 0 : Math.Min(s.AppliedTarget?.Length ?? 0, SeparateTargetChars);
        var buffer = new ArrayBufferWriter<byte>(256 + 3 * (inPlace + 16));
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            Number(w, "AppliedTx", s.AppliedTx);
            w.WriteString("AppliedPlan", s.AppliedPlan);
            Target(w, "AppliedTarget", s.AppliedTarget, key, separate);
            Number(w, "ReservedTx", s.ReservedTx);
            w.WriteString("ReservedPlan", s.ReservedPlan);
            Target(w, "ReservedTarget", s.ReservedTarget, key, separate);
            Number(w, "LastAbortedTx", s.LastAbortedTx);
            Number(w, "VoteTx", s.VoteTx);
            w.WriteBoolean("VoteYes", s.VoteYes);
            w.WriteString("VoteReason", s.VoteReason);
            Target(w, "PreviousTarget", s.PreviousTarget, key, separate);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Reads a row of either form; a member of the wrong kind is refused (<see cref="JsonException"/>), as the serializer refused it.</summary>
    public static LedgerState Read(string text) => Read(text, "", _ => null);

    /// <summary>
    /// Reads a row written by <see cref="Rows"/> (or of an older form), its targets stored apart taken from
    /// <paramref name="targets"/> (target row key → text); a reference to a target that is not there is refused.
    /// </summary>
    public static LedgerState Read(string text, string key, Func<string, string?> targets)
    {
        using var doc = JsonDocument.Parse(text);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new JsonException("a participant ledger is a JSON object");
        }

        string? TargetOf(string name) => TargetText(root, name, key, targets);
        return new LedgerState
        {
            AppliedTx = Long(root, "AppliedTx"),
            AppliedPlan = Str(root, "AppliedPlan"),
            AppliedTarget = TargetOf("AppliedTarget"),
            ReservedTx = Long(root, "ReservedTx"),
            ReservedPlan = Str(root, "ReservedPlan"),
            ReservedTarget = TargetOf("ReservedTarget"),
            LastAbortedTx = Long(root, "LastAbortedTx"),
            VoteTx = Long(root, "VoteTx"),
            VoteYes = Member(root, "VoteYes", JsonValueKind.True, JsonValueKind.False) is { } yes && yes.GetBoolean(),
            VoteReason = Str(root, "VoteReason"),
            PreviousTarget = TargetOf("PreviousTarget"),
        };
    }

    /// <summary>The hash a target reference names, or null when the value is not one.</summary>
    private static string? Reference(JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Object || !v.TryGetProperty(TargetReference, out var hash) || hash.ValueKind != JsonValueKind.String)
        {
            return null;
        }

        using var members = v.EnumerateObject();
        return members.Count() == 1 ? hash.GetString() : null;
    }

    private static void Number(Utf8JsonWriter w, string name, long? value)
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

    /// <summary>
    /// A target written as the JSON value it is (its own text, unchanged); one that is not a JSON object stays a string;
    /// with <paramref name="separate"/>, a long one becomes a reference to a row of its own (added to it).
    /// </summary>
    private static void Target(Utf8JsonWriter w, string name, string? text, string? key, List<(string Key, string Text)>? separate)
    {
        if (text is null)
        {
            w.WriteNull(name);
        }
        else if (separate is not null && key is not null && text.Length >= SeparateTargetChars)
        {
            var hash = Hashes.GetValue(text, static t => Rtt.Core.Hashing.ContentHash.Of(Encoding.UTF8.GetBytes(t)));
            w.WriteStartObject(name);
            w.WriteString(TargetReference, hash);
            w.WriteEndObject();
            var row = TargetKey(key, hash);
            if (!separate.Exists(t => t.Key == row))
            {
                separate.Add((row, text));
            }
        }
        else if (Checked.TryGetValue(text, out _))
        {
            w.WritePropertyName(name);
            w.WriteRawValue(text, skipInputValidation: true); // checked when first written
        }
        else if (Encoding.UTF8.GetBytes(text) is var bytes && IsObject(bytes))
        {
            Checked.AddOrUpdate(text, Checked);
            w.WritePropertyName(name);
            w.WriteRawValue(bytes, skipInputValidation: true); // checked just now
        }
        else
        {
            w.WriteString(name, text);
        }
    }

    /// <summary>True when the bytes are one JSON object and nothing else (no white space around it, so it reads back as the same text).</summary>
    private static bool IsObject(byte[] bytes)
    {
        if (bytes.Length < 2 || bytes[0] != (byte)'{' || bytes[^1] != (byte)'}')
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(bytes);
            return reader.Read() && reader.TrySkip() && reader.BytesConsumed == bytes.Length && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The member when present and not null; one of another kind than <paramref name="kinds"/> is refused.</summary>
    private static JsonElement? Member(JsonElement root, string name, params JsonValueKind[] kinds)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return Array.IndexOf(kinds, v.ValueKind) >= 0 ? v : throw new JsonException($"ledger member {name} is {v.ValueKind}, not {string.Join(" or ", kinds)}");
    }

    private static long? Long(JsonElement root, string name) => Member(root, name, JsonValueKind.Number)?.GetInt64();

    private static string? Str(JsonElement root, string name) => Member(root, name, JsonValueKind.String)?.GetString();

    /// <summary>A target in place (its text as written), as a string (rows written before), or stored apart (a reference).</summary>
    private static string? TargetText(JsonElement root, string name, string key, Func<string, string?> targets)
    {
        if (Member(root, name, JsonValueKind.String, JsonValueKind.Object) is not { } v)
        {
            return null;
        }

        if (v.ValueKind == JsonValueKind.String)
        {
            return v.GetString();
        }

        if (Reference(v) is { } hash)
        {
            var text = targets(TargetKey(key, hash)) ?? throw new JsonException($"ledger member {name} refers to target {hash}, which is not stored");
            Hashes.AddOrUpdate(text, hash); // written back as the same reference, not hashed again
            return text;
        }

        return v.GetRawText();
    }
}

/// <summary>A ledger as stored rows: its own text and the targets stored apart (row key, text).</summary>
public sealed record LedgerRows(string Ledger, IReadOnlyList<(string Key, string Text)> Targets);
