using Rtt.Fabric.Drivers;
using Rtt.Fabric.Routing;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// One routed MCP tool as its server stands now: the pin the plan carries against the pin of the definition the server
/// lists at this moment (its session re-reads the list on <c>tools/list_changed</c> and on every reconnect).
/// </summary>
/// <param name="State">
/// <c>ok</c> (live pin = pinned pin), <c>drifted</c> (the server lists the tool with another definition),
/// <c>removed</c> (the server no longer lists it), <c>down</c> (the server is not connected or is re-reading its list),
/// <c>unpinned</c> (a hand-written serve block without a pin: never checked).
/// </param>
/// <param name="Why">The reason a call is refused now (RTT-MCP-003 for drift, the session's reason when down), or null.</param>
/// <param name="Server">The server as its session names it: the command line (stdio) or the URL (HTTP).</param>
public sealed record McpToolState(uint RouteId, string Symbol, string Server, string Tool, string? Pin, string? LivePin, string State, string? Why);

public static class McpToolStates
{
    /// <summary>Every MCP tool a route of <paramref name="routes"/> serves, once per tool, ordered by symbol then route id.</summary>
    public static IReadOnlyList<McpToolState> Of(RouteTable routes)
    {
        var seen = new HashSet<McpToolDriver>(ReferenceEqualityComparer.Instance);
        var states = new List<McpToolState>();
        foreach (var route in routes.Routes)
        {
            if (route.Endpoint is not AsyncDriverEndpoint { Driver: McpToolDriver driver } || !seen.Add(driver))
            {
                continue;
            }

            var down = driver.Session.Down;
            var live = driver.LivePin;
            var state = down is not null ? "down"
                : driver.Pin is null ? "unpinned"
                : live is null ? "removed"
                : live == driver.Pin ? "ok" : "drifted";
            states.Add(new McpToolState(route.RouteId, driver.Name, driver.Session.Label, driver.Tool, driver.Pin, live, state, down ?? driver.Drift()));
        }

        return [.. states.OrderBy(s => s.Symbol, StringComparer.Ordinal).ThenBy(s => s.RouteId)];
    }
}
