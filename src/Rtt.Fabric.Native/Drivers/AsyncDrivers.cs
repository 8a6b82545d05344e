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

/// <summary>
/// The side channel of one call in progress (fabric.md, "Interim frames"): messages to the caller before the final
/// answer, and the caller's replies. Opaque bytes to the fabric; an MCP endpoint sends JSON-RPC messages on it.
/// </summary>
public interface ICallChannel
{
    /// <summary>The caller takes interim messages (its request had <see cref="FrameFlags.AcceptsInterim"/>).</summary>
    bool Open { get; }

    /// <summary>
    /// Queues a message to the caller (copied; the worker writes it before the call's answer). False when the channel
    /// is not open or the call is over. Best effort: a message that finds the caller's lane full is dropped and counted.
    /// </summary>
    bool Send(ReadOnlySpan<byte> message);

    /// <summary>Called beside the worker (thread pool) with each reply the caller sends for this call.</summary>
    Action<ReadOnlyMemory<byte>>? OnReply { get; set; }

    /// <summary>
    /// Cancelled when the caller withdraws the request (a Cancel frame) or its lane goes away, but never by the endpoint's
    /// call timeout: a long-lived call (an MCP resource subscription) waits on this alone, and ends when the caller withdraws it.
    /// </summary>
    CancellationToken Withdrawal { get; }
}

/// <summary>An <see cref="IAsyncLaneDriver"/> that talks to its caller while a call runs.</summary>
public interface IInterimLaneDriver : IAsyncLaneDriver
{
    /// <summary>As <see cref="IAsyncLaneDriver.CallAsync"/>, with the call's side channel.</summary>
    ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, ICallChannel channel, CancellationToken cancellationToken);
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
internal sealed class DriverCall : IThreadPoolWorkItem, ICallChannel
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
    public bool AcceptsInterim;        // the request had FrameFlags.AcceptsInterim
    public TraceParent Trace;          // the caller's trace context (FrameFlags.Traced), else default
    private volatile bool _over;       // the answer is queued: no more interim messages

    public bool Open => AcceptsInterim && !_over;

    public Action<ReadOnlyMemory<byte>>? OnReply { get; set; }

    public CancellationToken Withdrawal => Withdrawn.Token;

    public bool Send(ReadOnlySpan<byte> message)
    {
        if (!Open)
        {
            return false;
        }

        Host.Interim(this, message.ToArray()); // copied here, beside the worker
        return true;
    }

    /// <summary>A reply from the caller (rented buffer, returned here); runs on the thread pool.</summary>
    public void Deliver(byte[] buffer, int length)
    {
        try
        {
            OnReply?.Invoke(buffer.AsMemory(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Fired when the caller withdraws the request (a Cancel frame) or its lane goes away.</summary>
    public readonly CancellationTokenSource Withdrawn = new();

    public void Execute() => _ = RunAsync();

    private async Task RunAsync()
    {
        // The call's span (traced calls): current while the driver runs, so it can pass it on (an MCP endpoint sends
        // it as _meta.traceparent); made here, on the thread pool, never on the worker.
        using var span = Trace.Present ? Host.Telemetry?.StartSpan(in Trace, RouteId, FrameId, Start) : null;
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
                    Answer = Endpoint.Driver is IInterimLaneDriver interim
                        ? await interim.CallAsync(Request.AsMemory(0, Length), this, timeout.Token).ConfigureAwait(false)
                        : await Endpoint.Driver.CallAsync(Request.AsMemory(0, Length), timeout.Token).ConfigureAwait(false);
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

        if (span is not null)
        {
            span.SetTag("rtt.outcome", Error is null ? "ok" : "error");
            if (Error is not null)
            {
                var code = ErrorPayload.Decode(Error, "other").Code;
                span.SetTag("rtt.error_code", code);
                span.SetStatus(System.Diagnostics.ActivityStatusCode.Error, code);
            }
        }

        _over = true;
        Host.Complete(this);
    }
}
