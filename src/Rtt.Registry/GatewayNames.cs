using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Registry;

/// <summary>
/// The names <c>rtt mcp serve</c> gives routed MCP tools (docs/gateway.md): <c>&lt;server&gt;__&lt;tool&gt;</c> for
/// <c>rtt://mcp/&lt;server&gt;/&lt;tool&gt;</c>, or the alias policy.json's <c>mcp_aliases</c> gives the symbol. Server names
/// hold no <c>_</c>, so default names never collide; an alias that meets another tool's name is a planning error naming
/// both symbols, so adding a server never renames a tool that is already served.
/// </summary>
public static class GatewayNames
{
    public const string Prefix = "rtt://mcp/";

    /// <summary>The default name of an MCP tool symbol, or null when the symbol is not one.</summary>
    public static string? Default(string symbol)
    {
        if (!symbol.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = symbol[Prefix.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        return slash <= 0 || slash == rest.Length - 1 ? null : rest[..slash] + "__" + rest[(slash + 1)..];
    }

    /// <summary>The served name of <paramref name="symbol"/>: its alias when the plan carries one, else the default.</summary>
    public static string? Of(string symbol, JsonObject? aliases) =>
        aliases?[symbol] is JsonValue v && v.TryGetValue<string>(out var alias) ? alias : Default(symbol);

    /// <summary>
    /// The served name of a routed MCP symbol of a known primitive (null: a tool): a prompt is <c>&lt;server&gt;__&lt;prompt&gt;</c>
    /// or its alias (prompts have their own namespace); a resource is served under its URI, a template under its URI template.
    /// </summary>
    public static string? Of(string symbol, McpPrimitive? primitive, JsonObject? aliases)
    {
        if (primitive is null)
        {
            return Of(symbol, aliases);
        }

        if (primitive.Parse(symbol) is not { } parsed)
        {
            return null;
        }

        return primitive != McpPrimitive.Prompt ? parsed.Key
            : aliases?[symbol] is JsonValue v && v.TryGetValue<string>(out var alias) ? alias
            : parsed.Server + "__" + parsed.Key;
    }

    /// <summary>
    /// Checks that the MCP tool symbols of a plan get distinct names. Throws <c>RTT-PLAN-008</c> naming both symbols
    /// and the name at the first collision (in ordinal order of the symbols, so the message is deterministic).
    /// </summary>
    public static void Check(IEnumerable<string> toolSymbols, JsonObject? aliases, string source) =>
        Check(toolSymbols.Select(s => (s, (McpPrimitive?)null)), aliases, source);

    /// <summary>
    /// As above for tools, prompts, resources and templates (each its own namespace, as in MCP): two prompts with one
    /// name, or two routed servers offering one resource URI (or template), are <c>RTT-PLAN-008</c> naming both symbols.
    /// </summary>
    public static void Check(IEnumerable<(string Symbol, McpPrimitive? Primitive)> symbols, JsonObject? aliases, string source)
    {
        var seen = new Dictionary<(string, string), string>();
        foreach (var (symbol, primitive) in symbols.DistinctBy(s => s.Symbol, StringComparer.Ordinal).OrderBy(s => s.Symbol, StringComparer.Ordinal))
        {
            if (Of(symbol, primitive, aliases) is not { } name)
            {
                continue;
            }

            var kind = primitive?.Kind ?? "tool";
            if (seen.TryGetValue((kind, name), out var other))
            {
                var what = kind switch { "tool" => "tools", "prompt" => "prompts", "resource" => "resources", _ => "resource templates" };
                throw new RttException(ErrorCodes.PlanToolNameCollision,
                    $"MCP {what} {other} and {symbol} would both be served as \"{name}\"", $"{source}: /mcp_aliases",
                    kind is "tool" or "prompt" ? "give one of them another alias in mcp_aliases (names already served keep theirs)"
                        : "two servers offer the same URI: route only one of them from this caller");
            }

            seen[(kind, name)] = symbol;
        }
    }
}
