using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Registry;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Mcp;

/// <summary>A tool <c>rtt mcp serve</c> offers: its served name, the route a call travels on, and its pinned definition.</summary>
public sealed record GatewayTool(string Name, CallRoute Route, Tool Definition, string DefinitionJson);

/// <summary>
/// The tools the applied plan routes from one caller symbol to MCP tools (docs/gateway.md): each named
/// <c>&lt;server&gt;__&lt;tool&gt;</c> or by its alias from the plan, described by the pinned registry object (title,
/// description, input and output schemas, annotations), never by what the server says now. Deterministic: same plan and
/// registry, same list in the same order (by name, ordinal).
/// </summary>
public static class GatewayCatalog
{
    public static (string? PlanId, IReadOnlyList<GatewayTool> Tools) Build(RttWorkspace workspace, JsonObject? plan, string caller)
    {
        if (plan is null)
        {
            return (null, []);
        }

        var aliases = plan["mcp_aliases"] as JsonObject;
        var endpoints = plan["endpoints"] as JsonObject ?? [];
        var tools = new List<GatewayTool>();
        using var store = RegistryStore.Open(workspace);
        foreach (var route in CallRoutes.Of(plan).Where(r => r.From == caller && r.IsMcp && r.Endpoint is not null))
        {
            var objectHash = (string?)endpoints[route.Endpoint!]?["tool"]?["object"];
            if (objectHash is null || GatewayNames.Of(route.To, aliases) is not { } name)
            {
                continue; // a hand-written serve block without a pinned tool: nothing pinned to describe it
            }

            var pinned = store.ReadObject(objectHash, route.To);
            var definition = new JsonObject
            {
                ["name"] = name,
                ["description"] = pinned["description"]?.DeepClone(),
                ["inputSchema"] = pinned["input_schema"]?.DeepClone() ?? new JsonObject { ["type"] = "object" },
            };
            Copy(pinned, "title", definition, "title");
            Copy(pinned, "output_schema", definition, "outputSchema");
            Copy(pinned, "annotations", definition, "annotations");
            var text = definition.ToJsonString();
            var tool = JsonSerializer.Deserialize(text, McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(Tool))) as Tool
                ?? throw new RttException(ErrorCodes.McpToolInvalid, "the pinned tool object does not make an MCP tool", route.To, "re-run `rtt mcp ingest`");
            tools.Add(new GatewayTool(name, route, tool, text));
        }

        // The planner refuses colliding names (RTT-PLAN-008); a hand-edited plan could still carry them.
        GatewayNames.Check(tools.Select(t => t.Route.To), aliases, ".rtt/plans/applied.json");
        tools.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return ((string?)plan["plan_id"], tools);
    }

    private static void Copy(JsonObject from, string member, JsonObject to, string name)
    {
        if (from[member] is { } value)
        {
            to[name] = value.DeepClone();
        }
    }
}
