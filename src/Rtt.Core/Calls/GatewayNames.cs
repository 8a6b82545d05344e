using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Core.Calls;

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
    /// Checks that the MCP tool symbols of a plan get distinct names. Throws <c>RTT-PLAN-008</c> naming both symbols
    /// and the name at the first collision (in ordinal order of the symbols, so the message is deterministic).
    /// </summary>
    public static void Check(IEnumerable<string> toolSymbols, JsonObject? aliases, string source)
    {
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var symbol in toolSymbols.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            if (Of(symbol, aliases) is not { } name)
            {
                continue;
            }

            if (seen.TryGetValue(name, out var other))
            {
                throw new RttException(ErrorCodes.PlanToolNameCollision,
                    $"MCP tools {other} and {symbol} would both be served as \"{name}\"", $"{source}: /mcp_aliases",
                    "give one of them another alias in mcp_aliases (names already served keep theirs)");
            }

            seen[name] = symbol;
        }
    }
}
