using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Cli.Mcp;

/// <summary>A tool <c>rtt mcp serve</c> offers: its served name, the route a call travels on, and its pinned definition.</summary>
public sealed record GatewayTool(string Name, CallRoute Route, Tool Definition, string DefinitionJson);

/// <summary>
/// A prompt, resource or resource template <c>rtt mcp serve</c> offers (docs/gateway.md, "Prompts and resources"): its
/// served name (a prompt's <c>&lt;server&gt;__&lt;prompt&gt;</c> or alias; a resource's URI, a template's URI template),
/// the route its requests travel on, and its pinned definition as the protocol's JSON (a prompt under its served name).
/// </summary>
public sealed record GatewayPrimitive(string Name, McpPrimitive Primitive, CallRoute Route, JsonObject Definition, string DefinitionJson);

/// <summary>
/// The tools the applied plan routes from one caller symbol to MCP tools (docs/gateway.md): each named
/// <c>&lt;server&gt;__&lt;tool&gt;</c> or by its alias from the plan, described by the pinned registry object (title,
/// description, input and output schemas, annotations), never by what the server says now. Deterministic: same plan and
/// registry, same list in the same order (by name, ordinal).
/// </summary>
public static class GatewayCatalog
{
    public static (string? PlanId, IReadOnlyList<GatewayTool> Tools) Build(RttWorkspace workspace, JsonObject? plan, string caller) =>
        Build(workspace, plan, caller, out _);

    /// <summary>The tools, and in <paramref name="others"/> the prompts, resources and templates (by kind, then name, ordinal).</summary>
    public static (string? PlanId, IReadOnlyList<GatewayTool> Tools) Build(RttWorkspace workspace, JsonObject? plan, string caller, out IReadOnlyList<GatewayPrimitive> others)
    {
        others = [];
        if (plan is null)
        {
            return (null, []);
        }

        var aliases = plan["mcp_aliases"] as JsonObject;
        var endpoints = plan["endpoints"] as JsonObject ?? [];
        var tools = new List<GatewayTool>();
        var primitives = new List<GatewayPrimitive>();
        using var store = RegistryStore.Open(workspace);
        foreach (var route in CallRoutes.Of(plan).Where(r => r.From == caller && r.IsMcp && r.Endpoint is not null))
        {
            var objectHash = (string?)endpoints[route.Endpoint!]?["tool"]?["object"];
            if (McpPrimitive.Of((string?)endpoints[route.Endpoint!]?["tool"]?["primitive"]) is { } primitive)
            {
                if (objectHash is not null && GatewayNames.Of(route.To, primitive, aliases) is { } servedName)
                {
                    var pinnedDefinition = (store.ReadObject(objectHash, route.To)["definition"] as JsonObject)?.DeepClone().AsObject() ?? [];
                    if (primitive == McpPrimitive.Prompt)
                    {
                        pinnedDefinition["name"] = servedName;
                    }

                    primitives.Add(new GatewayPrimitive(servedName, primitive, route, pinnedDefinition, pinnedDefinition.ToJsonString()));
                }

                continue;
            }

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
        GatewayNames.Check(tools.Select(t => (t.Route.To, (McpPrimitive?)null)).Concat(primitives.Select(p => (p.Route.To, (McpPrimitive?)p.Primitive))), aliases, ".rtt/plans/applied.json");
        tools.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        primitives.Sort((a, b) => a.Primitive == b.Primitive ? string.CompareOrdinal(a.Name, b.Name) : string.CompareOrdinal(a.Primitive.Kind, b.Primitive.Kind));
        others = primitives;
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
