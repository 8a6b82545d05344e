using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Planning;
using Rtt.Reconciling.Wal;

namespace Rtt.Reconciling;

/// <summary>
/// A plan as the changes from the plan it replaces (its base), as the WAL's <c>prepare</c> entry carries it when a
/// plan is applied over another one: its cost follows the change, not the plan's size. Format (docs/reconciler.md,
/// "WAL format"):
/// <code>
/// {"base": "&lt;the base's plan_id&gt;",
///  "set": {member: value},                      top-level members new or replaced whole
///  "remove": [member],                          top-level members the plan no longer has
///  "objects": {member: {"set": {…}, "remove": […]}},   member-level changes of an object member in both
///  "arrays": {member: {"at": i, "delete": k, "insert": […]}}}  one splice of an array member in both
/// </code>
/// Applying it to the plan whose plan_id is <c>base</c> gives the plan back; <see cref="Apply"/> refuses another base,
/// and the reader checks the result's hash against the entry's <c>plan_id</c>.
/// </summary>
public static class PlanDelta
{
    /// <summary>The delta from <paramref name="basePlan"/> to <paramref name="target"/>; checked: applying it gives <paramref name="target"/>.</summary>
    public static JsonObject Diff(JsonObject basePlan, JsonObject target)
    {
        var set = new JsonObject();
        var remove = new JsonArray();
        var objects = new JsonObject();
        var arrays = new JsonObject();
        foreach (var (name, value) in target)
        {
            Member(name, basePlan.TryGetPropertyValue(name, out var old), old, value, set, objects, arrays);
        }

        foreach (var (name, _) in basePlan)
        {
            if (!target.ContainsKey(name))
            {
                remove.Add(name);
            }
        }

        return Delta((string?)basePlan["plan_id"], set, remove, objects, arrays);
    }

    /// <summary>One member of the target against the base's (<paramref name="inBase"/>: the base has it): nothing when equal, else an object's member changes, an array's splice, or the value set whole.</summary>
    private static void Member(string name, bool inBase, JsonNode? old, JsonNode? value, JsonObject set, JsonObject objects, JsonObject arrays)
    {
        if (inBase && Same(old, value))
        {
            return;
        }

        if (old is JsonObject a && value is JsonObject b)
        {
            objects[name] = ObjectDiff(a, b);
        }
        else if (old is JsonArray x && value is JsonArray y)
        {
            arrays[name] = Splice(x, y);
        }
        else
        {
            set[name] = value?.DeepClone();
        }
    }

    private static JsonObject Delta(string? baseId, JsonObject set, JsonArray remove, JsonObject objects, JsonObject arrays)
    {
        var delta = new JsonObject { ["base"] = baseId };
        if (set.Count > 0)
        {
            delta["set"] = set;
        }

        if (remove.Count > 0)
        {
            delta["remove"] = remove;
        }

        if (objects.Count > 0)
        {
            delta["objects"] = objects;
        }

        if (arrays.Count > 0)
        {
            delta["arrays"] = arrays;
        }

        return delta;
    }

    /// <summary>
    /// The same delta from the two plans' canonical texts without their <c>sign</c> members (<see cref="PlanContent.SigningPayload"/>
    /// of a plan whose text was plain canonical, <see cref="PlanContent.Plain"/>): members are matched by walking both
    /// texts' sorted names together and values compared by their bytes (canonical texts: equal bytes, equal values), so
    /// nothing unchanged is decoded into nodes; only changed values are. The <c>sign</c> members come from the trees.
    /// Members come out in canonical order, which is the order <see cref="Diff(JsonObject, JsonObject)"/> gives on plans
    /// held in that order (as plans parsed from canonical text are).
    /// </summary>
    public static JsonObject Diff(JsonObject basePlan, JsonElement basePayload, JsonObject target, JsonElement targetPayload)
    {
        var set = new JsonObject();
        var remove = new JsonArray();
        var objects = new JsonObject();
        var arrays = new JsonObject();
        Merge(basePayload, targetPayload, (name, old, value) =>
        {
            if (old is not { } a)
            {
                set[name] = Node(value!.Value);
            }
            else if (value is not { } b)
            {
                remove.Add(name);
            }
            else if (a.ValueKind == JsonValueKind.Object && b.ValueKind == JsonValueKind.Object)
            {
                objects[name] = ObjectDiff(a, b);
            }
            else if (a.ValueKind == JsonValueKind.Array && b.ValueKind == JsonValueKind.Array)
            {
                arrays[name] = Splice(a, b);
            }
            else
            {
                set[name] = Node(b);
            }
        });

        var baseSigned = basePlan.TryGetPropertyValue(ObjectSigner.SignMember, out var baseSign);
        if (target.TryGetPropertyValue(ObjectSigner.SignMember, out var sign))
        {
            Member(ObjectSigner.SignMember, baseSigned, baseSign, sign, set, objects, arrays); // as the tree walk does
        }
        else if (baseSigned)
        {
            // In its place among the names (sorted, as the base's members are), as the tree walk lists it.
            var at = 0;
            while (at < remove.Count && string.CompareOrdinal((string)remove[at]!, ObjectSigner.SignMember) < 0)
            {
                at++;
            }

            remove.Insert(at, ObjectSigner.SignMember);
        }

        return Delta((string?)basePlan["plan_id"], set, remove, objects, arrays);
    }

    /// <summary>
    /// True when <paramref name="plan"/> (a rebuilt plan) is the plan whose canonical text without <c>sign</c> is
    /// <paramref name="payload"/> and whose <c>sign</c> member is <paramref name="target"/>'s: compared value by value
    /// against the text (bytes where the node was read from text), without decoding the text into nodes.
    /// </summary>
    public static bool SameAs(JsonObject plan, JsonObject target, JsonElement payload)
    {
        var signed = plan.TryGetPropertyValue(ObjectSigner.SignMember, out var sign);
        if (signed != target.TryGetPropertyValue(ObjectSigner.SignMember, out var targetSign) || (signed && !Same(sign, targetSign)))
        {
            return false;
        }

        var count = 0;
        foreach (var member in payload.EnumerateObject())
        {
            count++;
            if (member.NameEquals(ObjectSigner.SignMember) || !plan.TryGetPropertyValue(member.Name, out var value) || !SameAs(value, member.Value))
            {
                return false;
            }
        }

        return plan.Count == count + (signed ? 1 : 0);
    }

    /// <summary>
    /// <see cref="SameAs(JsonObject, JsonObject, JsonElement)"/> for a plan rebuilt by <paramref name="delta"/> from
    /// texts (<see cref="Diff(JsonObject, JsonElement, JsonObject, JsonElement)"/>), checked where the delta changed it:
    /// the members, object members and array elements it sets or inserts against the target's text, the ones it removes
    /// gone, and every count. What it left alone is a copy of the base's, whose bytes the diff found equal to the
    /// target's: equal to the target's as long as the base plan equals the base text, which the caller keeps (its
    /// applied plan is a rebuilt plan it checked against its own text, or one it checked whole).
    /// </summary>
    public static bool SameWhereChanged(JsonObject plan, JsonObject target, JsonElement payload, JsonObject delta)
    {
        var signed = plan.TryGetPropertyValue(ObjectSigner.SignMember, out var sign);
        if (signed != target.TryGetPropertyValue(ObjectSigner.SignMember, out var targetSign) || (signed && !Same(sign, targetSign))
            || plan.Count != payload.GetPropertyCount() + (signed ? 1 : 0))
        {
            return false;
        }

        foreach (var name in delta["remove"] as JsonArray ?? [])
        {
            if (plan.ContainsKey((string)name!))
            {
                return false;
            }
        }

        foreach (var (name, _) in delta["set"] as JsonObject ?? [])
        {
            if (name != ObjectSigner.SignMember && (!payload.TryGetProperty(name, out var value) || !SameAs(plan[name], value)))
            {
                return false;
            }
        }

        foreach (var (name, change) in delta["objects"] as JsonObject ?? [])
        {
            if (name == ObjectSigner.SignMember)
            {
                continue; // compared whole above
            }

            if (plan[name] is not JsonObject o || !payload.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Object || o.Count != value.GetPropertyCount())
            {
                return false;
            }

            foreach (var member in change?["remove"] as JsonArray ?? [])
            {
                if (o.ContainsKey((string)member!))
                {
                    return false;
                }
            }

            foreach (var (member, _) in change?["set"] as JsonObject ?? [])
            {
                if (!value.TryGetProperty(member, out var v) || !o.TryGetPropertyValue(member, out var node) || !SameAs(node, v))
                {
                    return false;
                }
            }
        }

        foreach (var (name, change) in delta["arrays"] as JsonObject ?? [])
        {
            if (name == ObjectSigner.SignMember)
            {
                continue;
            }

            var at = (int?)change?["at"] ?? -1;
            var inserted = (change?["insert"] as JsonArray)?.Count ?? 0;
            if (plan[name] is not JsonArray a || !payload.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Array
                || a.Count != value.GetArrayLength() || at < 0 || at + inserted > a.Count)
            {
                return false;
            }

            var i = 0;
            foreach (var item in value.EnumerateArray())
            {
                if (i >= at && i < at + inserted && !SameAs(a[i], item))
                {
                    return false;
                }

                if (++i >= at + inserted)
                {
                    break;
                }
            }
        }

        return true;
    }

    private static bool SameAs(JsonNode? node, JsonElement element)
    {
        switch (node)
        {
            case null:
                return element.ValueKind == JsonValueKind.Null;
            case JsonObject o:
                if (element.ValueKind != JsonValueKind.Object)
                {
                    return false;
                }

                var count = 0;
                foreach (var member in element.EnumerateObject())
                {
                    count++;
                    if (!o.TryGetPropertyValue(member.Name, out var value) || !SameAs(value, member.Value))
                    {
                        return false;
                    }
                }

                return o.Count == count;
            case JsonArray a:
                if (element.ValueKind != JsonValueKind.Array || element.GetArrayLength() != a.Count)
                {
                    return false;
                }

                var i = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (!SameAs(a[i++], item))
                    {
                        return false;
                    }
                }

                return true;
            default:
                // The element's text is canonical: a value read from the same bytes is equal; any other is compared by its
                // canonical bytes.
                var raw = JsonMarshal.GetRawUtf8Value(element);
                return (node is JsonValue v && v.TryGetValue<JsonElement>(out var e) && JsonMarshal.GetRawUtf8Value(e).SequenceEqual(raw))
                    || CanonicalJson.Serialize(node).AsSpan().SequenceEqual(raw);
        }
    }

    /// <summary>Walks the members of two canonical objects together by name (both sorted): each name with its value in either.</summary>
    private static void Merge(JsonElement a, JsonElement b, Action<string, JsonElement?, JsonElement?> each)
    {
        using var x = a.EnumerateObject();
        using var y = b.EnumerateObject();
        var hasX = x.MoveNext();
        var hasY = y.MoveNext();
        while (hasX || hasY)
        {
            var order = !hasX ? 1 : !hasY ? -1 : JsonMarshal.GetRawUtf8PropertyName(x.Current).SequenceCompareTo(JsonMarshal.GetRawUtf8PropertyName(y.Current));
            if (order < 0)
            {
                each(x.Current.Name, x.Current.Value, null);
                hasX = x.MoveNext();
            }
            else if (order > 0)
            {
                each(y.Current.Name, null, y.Current.Value);
                hasY = y.MoveNext();
            }
            else
            {
                if (!JsonMarshal.GetRawUtf8Value(x.Current.Value).SequenceEqual(JsonMarshal.GetRawUtf8Value(y.Current.Value)))
                {
                    each(x.Current.Name, x.Current.Value, y.Current.Value);
                }

                hasX = x.MoveNext();
                hasY = y.MoveNext();
            }
        }
    }

    private static JsonObject ObjectDiff(JsonElement a, JsonElement b)
    {
        var set = new JsonObject();
        var remove = new JsonArray();
        Merge(a, b, (name, _, value) =>
        {
            if (value is { } v)
            {
                set[name] = Node(v);
            }
            else
            {
                remove.Add(name);
            }
        });
        return new JsonObject { ["remove"] = remove, ["set"] = set };
    }

    private static JsonObject Splice(JsonElement a, JsonElement b)
    {
        var x = a.EnumerateArray().ToArray();
        var y = b.EnumerateArray().ToArray();
        var prefix = 0;
        while (prefix < x.Length && prefix < y.Length && Bytes(x[prefix]).SequenceEqual(Bytes(y[prefix])))
        {
            prefix++;
        }

        var suffix = 0;
        while (suffix < x.Length - prefix && suffix < y.Length - prefix && Bytes(x[^(1 + suffix)]).SequenceEqual(Bytes(y[^(1 + suffix)])))
        {
            suffix++;
        }

        var insert = new JsonArray();
        for (var i = prefix; i < y.Length - suffix; i++)
        {
            insert.Add(Node(y[i]));
        }

        return new JsonObject { ["at"] = prefix, ["delete"] = x.Length - suffix - prefix, ["insert"] = insert };
    }

    private static ReadOnlySpan<byte> Bytes(JsonElement element) => JsonMarshal.GetRawUtf8Value(element);

    /// <summary>A node of its own for a value of a text (not tied to the text's document).</summary>
    private static JsonNode? Node(JsonElement element) => JsonNode.Parse(JsonMarshal.GetRawUtf8Value(element));


    /// <summary>The plan <paramref name="delta"/> makes of <paramref name="basePlan"/> (a new object; the base is not changed).</summary>
    public static JsonObject Apply(JsonObject basePlan, JsonObject delta)
    {
        var baseId = (string?)basePlan["plan_id"];
        if ((string?)delta["base"] != baseId)
        {
            throw new RttException(ErrorCodes.WalTampered, $"a plan delta is based on {(string?)delta["base"] ?? "no plan"}, not on {baseId ?? "no plan"}", baseId,
                "the log is inconsistent: check it with `rtt wal verify`");
        }

        var plan = (JsonObject)basePlan.DeepClone();
        foreach (var name in delta["remove"] as JsonArray ?? [])
        {
            plan.Remove((string)name!);
        }

        foreach (var (name, value) in delta["set"] as JsonObject ?? [])
        {
            plan[name] = value?.DeepClone();
        }

        foreach (var (name, change) in delta["objects"] as JsonObject ?? [])
        {
            var o = plan[name] as JsonObject ?? throw Malformed(baseId, $"\"{name}\" is not an object in the base");
            foreach (var member in change?["remove"] as JsonArray ?? [])
            {
                o.Remove((string)member!);
            }

            foreach (var (member, value) in change?["set"] as JsonObject ?? [])
            {
                o[member] = value?.DeepClone();
            }
        }

        foreach (var (name, change) in delta["arrays"] as JsonObject ?? [])
        {
            var a = plan[name] as JsonArray ?? throw Malformed(baseId, $"\"{name}\" is not an array in the base");
            var at = (int?)change?["at"] ?? -1;
            var delete = (int?)change?["delete"] ?? -1;
            if (at < 0 || delete < 0 || at + delete > a.Count)
            {
                throw Malformed(baseId, $"the splice of \"{name}\" is outside its {a.Count} element(s)");
            }

            for (var i = 0; i < delete; i++)
            {
                a.RemoveAt(at);
            }

            var insert = change?["insert"] as JsonArray ?? [];
            for (var i = 0; i < insert.Count; i++)
            {
                a.Insert(at + i, insert[i]?.DeepClone());
            }
        }

        return plan;
    }

    /// <summary>
    /// The canonical text <paramref name="delta"/> makes of the plan whose canonical text is <paramref name="baseText"/>,
    /// written from the text: members, object members and array elements the delta leaves alone are copied as bytes; only
    /// what it sets or inserts is written (the canonical writer). The same bytes as the canonical form of
    /// <see cref="Apply"/>'s result (PlanDeltaTextTests), at the cost of a copy of the text instead of a tree of the plan.
    /// <paramref name="baseText"/> must be canonical (the caller's own applied plan: a text it checked canonical, or its own
    /// serialization); the rebuilt text is hashed by the caller, so a base that was not would give a plan_id mismatch, never
    /// another plan. Null when this path does not take the delta, and the caller uses <see cref="Apply"/>: a base not based
    /// as the delta says, a delta member of another kind or unknown, a member changed in two ways (set
    /// and spliced, removed and changed), a change to a member the base lacks or holds as another kind, a splice outside
    /// its array.
    /// </summary>
    public static byte[]? ApplyToText(byte[] baseText, JsonObject delta)
    {
        using var document = JsonDocument.Parse(baseText);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("plan_id", out var id) || id.ValueKind != JsonValueKind.String
            || delta["base"] is not JsonValue baseValue || !baseValue.TryGetValue<string>(out var baseId) || baseId != id.GetString())
        {
            return null;
        }

        JsonObject? set = null, objects = null, arrays = null;
        JsonArray? remove = null;
        foreach (var (name, value) in delta)
        {
            switch (name)
            {
                case "base":
                    break;
                case "set" when value is JsonObject o:
                    set = o;
                    break;
                case "remove" when value is JsonArray a:
                    remove = a;
                    break;
                case "objects" when value is JsonObject o:
                    objects = o;
                    break;
                case "arrays" when value is JsonObject o:
                    arrays = o;
                    break;
                default:
                    return null;
            }
        }

        if (Names(remove) is not { } removed)
        {
            return null;
        }

        // Each changed member changed one way, and an object or array change only to a member the base holds as that kind.
        foreach (var (name, _) in objects ?? [])
        {
            if (set?.ContainsKey(name) == true || removed.Contains(name) || arrays?.ContainsKey(name) == true
                || !root.TryGetProperty(name, out var old) || old.ValueKind != JsonValueKind.Object)
            {
                return null;
            }
        }

        foreach (var (name, _) in arrays ?? [])
        {
            if (set?.ContainsKey(name) == true || removed.Contains(name) || !root.TryGetProperty(name, out var old) || old.ValueKind != JsonValueKind.Array)
            {
                return null;
            }
        }

        var output = new System.Buffers.ArrayBufferWriter<byte>(baseText.Length + 4096);
        var ok = WriteObject(output, root, set, removed, (name, value) => objects?[name] is { } o ? WriteObjectChange(output, value, o)
            : arrays?[name] is { } a ? WriteSplice(output, value, a) : null);
        return ok ? output.WrittenSpan.ToArray() : null;
    }

    private static HashSet<string>? Names(JsonArray? names)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in names ?? [])
        {
            if (n is not JsonValue v || !v.TryGetValue<string>(out var name))
            {
                return null;
            }

            set.Add(name);
        }

        return set;
    }

    /// <summary>
    /// Writes the object <paramref name="baseObject"/> with <paramref name="removed"/> members gone and <paramref name="set"/>'s
    /// members new or replaced, in canonical order (the base's members are in it already: its text is canonical; the set's are
    /// merged in). <paramref name="change"/> writes a member's value itself (true, false: refused) or leaves it (null).
    /// </summary>
    private static bool WriteObject(System.Buffers.ArrayBufferWriter<byte> output, JsonElement baseObject, JsonObject? set, HashSet<string> removed,
        Func<string, JsonElement, bool?>? change)
    {
        // Both name lists in canonical order, walked together: a set name before the next base name is new, one equal to it
        // replaces it.
        var names = set is null ? [] : set.Select(m => m.Key).ToList();
        names.Sort(string.CompareOrdinal);
        output.Write("{"u8);
        var first = true;
        var next = 0;
        bool Set(string name)
        {
            Separator(output, ref first);
            if (!CanonicalJson.TryWriteString(output, name))
            {
                return false;
            }

            output.Write(":"u8);
            return CanonicalJson.TryWriteNode(output, set![name], 1);
        }

        foreach (var member in baseObject.EnumerateObject())
        {
            var name = member.Name;
            while (next < names.Count && string.CompareOrdinal(names[next], name) < 0)
            {
                if (!Set(names[next++]))
                {
                    return false;
                }
            }

            if (next < names.Count && names[next] == name)
            {
                if (!Set(names[next++]))
                {
                    return false;
                }

                continue;
            }

            if (removed.Contains(name))
            {
                continue;
            }

            Separator(output, ref first);
            output.Write("\""u8);
            output.Write(JsonMarshal.GetRawUtf8PropertyName(member));
            output.Write("\":"u8);
            switch (change?.Invoke(name, member.Value))
            {
                case null:
                    output.Write(Bytes(member.Value));
                    break;
                case false:
                    return false;
            }
        }

        while (next < names.Count)
        {
            if (!Set(names[next++]))
            {
                return false;
            }
        }

        output.Write("}"u8);
        return true;
    }

    // A comma before every element or member but the first.
    private static void Separator(System.Buffers.ArrayBufferWriter<byte> output, ref bool first)
    {
        if (!first)
        {
            output.Write(","u8);
        }

        first = false;
    }

    private static bool WriteObjectChange(System.Buffers.ArrayBufferWriter<byte> output, JsonElement value, JsonNode change)
    {
        if (change is not JsonObject c || c.Any(m => m.Key is not ("set" or "remove")) || (c["set"] is not (null or JsonObject)) || Names(c["remove"] as JsonArray) is not { } removed
            || (c["remove"] is not (null or JsonArray)))
        {
            return false;
        }

        return WriteObject(output, value, c["set"] as JsonObject, removed, null);
    }

    private static bool WriteSplice(System.Buffers.ArrayBufferWriter<byte> output, JsonElement value, JsonNode change)
    {
        if (change is not JsonObject c || c.Any(m => m.Key is not ("at" or "delete" or "insert")) || c["at"] is not JsonValue atValue || !atValue.TryGetValue<int>(out var at)
            || c["delete"] is not JsonValue deleteValue || !deleteValue.TryGetValue<int>(out var delete) || c["insert"] is not (null or JsonArray))
        {
            return false;
        }

        var count = value.GetArrayLength();
        if (at < 0 || delete < 0 || at + delete > count)
        {
            return false;
        }

        output.Write("["u8);
        var i = 0;
        var first = true;
        foreach (var element in value.EnumerateArray())
        {
            if (i == at && !Insert())
            {
                return false;
            }

            if (i < at || i >= at + delete)
            {
                Separator(output, ref first);
                output.Write(Bytes(element));
            }

            i++;
        }

        if (at == count && !Insert())
        {
            return false;
        }

        output.Write("]"u8);
        return true;

        bool Insert()
        {
            foreach (var node in c["insert"] as JsonArray ?? [])
            {
                Separator(output, ref first);
                if (!CanonicalJson.TryWriteNode(output, node, 1))
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>
    /// Applies <paramref name="delta"/> and checks the result against <paramref name="planId"/> (its content hash):
    /// the full plan, as the WAL holds it, or RTT-WAL-002.
    /// </summary>
    public static JsonObject Rebuild(JsonObject basePlan, JsonObject delta, string? planId)
    {
        var plan = Apply(basePlan, delta);
        var actual = Planner.PlanId(plan);
        if (actual != planId || (string?)plan["plan_id"] != planId)
        {
            throw new RttException(ErrorCodes.WalTampered, $"the plan rebuilt from a delta on {(string?)basePlan["plan_id"]} hashes to {actual}, not {planId ?? "no plan"}", planId,
                "the log is inconsistent: check it with `rtt wal verify`");
        }

        return plan;
    }

    /// <summary>
    /// The plan with id <paramref name="planId"/> as the log's prepare entries carry it (the last one that does),
    /// rebuilt from the WAL alone: entries are read in order, keeping the applied plan, which every delta is based on.
    /// Null when no prepare entry names it.
    /// </summary>
    public static JsonObject? FromLog(IEnumerable<(long Index, byte[] Leaf)> entries, string planId)
    {
        JsonObject? applied = null;
        (long Tx, JsonObject? Plan)? prepared = null;
        JsonObject? found = null;
        foreach (var (index, leaf) in entries)
        {
            switch (WalEntry.Parse(leaf))
            {
                case PrepareEntry e:
                    var plan = e.Plan ?? (e.Delta is { } delta
                        ? Rebuild(applied ?? throw Malformed(null, $"entry {index} carries a delta but no plan was applied before it"), delta, e.PlanId)
                        : null);
                    prepared = (index, plan);
                    found = e.PlanId == planId && plan is not null ? plan : found;
                    break;
                case DecisionEntry { Commit: true } e when prepared is { } p && e.Tx == p.Tx:
                    applied = p.Plan;
                    break;
            }
        }

        return found;
    }

    private static JsonObject ObjectDiff(JsonObject a, JsonObject b)
    {
        var set = new JsonObject();
        var remove = new JsonArray();
        foreach (var (name, value) in b)
        {
            if (!a.TryGetPropertyValue(name, out var before) || !Same(before, value))
            {
                set[name] = value?.DeepClone();
            }
        }

        foreach (var (name, _) in a)
        {
            if (!b.ContainsKey(name))
            {
                remove.Add(name);
            }
        }

        return new JsonObject { ["remove"] = remove, ["set"] = set };
    }

    /// <summary>The one splice that turns <paramref name="a"/> into <paramref name="b"/>: common prefix and suffix kept.</summary>
    private static JsonObject Splice(JsonArray a, JsonArray b)
    {
        var prefix = 0;
        while (prefix < a.Count && prefix < b.Count && Same(a[prefix], b[prefix]))
        {
            prefix++;
        }

        var suffix = 0;
        while (suffix < a.Count - prefix && suffix < b.Count - prefix && Same(a[a.Count - 1 - suffix], b[b.Count - 1 - suffix]))
        {
            suffix++;
        }

        var insert = new JsonArray();
        for (var i = prefix; i < b.Count - suffix; i++)
        {
            insert.Add(b[i]?.DeepClone());
        }

        return new JsonObject { ["at"] = prefix, ["delete"] = a.Count - suffix - prefix, ["insert"] = insert };
    }

    /// <summary>
    /// <see cref="JsonNode.DeepEquals"/>, with a shortcut for values read from JSON text: two values whose texts are the
    /// same bytes are equal without decoding either (a plan received as text and the applied plan parsed from the log
    /// share most of their values byte for byte); values whose texts differ are compared by <see cref="JsonNode.DeepEquals"/>.
    /// </summary>
    public static bool Same(JsonNode? a, JsonNode? b)
    {
        switch (a, b)
        {
            case (null, null):
                return true;
            case (JsonObject x, JsonObject y):
                if (x.Count != y.Count)
                {
                    return false;
                }

                foreach (var (name, value) in x)
                {
                    if (!y.TryGetPropertyValue(name, out var other) || !Same(value, other))
                    {
                        return false;
                    }
                }

                return true;
            case (JsonArray x, JsonArray y):
                if (x.Count != y.Count)
                {
                    return false;
                }

                for (var i = 0; i < x.Count; i++)
                {
                    if (!Same(x[i], y[i]))
                    {
                        return false;
                    }
                }

                return true;
            case (JsonValue x, JsonValue y):
                return (x.TryGetValue<System.Text.Json.JsonElement>(out var ex) && y.TryGetValue<System.Text.Json.JsonElement>(out var ey)
                        && System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(ex).SequenceEqual(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(ey)))
                    || JsonNode.DeepEquals(x, y);
            default:
                return JsonNode.DeepEquals(a, b);
        }
    }

    private static RttException Malformed(string? baseId, string what) =>
        new(ErrorCodes.WalTampered, $"a plan delta on {baseId ?? "no plan"} does not fit it: {what}", baseId, "the log is inconsistent: check it with `rtt wal verify`");
}
