using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>
/// Work started beside the caller (Beside): run once, by the pool or by the caller if no pool thread took it yet; every
/// reader gets its one result or its exception.
/// </summary>
public sealed class BesideTests
{
    [Fact]
    public async Task Every_reader_gets_the_one_result_and_the_work_runs_once()
    {
        // Given to the pool (which mostly takes it first), and not (the readers race to claim it themselves).
        for (var round = 0; round < 400; round++)
        {
            var runs = 0;
            var beside = new Beside<object>(
                () =>
                {
                    Interlocked.Increment(ref runs);
                    return new object();
                },
                queued: round % 2 == 0);
            using var start = new Barrier(3);
            var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
            {
                start.SignalAndWait();
                return beside.Result();
            })).ToArray();
            var results = (await Task.WhenAll(readers)).Append(beside.Result()).ToList(); // and once more, after all of them
            Assert.All(results, r => Assert.Same(results[0], r));
            Assert.NotNull(results[0]);
            Assert.Equal(1, Volatile.Read(ref runs));
        }
    }

    [Fact]
    public void The_works_exception_reaches_every_reader()
    {
        var beside = Beside.Start<int>(() => throw new InvalidOperationException("no"));
        Assert.Equal("no", Assert.Throws<InvalidOperationException>(() => beside.Result()).Message);
        Assert.Equal("no", Assert.Throws<InvalidOperationException>(() => beside.Result()).Message);
    }

    [Fact]
    public async Task Abandoning_work_under_way_waits_for_it()
    {
        var started = new ManualResetEventSlim();
        var release = new ManualResetEventSlim();
        var busy = Beside.Start(() =>
        {
            started.Set();
            release.Wait();
            return 1;
        });
        Assert.True(started.Wait(10_000), "no pool thread took the work"); // under way on a pool thread
        var abandoned = Task.Run(busy.Abandon);
        await Task.Delay(200);
        Assert.False(abandoned.IsCompleted); // waits for the running work
        release.Set();
        await abandoned.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
