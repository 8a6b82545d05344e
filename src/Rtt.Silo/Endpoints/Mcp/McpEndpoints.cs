using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Microsoft.Extensions.Logging;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Registry;

namespace Rtt.Silo.Endpoints.Mcp;

/// <summary>
/// The <c>mcp-stdio</c> and <c>mcp-http</c> endpoints (docs/calls.md): each tool endpoint takes a lease on its
/// server's one shared <see cref="McpServerSession"/> (keyed by the serve block without <c>tool</c>); the session
/// is started by the first lease and closed when the last is returned.
/// </summary>
public static class McpEndpoints
{
    private static readonly Dictionary<string, Shared> Sessions = new(StringComparer.Ordinal);

    /// <summary>Sessions open now (tests).</summary>
    public static int OpenSessions
    {
        get
        {
            lock (Sessions)
            {
                return Sessions.Count;
            }
        }
    }

    /// <summary>Starts (or joins) the server's session and returns the endpoint's driver for its <c>tool</c>.</summary>
    public static async Task<IAsyncLaneDriver> StartAsync(JsonObject serve, EndpointContext context, CancellationToken cancellationToken)
    {
        var tool = serve["tool"] as JsonObject
            ?? throw new RttException(ErrorCodes.ServeInvalid, "an MCP serve block needs a tool {name, pin, object}; the planner adds it for MCP tool symbols", $"{context.Hash}: /tool",
                "route to an rtt://mcp/<server>/<tool> symbol, or give serve.tool.name in the manifest");
        var name = (string?)tool["name"] ?? throw new RttException(ErrorCodes.ServeInvalid, "serve.tool has no name", $"{context.Hash}: /tool/name", "give the tool's name on its server");
        var pin = (string?)tool["pin"];
        if ((string?)tool["primitive"] is { } kind)
        {
            // A prompt, resource or resource template (docs/gateway.md): its driver on the same shared session.
            var primitive = McpPrimitive.Of(kind) ?? throw new RttException(ErrorCodes.ServeInvalid, $"serve.tool.primitive \"{kind}\" is not prompt, resource or resource-template", $"{context.Hash}: /tool/primitive",
                "re-plan: the planner writes it from the registry object");
            var held = await AcquireAsync(serve, context.Workspace, context.Logger, cancellationToken).ConfigureAwait(false);
            var served = new McpPrimitiveDriver(held, primitive, name, pin, (string?)tool["symbol"] ?? $"mcp:{name}");
            if (served.NotReady is { } refused)
            {
                context.Logger.LogWarning("MCP endpoint {Endpoint} ({Kind} {Name}) is refused: {Why}", context.Short, kind, name, refused);
            }

            return served;
        }

        var schema = (string?)tool["object"] is { } objectHash ? PinnedSchema(context, objectHash, name, pin) : null;
        var symbol = (string?)tool["symbol"] ?? $"mcp:{name}";

        var lease = await AcquireAsync(serve, context.Workspace, context.Logger, cancellationToken).ConfigureAwait(false);
        var driver = new McpToolDriver(lease, name, pin, (int?)tool["pin_format"] ?? McpCatalog.PinFormat, schema, symbol);
        if (driver.NotReady is { } why)
        {
            context.Logger.LogWarning("MCP endpoint {Endpoint} ({Tool}) is refused: {Why}", context.Short, name, why);
        }

        return driver;
    }

    /// <summary>The tool's input schema from its signed registry object, which must carry the plan's pin.</summary>
    private static JsonSchema PinnedSchema(EndpointContext context, string objectHash, string tool, string? pin)
    {
        JsonObject obj;
        using (var store = RegistryStore.Open(context.Workspace))
        {
            obj = store.ReadObject(objectHash, $"MCP tool {tool} ({objectHash})");
        }

        if (pin is not null && (string?)obj["pin"] != pin)
        {
            throw new RttException(ErrorCodes.McpDrift, $"the registry object of tool {tool} has pin {obj["pin"]}, the plan names {pin}", objectHash, "re-plan after `rtt scan`");
        }

        try
        {
            return JsonSchema.FromText((obj["input_schema"] ?? new JsonObject { ["type"] = "object" }).ToJsonString(),
                new BuildOptions { SchemaRegistry = new SchemaRegistry() });
        }
        catch (Exception ex) when (ex is JsonSchemaException or JsonException or ArgumentException or InvalidOperationException)
        {
            throw new RttException(ErrorCodes.EndpointUnavailable, $"the pinned inputSchema of tool {tool} cannot be used to check arguments: {ex.Message}", objectHash,
                "fix the tool's inputSchema on the server and ingest it again");
        }
    }

    internal static async Task<McpSessionLease> AcquireAsync(JsonObject serve, Core.Workspace.RttWorkspace workspace, ILogger logger, CancellationToken cancellationToken)
    {
        var key = McpServerSession.KeyOf(serve);
        Shared shared;
        lock (Sessions)
        {
            if (!Sessions.TryGetValue(key, out shared!))
            {
                var block = (JsonObject)serve.DeepClone();
                block.Remove("tool");
                shared = new Shared(McpServerSession.StartAsync(block, workspace, logger, CancellationToken.None));
                Sessions[key] = shared;
            }

            shared.Leases++;
        }

        try
        {
            var session = await shared.Started.WaitAsync(cancellationToken).ConfigureAwait(false);
            return new McpSessionLease(session, () => ReleaseAsync(key, shared));
        }
        catch
        {
            await ReleaseAsync(key, shared).ConfigureAwait(false); // a failed start is not kept: the next plan tries again
            throw;
        }
    }

    private static async ValueTask ReleaseAsync(string key, Shared shared)
    {
        lock (Sessions)
        {
            if (--shared.Leases > 0)
            {
                return;
            }

            if (Sessions.TryGetValue(key, out var current) && current == shared)
            {
                Sessions.Remove(key);
            }
        }

        try
        {
            var session = await shared.Started.ConfigureAwait(false);
            await session.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // never started: nothing to close
        }
    }

    private sealed class Shared(Task<McpServerSession> started)
    {
        public Task<McpServerSession> Started { get; } = started;

        public int Leases;
    }
}

/// <summary>One tool endpoint's hold on a shared session; disposing it returns the hold (the last one closes the session).</summary>
public sealed class McpSessionLease(McpServerSession session, Func<ValueTask> release) : IAsyncDisposable
{
    private int _released;

    public McpServerSession Session { get; } = session;

    public ValueTask DisposeAsync() => Interlocked.Exchange(ref _released, 1) == 0 ? release() : ValueTask.CompletedTask;
}
