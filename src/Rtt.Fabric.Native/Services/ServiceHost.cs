using Rtt.Core.Errors;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Services;

/// <summary>
/// The service side of a <c>process</c> endpoint (docs/calls.md): the silo starts the service with
/// <c>RTT_SERVICE_SOCKET</c> (the Unix socket to attach on) and <c>RTT_SERVICE_LANE</c> (<c>shm</c> or <c>uds</c>) in its
/// environment; the service attaches, then answers each request frame with a response frame of the same route and
/// frame id. The payload bytes are the caller's, untouched.
/// <code>return ServiceHost.Run((request, response) => { request.CopyTo(response); return request.Length; });</code>
/// </summary>
public static class ServiceHost
{
    public const string SocketVariable = "RTT_SERVICE_SOCKET";
    public const string LaneVariable = "RTT_SERVICE_LANE";

    /// <summary>The name a service attaches with (the silo's per-endpoint socket serves one endpoint, whatever the name).</summary>
    public const string AttachName = "rtt-service";

    /// <summary>Attaches on the socket the silo gave (environment) and serves until the silo closes the lane. Returns an exit code.</summary>
    public static int Run(ServiceHandler handler, int maxResponse = Rtt.Core.Lanes.LaneDefaults.MaxPayload, TextWriter? log = null)
    {
        log ??= Console.Error;
        var socket = Environment.GetEnvironmentVariable(SocketVariable);
        if (string.IsNullOrEmpty(socket))
        {
            log.WriteLine($"{ErrorCodes.EndpointUnavailable}: {SocketVariable} is not set; a process service is started by the RTT silo (or attaches to the socket docs/calls.md names)");
            return 2;
        }

        var kind = Environment.GetEnvironmentVariable(LaneVariable) == "uds" ? LaneKind.Uds : LaneKind.Shm;
        try
        {
            using var lane = Attach(socket, kind);
            Serve(lane, handler, maxResponse);
            return 0;
        }
        catch (RttException ex)
        {
            log.WriteLine($"{ex.Code}: {ex.Message}");
            return 1;
        }
    }

    /// <summary>Attaches to a silo's service socket.</summary>
    public static IFrameLane Attach(string socket, LaneKind kind = LaneKind.Shm, LaneOptions? options = null) =>
        LaneAttach.ConnectUnix(socket, AttachName, kind, options).Lane;

    /// <summary>
    /// Serves requests on <paramref name="lane"/> with <paramref name="handler"/> until the peer goes: one thread, the
    /// response written straight into the lane (zero copy), nothing allocated per frame. A handler that throws
    /// answers that request with an RTT-CALL-004 error frame and the loop goes on.
    /// </summary>
    public static void Serve(IFrameLane lane, ServiceHandler handler, int maxResponse = Rtt.Core.Lanes.LaneDefaults.MaxPayload, IIdleStrategy? idle = null)
    {
        FrameHandler onFrame = (in FrameHeader header, ReadOnlySpan<byte> payload) =>
        {
            if ((header.Flags & FrameFlags.Response) != 0)
            {
                return;
            }

            if (!lane.TryLoan(maxResponse, out var room))
            {
                return;
            }

            if ((header.Flags & FrameFlags.Probe) != 0)
            {
                // A heartbeat (docs/stub-protocol.md 3.5): answered by the stub itself, payload echoed, handler not called.
                var n = Math.Min(payload.Length, room.Length);
                payload[..n].CopyTo(room);
                lane.Commit(n, header.RouteId, header.FrameId, FrameFlags.Response | FrameFlags.Probe);
                return;
            }

            int length;
            try
            {
                length = handler(payload, room);
            }
            catch (Exception ex)
            {
                var error = ErrorPayload.Encode(ErrorCodes.DriverFault, $"the service failed: {ex.GetType().Name}: {ex.Message}");
                var n = Math.Min(error.Length, room.Length);
                error.AsSpan(0, n).CopyTo(room);
                lane.Commit(n, header.RouteId, header.FrameId, FrameFlags.Response | FrameFlags.Error);
                return;
            }

            if (length >= 0)
            {
                lane.Commit(length, header.RouteId, header.FrameId, FrameFlags.Response | (header.Flags & FrameFlags.NoPayloadCrc));
            }
        };

        idle ??= BackoffIdleStrategy.ForLane(lane);
        while (!lane.PeerGone)
        {
            var n = lane.Poll(onFrame);
            if (n > 0)
            {
                lane.Flush();
            }

            idle.Idle(n);
        }
    }
}
