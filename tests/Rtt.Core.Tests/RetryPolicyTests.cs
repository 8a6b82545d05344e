using Microsoft.Extensions.Logging;
using Rtt.Reconciling.Resilience;

namespace Rtt.Core.Tests;

/// <summary>The one retry policy (Polly underneath): what it retries, how often, and that giving up is logged.</summary>
public sealed class RetryPolicyTests
{
    private static readonly RetryOptions Fast = new() { Attempts = 4, Delay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(5) };

    [Fact]
    public async Task A_result_that_is_not_done_is_asked_again_and_when_the_attempts_run_out_the_give_up_is_logged()
    {
        var log = new ListLogger();
        var policy = new RetryPolicy("Retry:ServeLanes", Fast with { Backoff = RetryBackoff.Constant }, _ => false, log);
        var calls = 0;
        var served = await policy.ExecuteAsync("node n1 serving its lanes", _ => { calls++; return ValueTask.FromResult(false); }, again: done => !done);
        Assert.False(served); // the last result goes back to the caller, as before
        Assert.Equal(4, calls);
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal("Gave up on node n1 serving its lanes after 4 attempt(s) (Retry:ServeLanes): the last attempt was not done either", warning.Message);
        Assert.Equal(3, log.Entries.Count(e => e.Level == LogLevel.Debug)); // one line per retry

        calls = 0;
        var second = await policy.ExecuteAsync("again", _ => ValueTask.FromResult(++calls >= 2), again: done => !done);
        Assert.True(second);
        Assert.Equal(2, calls);
        Assert.Single(log.Entries, e => e.Level == LogLevel.Warning); // done in time: no new warning
    }

    [Fact]
    public async Task Transient_failures_are_retried_others_go_straight_through_and_the_last_failure_is_thrown()
    {
        var log = new ListLogger();
        var policy = new RetryPolicy("Retry:Wal", Fast, ex => ex is TimeoutException, log);

        var calls = 0;
        Assert.Equal(7, await policy.ExecuteAsync("a WAL append", _ => ++calls < 3 ? throw new TimeoutException("slow") : ValueTask.FromResult(7)));
        Assert.Equal(3, calls);

        calls = 0;
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => policy.ExecuteAsync<int>("a WAL append", _ => { calls++; throw new InvalidOperationException("bad entry"); }));
        Assert.Equal(1, calls); // not transient: no retry, and not a give-up
        Assert.Equal("bad entry", refused.Message);
        Assert.DoesNotContain(log.Entries, e => e.Level == LogLevel.Warning);

        calls = 0;
        var last = await Assert.ThrowsAsync<TimeoutException>(() => policy.ExecuteAsync("reading the WAL root", async _ => { await Task.Yield(); throw new TimeoutException($"slow {++calls}"); }));
        Assert.Equal("slow 4", last.Message);
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal("Gave up on reading the WAL root after 4 attempt(s) (Retry:Wal): slow 4", warning.Message);
        Assert.Same(last, warning.Exception);
    }

    [Fact]
    public async Task The_caller_s_scheduler_is_kept_across_retries_as_a_grain_turn_needs()
    {
        var policy = new RetryPolicy("Retry:Wal", Fast, ex => ex is TimeoutException, new ListLogger());
        var turn = new ConcurrentExclusiveSchedulerPair().ExclusiveScheduler; // stands in for an activation's scheduler
        var seen = new List<bool>();
        await Task.Factory.StartNew(async () =>
        {
            var calls = 0;
            await policy.ExecuteAsync("a WAL append", async _ =>
            {
                seen.Add(TaskScheduler.Current == turn);
                await Task.Delay(1);
                return ++calls < 3 ? throw new TimeoutException("slow") : calls;
            });
            seen.Add(TaskScheduler.Current == turn); // after the pipeline: still on the caller's scheduler
        }, CancellationToken.None, TaskCreationOptions.None, turn).Unwrap();
        Assert.Equal([true, true, true, true], seen);
    }

    [Fact]
    public async Task Waits_grow_linearly_up_to_the_cap_and_unusable_settings_are_refused()
    {
        var policy = new RetryPolicy("Retry:Commit", new RetryOptions { Attempts = 4, Delay = TimeSpan.FromMilliseconds(40), MaxDelay = TimeSpan.FromMilliseconds(60) }, _ => true, new ListLogger());
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAsync<IOException>(() => policy.ExecuteAsync("x", _ => throw new IOException("lost")));
        Assert.True(clock.ElapsedMilliseconds >= 40 + 60 + 60, $"{clock.ElapsedMilliseconds} ms"); // 40, 80 → 60, 120 → 60

        Assert.Null(new RttRetryOptions().Problem());
        Assert.Equal("Retry:Wal: 0 attempt(s), delay 00:00:00.1000000, max delay 00:00:01: give at least 1 attempt and 0 <= Delay <= MaxDelay <= 1 day",
            (new RttRetryOptions { Wal = new RetryOptions { Attempts = 0 } }).Problem());
        Assert.Throws<ArgumentException>(() => new RetryPolicy("Retry:Commit", new RetryOptions { Delay = TimeSpan.FromSeconds(2) }, _ => true, new ListLogger()));
    }
}
