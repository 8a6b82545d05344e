using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Samples.McpServer;

// An MCP server with the sample's tools, on stdio (default: JSON-RPC on stdout, logs on stderr only, since stdout
// belongs to the protocol) or, with `--http URL` (e.g. http://127.0.0.1:8931/mcp), on Streamable HTTP at that URL.
var http = Array.IndexOf(args, "--http") is var i and >= 0 && i + 1 < args.Length ? new Uri(args[i + 1]) : null;
if (http is null)
{
    var builder = Host.CreateApplicationBuilder(args);
    Configure(builder.Logging, builder.Services).WithStdioServerTransport();
    await builder.Build().RunAsync();
}
else
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.WebHost.UseUrls(http.GetLeftPart(UriPartial.Authority));
    Configure(builder.Logging, builder.Services).WithHttpTransport();
    var app = builder.Build();
    app.MapMcp(http.AbsolutePath);
    await app.StartAsync();
    Console.Error.WriteLine($"rtt-sample-mcp listening on {http}");
    await app.WaitForShutdownAsync();
}

static IMcpServerBuilder Configure(ILoggingBuilder logging, IServiceCollection services)
{
    logging.ClearProviders();
    logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    logging.SetMinimumLevel(LogLevel.Warning);
    return services.AddMcpServer(o => o.ServerInfo = new() { Name = "rtt-sample-mcp", Version = "1.0.0" }).WithTools<SampleTools>();
}
