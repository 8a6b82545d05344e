using Rtt.Fabric.Agents;

namespace Rtt.Fabric.Tests;

public sealed class AgentTests
{
    private sealed class Probe : IAgent
    {
        public string Name => "probe";

        public string? AllowedCpus;
        public int Calls;
        public bool Closed;

        public int DoWork()
        {
            if (Interlocked.Increment(ref Calls) == 1)
            {
                AllowedCpus = File.ReadAllLines("/proc/thread-self/status").Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':')[1].Trim();
            }

            return 0;
        }

        public void OnClose() => Closed = true;
    }

    [Fact]
    public void A_runner_pins_its_thread_runs_the_agent_and_stops_without_leaving_the_thread_behind()
    {
        // The first CPU this process may use (a container may not offer CPU 0).
        var allowed = File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':')[1].Trim();
        var cpu = int.Parse(allowed.Split(',', '-')[0], System.Globalization.CultureInfo.InvariantCulture);
        var probe = new Probe();
        var runner = new AgentRunner(probe, BackoffIdleStrategy.Sleeping(), cpus: [cpu]);
        SpinWait.SpinUntil(() => Volatile.Read(ref probe.Calls) > 3, TimeSpan.FromSeconds(10));
        runner.Dispose();

        Assert.Equal(cpu.ToString(System.Globalization.CultureInfo.InvariantCulture), probe.AllowedCpus);
        Assert.True(probe.Closed);
        Assert.False(runner.IsRunning);
        Assert.Null(runner.Fault);
    }

    private sealed class Faulty : IAgent
    {
        public string Name => "faulty";

        public int Calls;

        public int DoWork()
        {
            var n = Interlocked.Increment(ref Calls);
            return n is 2 or 3 ? throw new InvalidOperationException($"fault {n}") : 1;
        }
    }

    [Fact]
    public void A_fault_in_DoWork_is_reported_and_the_agent_goes_on()
    {
        var agent = new Faulty();
        var reported = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var runner = new AgentRunner(agent, BackoffIdleStrategy.Sleeping(), null, null, ex => reported.Enqueue(ex.Message));
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref agent.Calls) > 50, TimeSpan.FromSeconds(10)), "the agent stopped at its first fault");
        Assert.True(runner.IsRunning);
        Assert.Equal(2, runner.Faults);
        Assert.Equal(["fault 2", "fault 3"], reported);
        Assert.Equal("fault 3", runner.Fault?.Message);
    }

    [Fact]
    public void A_cpu_outside_the_machine_is_a_configuration_error()
    {
        var ex = Assert.Throws<Core.Errors.RttException>(() => AgentRunner.PinCurrentThread([4096]));
        Assert.Equal(Core.Errors.ErrorCodes.LaneConfigInvalid, ex.Code);
    }
}
