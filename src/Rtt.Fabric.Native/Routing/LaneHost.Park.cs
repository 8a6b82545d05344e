using System.Collections.Concurrent;
using System.Diagnostics;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Interop;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;
using Rtt.Fabric.Telemetry;

namespace Rtt.Fabric.Routing;

/// <summary>The idle worker: spin, yield, then park on the doorbell with the stream lanes' sockets.</summary>
public sealed partial class LaneHost
{
    /// <summary>
    /// The idle strategy's last stage: sleep until any lane has a frame. Every SHM lane accepted with the
    /// <see cref="Doorbell"/> is asked to ring it after its next frame (the data-waiters word of its ring), and one
    /// <c>poll</c> waits on the doorbell's eventfd together with the stream lanes' sockets; upstream lanes with
    /// requests in flight are waited on the same way. Commands, peer deaths and Dispose ring the doorbell too.
    /// Fallbacks, for lanes handed in that were made without this doorbell: one such lane alone is waited on with
    /// its own wake-up; next to others, 1 ms naps; an upstream with requests in flight: yield.
    /// </summary>
    private unsafe void Park(TimeSpan timeout)
    {
        if (!_commands.IsEmpty || !_completions.IsEmpty)
        {
            return;
        }

        var inbound = _inbound;
        IFrameLane? only = null;
        var lanes = 0;
        var unwaitable = 0;
        foreach (var lane in inbound)
        {
            if (lane is not null)
            {
                only = lane;
                lanes++;
                unwaitable += CanWaitOn(lane) ? 0 : 1;
            }
        }

        var inFlight = false;
        foreach (var endpoint in _pumped)
        {
            if (endpoint.InFlight > 0)
            {
                inFlight = true;
                if (!CanWaitOn(endpoint.Upstream))
                {
                    Thread.Yield();
                    return;
                }
            }
        }

        if (unwaitable > 0)
        {
            _naps++;
            if (lanes == 1 && !inFlight)
            {
                only!.WaitForData(TimeSpan.FromMilliseconds(1));
            }
            else
            {
                Thread.Sleep(1);
            }

            return;
        }

        var fds = 1;
        var armed = 0;
        var anyStalled = false;
        _pollFds[0] = new Libc.PollFd { Fd = _doorbell.Fd, Events = Libc.PollIn };
        for (var i = 0; i < inbound.Length; i++)
        {
            var lane = inbound[i];
            if (lane is null)
            {
                continue;
            }

            if (i < _stalled.Length && _stalled[i])
            {
                // Its requests wait unread, so it cannot wake us on data: look again soon (a stream lane also wakes
                // us when its socket takes the queued answers).
                anyStalled = true;
                if (lane is StreamLane { Unsent: > 0 } stalledStream)
                {
                    AddFd(stalledStream, Libc.PollOut, ref fds);
                }

                continue;
            }

            Add(lane, ref fds, ref armed);
        }

        if (anyStalled)
        {
            timeout = TimeSpan.FromTicks(Math.Min(timeout.Ticks, TimeSpan.FromMilliseconds(5).Ticks));
        }

        if (inFlight)
        {
            foreach (var endpoint in _pumped)
            {
                if (endpoint.InFlight > 0)
                {
                    Add(endpoint.Upstream, ref fds, ref armed);
                }
            }
        }

        var ready = ShmLane.ArmDoorbells(_armed.AsSpan(0, armed), out var bounded); // arms every lane even when one is ready: all are disarmed below
        if (bounded)
        {
            timeout = TimeSpan.FromTicks(Math.Min(timeout.Ticks, ShmFence.UnfencedSleepNs / 100));
        }

        if (!ready)
        {
            _doorbellWaits++;
            fixed (Libc.PollFd* p = _pollFds)
            {
                if (Libc.Poll(p, (nuint)fds, Math.Max(1, (int)timeout.TotalMilliseconds)) > 0)
                {
                    _doorbellWakes++;
                }
            }
        }

        _doorbell.Drain();
        for (var i = 0; i < armed; i++)
        {
            _armed[i].DisarmDoorbell();
            _armed[i] = null!; // lanes are disposed on this thread only, never while armed here
        }
    }

    /// <summary>Spin, yield, then park on the doorbell; with requests out at a peer, only a short spin (see <see cref="WaitingOnPeers"/>).</summary>
    private sealed class HostIdle(LaneHost host, int spins, int yields, bool park, TimeSpan parkTimeout) : IIdleStrategy
    {
        // Read on every idle round by the worker, written by SetIdle from another thread: plain loads and stores
        // (a round that sees the old value is harmless).
        public int Spins = spins;
        public int Yields = yields;
        public bool ParkAfter = park; // false: never sleep on the doorbell, keep yielding (busy polling, a whole core)

        private const int PeerSpins = 256;
        // Then up to 200 yields (a few hundred µs) before sleeping: an answer from a thread-pool driver or a service
        // usually lands within that, and a yielding worker leaves the core to whoever is runnable, where a sleeping one
        // pays a wake-up on the way back (MCP echo through RTT, this 2-core machine: p50 2.1x -> 1.4-1.6x direct; 0 or
        // 2,000 yields both measured worse).
        private const int PeerYields = 200;
        private int _rounds;
        private IdleSpin _spin;

        /// <summary>Times work sent the worker back to the start of its backoff (to spinning), after it had idled.</summary>
        public long Restarts;

        public void Idle(int workCount)
        {
            if (workCount > 0)
            {
                if (_rounds != 0)
                {
                    Restarts++;
                    _rounds = 0;
                }

                return;
            }

            var round = _rounds++;
            var waiting = host.WaitingOnPeers;
            var spinLimit = waiting ? PeerSpins : Volatile.Read(ref Spins);
            if (round < spinLimit)
            {
                _spin.Round(round, spinLimit);
            }
            else if (round < spinLimit + (waiting ? PeerYields : Volatile.Read(ref Yields)))
            {
                Thread.Yield();
            }
            else if (Volatile.Read(ref ParkAfter))
            {
                host.Park(parkTimeout);
            }
            else
            {
                _rounds--; // stay in the yield stage (and never wrap round to spinning)
                Thread.Yield();
            }
        }
    }

    private bool CanWaitOn(IFrameLane lane) => lane.PeerGone || lane is StreamLane || (lane is ShmLane shm && shm.Doorbell == _doorbell);

    private void Add(IFrameLane lane, ref int fds, ref int armed)
    {
        if (lane.PeerGone)
        {
            return; // disposed (inbound) or failed (upstream) on the next DoWork; nothing to wait for
        }

        if (lane is ShmLane shm)
        {
            if (armed == _armed.Length)
            {
                Array.Resize(ref _armed, armed * 2);
            }

            _armed[armed++] = shm;
        }
        else if (lane is StreamLane stream)
        {
            AddFd(stream, stream.Unsent > 0 ? (short)(Libc.PollIn | Libc.PollOut) : Libc.PollIn, ref fds);
        }
    }

    private void AddFd(StreamLane stream, short events, ref int fds)
    {
        if (fds == _pollFds.Length)
        {
            Array.Resize(ref _pollFds, fds * 2);
        }

        _pollFds[fds++] = new Libc.PollFd { Fd = (int)stream.Socket.SafeHandle.DangerousGetHandle(), Events = events };
    }
}
