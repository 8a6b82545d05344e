using System.Buffers;
using Rtt.Core.Errors;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Drivers;

/// <summary>
/// An endpoint that does I/O (an MCP server, a plugin that may stall): called beside the lane worker, never on
/// it. The lane host copies the request into a pooled buffer, hands it over, and writes the answer to the client's
/// lane when the call completes.
/// </summary>
public interface IAsyncLaneDriver : IAsyncDisposable
{
    string Name { get; }

    /// <summary>Null when ready to take calls, else why not (a verify probe is answered with it).</summary>
    string? NotReady { get; }

    /// <summary>
    /// Answers one request. <paramref name="request"/> is valid until the returned task completes. An
    /// <see cref="RttException"/> becomes an error frame with its code; any other exception RTT-CALL-004.
    /// </summary>
    ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken);
}

/// <summary>An endpoint whose driver runs off the worker, with at most <see cref="MaxInFlight"/> calls in progress.</summary>
public sealed class AsyncDriverEndpoint(IAsyncLaneDriver driver, int maxInFlight = 1024, TimeSpan? callTimeout = null) : Endpoint(driver.Name)
{
    public IAsyncLaneDriver Driver { get; } = driver;

    public int MaxInFlight { get; } = maxInFlight > 0 ? maxInFlight : throw new ArgumentOutOfRangeException(nameof(maxInFlight));

    /// <summary>A call that takes longer is answered with RTT-CALL-002 (default 30 s).</summary>
    public TimeSpan CallTimeout { get; } = callTimeout ?? TimeSpan.FromSeconds(30);

    /// <summary>Calls refused because <see cref="MaxInFlight"/> were in progress.</summary>
    public long Busy { get; internal set; }

    /// <summary>Calls answered with an error frame (driver threw, timed out, or was not ready).</summary>
    public long Failed { get; internal set; }
}

/// <summary>A driver that answers every request with the same error: an endpoint that could not be started.</summary>
public sealed class UnavailableDriver(string name, string code, string reason) : ILaneDriver
{
    private readonly byte[] _payload = ErrorPayload.Encode(code, reason);

    public string Name => name;

    public string Code => code;

    public string Reason => reason;

    public int MaxResponseLength(int requestLength) => _payload.Length;

    /// <summary>Throws the endpoint's error: the worker answers with it as an error frame.</summary>
    public int Handle(in FrameHeader request, ReadOnlySpan<byte> payload, Span<byte> response) => throw new RttException(code, reason);
}

/// <summary>One call in progress: queued to the thread pool by the worker, handed back to it when done.</summary>
internal sealed class DriverCall : IThreadPoolWorkItem
{
    public required LaneHost Host;
    public required AsyncDriverEndpoint Endpoint;
    public required IFrameLane Client;
    public required int Inbound;
    public required uint RouteId;
    public required uint FrameId;
    public required byte[] Request;   // rented
    public required int Length;
    public Telemetry.RouteStats? Stats; // telemetry on: the route's stats and when the worker read the request
    public long Start;
    public ReadOnlyMemory<byte> Answer;
    public byte[]? Error;

    /// <summary>Fired when the caller withdraws the request (a Cancel frame) or its lane goes away.</summary>
    public readonly CancellationTokenSource Withdrawn = new();

    public void Execute() => _ = RunAsync();

    private async Task RunAsync()
    {
        try
        {
            if (Endpoint.Driver.NotReady is { } why)
            {
                Error = ErrorPayload.Refusal(ErrorCodes.EndpointUnavailable, why);
            }
            else
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Withdrawn.Token);
                timeout.CancelAfter(Endpoint.CallTimeout);
                try
                {
                    Answer = await Endpoint.Driver.CallAsync(Request.AsMemory(0, Length), timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (Withdrawn.IsCancellationRequested)
                {
                    Error = ErrorPayload.Encode(ErrorCodes.CallCancelled, $"the caller withdrew the request to endpoint \"{Endpoint.Name}\"");
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested)
                {
                    Error = ErrorPayload.Encode(ErrorCodes.CallTimeout, $"endpoint \"{Endpoint.Name}\" did not answer within {Endpoint.CallTimeout.TotalSeconds:0.###} s");
                }
            }
        }
        catch (RttException ex)
        {
            Error = ErrorPayload.Encode(ex.Code, ex.Message);
        }
        catch (Exception ex)
        {
            Error = ErrorPayload.Encode(ErrorCodes.DriverFault, $"endpoint \"{Endpoint.Name}\" failed: {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(Request);
        }

        Host.Complete(this);
    }
}
