using System.Text.Json.Nodes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>Prompts, resources and resource templates of an MCP server: pinned at ingest, drift refused, symbols and served names (docs/gateway.md).</summary>
public sealed class McpPrimitiveTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private static JsonObject Tools() => new() { ["tools"] = new JsonArray(new JsonObject { ["name"] = "echo", ["inputSchema"] = new JsonObject { ["type"] = "object" } }) };

    private static JsonObject Others(string promptDescription = "Greets", string? extraResource = null)
    {
        var resources = new JsonArray(new JsonObject { ["uri"] = "file:///notes/a b.txt", ["name"] = "a", ["mimeType"] = "text/plain" });
        if (extraResource is not null)
        {
            resources.Add(new JsonObject { ["uri"] = extraResource, ["name"] = "extra" });
        }

        return new JsonObject
        {
            ["prompts"] = new JsonArray(new JsonObject
            {
                ["name"] = "greet",
                ["description"] = promptDescription,
                ["arguments"] = new JsonArray(new JsonObject { ["name"] = "who", ["required"] = true }),
            }),
            ["resources"] = resources,
            ["resourceTemplates"] = new JsonArray(new JsonObject { ["uriTemplate"] = "file:///notes/{name}", ["name"] = "note" }),
        };
    }

    private McpIngestReport Ingest(JsonObject others, bool accept = false)
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        return McpCatalog.Ingest(_ws.Workspace, store, "notes", "notes-server", "1.0.0", ["--from", "x"], Tools(), "x", accept, null, others);
    }

    [Fact]
    public void Prompts_resources_and_templates_are_pinned_in_the_signed_manifest_and_discovered_as_symbols()
    {
        var report = Ingest(Others());
        var manifest = Workspace.RttWorkspace.ReadObject(report.ManifestPath);
        using var store = RegistryStore.Open(_ws.Workspace);
        store.VerifySignature(manifest, report.ManifestPath);
        var prompt = manifest["prompts"]![0]!;
        Assert.Equal("rtt://mcp/notes/prompt.greet", (string?)prompt["symbol"]);
        Assert.Equal("rtt://mcp/notes/resource.file.3A.2F.2F.2Fnotes.2Fa.20b.2Etxt", (string?)manifest["resources"]![0]!["symbol"]);
        Assert.Equal("rtt://mcp/notes/template.file.3A.2F.2F.2Fnotes.2F.7Bname.7D", (string?)manifest["resource_templates"]![0]!["symbol"]);
        var obj = store.ReadObject((string)prompt["object"]!);
        Assert.Equal("mcp-prompt", (string?)obj["kind"]);
        Assert.Equal((string?)prompt["pin"], McpPrimitive.Prompt.Pin((JsonObject)obj["definition"]!));
        Assert.Equal("who", (string?)obj["definition"]!["arguments"]![0]!["name"]);

        var source = McpCatalog.FromManifest(manifest, store, report.ManifestPath);
        Assert.Equal(["mcp-prompt", "mcp-resource", "mcp-resource-template", "mcp-tool"], source.Symbols.Select(s => s.Kind).Order(StringComparer.Ordinal));

        // A tool-only server's manifest has no such members (its bytes are what they were before prompts were pinned).
        using var store2 = RegistryStore.Open(_ws.Workspace);
        var toolsOnly = McpCatalog.Ingest(_ws.Workspace, store2, "plain", "plain", "1.0.0", ["--from", "y"], Tools(), "y", false, null, new JsonObject());
        var plain = Workspace.RttWorkspace.ReadObject(toolsOnly.ManifestPath);
        Assert.Null(plain["prompts"]);
        Assert.Null(plain["resources"]);
    }

    [Fact]
    public void A_changed_prompt_or_a_new_resource_is_drift_refused_until_accepted()
    {
        Ingest(Others());
        Ingest(Others()); // unchanged: no drift
        var ex = Assert.Throws<RttException>(() => Ingest(Others("Greets warmly", "file:///notes/new")));
        Assert.Equal(ErrorCodes.McpDrift, ex.Code);
        Assert.Contains("prompt greet changed", ex.Message);
        Assert.Contains("resource file:///notes/new added", ex.Message);

        var accepted = Ingest(Others("Greets warmly"), accept: true);
        Assert.Contains(accepted.Drift, d => d.StartsWith("prompt greet changed", StringComparison.Ordinal));
        var manifest = Workspace.RttWorkspace.ReadObject(accepted.ManifestPath);
        Assert.Contains("+pin.", (string)manifest["prompts"]![0]!["version"]!); // a new version: ID@version never changes meaning

        var removed = Assert.Throws<RttException>(() => Ingest(new JsonObject { ["prompts"] = new JsonArray() }));
        Assert.Contains("prompt greet removed", removed.Message);
        Assert.Contains("resource-template file:///notes/{name} removed", removed.Message);
    }

    [Fact]
    public void Symbols_decode_back_to_their_keys_and_templates_match_only_their_uris()
    {
        foreach (var key in new[] { "greet", "test://template/{id}/data", "ünïcode prompt", "a.b_c-d" })
        {
            Assert.Equal(("srv", key), McpPrimitive.Resource.Parse(McpPrimitive.Resource.Symbol("srv", key)));
            Assert.Matches("^rtt://[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*/[A-Za-z0-9][A-Za-z0-9._-]*$", McpPrimitive.Resource.Symbol("srv", key)); // the routes' address pattern
        }

        Assert.Null(McpPrimitive.Prompt.Parse("rtt://mcp/srv/resource.x"));
        Assert.True(McpPrimitive.TemplateMatches("test://template/{id}/data", "test://template/42/data"));
        Assert.False(McpPrimitive.TemplateMatches("test://template/{id}/data", "test://template/4/2/data"));
        Assert.False(McpPrimitive.TemplateMatches("test://template/{id}/data", "test://static-text"));
        Assert.True(McpPrimitive.TemplateMatches("file:///{+path}", "file:///a/b/c"));
        Assert.True(McpPrimitive.TemplateMatches("search://items{?q,limit}", "search://items?q=x&limit=2"));
    }

    [Fact]
    public void Prompts_get_server_prefixed_names_or_aliases_and_two_servers_sharing_a_uri_is_a_planning_error()
    {
        var prompt = McpPrimitive.Prompt.Symbol("notes", "greet");
        Assert.Equal("notes__greet", GatewayNames.Of(prompt, McpPrimitive.Prompt, null));
        Assert.Equal("hello", GatewayNames.Of(prompt, McpPrimitive.Prompt, new JsonObject { [prompt] = "hello" }));
        Assert.Equal("file:///x", GatewayNames.Of(McpPrimitive.Resource.Symbol("notes", "file:///x"), McpPrimitive.Resource, null));

        // A prompt and a tool may share a served name (separate namespaces in MCP); two prompts may not.
        GatewayNames.Check([("rtt://mcp/notes/greet", null), (prompt, McpPrimitive.Prompt)], new JsonObject { [prompt] = "notes__greet" }, "policy.json");
        var other = McpPrimitive.Prompt.Symbol("mail", "hi");
        var ex = Assert.Throws<RttException>(() => GatewayNames.Check([(prompt, McpPrimitive.Prompt), (other, McpPrimitive.Prompt)], new JsonObject { [other] = "notes__greet" }, "policy.json"));
        Assert.Equal(ErrorCodes.PlanToolNameCollision, ex.Code);
        Assert.Contains(prompt, ex.Message);
        Assert.Contains(other, ex.Message);

        var a = McpPrimitive.Resource.Symbol("notes", "file:///shared");
        var b = McpPrimitive.Resource.Symbol("mail", "file:///shared");
        var clash = Assert.Throws<RttException>(() => GatewayNames.Check([(a, McpPrimitive.Resource), (b, McpPrimitive.Resource)], null, "policy.json"));
        Assert.Contains("file:///shared", clash.Message);
    }

    [Fact]
    public void A_tool_and_a_prompt_that_would_share_a_symbol_are_refused_at_ingest()
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        var tools = new JsonObject { ["tools"] = new JsonArray(new JsonObject { ["name"] = "prompt.greet", ["inputSchema"] = new JsonObject { ["type"] = "object" } }) };
        var ex = Assert.Throws<RttException>(() => McpCatalog.Ingest(_ws.Workspace, store, "notes", "notes", "1.0.0", ["x"], tools, "x", false, null,
            new JsonObject { ["prompts"] = new JsonArray(new JsonObject { ["name"] = "greet" }) }));
        Assert.Equal(ErrorCodes.McpToolInvalid, ex.Code);
        Assert.Contains("rtt://mcp/notes/prompt.greet", ex.Message);
        Assert.False(File.Exists(McpCatalog.ManifestPath(_ws.Workspace, "notes")));
    }
}
