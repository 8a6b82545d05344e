using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Core.Calls;

/// <summary>A route of the applied plan as a caller needs it: where to attach and what answers.</summary>
/// <param name="EndpointKind">The serve kind of the target (<c>echo</c> when the symbol declares none).</param>
/// <param name="Tool">For MCP endpoints, the tool name; else null.</param>
public sealed record CallRoute(string From, string To, uint RouteId, string Node, string Lane, string? Endpoint, string EndpointKind, string? Tool)
{
    public bool IsMcp => EndpointKind is ServeSpec.McpStdio or ServeSpec.McpHttp;
}

/// <summary>Finds the route a call to a symbol travels on, in the applied plan (docs/calls.md).</summary>
public static class CallRoutes
{
    /// <summary>Every lane of <paramref name="plan"/>, in the plan's order.</summary>
    public static IReadOnlyList<CallRoute> Of(JsonObject? plan)
    {
        if (plan is null)
        {
            return [];
        }

        var placement = plan["placement"] as JsonObject ?? [];
        var endpoints = plan["endpoints"] as JsonObject ?? [];
        var routes = new List<CallRoute>();
        foreach (var lane in (plan["lanes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var from = (string?)lane["route"]?["from"] ?? "";
            var to = (string?)lane["route"]?["to"] ?? "";
            var endpoint = (string?)lane["endpoint"];
            var serve = endpoint is null ? null : endpoints[endpoint] as JsonObject;
            routes.Add(new CallRoute(from, to, RouteIds.Of(from, to), (string?)placement[to] ?? (string?)placement[from] ?? "",
                (string?)lane["kind"] ?? "shm", endpoint, (string?)serve?["kind"] ?? ServeSpec.Echo, (string?)serve?["tool"]?["name"]));
        }

        return routes;
    }

    /// <summary>
    /// The route a call to <paramref name="symbol"/> takes: the one from <paramref name="from"/> when given, else the
    /// first of the routes to it in ordinal order of their callers (all of them end at the same endpoint).
    /// </summary>
    public static CallRoute Resolve(IReadOnlyList<CallRoute> routes, string symbol, string? from, string? planId)
    {
        var candidates = routes.Where(r => r.To == symbol).OrderBy(r => r.From, StringComparer.Ordinal).ToList();
        if (from is not null)
        {
            candidates = [.. candidates.Where(r => r.From == from)];
        }

        if (candidates.Count == 0)
        {
            var what = from is null ? $"no route of the applied plan goes to {symbol}" : $"no route of the applied plan goes from {from} to {symbol}";
            throw new RttException(ErrorCodes.CallNoRoute, planId is null ? "no plan is applied" : what, planId ?? symbol,
                planId is null ? "plan and apply first: rtt plan && rtt apply" : "add the route to .rtt/routes.json, then rtt plan && rtt apply");
        }

        return candidates[0];
    }
}
