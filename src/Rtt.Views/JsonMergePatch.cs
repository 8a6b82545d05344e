using System.Text.Json.Nodes;
using Rtt.Core.Json;

namespace Rtt.Views;

/// <summary>
/// RFC 7386 JSON Merge Patch. <see cref="Apply"/> is the RFC's MergePatch(Target, Patch) pseudo-code;
/// <see cref="Create"/> is its inverse (a patch that turns one document into another), used by import.
/// Inputs are never modified: results are fresh trees.
/// </summary>
public static class JsonMergePatch
{
    /// <summary>Applies <paramref name="patch"/> to <paramref name="target"/> (RFC 7386 section 2).</summary>
    public static JsonNode? Apply(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject members)
        {
            return patch?.DeepClone(); // a non-object patch replaces the target whole
        }

        var result = target is JsonObject t ? (JsonObject)t.DeepClone() : new JsonObject();
        foreach (var (name, value) in members)
        {
            if (value is null)
            {
                result.Remove(name); // null deletes the member
            }
            else
            {
                var merged = Apply(result.TryGetPropertyValue(name, out var current) ? current : null, value);
                result[name] = merged;
            }
        }

        return result;
    }

    /// <summary>
    /// A patch that turns <paramref name="source"/> into <paramref name="target"/>: members removed become null,
    /// changed objects recurse, anything else is replaced whole. Null members of the target cannot be expressed
    /// in a merge patch (RFC 7386 section 1) and come out as deletions.
    /// </summary>
    public static JsonObject Create(JsonObject source, JsonObject target)
    {
        var patch = new JsonObject();
        foreach (var (name, _) in source.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            if (!target.ContainsKey(name))
            {
                patch[name] = null;
            }
        }

        foreach (var (name, value) in target.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            if (!source.TryGetPropertyValue(name, out var before))
            {
                patch[name] = value?.DeepClone();
            }
            else if (!SameJson(before, value))
            {
                patch[name] = before is JsonObject b && value is JsonObject a ? Create(b, a) : value?.DeepClone();
            }
        }

        return patch;
    }

    /// <summary>Equality of JSON values by their canonical bytes (so 1 and 1.0 are equal, member order does not matter).</summary>
    public static bool SameJson(JsonNode? a, JsonNode? b) => CanonicalJson.Serialize(a).AsSpan().SequenceEqual(CanonicalJson.Serialize(b));
}
