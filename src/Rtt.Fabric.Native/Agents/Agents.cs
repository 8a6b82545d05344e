using System.Diagnostics;
using System.Runtime.CompilerServices;
using Rtt.Core.Errors;
using Rtt.Fabric.Interop;
using Rtt.Fabric.Lanes;

namespace Rtt.Fabric.Agents;

/// <summary>A unit of lane work run by an <see cref="AgentRunner"/> on its own thread, never in a grain turn.</summary>
public interface IAgent
{
    string Name { get; }

    /// <summary>Does what work there is (poll a lane, move frames) and returns how much; 0 lets the idle strategy back off.</summary>
    int DoWork();

    /// <summary>Called on the agent's thread after the last DoWork.</summary>
    void OnClose()
    {
    }
}

/// <summary>What a runner does after a DoWork: nothing when there was work, back off when there was none.</summary>
public interface IIdleStrategy
{
    void Idle(int workCount);
}

/// <summary>Never gives the core up: lowest latency, one core busy.</summary>
public sealed class BusySpinIdleStrategy : IIdleStrategy
{
    public void Idle(int workCount)
    {
        if (workCount == 0)
        {
            Thread.SpinWait(1);
        }
    }
}

/// <summary>
/// Spins, then yields, then parks in a blocking wait the lane's writer wakes (futex for SHM, poll for
/// sockets), so an idle lane costs no CPU. State is per runner thread.
/// </summary>
public sealed class BackoffIdleStrategy(int spins, int yields, Action<TimeSpan> park, TimeSpan parkTimeout) : IIdleStrategy
{
    private int _idleRounds;
    private IdleSpin _spin;

    /// <summary>
    /// Backs off onto a lane's own blocking wait. A socket poll is a syscall (about a microsecond), so stream
    /// lanes spin a few dozen polls at most: on a busy machine a thread that blocks is woken sooner by the
    /// scheduler than one that burnt its time slice spinning.
    /// </summary>
    public static BackoffIdleStrategy ForLane(IFrameLane lane) =>
        new(lane.Kind == LaneKind.Shm ? lane.Options.SpinCount : Math.Min(lane.Options.SpinCount, 30), lane.Options.YieldCount, lane.WaitForData, TimeSpan.FromMilliseconds(50));

    /// <summary>Backs off onto a sleep (for agents with nothing to block on).</summary>
    public static BackoffIdleStrategy Sleeping(int spins = 200, int yields = 20) =>
        new(spins, yields, t => Thread.Sleep(t), TimeSpan.FromMilliseconds(1));

    public void Idle(int workCount)
    {
        if (workCount > 0)
        {
            _idleRounds = 0;
            return;
        }

        var round = _idleRounds++;
        if (round < spins)
        {
            _spin.Round(round, spins);
        }
        else if (round < spins + yields)
        {
            Thread.Yield();
        }
        else
        {
            park(parkTimeout);
        }
    }
}

/// <summary>
/// The spin stage of an idle strategy, one per runner thread. The first half of the stage polls again at once (an SHM
/// poll is a few loads; a pause here would add to every wake-up's latency), the second half pauses between polls, and
/// every <see cref="YieldEvery"/>th round gives the core to whatever else is runnable on it. A spin stage can last a
/// millisecond; a thread woken onto this core meanwhile (the service a worker waits for, the client reading its answer,
/// a thread-pool continuation) would otherwise wait until the scheduler takes the core from the spinner at its next
/// tick, 4 ms with a 250 Hz tick (<c>rtt bench calls</c>, 2-core machine: a process endpoint's call p99 3.8 ms without
/// the yields). A yield with nothing else runnable returns at once (a syscall). A yield that came back late handed the
/// core to a thread that kept it for a time slice (a busy process, not a short hand-off): yielding to it again would
/// give it the spinner's share of the core, so the stage stops yielding for <see cref="QuietMs"/> ms.
/// </summary>
public struct IdleSpin
{
    /// <summary>A yield every this many spin rounds (about 20 µs of polling on the build machine).</summary>
    public const int YieldEvery = 1024;

    /// <summary>A yield that took longer than this gave the core away for a time slice.</summary>
    public const double LongYieldUs = 1000;

    /// <summary>How long the stage spins without yielding after a long yield.</summary>
    public const int QuietMs = 50;

    private static readonly long LongYieldTicks = (long)(Stopwatch.Frequency * LongYieldUs / 1e6);
    private static readonly long QuietTicks = Stopwatch.Frequency * QuietMs / 1000;
    private long _quietUntil;

    /// <summary>Yields so far.</summary>
    public long Yields { get; private set; }

    /// <summary>Yields that came back late so far (each began a quiet spell).</summary>
    public long LongYields { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Round(int round, int spins)
    {
        if ((round & (YieldEvery - 1)) == YieldEvery - 1)
        {
            Yield();
        }
        else if (round >= spins / 2)
        {
            Thread.SpinWait(1);
        }
    }

    /// <summary>True while the stage does not yield (until <see cref="QuietMs"/> after a long yield), at <paramref name="now"/> (Stopwatch ticks).</summary>
    public readonly bool QuietAt(long now) => now < _quietUntil;

    /// <summary>Takes note of a yield that began at <paramref name="before"/> and came back at <paramref name="after"/> (Stopwatch ticks).</summary>
    internal void Yielded(long before, long after)
    {
        Yields++;
        if (after - before > LongYieldTicks)
        {
            LongYields++;
            _quietUntil = after + QuietTicks;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Yield()
    {
        var before = Stopwatch.GetTimestamp();
        if (QuietAt(before))
        {
            return;
        }

        Thread.Yield();
        Yielded(before, Stopwatch.GetTimestamp());
    }
}

/// <summary>Owns one dedicated thread that runs an agent's DoWork loop with an idle strategy, optionally pinned to CPUs.</summary>
public sealed class AgentRunner : IDisposable
{
    private readonly IAgent _agent;
    private readonly IIdleStrategy _idle;
    private readonly Thread _thread;
    private readonly IReadOnlyList<int>? _cpus;
    private readonly Action? _wake;
    private volatile bool _running = true;

    public AgentRunner(IAgent agent, IIdleStrategy idle, IReadOnlyList<int>? cpus = null)
        : this(agent, idle, cpus, null)
    {
    }

    /// <param name="wake">Wakes the agent's thread from its idle strategy's blocking wait (called by <see cref="Dispose"/>).</param>
    /// <param name="onFault">Told of every fault (on the agent's thread; must not block); the loop goes on after it.</param>
    public AgentRunner(IAgent agent, IIdleStrategy idle, IReadOnlyList<int>? cpus, Action? wake, Action<Exception>? onFault = null)
    {
        _onFault = onFault;
        _agent = agent;
        _idle = idle;
        _wake = wake;
        _cpus = cpus is { Count: > 0 } ? cpus : null;
        _thread = new Thread(Run) { IsBackground = true, Name = $"rtt-agent-{agent.Name}" };
        _thread.Start();
    }

    private readonly Action<Exception>? _onFault;
    private long _faults;

    /// <summary>The last fault a DoWork threw (the loop went on after it), or null.</summary>
    public Exception? Fault { get; private set; }

    /// <summary>Faults caught so far: each was reported and the loop went on (Aeron's duty cycle).</summary>
    public long Faults => Interlocked.Read(ref _faults);

    public bool IsRunning => _thread.IsAlive;

    /// <summary>True when called from inside the agent (a handler or an inline continuation).</summary>
    public bool IsCurrentThread => Thread.CurrentThread == _thread;

    private void Run()
    {
        try
        {
            if (_cpus is not null)
            {
                PinCurrentThread(_cpus);
            }

            while (_running)
            {
                int work;
                try
                {
                    work = _agent.DoWork();
                }
                catch (Exception ex)
                {
                    // Catch, report, go on: one bad frame or a bug in one step never ends the agent. A fault that
                    // repeats at once backs off so the report is not a hot loop.
                    Fault = ex;
                    var n = Interlocked.Increment(ref _faults);
                    try
                    {
                        _onFault?.Invoke(ex);
                    }
                    catch (Exception)
                    {
                        // a reporter that fails must not end the agent either
                    }

                    if (n % 100 == 0)
                    {
                        Thread.Sleep(1);
                    }

                    work = 1;
                }

                _idle.Idle(work);
            }
        }
        catch (Exception ex)
        {
            Fault = ex; // pinning failed: the agent never ran; its owner reports it
        }
        finally
        {
            _agent.OnClose();
        }
    }

    /// <summary>sched_setaffinity for the calling thread.</summary>
    public static unsafe void PinCurrentThread(IReadOnlyList<int> cpus)
    {
        Span<ulong> mask = stackalloc ulong[16]; // 1024 CPUs
        foreach (var cpu in cpus)
        {
            if (cpu < 0 || cpu >= 1024)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"CPU {cpu} is out of range", "Lanes:Cpus", "list CPUs from 0 to the machine's count - 1");
            }

            mask[cpu / 64] |= 1UL << (cpu % 64);
        }

        fixed (ulong* p = mask)
        {
            if (Libc.SchedSetAffinity(0, (nuint)(mask.Length * sizeof(ulong)), p) != 0)
            {
                throw new RttException(ErrorCodes.LaneConfigInvalid, $"cannot pin to CPUs {string.Join(',', cpus)}", "Lanes:Cpus", "list CPUs this process may run on (see taskset -p)");
            }
        }
    }

    /// <summary>Stops the loop and waits for the thread to leave the agent.</summary>
    public void Dispose()
    {
        _running = false;
        _wake?.Invoke();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
    }
}
