using System.Net;
using System.Net.Sockets;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;
using Rtt.Lanes.Bench;

namespace Rtt.Fabric.Tests;

/// <summary>Opens lanes to a child peer process, or both ends in this process.</summary>
public sealed class TestLanes : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "rtt-fab-" + Guid.NewGuid().ToString("N")[..8]);

    public TestLanes() => Directory.CreateDirectory(_dir);

    public string SocketPath(string name) => Path.Combine(_dir, name + ".sock");

    /// <summary>Listens, starts the peer process in <paramref name="kind"/> mode, returns the parent's end of the lane.</summary>
    public (IFrameLane Lane, PeerProcess Peer) OpenWithPeer(LaneKind kind, LaneOptions options, Socket? listener = null, string name = "lane")
    {
        var owned = listener is null;
        listener ??= kind == LaneKind.Tcp ? LaneSockets.ListenTcp(IPAddress.Loopback, 0) : LaneSockets.ListenUnix(SocketPath(name));
        try
        {
            var address = kind == LaneKind.Tcp ? $"127.0.0.1:{((IPEndPoint)listener.LocalEndPoint!).Port}" : SocketPath(name);
            var peer = PeerProcess.Start(kind.ToString().ToLowerInvariant(), address);
            var accepted = AcceptWithin(listener, TimeSpan.FromSeconds(30), peer);
            IFrameLane lane = kind == LaneKind.Shm ? ShmLane.Accept(accepted, options) : new StreamLane(accepted, kind, options);
            return (lane, peer);
        }
        finally
        {
            if (owned)
            {
                listener.Dispose();
            }
        }
    }

    public static Socket AcceptWithin(Socket listener, TimeSpan timeout, PeerProcess? peer = null)
    {
        if (!listener.Poll((int)timeout.TotalMicroseconds, SelectMode.SelectRead))
        {
            throw new TimeoutException($"the peer did not connect within {timeout}: {peer?.Output}");
        }

        return listener.Accept();
    }

    /// <summary>Both ends of a lane in this process (for codec and backpressure tests).</summary>
    public (IFrameLane A, IFrameLane B) OpenPair(LaneKind kind, LaneOptions options)
    {
        using var listener = kind == LaneKind.Tcp ? LaneSockets.ListenTcp(IPAddress.Loopback, 0) : LaneSockets.ListenUnix(SocketPath("pair-" + Guid.NewGuid().ToString("N")[..6]));
        var client = kind == LaneKind.Tcp
            ? LaneSockets.ConnectTcp((IPEndPoint)listener.LocalEndPoint!)
            : LaneSockets.ConnectUnix(((UnixDomainSocketEndPoint)listener.LocalEndPoint!).ToString());
        var server = listener.Accept();
        if (kind != LaneKind.Shm)
        {
            return (new StreamLane(server, kind, options), new StreamLane(client, kind, options));
        }

        var attach = Task.Run(() => ShmLane.Attach(client, options));
        var a = ShmLane.Accept(server, options);
        return (a, attach.GetAwaiter().GetResult());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Deterministic frame content, so the receiver can check each frame without a copy of what was sent.</summary>
public static class Pattern
{
    /// <summary>Payload length of frame <paramref name="id"/>: mostly small (0..255), one in 64 anywhere up to <paramref name="max"/>.</summary>
    public static int Length(uint id, int max)
    {
        var h = Mix(id);
        return (h & 63) == 0 ? (int)((h >> 8) % (uint)(max + 1)) : (int)((h >> 8) & 255);
    }

    public static void Fill(Span<byte> payload, uint id)
    {
        var seed = Mix(id) | 1;
        for (var i = 0; i + 8 <= payload.Length; i += 8)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(payload[i..], seed * (ulong)(i + 1));
        }

        for (var i = payload.Length & ~7; i < payload.Length; i++)
        {
            payload[i] = (byte)(seed + (uint)i);
        }
    }

    /// <summary>True when the payload is exactly what <see cref="Fill"/> wrote for <paramref name="id"/>.</summary>
    public static bool Check(ReadOnlySpan<byte> payload, uint id)
    {
        var seed = Mix(id) | 1;
        for (var i = 0; i + 8 <= payload.Length; i += 8)
        {
            if (System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(payload[i..]) != seed * (ulong)(i + 1))
            {
                return false;
            }
        }

        for (var i = payload.Length & ~7; i < payload.Length; i++)
        {
            if (payload[i] != (byte)(seed + (uint)i))
            {
                return false;
            }
        }

        return true;
    }

    private static uint Mix(uint x)
    {
        x ^= x >> 16;
        x *= 0x7feb352d;
        x ^= x >> 15;
        x *= 0x846ca68b;
        x ^= x >> 16;
        return x;
    }
}
