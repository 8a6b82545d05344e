using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Interop;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Lanes.Bench;

/// <summary>Route ids the peer understands (a convention between the peer and its driver, not a wire format).</summary>
public static class PeerRoutes
{
    /// <summary>Echo the frame unchanged.</summary>
    public const uint Echo = 1;

    /// <summary>Count the frame, send nothing back.</summary>
    public const uint Sink = 2;

    /// <summary>Reply with 16 bytes: frames counted since the last report, bytes the peer allocated since it attached.</summary>
    public const uint Report = 3;

    /// <summary>Echo the frame with the peer's receive time (Stopwatch ticks, shared clock on one host) at payload bytes 8..15.</summary>
    public const uint EchoStamped = 4;

    /// <summary>A request answered by a 16-byte response: the request's bytes 0..7 and the peer's receive time. The request payload is not copied.</summary>
    public const uint Ack = 5;
}

/// <summary>
/// The other process of a lane: attaches to a lane (or a baseline) the parent offers and serves it until the
/// parent goes. Used by the fabric tests (a small test peer executable) and by <c>rtt bench lanes</c>.
/// Arguments: <c>MODE ADDRESS</c>, MODE one of shm, uds, tcp (lanes) or mailbox, raw-uds, raw-tcp (baselines);
/// ADDRESS a Unix socket path, or host:port for the TCP modes.
/// </summary>
public static class LanePeer
{
    public static int Run(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: MODE ADDRESS (MODE: shm|uds|tcp|mailbox|raw-uds|raw-tcp)");
            return 2;
        }

        var mode = args[0];
        var address = args[1];
        switch (mode)
        {
            case "shm":
                using (var lane = ShmLane.Attach(LaneSockets.ConnectUnix(address)))
                {
                    Serve(lane);
                }

                return 0;
            case "uds":
                using (var lane = new StreamLane(LaneSockets.ConnectUnix(address), LaneKind.Uds, new LaneOptions()))
                {
                    Serve(lane);
                }

                return 0;
            case "tcp":
                using (var lane = new StreamLane(LaneSockets.ConnectTcp(ParseEndPoint(address)), LaneKind.Tcp, new LaneOptions()))
                {
                    Serve(lane);
                }

                return 0;
            case "mailbox":
                Mailbox.ServeEcho(address);
                return 0;
            case "raw-uds":
                RawEcho(LaneSockets.ConnectUnix(address));
                return 0;
            case "raw-tcp":
                RawEcho(LaneSockets.ConnectTcp(ParseEndPoint(address)));
                return 0;
            default:
                Console.Error.WriteLine($"unknown mode {mode}");
                return 2;
        }
    }

    public static IPEndPoint ParseEndPoint(string address)
    {
        var colon = address.LastIndexOf(':');
        return new IPEndPoint(IPAddress.Parse(address[..colon]), int.Parse(address[(colon + 1)..], CultureInfo.InvariantCulture));
    }

    /// <summary>Serves echo, sink and report frames until the parent goes. One thread; nothing allocated per frame.</summary>
    public static void Serve(IFrameLane lane)
    {
        var startAllocated = GC.GetAllocatedBytesForCurrentThread();
        long counted = 0;
        Span<byte> report = stackalloc byte[16];
        var reportRequested = false;
        FrameHandler handler = (in FrameHeader header, ReadOnlySpan<byte> payload) =>
        {
            switch (header.RouteId)
            {
                case PeerRoutes.Echo:
                case PeerRoutes.EchoStamped:
                    if (lane.TryLoan(payload.Length, out var room))
                    {
                        payload.CopyTo(room);
                        if (header.RouteId == PeerRoutes.EchoStamped && payload.Length >= 16)
                        {
                            BinaryPrimitives.WriteInt64LittleEndian(room[8..], Stopwatch.GetTimestamp());
                        }

                        lane.Commit(payload.Length, header.RouteId, header.FrameId, (header.Flags & FrameFlags.NoPayloadCrc) | FrameFlags.Response);
                    }

                    break;
                case PeerRoutes.Ack:
                    if (lane.TryLoan(16, out var ack))
                    {
                        var received = Stopwatch.GetTimestamp();
                        payload[..Math.Min(8, payload.Length)].CopyTo(ack);
                        BinaryPrimitives.WriteInt64LittleEndian(ack[8..], received);
                        lane.Commit(16, header.RouteId, header.FrameId, header.Flags | FrameFlags.Response);
                    }

                    break;
                case PeerRoutes.Sink:
                    counted++;
                    break;
                case PeerRoutes.Report:
                    reportRequested = true;
                    break;
                default:
                    lane.Counters.OnDrop(DropReason.UnknownRoute);
                    break;
            }
        };

        var idle = BackoffIdleStrategy.ForLane(lane);
        while (!lane.PeerGone)
        {
            var n = lane.Poll(handler);
            if (reportRequested)
            {
                reportRequested = false;
                BinaryPrimitives.WriteInt64LittleEndian(report, counted);
                BinaryPrimitives.WriteInt64LittleEndian(report[8..], GC.GetAllocatedBytesForCurrentThread() - startAllocated);
                counted = 0;
                lane.Send(PeerRoutes.Report, 0, report, FrameFlags.Response);
            }

            if (n > 0)
            {
                lane.Flush();
            }

            idle.Idle(n);
        }
    }

    /// <summary>Raw socket baseline: [u32 length][payload] in, the same out. Blocking calls, one buffer.</summary>
    private static void RawEcho(Socket socket)
    {
        using (socket)
        {
            if (socket.ProtocolType == ProtocolType.Tcp)
            {
                socket.NoDelay = true;
            }

            var buffer = new byte[4 + (1 << 20)];
            while (true)
            {
                if (!ReadExactly(socket, buffer.AsSpan(0, 4)))
                {
                    return;
                }

                var length = BinaryPrimitives.ReadInt32LittleEndian(buffer);
                if (!ReadExactly(socket, buffer.AsSpan(4, length)))
                {
                    return;
                }

                var sent = 0;
                while (sent < 4 + length)
                {
                    sent += socket.Send(buffer.AsSpan(sent, 4 + length - sent));
                }
            }
        }
    }

    public static bool ReadExactly(Socket socket, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int n;
            try
            {
                n = socket.Receive(buffer);
            }
            catch (SocketException)
            {
                return false;
            }

            if (n == 0)
            {
                return false;
            }

            buffer = buffer[n..];
        }

        return true;
    }
}

/// <summary>
/// The naive shared-memory baseline: two single-slot mailboxes (request, response) in a memfd segment,
/// each [i32 state][i32 length][u32 crc][payload], spun on with no ring, no framing and no wait strategy.
/// The ping side copies the payload in and CRCs it; the pong side checks the CRC, copies it to the
/// response slot, writes its receive stamp at bytes 8..15 and CRCs it; the ping side checks the CRC: the same
/// copies, stamp and CRC work as a lane's stamped echo. Between measuring slices the ping side marks the request
/// slot paused and the pong side naps instead of spinning, so it leaves the core to the lane measured meanwhile.
/// </summary>
public static unsafe class Mailbox
{
    public const int SlotData = 64;
    public const int SlotSize = SlotData + (1 << 17);
    public const int SegmentSize = 2 * SlotSize;
    private const int Empty = 0;
    private const int Full = 1;
    private const int Stop = 2;
    private const int Paused = 3;

    /// <summary>
    /// Copies the payload into the slot (with <paramref name="stamp"/>, a receive stamp written at bytes 8..15 of the
    /// copy, as the lane's stamped echo does), checksums the copy and marks the slot full.
    /// </summary>
    public static void Put(byte* slot, ReadOnlySpan<byte> payload, long? stamp = null)
    {
        var copy = new Span<byte>(slot + SlotData, payload.Length);
        payload.CopyTo(copy);
        if (stamp is { } at && payload.Length >= 16)
        {
            BinaryPrimitives.WriteInt64LittleEndian(copy[8..], at);
        }

        *(int*)(slot + 4) = payload.Length;
        *(uint*)(slot + 8) = Crc32C.Compute(copy);
        Volatile.Write(ref *(int*)slot, Full);
    }

    /// <summary>Spins until the slot is full; returns the payload (checked) and leaves the slot full until <see cref="Clear"/>.</summary>
    public static ReadOnlySpan<byte> Take(byte* slot, Func<bool>? stillThere = null)
    {
        var spins = 0;
        int state;
        while ((state = Volatile.Read(ref *(int*)slot)) is Empty or Paused)
        {
            if (state == Paused)
            {
                Thread.Sleep(1);
                if (stillThere is not null && !stillThere())
                {
                    return default;
                }

                continue;
            }

            if (++spins == 1 << 20)
            {
                spins = 0;
                if (stillThere is not null && !stillThere())
                {
                    return default;
                }
            }
        }

        if (state == Stop)
        {
            return default;
        }

        var payload = new ReadOnlySpan<byte>(slot + SlotData, *(int*)(slot + 4));
        if (Crc32C.Compute(payload) != *(uint*)(slot + 8))
        {
            throw new InvalidDataException("mailbox crc mismatch");
        }

        return payload;
    }

    public static void Clear(byte* slot) => Volatile.Write(ref *(int*)slot, Empty);

    public static void SignalStop(byte* slot) => Volatile.Write(ref *(int*)slot, Stop);

    /// <summary>Lets the pong side nap until the next request (only between round trips: the slot is empty then).</summary>
    public static void Pause(byte* slot) => Volatile.Write(ref *(int*)slot, Paused);

    /// <summary>The pong side: receives the segment fd over the Unix socket at <paramref name="path"/> and echoes until told to stop.</summary>
    public static void ServeEcho(string path)
    {
        using var control = LaneSockets.ConnectUnix(path);
        Span<byte> hello = stackalloc byte[8];
        var fd = FdPassing.Receive(control, hello);
        var parentPid = BinaryPrimitives.ReadInt32LittleEndian(hello);
        using var segment = ShmSegment.Map(fd, SegmentSize);
        segment.CloseFd();
        var request = segment.Base;
        var response = segment.Base + SlotSize;
        control.Send(hello); // ready
        while (true)
        {
            var payload = Take(request, () => Libc.ProcessExists(parentPid));
            if (payload.IsEmpty && Volatile.Read(ref *(int*)request) != Full)
            {
                return;
            }

            var received = Stopwatch.GetTimestamp();
            Clear(request); // safe before the copy: the parent writes the next request only after it sees this response
            Put(response, payload, received);
        }
    }
}
