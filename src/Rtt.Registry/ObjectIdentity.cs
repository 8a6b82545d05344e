using System.Text.Json.Nodes;
using Rtt.Core.Hashing;
using Rtt.Core.Signing;

namespace Rtt.Registry;

/// <summary>
/// What ID@version an object says it is, so an index.json or symbols.json entry pointed at another (valid, signed)
/// object is caught: an agent names itself by <c>id</c>, a service manifest by <c>address</c>, an MCP tool by
/// <c>symbol</c>, each with <c>version</c>; an MCP manifest and a recorded view carry IDs and versions derived from
/// their content (see <see cref="McpCatalog"/> and the views' recorder).
/// </summary>
public static class ObjectIdentity
{
    /// <summary>The kind of a recorded view object (written by the views' recorder).</summary>
    public const string ViewKind = "rtt.view";

    /// <summary>A recorded view's ID: <c>view:&lt;provider&gt;/&lt;env or -&gt;/&lt;agent&gt;</c>.</summary>
    public static string ViewId(string provider, string? env, string agent) => $"view:{provider}/{env ?? "-"}/{agent}";

    /// <summary>Splits <c>ID@version</c> at its last <c>@</c> (a SemVer version never holds one).</summary>
    public static (string Id, string Version) Split(string key)
    {
        var at = key.LastIndexOf('@');
        return at <= 0 ? (key, "") : (key[..at], key[(at + 1)..]);
    }

    /// <summary>The ID@version the object's own content names, or null when it names none.</summary>
    public static string? Of(JsonObject obj)
    {
        if (obj["mcp"] is JsonObject mcp && Text(mcp["name"]) is { } mcpName)
        {
            var body = (JsonObject)obj.DeepClone();
            body.Remove(ObjectSigner.SignMember);
            var server = Text(mcp["server"] is JsonObject s ? s["version"] : null) ?? "0.0.0";
            var version = NuGet.Versioning.SemanticVersion.TryParse(server, out var v) && v.ToFullString() == server ? server : "0.0.0";
            var tag = $"m.{ContentHash.OfCanonical(body)[7..19]}";
            return $"mcp:{mcpName}@{(version.Contains('+', StringComparison.Ordinal) ? $"{version}.{tag}" : $"{version}+{tag}")}";
        }

        if (Text(obj["kind"]) == ViewKind && Text(obj["provider"]) is { } provider && Text(obj["agent"]) is { } agent
            && Text(obj["version"]) is { } viewVersion)
        {
            var body = (JsonObject)obj.DeepClone();
            body.Remove(ObjectSigner.SignMember);
            var suffix = ContentHash.OfCanonical(body)[ContentHash.Prefix.Length..][..12];
            return $"{ViewId(provider, Text(obj["env"]), agent)}@{viewVersion}+v.{suffix}";
        }

        var id = Text(obj["id"]) ?? Text(obj["address"]) ?? Text(obj["symbol"]);
        var ownVersion = Text(obj["version"]);
        return id is null || ownVersion is null ? null : $"{id}@{ownVersion}";
    }

    /// <summary>Null when the object is what <paramref name="key"/> says; otherwise why not.</summary>
    public static string? Mismatch(string key, JsonObject obj)
    {
        var own = Of(obj);
        if (own is null)
        {
            return $"{key} names an object that has no id/address/symbol and version of its own";
        }

        return string.Equals(own, key, StringComparison.Ordinal) ? null : $"{key} names an object that is {own}";
    }

    /// <summary>Null when the object exports <paramref name="symbol"/> at <paramref name="version"/>; otherwise why not.</summary>
    public static string? SymbolMismatch(string symbol, string version, JsonObject obj)
    {
        if (Text(obj["version"]) != version)
        {
            return $"{symbol}@{version} names an object of version {Text(obj["version"]) ?? "(none)"}";
        }

        var exported = Text(obj["address"]) == symbol || Text(obj["symbol"]) == symbol
            || (obj["exports"] is JsonArray exports && exports.Any(e => e is JsonObject x && Text(x["symbol"]) == symbol));
        return exported ? null : $"{symbol}@{version} names an object that does not export {symbol}";
    }

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
