using System.Text;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Tests;

/// <summary>
/// Endpoints that do I/O run beside the lane worker, never on it: answers come back through the worker, a full
/// endpoint refuses at once, a driver that throws or hangs answers that call with an error frame and the worker goes
/// on; verify probes are answered by the host with the endpoint's readiness. Real lanes, attached over the control socket.
/// </summary>
public sealed class DriverEndpointTests : IDisposable
{
    private const uint Async = 11;
    private const uint Sync = 12;
    private const uint Echo = 13;
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly TestLanes _lanes = new();

    private sealed class TestDriver : IAsyncLaneDriver
    {
        public TaskCompletionSource Gate { get; set; } = CompletedGate();

        public int WorkerCalls;

        public string? NotReady { get; set; }

        public string Name => "test";

        public static TaskCompletionSource CompletedGate()
        {
            var gate = new TaskCompletionSource();
            gate.SetResult();
            return gate;
        }

        public async ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
        {
            if (Thread.CurrentThread.Name == "rtt-agent-lane-host")
            {
                Interlocked.Increment(ref WorkerCalls);
            }

            var text = Encoding.UTF8.GetString(request.Span);
            if (text == "hang")
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            await Gate.Task.WaitAsync(cancellationToken);
            return text switch
            {
                "boom" => throw new InvalidOperationException("driver exploded"),
                "rtt" => throw new RttException(ErrorCodes.CallArgsInvalid, "/x must be a string"),
                _ => Encoding.UTF8.GetBytes("async:" + text),
            };
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class ThrowingDriver : ILaneDriver
    {
        public string Name => "throwing";

        public int MaxResponseLength(int requestLength) => requestLength + 8;

        public int Handle(in FrameHeader request, ReadOnlySpan<byte> payload, Span<byte> response)
        {
            if (payload.SequenceEqual("boom"u8))
            {
                throw new InvalidOperationException("sync driver exploded");
            }

            payload.CopyTo(response);
            return payload.Length;
        }
    }

    private (LaneHost Host, LaneHostListener Listener, string Socket) Start(AsyncDriverEndpoint endpoint)
    {
        var host = new LaneHost();
        host.SwapAsync(new RouteTable([
            new RouteEntry(Async, "async", endpoint),
            new RouteEntry(Sync, "sync", new DriverEndpoint(new ThrowingDriver())),
            new RouteEntry(Echo, "echo", new DriverEndpoint(new EchoDriver())),
        ])).Wait(Guard);
        var socket = _lanes.SocketPath("host" + Guid.NewGuid().ToString("N")[..6]);
        return (host, new LaneHostListener(host, new LaneOptions(), socket), socket);
    }

    [Fact]
    public async Task Async_calls_run_off_the_worker_and_errors_become_error_frames_while_the_worker_goes_on()
    {
        var driver = new TestDriver();
        var endpoint = new AsyncDriverEndpoint(driver, maxInFlight: 1024, callTimeout: TimeSpan.FromMilliseconds(300));
        var (host, listener, socket) = Start(endpoint);
        using (host)
        using (listener)
        using (var client = LaneClient.Attach(socket, "async"))
        using (var sync = LaneClient.Attach(socket, "sync", LaneKind.Uds))
        {
            var answers = await Task.WhenAll(Enumerable.Range(0, 500).Select(i => client.RequestAsync(Encoding.UTF8.GetBytes($"m{i}")))).WaitAsync(Guard);
            for (var i = 0; i < answers.Length; i++)
            {
                Assert.Equal($"async:m{i}", Encoding.UTF8.GetString(answers[i]));
            }

            Assert.Equal(0, driver.WorkerCalls); // never called on the lane worker's thread

            var boom = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync("boom"u8.ToArray()).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.DriverFault, boom.Code);
            Assert.Contains("driver exploded", boom.Message, StringComparison.Ordinal);
            var rtt = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync("rtt"u8.ToArray()).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.CallArgsInvalid, rtt.Code);
            var hang = await Assert.ThrowsAsync<RttException>(() => client.RequestAsync("hang"u8.ToArray()).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.CallTimeout, hang.Code);

            // A synchronous driver that throws on the worker: that request gets an error frame, the worker lives on.
            var syncBoom = await Assert.ThrowsAsync<RttException>(() => sync.RequestAsync("boom"u8.ToArray()).WaitAsync(Guard));
            Assert.Equal(ErrorCodes.DriverFault, syncBoom.Code);
            Assert.Equal("ok", Encoding.UTF8.GetString(await sync.RequestAsync("ok"u8.ToArray()).WaitAsync(Guard)));
            Assert.Equal("async:after", Encoding.UTF8.GetString(await client.RequestAsync("after"u8.ToArray()).WaitAsync(Guard)));
            Assert.Null(host.Fault);
            Assert.Equal(1, host.DriverFaults);
            Assert.Equal(3, endpoint.Failed);
            Assert.Equal(0, endpoint.InFlight);
        }
    }

    [Fact]
    public async Task A_full_endpoint_refuses_at_once_and_other_routes_keep_serving()
    {
        var driver = new TestDriver { Gate = new TaskCompletionSource() };
        var endpoint = new AsyncDriverEndpoint(driver, maxInFlight: 4);
        var (host, listener, socket) = Start(endpoint);
        using (host)
        using (listener)
        using (var client = LaneClient.Attach(socket, "async"))
        using (var echo = LaneClient.Attach(socket, "echo"))
        {
            var held = Enumerable.Range(0, 4).Select(i => client.RequestAsync(Encoding.UTF8.GetBytes($"h{i}"))).ToArray();
            SpinWait.SpinUntil(() => endpoint.InFlight == 4, Guard);
            var refused = await Task.WhenAll(Enumerable.Range(0, 6).Select(async i =>
                await Assert.ThrowsAsync<RttException>(() => client.RequestAsync(Encoding.UTF8.GetBytes($"r{i}")).WaitAsync(Guard)))).WaitAsync(Guard);
            Assert.All(refused, e => Assert.Equal(ErrorCodes.DriverBusy, e.Code));
            Assert.Equal(6, endpoint.Busy);
            Assert.Equal("x", Encoding.UTF8.GetString(await echo.RequestAsync("x"u8.ToArray()).WaitAsync(Guard))); // the worker is free
            Assert.All(held, t => Assert.False(t.IsCompleted));

            driver.Gate.SetResult();
            var answers = await Task.WhenAll(held).WaitAsync(Guard);
            Assert.Equal(["async:h0", "async:h1", "async:h2", "async:h3"], answers.Select(a => Encoding.UTF8.GetString(a)));
            Assert.Equal(10, client.Counters.Received); // 4 answers and 6 refusals reached the client
        }
    }

    [Fact]
    public async Task A_swap_waits_for_async_calls_in_flight_and_probes_report_readiness()
    {
        var driver = new TestDriver { Gate = new TaskCompletionSource() };
        var endpoint = new AsyncDriverEndpoint(driver);
        var (host, listener, socket) = Start(endpoint);
        using (host)
        using (listener)
        using (var client = LaneClient.Attach(socket, "async"))
        {
            var held = client.RequestAsync("inflight"u8.ToArray());
            SpinWait.SpinUntil(() => endpoint.InFlight == 1, Guard);
            var swap = host.SwapAsync(new RouteTable([new RouteEntry(Async, "async", new DriverEndpoint(new EchoDriver()))]));
            await Task.Delay(200);
            Assert.False(swap.IsCompleted); // the replaced endpoint still has a call inside it
            driver.Gate.SetResult();
            Assert.Equal("async:inflight", Encoding.UTF8.GetString(await held.WaitAsync(Guard)));
            await swap.WaitAsync(Guard);
            Assert.Equal("now echo", Encoding.UTF8.GetString(await client.RequestAsync("now echo"u8.ToArray()).WaitAsync(Guard)));

            // Probes: the host answers them itself, with the endpoint's readiness; the endpoint never sees them.
            var notReady = new TestDriver { NotReady = "the MCP session is not initialized" };
            var broken = new UnavailableDriver("broken", ErrorCodes.EndpointUnavailable, "the service process exited at start with code 3");
            await host.SwapAsync(new RouteTable([
                new RouteEntry(Async, "async", new AsyncDriverEndpoint(notReady)),
                new RouteEntry(Sync, "sync", new DriverEndpoint(broken)),
                new RouteEntry(Echo, "echo", new AsyncDriverEndpoint(new TestDriver())),
            ])).WaitAsync(Guard);
            using var probe = LaneAttach.ConnectUnix(socket, "echo").Lane;
            var answers = new Dictionary<uint, (FrameFlags Flags, string Text)>();
            foreach (var route in new[] { Async, Sync, Echo })
            {
                Assert.True(probe.Send(route, route, "probe"u8, FrameFlags.Probe));
            }

            probe.Flush();
            var deadline = DateTime.UtcNow + Guard;
            while (answers.Count < 3 && DateTime.UtcNow < deadline)
            {
                probe.Poll((in FrameHeader h, ReadOnlySpan<byte> p) => answers[h.FrameId] = (h.Flags, Encoding.UTF8.GetString(p)));
                probe.WaitForData(TimeSpan.FromMilliseconds(5));
            }

            Assert.True((answers[Async].Flags & FrameFlags.Error) != 0);
            Assert.Contains("not initialized", answers[Async].Text, StringComparison.Ordinal);
            Assert.StartsWith(ErrorCodes.EndpointUnavailable, answers[Sync].Text, StringComparison.Ordinal);
            Assert.Contains("exited at start", answers[Sync].Text, StringComparison.Ordinal);
            Assert.Equal(FrameFlags.Response | FrameFlags.Probe, answers[Echo].Flags & (FrameFlags.Response | FrameFlags.Probe | FrameFlags.Error));
            Assert.Equal("probe", answers[Echo].Text);
        }
    }

    [Fact]
    public async Task A_client_callback_that_throws_is_reported_and_the_receive_loop_goes_on()
    {
        var (host, listener, socket) = Start(new AsyncDriverEndpoint(new TestDriver()));
        using (host)
        using (listener)
        {
            var seen = 0;
            var faults = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
            FrameHandler onFrame = (in FrameHeader h, ReadOnlySpan<byte> p) =>
            {
                if (Interlocked.Increment(ref seen) == 1)
                {
                    throw new InvalidOperationException("callback bug");
                }
            };
            using var client = LaneClient.Attach(socket, "echo", onFrame: onFrame);
            client.Faulted += faults.Enqueue;
            for (var i = 0; i < 5; i++)
            {
                Assert.True(client.Send(new byte[1])); // fire and forget: the answers reach the callback
            }

            await Task.Yield();

            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref seen) >= 5, Guard), $"the receive loop stopped after {seen} frame(s)");
            Assert.Equal(1, client.Faults);
            Assert.Equal("callback bug", Assert.Single(faults).Message);
        }
    }

    public void Dispose() => _lanes.Dispose();
}
