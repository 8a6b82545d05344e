using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Rtt.Client.Lanes;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Streams;

namespace Rtt.Fabric.Tests;

/// <summary>What the signed plan says about a route's lane is what the lane host does: the kind offered at attach, the ring size.</summary>
public sealed class PlannedLaneTests : IDisposable
{
    private readonly TestLanes _lanes = new();

    [Theory]
    [InlineData("shm", 256, LaneKind.Shm, 1 << 20)]   // 256 frames x 4 KiB: the 1 MiB default
    [InlineData("shm", 300, LaneKind.Shm, 2 << 20)]   // rounded up to a power of two
    [InlineData("uds", 4096, LaneKind.Uds, 16 << 20)]
    [InlineData("tcp", 65536, LaneKind.Tcp, 64 << 20)] // at most 64 MiB
    [InlineData("shm", null, LaneKind.Shm, 1 << 20)]  // no ring_size: 256 frames
    public void A_plans_lane_maps_to_a_kind_and_a_ring_capacity(string kind, int? ringSize, LaneKind expected, int capacity)
    {
        var plan = LanePlan.Of(kind, ringSize, 1 << 20)!;
        Assert.Equal(expected, plan.Kind);
        Assert.Equal(capacity, plan.RingCapacity);
        Assert.Equal(4 << 20, LanePlan.Of("shm", 1, 4 << 20)!.RingCapacity); // never below the host's own ring
        Assert.Null(LanePlan.Of("pigeon", 256, 1 << 20));
    }

    [Fact]
    public async Task A_client_asking_for_the_planned_kind_gets_it_and_an_shm_lane_gets_the_planned_ring()
    {
        using var host = new LaneHost();
        var echo = new DriverEndpoint(new EchoDriver());
        await host.SwapAsync(new RouteTable([
            new RouteEntry(1, "rtt://a/uds", echo, "rtt://caller", new LanePlan(LaneKind.Uds, 1 << 20)),
            new RouteEntry(2, "rtt://a/shm", echo, "rtt://caller", new LanePlan(LaneKind.Shm, 4 << 20)),
            new RouteEntry(3, "rtt://a/unplanned", echo),
        ]));
        var control = _lanes.SocketPath("host");
        using var listener = new LaneHostListener(host, new LaneOptions(), control);

        using var uds = LaneClient.Attach(control, "rtt://a/uds");
        Assert.Equal(LaneKind.Uds, uds.Kind);
        using var shm = LaneClient.Attach(control, "rtt://a/shm");
        Assert.Equal(LaneKind.Shm, shm.Kind);
        using var unplanned = LaneClient.Attach(control, "rtt://a/unplanned");
        Assert.Equal(LaneKind.Shm, unplanned.Kind);
        foreach (var client in new[] { uds, shm, unplanned })
        {
            Assert.Equal("ping"u8.ToArray(), await client.RequestAsync("ping"u8.ToArray()).WaitAsync(TimeSpan.FromSeconds(30)));
        }

        // The host created the planned route's rings with the planned capacity (the client maps what it is given).
        var (lane, _) = LaneAttach.ConnectUnix(control, "rtt://a/shm", null);
        using (lane)
        {
            Assert.Equal(4 << 20, lane.Options.RingCapacity);
        }

        var (plain, _) = LaneAttach.ConnectUnix(control, "rtt://a/unplanned", LaneKind.Shm);
        using (plain)
        {
            Assert.Equal(new LaneOptions().RingCapacity, plain.Options.RingCapacity);
        }

        // A client may still ask for a kind explicitly (SHM on a route planned for UDS).
        using var explicitShm = LaneClient.Attach(control, "rtt://a/uds", LaneKind.Shm);
        Assert.Equal(LaneKind.Shm, explicitShm.Kind);
        Assert.Equal("x"u8.ToArray(), await explicitShm.RequestAsync("x"u8.ToArray()).WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_version_1_request_is_still_answered_with_its_12_byte_reply()
    {
        using var host = new LaneHost();
        await host.SwapAsync(new RouteTable([new RouteEntry(5, "rtt://a/v1", new DriverEndpoint(new EchoDriver()))]));
        var control = _lanes.SocketPath("v1");
        using var listener = new LaneHostListener(host, new LaneOptions(), control);
        using var socket = LaneSockets.ConnectUnix(control);
        var name = Encoding.UTF8.GetBytes("rtt://a/v1");
        var request = new byte[8 + name.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(request, LaneAttach.RequestMagic);
        request[4] = 1;
        request[5] = (byte)LaneKind.Uds;
        BinaryPrimitives.WriteUInt16LittleEndian(request.AsSpan(6), (ushort)name.Length);
        name.CopyTo(request, 8);
        socket.Send(request);
        socket.ReceiveTimeout = 10_000;
        var reply = new byte[16];
        var read = 0;
        while (read < 12)
        {
            read += socket.Receive(reply, read, 12 - read, SocketFlags.None);
        }

        Assert.Equal(LaneAttach.ReplyMagic, BinaryPrimitives.ReadUInt32LittleEndian(reply));
        Assert.Equal(0, BinaryPrimitives.ReadInt32LittleEndian(reply.AsSpan(4)));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(8)));

        // Nothing more after the 12 bytes: the lane's first frame is the next thing on the socket.
        using var lane = new StreamLane(socket, LaneKind.Uds, new LaneOptions());
        Assert.True(lane.TrySend(5, 1, "v1"u8));
        lane.Flush();
        byte[]? answer = null;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (answer is null && DateTime.UtcNow < deadline)
        {
            lane.Poll((in Frames.FrameHeader h, ReadOnlySpan<byte> p) => answer = p.ToArray(), 16);
            await Task.Delay(1);
        }

        Assert.Equal("v1"u8.ToArray(), answer);
    }

    public void Dispose() => _lanes.Dispose();
}
