using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Samples.McpConformance;

// The server the MCP conformance suite checks (its "everything server" contract: test tools, resources, prompts,
// completion, subscriptions), on stdio (default) or, with `--http URL` (e.g. http://127.0.0.1:8932/mcp), on Streamable
// HTTP at that URL with DNS rebinding protection (a non-loopback Host or Origin gets 403). Used by
// tests/Rtt.Cli.Tests/McpConformanceTests.cs directly and behind `rtt mcp serve`.
var http = Array.IndexOf(args, "--http") is var i and >= 0 && i + 1 < args.Length ? new Uri(args[i + 1]) : null;
if (http is null)
{
    var builder = Host.CreateApplicationBuilder(args);
    ConformanceServer.Configure(builder.Logging, builder.Services).WithStdioServerTransport();
    await builder.Build().RunAsync();
}
else
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.WebHost.UseUrls(http.GetLeftPart(UriPartial.Authority));
    ConformanceServer.Configure(builder.Logging, builder.Services).WithHttpTransport(o => o.SessionMode = ModelContextProtocol.AspNetCore.HttpServerSessionMode.StatefulForInitializeClients);
    var app = builder.Build();
    app.Use(async (context, next) =>
    {
        var origin = context.Request.Headers.Origin.ToString();
        if (!ConformanceServer.IsLoopback(context.Request.Host.Host) || (origin.Length > 0 && !(Uri.TryCreate(origin, UriKind.Absolute, out var o) && ConformanceServer.IsLoopback(o.Host))))
        {
            context.Response.StatusCode = 403;
            return;
        }

        await next(context);
    });
    app.MapMcp(http.AbsolutePath);
    await app.StartAsync();
    Console.Error.WriteLine($"rtt-conformance-mcp listening on {http}");
    await app.WaitForShutdownAsync();
}
