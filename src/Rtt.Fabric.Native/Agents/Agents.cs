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
            // Poll again at once for the first half (an SHM poll is a few loads; a pause here would add to
            // every wake-up's latency), then with a pause between polls.
            if (round >= spins / 2)
            {
                Thread.SpinWait(1);
            }
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
