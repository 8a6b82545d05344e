using System.Collections.Concurrent;
using System.Text;
using Rtt.Client.Lanes;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Fabric.Tests;

/// <summary>
/// Interim frames (fabric.md): a driver's messages during a call reach a caller that takes them, in order and before the
/// final answer; the caller's reply reaches the driver inside the same call; a caller that does not take them (an old
/// peer, rtt call) sees only its answer, and the driver is told the channel is closed. Real lanes over the control socket.
/// </summary>
public sealed class InterimFrameTests : IDisposable
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly TestLanes _lanes = new();

    /// <summary>Sends "step 1..3", then asks "question?" and answers with the caller's reply (or "closed" without a channel).</summary>
    private sealed class TalkingDriver : IInterimLaneDriver
    {
        public string Name => "talking";

        public string? NotReady => null;

        public int WorkerCalls;

        public ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("the lane host calls the interim overload");

        public async ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, ICallChannel channel, CancellationToken cancellationToken)
        {
            if (Thread.CurrentThread.Name == "rtt-agent-lane-host")
            {
                Interlocked.Increment(ref WorkerCalls);
            }

            if (!channel.Open)
            {
                Assert.False(channel.Send("ignored"u8));
                return "closed"u8.ToArray();
            }

            var reply = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            channel.OnReply = r => reply.TrySetResult(Encoding.UTF8.GetString(r.Span));
            for (var i = 1; i <= 3; i++)
            {
                Assert.True(channel.Send(Encoding.UTF8.GetBytes($"step {i}")));
            }

            Assert.True(channel.Send("question?"u8));
            var answer = await reply.Task.WaitAsync(cancellationToken);
            return Encoding.UTF8.GetBytes($"{Encoding.UTF8.GetString(request.Span)} -> {answer}");
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_caller_taking_interim_frames_gets_them_in_order_before_the_answer_and_its_reply_reaches_the_driver()
    {
        var driver = new TalkingDriver();
        using var host = new LaneHost();
        await host.SwapAsync(new RouteTable([new RouteEntry(21, "talk", new AsyncDriverEndpoint(driver))])).WaitAsync(Guard);
        var socket = _lanes.SocketPath("interim" + Guid.NewGuid().ToString("N")[..6]);
        using var listener = new LaneHostListener(host, new LaneOptions(), socket);
        foreach (var kind in new[] { LaneKind.Shm, LaneKind.Uds })
        {
            using var client = LaneClient.Attach(socket, "talk", kind);
            var seen = new ConcurrentQueue<string>();
            var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            {
                var mine = new List<string>();
                return client.RequestAsync(Encoding.UTF8.GetBytes($"call {i}"), Guard, (frameId, message) =>
                {
                    var text = Encoding.UTF8.GetString(message);
                    lock (mine)
                    {
                        mine.Add(text);
                    }

                    seen.Enqueue($"{i}:{text}");
                    if (text == "question?")
                    {
                        Assert.True(client.Reply(frameId, Encoding.UTF8.GetBytes($"yes {i}")));
                    }
                }).ContinueWith(t =>
                {
                    lock (mine)
                    {
                        return (Answer: Encoding.UTF8.GetString(t.Result), Interims: string.Join(",", mine));
                    }
                }, TaskScheduler.Default);
            })).WaitAsync(Guard);
            for (var i = 0; i < answers.Length; i++)
            {
                Assert.Equal($"call {i} -> yes {i}", answers[i].Answer);
                Assert.Equal("step 1,step 2,step 3,question?", answers[i].Interims); // all of them, in order, before the answer
            }

            // A request without AcceptsInterim (an old caller, rtt call): the driver's channel is closed, only the answer comes.
            Assert.Equal("closed", Encoding.UTF8.GetString(await client.RequestAsync("plain"u8.ToArray(), Guard).WaitAsync(Guard)));
        }

        Assert.Equal(0, driver.WorkerCalls);
        Assert.Equal(2 * 8 * 4, host.InterimSent);
        Assert.Equal(0, host.InterimDropped);
    }

    public void Dispose() => _lanes.Dispose();
}
