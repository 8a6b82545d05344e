using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Routing;

namespace Rtt.Silo.Endpoints;

/// <summary>What an endpoint being started knows: its hash in the plan, the workspace, a logger, and how to replace itself after a restart.</summary>
public sealed record EndpointContext(string Hash, RttWorkspace Workspace, ILogger Logger, Func<Endpoint, Endpoint, Task> Replace, Fabric.Lanes.LaneDoorbell? Doorbell = null)
{
    /// <summary>Short name for logs and socket files: the first 12 hex digits of the hash.</summary>
    public string Short => Hash.StartsWith("sha256:", StringComparison.Ordinal) ? Hash[7..19] : Hash;
}

/// <summary>A started endpoint: the fabric endpoint the route table points at, and what must be stopped when it is retired.</summary>
public interface IServedEndpoint : IAsyncDisposable
{
    Endpoint Endpoint { get; }
}

/// <summary>An endpoint with nothing to stop (echo; one that failed to start).</summary>
public sealed class PlainEndpoint(Endpoint endpoint) : IServedEndpoint
{
    public Endpoint Endpoint { get; } = endpoint;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>An async driver (MCP, plugin) behind an <see cref="AsyncDriverEndpoint"/>; disposing it stops the driver.</summary>
public sealed class DriverServedEndpoint(IAsyncLaneDriver driver, JsonObject serve) : IServedEndpoint
{
    public Endpoint Endpoint { get; } = new AsyncDriverEndpoint(driver,
        (int?)serve["max_in_flight"] ?? ServeSpec.DefaultMaxInFlight, TimeSpan.FromMilliseconds((int?)serve["timeout_ms"] ?? ServeSpec.DefaultTimeoutMs));

    public ValueTask DisposeAsync() => driver.DisposeAsync();
}

/// <summary>
/// Starts the endpoint a serve block describes (docs/calls.md). A start that fails gives an endpoint that answers
/// every call (and the verify probe) with the reason, so the plan's verify fails and the reconciler rolls back;
/// the failure is also logged.
/// </summary>
public static class EndpointFactory
{
    private static readonly DriverEndpoint EchoEndpoint = new(new EchoDriver());

    public static PlainEndpoint Echo { get; } = new(EchoEndpoint);

    public static async Task<IServedEndpoint> StartAsync(JsonObject serve, EndpointContext context, CancellationToken cancellationToken)
    {
        var kind = (string?)serve["kind"];
        try
        {
            switch (kind)
            {
                case ServeSpec.Echo:
                    return Echo;
                case ServeSpec.Process:
                    return await ProcessService.StartAsync(serve, context, cancellationToken);
                case ServeSpec.Dotnet:
                    return new DriverServedEndpoint(await DotnetPlugin.LoadAsync(serve, context, cancellationToken), serve);
                case ServeSpec.McpStdio or ServeSpec.McpHttp:
                    return new DriverServedEndpoint(await Mcp.McpEndpoints.StartAsync(serve, context, cancellationToken), serve);
                default:
                    throw new RttException(ErrorCodes.ServeInvalid, $"unknown serve kind \"{kind}\"", context.Hash, "recompute the plan with this rtt version");
            }
        }
        catch (RttException ex)
        {
            return Refused(context, kind, ex.Code, ex.Message);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            context.Logger.LogError(ex, "Endpoint {Endpoint} ({Kind}) could not start", context.Short, kind);
            return new PlainEndpoint(new DriverEndpoint(new UnavailableDriver($"{kind}:{context.Short}", ErrorCodes.EndpointUnavailable,
                $"the {kind} endpoint could not start: {ex.GetType().Name}: {ex.Message}")));
        }
    }

    /// <summary>An endpoint not started: it answers every call and the verify probe with the code and reason (logged once).</summary>
    public static IServedEndpoint Refused(EndpointContext context, string? kind, string code, string message)
    {
        context.Logger.LogError("Endpoint {Endpoint} ({Kind}) could not start: {Code} {Message}", context.Short, kind, code, message);
        return new PlainEndpoint(new DriverEndpoint(new UnavailableDriver($"{kind}:{context.Short}", code, message)));
    }
}
