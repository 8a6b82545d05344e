using Rtt.Core.Json;

namespace Rtt.Core.Tests;

/// <summary>Group commit keeps going whatever a batch write does: every item completes once, the next batch is written.</summary>
public sealed class GroupCommitTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_batch_the_store_answers_wrongly_fails_its_items_and_the_next_batch_is_still_written()
    {
        using var firstWriting = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var batches = new List<int[]>();
        var commit = new GroupCommit<int, int>(items =>
        {
            lock (batches)
            {
                batches.Add([.. items]);
            }

            if (batches.Count == 1)
            {
                firstWriting.Set();
                release.Wait(Guard); // hold the first write so the next two items queue up behind it
                return [.. items.Select(i => i * 10)];
            }

            return batches.Count == 2 ? [items[0] * 10] : [.. items.Select(i => i * 10)]; // the second batch: one result for two items
        });

        var first = commit.Enqueue(1);
        Assert.True(firstWriting.Wait(Guard));
        var second = commit.Enqueue(2);
        var third = commit.Enqueue(3);
        release.Set();
        Assert.Equal(10, await first.WaitAsync(Guard));
        var failed = await Assert.ThrowsAsync<InvalidOperationException>(() => second.WaitAsync(Guard));
        Assert.Contains("returned 1 result", failed.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => third.WaitAsync(Guard));

        // Before the fix, the failed batch left the store flushing forever: this write never completed.
        Assert.Equal(40, await commit.Enqueue(4).WaitAsync(Guard));
        Assert.Equal([[1], [2, 3], [4]], batches);
    }

    [Fact]
    public async Task A_write_that_throws_fails_its_batch_only()
    {
        var calls = 0;
        var commit = new GroupCommit<string, int>(items => ++calls == 1 ? throw new IOException("disk full") : [.. items.Select(i => i.Length)]);
        var io = await Assert.ThrowsAsync<IOException>(() => commit.Enqueue("a").WaitAsync(Guard));
        Assert.Equal("disk full", io.Message);
        Assert.Equal(3, await commit.Enqueue("abc").WaitAsync(Guard));
    }
}
