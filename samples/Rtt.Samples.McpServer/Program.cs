using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Samples.McpServer;

// An MCP server on stdio: JSON-RPC on stdout, logs on stderr only (stdout belongs to the protocol).
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.ClearProviders();
builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddMcpServer(o => o.ServerInfo = new() { Name = "rtt-sample-mcp", Version = "1.0.0" })
    .WithStdioServerTransport()
    .WithTools<SampleTools>();
await builder.Build().RunAsync();
