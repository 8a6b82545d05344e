using System.Collections.Immutable;
using System.Net;
using Rtt.Grains.Nodes;
using Rtt.Silo.Endpoints;

namespace Rtt.Silo.Tests.Cluster;

/// <summary>Where a forwarded lane goes (fabric.md, "Lanes across silos"): the node grain's choice and the TCP address parse.</summary>
public sealed class ForwardAddressTests
{
    private static NodeFacts Facts(string host, string? socket, string? tcp) =>
        new("node1", host, "cpu", 2, 1 << 30, ImmutableArray<NumaNodeFacts>.Empty, "S127.0.0.1:1:1", socket, tcp);

    [Fact]
    public void A_uds_lane_on_one_host_goes_to_the_control_socket_and_a_tcp_lane_or_another_host_to_the_tcp_address()
    {
        var both = Facts("h1", "/run/n1/lanes.sock", "10.0.0.2:7100");
        Assert.Equal("/run/n1/lanes.sock", NodeGrain.ForwardAddress("uds", both, "h1"));
        Assert.Equal("tcp://10.0.0.2:7100", NodeGrain.ForwardAddress("tcp", both, "h1")); // the planner said across hosts
        Assert.Equal("tcp://10.0.0.2:7100", NodeGrain.ForwardAddress("uds", both, "h2")); // its socket is on another machine

        var socketOnly = Facts("h1", "/run/n1/lanes.sock", null);
        Assert.Equal("/run/n1/lanes.sock", NodeGrain.ForwardAddress("tcp", socketOnly, "h1")); // same machine after all: UDS
        Assert.Null(NodeGrain.ForwardAddress("uds", socketOnly, "h2")); // another host without a TCP listener: nowhere
        Assert.Null(NodeGrain.ForwardAddress("tcp", Facts("h2", null, null), "h1"));
        Assert.Null(NodeGrain.ForwardAddress("uds", null, "h1")); // never registered
    }

    [Fact]
    public void Tcp_addresses_parse_with_ip_addresses_ipv6_and_host_names_and_bad_ones_are_refused()
    {
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.0.0.2"), 7100), ForwardEndpoint.TcpTarget("tcp://10.0.0.2:7100"));
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 7100), ForwardEndpoint.TcpTarget("tcp://[::1]:7100"));
        Assert.Equal(7100, ForwardEndpoint.TcpTarget("tcp://localhost:7100").Port);
        Assert.Throws<FormatException>(() => ForwardEndpoint.TcpTarget("tcp://10.0.0.2"));
        Assert.Throws<FormatException>(() => ForwardEndpoint.TcpTarget("10.0.0.2:7100"));
        Assert.Throws<FormatException>(() => ForwardEndpoint.TcpTarget("udp://10.0.0.2:7100"));
    }
}
