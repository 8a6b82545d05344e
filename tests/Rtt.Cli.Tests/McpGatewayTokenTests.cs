using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using Rtt.Core.Errors;

namespace Rtt.Cli.Tests;

/// <summary>Capability tokens as the gateway's bearer credential (docs/gateway.md, docs/tokens.md).</summary>
public sealed partial class McpGatewayTests
{
    [Fact]
    public async Task A_capability_token_as_bearer_reaches_only_the_tools_it_allows_until_it_is_revoked()
    {
        var upperOnly = Ok(gw.Workspace, "token", "issue", "--saddr", "rtt://mcp/sample/upper", "--verb", "open,rx,tx", "--ttl", "10m").Trim();
        var wide = Ok(gw.Workspace, "token", "issue", "--saddr", "rtt://mcp/sample/*", "--verb", "open,rx,tx", "--ttl", "10m").Trim();
        var openOnly = Ok(gw.Workspace, "token", "issue", "--saddr", "rtt://mcp/sample/*", "--verb", "open", "--ttl", "10m").Trim();

        // The narrow token: one tool listed and callable on a session that sends it with every request (its nonce is spent
        // once); the others are not listed and refused by name with the token's code.
        await using (var client = await Http(upperOnly))
        {
            Assert.Equal(["sample__upper"], (await client.ListToolsAsync()).Select(t => t.Name));
            var answer = await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "token" });
            Assert.Equal("TOKEN", Assert.IsType<TextContentBlock>(Assert.Single(answer.Content)).Text);
            var denied = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("sample__sleep", new Dictionary<string, object?> { ["ms"] = 1 }).AsTask());
            Assert.Contains(ErrorCodes.TokenRouteDenied, denied.Message, StringComparison.Ordinal);
            Assert.Equal("TOKEN", ((TextContentBlock)(await client.CallToolAsync("sample__upper", new Dictionary<string, object?> { ["text"] = "token" })).Content[0]).Text);
        }

        // A pattern reaches every tool under it; a token without the lane verbs reaches none.
        await using (var client = await Http(wide))
        {
            Assert.Equal(Served, (await client.ListToolsAsync()).Select(t => t.Name).Where(n => n != "say").Order(StringComparer.Ordinal));
        }

        await using (var client = await Http(openOnly))
        {
            Assert.Empty(await client.ListToolsAsync());
        }

        // Refused before anything runs, with the token's code and never the token: revoked, garbled, another workspace's.
        var id = (string)JsonNode.Parse(Ok(gw.Workspace, "token", "inspect", upperOnly, "--json"))!["token_id"]!;
        Ok(gw.Workspace, "token", "revoke", id, "--reason", "test");
        using var other = new TempDir();
        var otherWs = other.Path;
        Ok(otherWs, "init");
        var foreign = Ok(otherWs, "token", "issue", "--saddr", "rtt://mcp/sample/upper", "--verb", "open,rx,tx", "--ttl", "10m").Trim();
        foreach (var (bearer, code) in new[] { (upperOnly, ErrorCodes.TokenRevoked), (upperOnly[..^4] + "AAAA", ErrorCodes.TokenMalformed), (foreign, ErrorCodes.TokenIssuerUnknown) })
        {
            var (status, text) = await Post(bearer);
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Contains(code, text, StringComparison.Ordinal);
            Assert.DoesNotContain(bearer[5..40], text, StringComparison.Ordinal);
        }
    }

    private async Task<(HttpStatusCode, string)> Post(string bearer)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, gw.Url)
        {
            Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample__sleep","arguments":{"ms":1}}}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + bearer);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
