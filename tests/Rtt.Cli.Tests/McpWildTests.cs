using System.Text.Json.Nodes;

namespace Rtt.Cli.Tests;

/// <summary>The real server-everything as a user ingests it: every tool, symbols at once, nothing rewritten when unchanged.</summary>
[Collection(ProcessCollection.Name)]
public sealed class McpWildTests(EverythingServer server) : IClassFixture<EverythingServer>
{
    [Fact]
    public void Capability_gated_tools_are_listed_and_symbols_are_ready_after_ingest()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var ingest = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "everything", "--json", "--", "node", server.Entry, "stdio");
        Assert.True(ingest.ExitCode == 0, ingest.ToString());
        var manifestPath = dir[".rtt/manifests/mcp.everything.json"];
        var names = JsonNode.Parse(File.ReadAllText(manifestPath))!["tools"]!.AsArray().Select(t => (string)t!["name"]!).ToList();
        Assert.Contains("trigger-sampling-request", names);     // offered only to a client that declares sampling
        Assert.Contains("trigger-elicitation-request", names);  // ... elicitation
        Assert.Contains("get-roots-list", names);               // ... roots

        // symbols.json knows the tools without a scan.
        var symbols = JsonNode.Parse(File.ReadAllText(dir[".rtt/registry/symbols.json"]))!.AsObject();
        Assert.True(symbols.ContainsKey("rtt://mcp/everything/echo"));

        var stamp = DateTime.UtcNow.AddDays(-1);
        File.SetLastWriteTimeUtc(manifestPath, stamp);
        var again = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "everything", "--", "node", server.Entry, "stdio");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(manifestPath));
    }
}
