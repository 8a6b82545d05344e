using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>MCP servers as they are in the wild: annotations that matter, tools that come and go, versions that are not SemVer.</summary>
public sealed class McpFidelityTests : IDisposable
{
    private readonly TestWorkspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private static JsonObject Tools(params JsonObject[] tools) => new() { ["tools"] = new JsonArray([.. tools]) };

    private static JsonObject Tool(string name, JsonObject? annotations = null, string? title = null)
    {
        var tool = new JsonObject { ["name"] = name, ["description"] = name, ["inputSchema"] = new JsonObject { ["type"] = "object" } };
        if (title is not null)
        {
            tool["title"] = title;
        }

        if (annotations is not null)
        {
            tool["annotations"] = annotations;
        }

        return tool;
    }

    private McpIngestReport Ingest(string version, JsonObject tools, bool accept = false)
    {
        using var store = RegistryStore.Open(_ws.Workspace);
        return McpCatalog.Ingest(_ws.Workspace, store, "files", "files-server", version, ["--from", "x"], tools, "x", accept);
    }

    [Fact]
    public void Drift_covers_annotations_added_tools_and_the_server_version()
    {
        Ingest("1.0.0", Tools(Tool("read", new JsonObject { ["readOnlyHint"] = true })));
        var ex = Assert.Throws<RttException>(() => Ingest("1.1.0", Tools(
            Tool("read", new JsonObject { ["destructiveHint"] = true }),
            Tool("delete_all", new JsonObject { ["destructiveHint"] = true }))));
        Assert.Equal(ErrorCodes.McpDrift, ex.Code);
        Assert.Contains("read changed", ex.Message);
        Assert.Contains("destructiveHint unset -> true", ex.Message);
        Assert.Contains("readOnlyHint true -> unset", ex.Message);
        Assert.Contains("delete_all added", ex.Message);
        Assert.Contains("server version 1.0.0 -> 1.1.0", ex.Message);

        // A title alone is drift too; accepted, the tool object keeps its annotations and title.
        var accepted = Ingest("1.1.0", Tools(Tool("read", new JsonObject { ["readOnlyHint"] = true }, title: "Read a file")), accept: true);
        Assert.Contains(accepted.Drift, d => d.Contains("title changed", StringComparison.Ordinal));
        using var store = RegistryStore.Open(_ws.Workspace);
        var manifest = Workspace.RttWorkspace.ReadObject(accepted.ManifestPath);
        var read = store.ReadObject((string)manifest["tools"]![0]!["object"]!);
        Assert.Equal("Read a file", (string?)read["title"]);
        Assert.True((bool)read["annotations"]!["readOnlyHint"]!);
    }

    [Theory]
    [InlineData("1.2.3", "1.2.3", false)]
    [InlineData("0.8.x", "0.8.0-x", true)]
    [InlineData("v1.2", "1.2.0", true)]
    [InlineData("1.0", "1.0.0", true)]
    [InlineData("latest", "0.0.0-latest", true)]
    [InlineData("", "0.0.0", true)]
    [InlineData("2024.10.01", "2024.10.1", true)]
    public void Server_versions_that_are_not_semver_are_derived_and_said(string server, string version, bool noted)
    {
        var (derived, note) = McpCatalog.Version(server);
        Assert.Equal(version, derived);
        Assert.Equal(noted, note is not null);
        var report = Ingest(server, Tools(Tool("read")));
        Assert.Equal(noted ? 1 : 0, report.Notes.Count);
        var manifest = Workspace.RttWorkspace.ReadObject(report.ManifestPath);
        Assert.Equal(server, (string?)manifest["mcp"]!["server"]!["version"]); // the server's own string is kept
        Assert.Equal(version, (string?)manifest["tools"]![0]!["version"]);
    }

    [Fact]
    public void Ingesting_an_unchanged_server_again_rewrites_nothing()
    {
        var first = Ingest("1.0.0", Tools(Tool("read")));
        var stamp = DateTime.UtcNow.AddDays(-1);
        File.SetLastWriteTimeUtc(first.ManifestPath, stamp);
        File.SetLastWriteTimeUtc(_ws.Workspace.IndexPath, stamp);
        Ingest("1.0.0", Tools(Tool("read")));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(first.ManifestPath));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(_ws.Workspace.IndexPath));
    }
}
