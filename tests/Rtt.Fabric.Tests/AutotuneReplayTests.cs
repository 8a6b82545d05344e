using Rtt.Client.Lanes;
using Rtt.Core.Autotune;
using Rtt.Fabric.Autotune;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;
using Trace = Rtt.Core.Autotune.Trace;

namespace Rtt.Fabric.Tests;

/// <summary>
/// Autotune's traces through real lanes: traffic recorded by a lane host's flight recorder and read over its control
/// socket (the path of rtt autotune record and rtt tap) replays through a replay host with the same frame count and the
/// same request sizes; synthetic traces replay at their recorded timing and at full speed on SHM, UDS and TCP.
/// </summary>
public sealed class AutotuneReplayTests : IDisposable
{
    private readonly TestLanes _lanes = new();

    [Fact]
    public Task A_recorded_flight_window_replays_with_the_same_frames_and_sizes() => Within(RecordAndReplay);

    /// <summary>Runs a test body on the pool, failing (naming the last step reached) instead of hanging the run.</summary>
    private async Task Within(Func<Task> body)
    {
        var run = Task.Run(body);
        if (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(90))) != run)
        {
            Assert.Fail($"hung after step \"{_step}\"");
        }

        await run;
    }

    private volatile string _step = "start";

    private async Task RecordAndReplay()
    {
        // Record: real requests of three sizes through a lane host with its flight recorder on.
        _step = "host";
        using var telemetry = new LaneTelemetry(flightCapacity: 4096);
        using var host = new LaneHost(telemetry: telemetry);
        await host.SwapAsync(new RouteTable([new RouteEntry(7, "rtt://test/echo", new DriverEndpoint(new EchoDriver()))]));
        var socket = _lanes.SocketPath("rec");
        using (var listener = new LaneHostListener(host, new LaneOptions(), socket))
        using (var client = LaneClient.Attach(socket, "rtt://test/echo"))
        {
            _step = "requests";
            int[] sizes = [16, 300, 4096];
            for (var i = 0; i < 150; i++)
            {
                Assert.Equal(sizes[i % 3], (await client.RequestAsync(new byte[sizes[i % 3]])).Length);
            }

            _step = "flight";
            using var tap = new MemoryStream();
            TelemetryProtocol.Flight(socket, TimeSpan.FromSeconds(60), tap);
            tap.Position = 0;
            var trace = TraceFile.Read(tap, "tap");
            Assert.Equal(150, trace.Frames.Count);
            Assert.Equal(new SortedDictionary<int, long> { [16] = 50, [300] = 50, [4096] = 50 }, trace.SizeHistogram());
            Assert.Equal(["rtt://test/echo"], trace.Routes);

            _step = "replay";
            // Replay it through the real lane host and listener, set up by a settings record.
            using var replay = new ReplayHost(TuneSettings.Defaults with { RingSize = 512 }, _lanes.SocketPath("rep"), trace.Routes, 4096, tcp: false);
            var run = TraceReplayer.Run(trace, _lanes.SocketPath("rep"), null, LaneKind.Shm, fullSpeed: false);
            Assert.Equal(150, run.Frames);
            Assert.Equal(trace.SizeHistogram(), run.AnsweredSizes);
            Assert.Equal(trace.SizeHistogram(), replay.ReceivedSizes());
            Assert.Equal(150, run.Latency.TotalCount);
        }
    }

    [Theory]
    [InlineData(LaneKind.Shm)]
    [InlineData(LaneKind.Uds)]
    [InlineData(LaneKind.Tcp)]
    public Task A_bursty_synthetic_trace_replays_at_its_timing_and_at_full_speed(LaneKind kind) => Within(() =>
    {
        var trace = SyntheticTrace.Generate(SyntheticTraceSpec.Bursty(0.3, 10_000) with { Routes = 2 });
        var socket = _lanes.SocketPath("syn" + kind);
        using var replay = new ReplayHost(TuneSettings.Defaults, socket, trace.Routes, trace.Frames.Max(f => f.AnswerBytes), tcp: kind == LaneKind.Tcp);
        ReplayRun Run(bool fullSpeed)
        {
            _step = fullSpeed ? "full" : "timed";
            try
            {
                return TraceReplayer.Run(trace, socket, replay.TcpEndPoint, kind, fullSpeed);
            }
            catch (Rtt.Core.Errors.RttException ex)
            {
                throw new Xunit.Sdk.XunitException($"{ex.Message}; {replay.Describe()}");
            }
        }

        var timed = Run(false);
        var full = Run(true);
        Assert.Equal(trace.Frames.Count, timed.Frames);
        Assert.Equal(trace.Frames.Count, full.Frames);
        Assert.Equal(trace.SizeHistogram(), timed.AnsweredSizes);
        Assert.True(timed.Elapsed >= TimeSpan.FromMilliseconds(trace.DurationNs / 1e6), $"the timed replay took {timed.Elapsed}, the trace spans {trace.DurationNs / 1e6} ms");
        Assert.Equal(trace.SizeHistogram(), full.AnsweredSizes);
        var received = replay.ReceivedSizes();
        Assert.Equal(trace.SizeHistogram().ToDictionary(s => s.Key, s => s.Value * 2), received);
        return Task.CompletedTask;
    });

    public void Dispose() => _lanes.Dispose();
}
