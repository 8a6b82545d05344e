using System.Buffers.Binary;
using System.Net.Sockets;
using Rtt.Core.Errors;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Fabric.Telemetry;

/// <summary>
/// Reading a lane host's telemetry over its control socket (beside the attach protocol): the client sends
/// <c>"RTTT" u8 version(1) u8 op u16 0 i64 argument</c>; the host writes UTF-8 text and closes. Ops: 1 metrics (a
/// JSON document, <c>rtt metrics --json</c>), 2 flight (NDJSON of the last <c>argument</c> ms of the flight record),
/// 3 follow (NDJSON frame lines as they are recorded, until the client closes).
/// </summary>
public static class TelemetryProtocol
{
    public const uint Magic = 0x54545452; // "RTTT"
    public const byte Version = 1;
    public const byte OpMetrics = 1;
    public const byte OpFlight = 2;
    public const byte OpFollow = 3;
    private const int RequestSize = 16;

    /// <summary>True when the first bytes waiting on <paramref name="socket"/> are a telemetry request (peeked, not read).</summary>
    public static bool IsRequest(Socket socket, TimeSpan timeout)
    {
        Span<byte> head = stackalloc byte[4];
        socket.ReceiveTimeout = (int)Math.Max(1, timeout.TotalMilliseconds);
        var n = socket.Receive(head, SocketFlags.Peek);
        socket.ReceiveTimeout = 0;
        return n == 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == Magic;
    }

    /// <summary>Host side: reads the request and answers it (a follow runs until the client closes or <paramref name="stopping"/>).</summary>
    public static void Serve(Socket socket, LaneTelemetry? telemetry, Func<bool> stopping, TimeSpan timeout)
    {
        using (socket)
        {
            Span<byte> request = stackalloc byte[RequestSize];
            socket.ReceiveTimeout = (int)Math.Max(1, timeout.TotalMilliseconds);
            FdPassing.ReadExactly(socket, request);
            socket.ReceiveTimeout = 0;
            if (request[4] != Version)
            {
                return;
            }

            var argument = BinaryPrimitives.ReadInt64LittleEndian(request[8..]);
            using var output = new NetworkStream(socket, ownsSocket: false);
            switch (request[5])
            {
                case OpMetrics:
                    output.Write(telemetry is null
                        ? LaneTelemetry.ToJson(new TelemetrySnapshot(DateTime.UtcNow, 0, false, [], [], 0, 0))
                        : LaneTelemetry.ToJson(telemetry.Snapshot(), telemetry.Node));
                    break;
                case OpFlight when telemetry is not null:
                    using (var buffered = new BufferedStream(output, 1 << 16))
                    {
                        telemetry.WriteFlight(buffered, TimeSpan.FromMilliseconds(Math.Clamp(argument, 1, 3_600_000)));
                    }

                    break;
                case OpFollow when telemetry is not null:
                    Follow(socket, output, telemetry, stopping);
                    break;
                default:
                    break;
            }

            socket.Shutdown(SocketShutdown.Send);
        }
    }

    private static void Follow(Socket socket, NetworkStream output, LaneTelemetry telemetry, Func<bool> stopping)
    {
        var records = new List<FlightRecord>();
        var next = telemetry.Flight.Recorded; // from now on
        using var buffered = new BufferedStream(output, 1 << 16);
        using var writer = new System.Text.Json.Utf8JsonWriter(buffered);
        while (!stopping())
        {
            records.Clear();
            next = telemetry.Flight.Read(next, records);
            if (records.Count > 0)
            {
                telemetry.WriteRecords(buffered, writer, records);
                buffered.Flush();
            }

            if (socket.Poll(50_000, SelectMode.SelectRead) && socket.Available == 0)
            {
                return; // the client closed
            }
        }
    }

    /// <summary>Client side: the host's metrics snapshot (JSON).</summary>
    public static byte[] Metrics(string controlPath)
    {
        using var socket = Connect(controlPath, OpMetrics, 0);
        using var output = new MemoryStream();
        using var input = new NetworkStream(socket, ownsSocket: false);
        input.CopyTo(output);
        return output.ToArray();
    }

    /// <summary>Client side: the last <paramref name="window"/> of the flight record, NDJSON, copied to <paramref name="output"/>.</summary>
    public static void Flight(string controlPath, TimeSpan window, Stream output)
    {
        using var socket = Connect(controlPath, OpFlight, (long)window.TotalMilliseconds);
        using var input = new NetworkStream(socket, ownsSocket: false);
        input.CopyTo(output);
    }

    /// <summary>Client side: frame lines as they are recorded, copied to <paramref name="output"/> until cancelled or the host goes.</summary>
    public static async Task FollowAsync(string controlPath, Stream output, CancellationToken cancellationToken)
    {
        using var socket = Connect(controlPath, OpFollow, 0);
        await using var input = new NetworkStream(socket, ownsSocket: false);
        try
        {
            var buffer = new byte[1 << 16];
            int n;
            while ((n = await input.ReadAsync(buffer, cancellationToken)) > 0)
            {
                await output.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                await output.FlushAsync(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private static Socket Connect(string controlPath, byte op, long argument)
    {
        Socket socket;
        try
        {
            socket = LaneSockets.ConnectUnix(controlPath);
        }
        catch (SocketException ex)
        {
            throw new RttException(ErrorCodes.LaneAttachFailed, $"no lane host answers on {controlPath}: {ex.Message}", controlPath, "start the silo (rtt up) in this workspace");
        }

        Span<byte> request = stackalloc byte[RequestSize];
        BinaryPrimitives.WriteUInt32LittleEndian(request, Magic);
        request[4] = Version;
        request[5] = op;
        BinaryPrimitives.WriteInt64LittleEndian(request[8..], argument);
        socket.Send(request);
        return socket;
    }
}
