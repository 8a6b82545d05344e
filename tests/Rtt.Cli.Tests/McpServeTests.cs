using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>`rtt mcp ingest` records how the silo reaches the server (the serve block) in the signed manifest.</summary>
[Collection(ProcessCollection.Name)]
public sealed class McpServeTests(EverythingServer server) : IClassFixture<EverythingServer>
{
    [Fact]
    public void Ingesting_a_command_records_an_mcp_stdio_serve_block_and_a_saved_list_records_none()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var ingest = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "everything", "--", "node", server.Entry, "stdio");
        Assert.True(ingest.ExitCode == 0, ingest.ToString());
        var serve = JsonNode.Parse(File.ReadAllText(dir[".rtt/manifests/mcp.everything.json"]))!["mcp"]!["serve"]!;
        Assert.Equal("""{"args":["__ENTRY__","stdio"],"command":"node","env":{},"kind":"mcp-stdio","max_in_flight":256,"timeout_ms":30000}""".Replace("__ENTRY__", server.Entry),
            serve.ToJsonString());
        Assert.Equal(0, RttProcess.Run(dir.Path, "verify").ExitCode); // the manifest is signed with its serve block

        File.WriteAllText(dir["tools.json"], """{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}""");
        Assert.Equal(0, RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "saved", "--from", dir["tools.json"]).ExitCode);
        Assert.Null(JsonNode.Parse(File.ReadAllText(dir[".rtt/manifests/mcp.saved.json"]))!["mcp"]!["serve"]);

        // A saved list in the workspace may say how to reach its server.
        Directory.CreateDirectory(dir["mcp"]);
        File.WriteAllText(dir["mcp/remote.tools.json"], """{"serve":{"kind":"mcp-http","url":"http://127.0.0.1:9/mcp","timeout_ms":5000},"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}""");
        var scan = RttProcess.Run(dir.Path, "scan");
        Assert.True(scan.ExitCode == 0, scan.ToString());
        var remote = JsonNode.Parse(File.ReadAllText(dir[".rtt/manifests/mcp.remote.json"]))!["mcp"]!["serve"]!;
        Assert.Equal("""{"headers":{},"kind":"mcp-http","max_in_flight":256,"timeout_ms":5000,"url":"http://127.0.0.1:9/mcp"}""", remote.ToJsonString());
        File.WriteAllText(dir["mcp/broken.tools.json"], """{"serve":{"kind":"mcp-stdio"},"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}""");
        var broken = RttProcess.Run(dir.Path, "scan");
        Assert.NotEqual(0, broken.ExitCode);
        Assert.Contains(ErrorCodes.ServeInvalid, broken.Stdout + broken.Stderr);
        Assert.Contains("/serve/command", broken.Stdout + broken.Stderr);
    }

    [Fact]
    public void A_url_that_serves_no_mcp_is_a_clear_error_and_headers_need_a_url()
    {
        using var dir = new TempDir();
        Assert.Equal(0, RttProcess.Run(dir.Path, "init").ExitCode);
        var unreachable = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "remote", "--timeout", "10", "--url", "http://127.0.0.1:9/mcp", "--header", "X-Token=abc");
        Assert.Equal(1, unreachable.ExitCode);
        Assert.Contains(ErrorCodes.McpServerFailed, unreachable.Stderr);
        Assert.DoesNotContain("   at ", unreachable.Stderr);
        Assert.False(File.Exists(dir[".rtt/manifests/mcp.remote.json"]));

        var stray = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "remote", "--header", "X-Token=abc", "--", "node", server.Entry, "stdio");
        Assert.Equal(1, stray.ExitCode);
        Assert.Contains("--header goes with --url", stray.Stderr);
        var bad = RttProcess.Run(dir.Path, "mcp", "ingest", "--name", "remote", "--url", "ftp://example/mcp");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains(ErrorCodes.ServeInvalid, bad.Stderr);
    }
}
