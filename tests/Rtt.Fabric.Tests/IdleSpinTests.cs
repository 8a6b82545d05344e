using System.Diagnostics;
using Rtt.Fabric.Agents;
using Xunit;

namespace Rtt.Fabric.Tests;

/// <summary>The spin stage of the idle strategies: it gives the core away every 1,024 rounds unless a yield came back late.</summary>
public sealed class IdleSpinTests
{
    [Fact]
    public void A_spin_stage_yields_every_1024_rounds()
    {
        var spin = default(IdleSpin);
        for (var round = 0; round < 4 * IdleSpin.YieldEvery; round++)
        {
            spin.Round(round, 4 * IdleSpin.YieldEvery);
        }

        // A yield that came back late (this machine busy) silences the rest of the stage; otherwise all four ran.
        Assert.InRange(spin.Yields, 1, 4);
        Assert.True(spin.LongYields > 0 || spin.Yields == 4, $"{spin.Yields} yields, {spin.LongYields} long");
    }

    [Fact]
    public void A_yield_that_came_back_late_stops_the_yields_for_the_quiet_spell_only()
    {
        var spin = default(IdleSpin);
        var t = 1_000_000_000L;
        Assert.False(spin.QuietAt(t));

        spin.Yielded(t, t + Ticks(IdleSpin.LongYieldUs / 2)); // a hand-off: the other thread ran briefly
        Assert.False(spin.QuietAt(t + Ticks(IdleSpin.LongYieldUs / 2)));
        Assert.Equal(0, spin.LongYields);

        var back = t + Ticks(4_000); // the core was given away for a time slice
        spin.Yielded(t, back);
        Assert.Equal(1, spin.LongYields);
        Assert.Equal(2, spin.Yields);
        Assert.True(spin.QuietAt(back));
        Assert.True(spin.QuietAt(back + Ticks((IdleSpin.QuietMs * 1000) - 1)));
        Assert.False(spin.QuietAt(back + Ticks((IdleSpin.QuietMs * 1000) + 1)));

        // In the quiet spell the stage does not yield at all.
        var quiet = default(IdleSpin);
        quiet.Yielded(Stopwatch.GetTimestamp() - Ticks(5_000), Stopwatch.GetTimestamp());
        for (var round = 0; round < 4 * IdleSpin.YieldEvery; round++)
        {
            quiet.Round(round, 4 * IdleSpin.YieldEvery);
        }

        Assert.Equal(1, quiet.Yields);
    }

    [Fact]
    public void A_thread_woken_onto_the_spinning_core_runs_before_the_spin_stage_ends()
    {
        // Both threads on one CPU: the woken one gets it from a yield of the spin stage, not only when the stage is over
        // (without the yields it ran after the last round in every try here). The round it saw is the proof, not a time.
        // A try where a yield came back late (another process took the core for a time slice, so the stage went quiet as
        // designed) proves nothing either way and is not counted; on a busy machine a few tries are made.
        var counted = 0;
        for (var attempt = 0; attempt < 10 && counted < 3; attempt++)
        {
            var (seenAtRound, longYields) = WakeDuringSpin(50 * IdleSpin.YieldEvery);
            if (longYields == 0)
            {
                counted++;
                Assert.InRange(seenAtRound, 0, (50 * IdleSpin.YieldEvery) - 1);
            }
        }

        Assert.True(counted > 0, "every try had a yield that came back late: the machine is too busy to tell");
    }

    private static (int SeenAtRound, long LongYields) WakeDuringSpin(int spins)
    {
        var cpu = new[] { 0 };
        var round = 0;
        var seenAtRound = -1;
        long longYields = 0;
        using var wake = new ManualResetEventSlim();
        using var ready = new ManualResetEventSlim();
        var other = new Thread(() =>
        {
            AgentRunner.PinCurrentThread(cpu);
            ready.Set();
            wake.Wait();
            Volatile.Write(ref seenAtRound, Volatile.Read(ref round));
        });
        other.Start();
        var spinner = new Thread(() =>
        {
            AgentRunner.PinCurrentThread(cpu);
            ready.Wait();
            Thread.Sleep(20); // the other thread is asleep in Wait now
            var spin = default(IdleSpin);
            wake.Set();
            for (var r = 0; r < spins && Volatile.Read(ref seenAtRound) < 0; r++)
            {
                Volatile.Write(ref round, r);
                spin.Round(r, spins);
            }

            Volatile.Write(ref round, spins); // the stage is over: a thread that runs only now sees this
            longYields = spin.LongYields;
        });
        spinner.Start();
        Assert.True(spinner.Join(TimeSpan.FromSeconds(30)));
        Assert.True(other.Join(TimeSpan.FromSeconds(30)));
        return (seenAtRound, longYields);
    }

    private static long Ticks(double microseconds) => (long)(Stopwatch.Frequency * microseconds / 1e6);
}
