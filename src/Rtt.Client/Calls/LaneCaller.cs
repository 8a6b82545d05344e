using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Client.Lanes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Fabric.Lanes;

namespace Rtt.Client.Calls;

/// <summary>The answer of an MCP tool called through RTT: the tool's <c>CallToolResult</c> as JSON.</summary>
public sealed record ToolResult(JsonObject Result)
{
    /// <summary>The tool reported a failure (<c>isError: true</c>); the content says what.</summary>
    public bool IsError => Result["isError"] is JsonValue v && v.TryGetValue<bool>(out var e) && e;

    /// <summary>The text parts of the content, joined by newlines.</summary>
    public string Text => string.Join("\n", (Result["content"] as JsonArray ?? []).OfType<JsonObject>()
        .Where(c => (string?)c["type"] == "text").Select(c => (string?)c["text"] ?? ""));
}

/// <summary>
/// Calls symbols over the local silo's lanes (docs/calls.md): one lane per route, attached on first use (SHM on the same
/// node, UDS when asked) and reused by later calls. Thread-safe.
/// </summary>
public sealed class LaneCaller(string controlSocket, LaneKind kind = LaneKind.Shm, Func<CallRoute, string?>? tokenFor = null) : IDisposable
{
    private readonly ConcurrentDictionary<uint, Lazy<LaneClient>> _lanes = new();

    public string ControlSocket { get; } = controlSocket;

    /// <summary>Sends the payload on the route's lane and returns the answer's bytes (error frames throw their RTT code).</summary>
    public Task<byte[]> CallAsync(CallRoute route, ReadOnlyMemory<byte> payload, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        CallAsync(route, payload, timeout, null, cancellationToken);

    /// <summary>
    /// As above, taking the endpoint's interim messages while the call runs (fabric.md, "Interim frames"):
    /// <paramref name="onInterim"/> gets each message and a function that sends a reply inside the call (on the lane's
    /// receive thread: hand them on, do not block).
    /// </summary>
    public async Task<byte[]> CallAsync(CallRoute route, ReadOnlyMemory<byte> payload, TimeSpan? timeout, Action<byte[], Func<ReadOnlyMemory<byte>, bool>>? onInterim, CancellationToken cancellationToken)
    {
        var lane = LaneFor(route);
        try
        {
            return onInterim is null
                ? await lane.RequestAsync(payload, timeout ?? lane.RequestTimeout, cancellationToken)
                : await lane.RequestAsync(payload, timeout ?? lane.RequestTimeout, (id, message) => onInterim(message, reply => lane.Reply(id, reply.Span)), cancellationToken);
        }
        catch (RttException ex) when (ex.Code is ErrorCodes.LaneRouteUnknown)
        {
            Forget(route);
            throw new RttException(ErrorCodes.CallNoRoute, $"the silo serves no route {route.From} -> {route.To} (id {route.RouteId}) now", route.To,
                "the applied plan changed or the silo restarted without it: check `rtt history`", ex);
        }
        catch (RttException) when (!lane.Connected)
        {
            Forget(route); // the silo went away: attach again on the next call
            throw;
        }
    }

    /// <summary>
    /// Asks the lane host whether the route's endpoint can take calls (the verify probe; the endpoint never sees it).
    /// Throws the endpoint's refusal as an <see cref="RttException"/> (a drifted MCP tool: <c>RTT-MCP-003</c> in the message).
    /// </summary>
    public async Task ProbeAsync(CallRoute route, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var lane = LaneFor(route);
        try
        {
            await lane.ProbeAsync(timeout, cancellationToken);
        }
        catch (RttException) when (!lane.Connected)
        {
            Forget(route);
            throw;
        }
    }

    /// <summary>Calls an MCP tool route with its arguments (a JSON object) and returns the tool's result.</summary>
    public async Task<ToolResult> CallToolAsync(CallRoute route, JsonObject arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var answer = await CallAsync(route, Encoding.UTF8.GetBytes(arguments.ToJsonString()), timeout, cancellationToken);
        return ParseToolResult(answer, route.To);
    }

    /// <summary>The answer of an MCP endpoint: a JSON object (the CallToolResult).</summary>
    public static ToolResult ParseToolResult(ReadOnlySpan<byte> answer, string symbol)
    {
        try
        {
            using var doc = CanonicalJson.Parse(answer, symbol);
            return JsonNode.Parse(doc.RootElement.GetRawText()) is JsonObject o
                ? new ToolResult(o)
                : throw new RttException(ErrorCodes.CallProtocolError, "the MCP endpoint answered with JSON that is not an object", symbol, "check the endpoint is an MCP tool");
        }
        catch (RttException ex) when (ex.Code != ErrorCodes.CallProtocolError)
        {
            throw new RttException(ErrorCodes.CallProtocolError, $"the MCP endpoint's answer is not a CallToolResult: {ex.Message}", symbol, "check the endpoint is an MCP tool", ex);
        }
    }

    private LaneClient LaneFor(CallRoute route)
    {
        var lazy = _lanes.GetOrAdd(route.RouteId, id => new Lazy<LaneClient>(() =>
            LaneClient.Attach(ControlSocket, id.ToString(System.Globalization.CultureInfo.InvariantCulture), kind, token: tokenFor?.Invoke(route))));
        try
        {
            var lane = lazy.Value;
            if (!lane.Connected)
            {
                Forget(route);
                return LaneFor(route);
            }

            return lane;
        }
        catch
        {
            _lanes.TryRemove(new KeyValuePair<uint, Lazy<LaneClient>>(route.RouteId, lazy));
            throw;
        }
    }

    private void Forget(CallRoute route)
    {
        if (_lanes.TryRemove(route.RouteId, out var lazy) && lazy.IsValueCreated)
        {
            lazy.Value.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var lazy in _lanes.Values)
        {
            if (lazy.IsValueCreated)
            {
                lazy.Value.Dispose();
            }
        }

        _lanes.Clear();
    }
}
