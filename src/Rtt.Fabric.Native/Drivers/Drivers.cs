using Rtt.Fabric.Frames;

namespace Rtt.Fabric.Drivers;

/// <summary>
/// The receiving side of a route: a request frame in, a response frame out (correlated by frame_id by
/// the host). Runs on the lane worker thread: it must not block, and should not allocate.
/// </summary>
public interface ILaneDriver
{
    string Name { get; }

    /// <summary>Room the response to a request of <paramref name="requestLength"/> bytes may need.</summary>
    int MaxResponseLength(int requestLength);

    /// <summary>Writes the response into <paramref name="response"/> (loaned from the lane: no copy) and returns its length; -1 sends none.</summary>
    int Handle(in FrameHeader request, ReadOnlySpan<byte> payload, Span<byte> response);
}

/// <summary>Answers every request with its own payload.</summary>
public sealed class EchoDriver : ILaneDriver
{
    public string Name => "echo";

    public int MaxResponseLength(int requestLength) => requestLength;

    public int Handle(in FrameHeader request, ReadOnlySpan<byte> payload, Span<byte> response)
    {
        payload.CopyTo(response);
        return payload.Length;
    }
}

/// <summary>A .NET function as a service: (request, response buffer) -> response length.</summary>
public delegate int ServiceHandler(ReadOnlySpan<byte> request, Span<byte> response);

/// <summary>Runs a delegate for each request (tests and the quickstart's service).</summary>
public sealed class DelegateDriver(string name, ServiceHandler handler, int maxResponse = 4096) : ILaneDriver
{
    public string Name => name;

    public int MaxResponseLength(int requestLength) => maxResponse;

    public int Handle(in FrameHeader request, ReadOnlySpan<byte> payload, Span<byte> response) => handler(payload, response);
}
