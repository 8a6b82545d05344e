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

/// <summary>
/// Owns a node's lanes on one dedicated worker thread (an agent on an <see cref="AgentRunner"/>): it polls every
/// client lane, routes each request by route_id through the current <see cref="RouteTable"/> to a driver (answered
/// in place) or to another process over a lane (forwarded, its response relayed back by frame_id), and drains
/// replaced endpoints. Set-up changes arrive as commands applied on the worker thread between batches, so the
/// per-frame path takes no lock and allocates nothing.
/// </summary>
public sealed class LaneHost : IAgent, IDisposable
{
    private readonly ConcurrentQueue<Action> _commands = new();
    private readonly ConcurrentQueue<(DriverCall Call, byte[]? Interim)> _completions = new(); // answers (Interim null) and interim messages of calls beside the worker, written out by it in order
    private readonly List<LaneEndpoint> _pumped = [];
    private readonly List<(RouteTable Table, HashSet<Endpoint> Waiting, TaskCompletionSource Done)> _swaps = [];
    private readonly FrameHandler _onRequest;
    private readonly FrameHandler _onResponse;
    private readonly AgentRunner? _runner;
    private readonly IIdleStrategy? _idle;
    private readonly LaneDoorbell _doorbell = new();
    private Libc.PollFd[] _pollFds = new Libc.PollFd[9];  // the doorbell, then stream lanes' sockets: reused by every park
    private ShmLane[] _armed = new ShmLane[8];            // SHM lanes asked to ring the doorbell during one park
    private long _doorbellWaits;
    private long _doorbellWakes;
    private long _naps;
    private IFrameLane?[] _inbound = new IFrameLane?[8];
    private bool[] _stalled = new bool[8]; // by inbound slot: the client is not reading its answers (worker thread only)
    private long[] _expiry = new long[8]; // by inbound slot: Environment.TickCount64 when its token expires, 0 for none (worker thread only)
    private Timer?[] _expiryTimers = new Timer?[8]; // ring the doorbell at an expiry, so a parked worker closes the lane on time
    private long _nextExpiry = long.MaxValue;
    private string?[] _allowed = new string?[8]; // by inbound slot: the token's saddr pattern, null for any route
    private RouteTable?[] _allowedTable = new RouteTable?[8]; // the table and route last found allowed: one compare per frame after the first
    private uint[] _allowedRoute = new uint[8];
    private long _expiredLanes;
    private long _stalledRounds;
    private long _clientFull;
    private long _upstreamFull;
    private long _dropped;
    private RouteTable _routes = RouteTable.Empty;
    private RouteTable _current = RouteTable.Empty;
    private int _currentInbound;
    private LaneEndpoint? _currentEndpoint;
    private long _unmatchedResponses;
    private long _faults;
    private long _asyncInFlight; // worker thread only
    private RouteStats[] _routeStats = [];   // the stats of _routes' entries by index (empty: telemetry off); set with it
    private RouteStats[] _currentStats = []; // those of _current (worker thread only)

    /// <param name="start">Start the worker thread now (false: the caller runs <see cref="DoWork"/>, as tests may).</param>
    /// <param name="telemetry">Per-route metrics, breakers and the flight recorder (null: none, and no cost per frame).</param>
    /// <param name="idleSpins">Idle rounds the worker spins before it yields (a tuned profile may set it; docs/autotune.md).</param>
    /// <param name="idleYields">Idle rounds it then yields before it sleeps on the doorbell.</param>
    /// <param name="idlePark">False: after its spins it never sleeps on the doorbell but goes on yielding (a busy-polling
    /// worker that takes a whole core; a tuned profile's <c>park</c>).</param>
    public LaneHost(bool start = true, IReadOnlyList<int>? cpus = null, IIdleStrategy? idle = null, LaneTelemetry? telemetry = null,
        int idleSpins = DefaultIdleSpins, int idleYields = DefaultIdleYields, bool idlePark = true)
    {
        Telemetry = telemetry;
        if (telemetry is not null)
        {
            telemetry.HostCounters = () =>
            [
                new("unknown_route", _inbound.Sum(l => l?.Counters.UnknownRoute ?? 0)),
                new("stalled_rounds", StalledRounds),
                new("client_full", ClientFullDrops),
                new("dropped_clients", DroppedClients),
                new("upstream_full", UpstreamFullRefusals),
                new("driver_faults", DriverFaults),
                new("unmatched_responses", UnmatchedResponses),
                new("worker_faults", WorkerFaults),
                new("clients", InboundCount),
            ];
        }

        _onRequest = OnRequest;
        _onResponse = OnResponse;
        if (start)
        {
            // ~1 ms of spinning after the last frame, then it sleeps on the doorbell and costs nothing; the 100 ms
            // timeout is only a backstop: frames, commands, peer deaths and Dispose all ring the doorbell.
            _idle = idle ?? new HostIdle(this, idleSpins, idleYields, idlePark, TimeSpan.FromMilliseconds(100));
            _runner = new AgentRunner(this, _idle, cpus, _doorbell.Ring,
                ex => Report?.Invoke($"the lane worker caught a fault and goes on: {ex.GetType().Name}: {ex.Message}"));
        }
    }

    /// <summary>
    /// Changes the worker's idle spins, yields and doorbell use while it runs (a tuned plan carries them, docs/autotune.md).
    /// False when the host was built with its own idle strategy or without a worker.
    /// </summary>
    public bool SetIdle(int spins, int yields, bool park = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(spins);
        ArgumentOutOfRangeException.ThrowIfNegative(yields);
        if (_idle is not HostIdle idle)
        {
            return false;
        }

        Volatile.Write(ref idle.Spins, spins);
        Volatile.Write(ref idle.Yields, yields);
        Volatile.Write(ref idle.ParkAfter, park);
        if (!park)
        {
            _doorbell.Ring(); // a worker asleep now wakes and stays awake
        }

        return true;
    }

    /// <summary>Idle rounds spun before yielding: about 1 ms on the build machine.</summary>
    public const int DefaultIdleSpins = 50_000;

    /// <summary>Idle rounds yielded before sleeping on the doorbell.</summary>
    public const int DefaultIdleYields = 200;

    public string Name => "lane-host";

    /// <summary>Per-route metrics, breakers and the flight recorder; null when telemetry is off.</summary>
    public LaneTelemetry? Telemetry { get; }

    public RouteTable Routes => Volatile.Read(ref _routes);

    public IReadOnlyList<IFrameLane> Inbound => Volatile.Read(ref _inbound).Where(l => l is not null).ToArray()!;

    /// <summary>Client lanes attached now (no allocation).</summary>
    public int InboundCount
    {
        get
        {
            var n = 0;
            foreach (var lane in Volatile.Read(ref _inbound))
            {
                n += lane is null ? 0 : 1;
            }

            return n;
        }
    }

    /// <summary>Responses from an upstream lane that matched no pending request (dropped).</summary>
    public long UnmatchedResponses => Volatile.Read(ref _unmatchedResponses);

    public Exception? Fault => _runner?.Fault;

    /// <summary>Faults the worker loop caught and went on from (beyond the per-frame driver faults).</summary>
    public long WorkerFaults => _runner?.Faults ?? 0;

    /// <summary>False when the worker thread is not running (it failed to start, e.g. pinning to CPUs it may not use).</summary>
    public bool WorkerAlive => _runner?.IsRunning ?? true;

    /// <summary>
    /// Told (on the worker thread, once per change, never per frame) when a client stops or resumes reading its
    /// answers; the silo logs it. Must not block.
    /// </summary>
    public Action<string>? Report { get; set; }

    /// <summary>Rounds in which a client's requests were left waiting because its answers would not fit (it does not read).</summary>
    public long StalledRounds => Volatile.Read(ref _stalledRounds);

    /// <summary>Answers dropped because the client's lane stayed full.</summary>
    public long ClientFullDrops => Volatile.Read(ref _clientFull);

    /// <summary>Client lanes closed by the host because the peer broke the lane protocol (an impossible ring state).</summary>
    public long DroppedClients => Volatile.Read(ref _dropped);

    /// <summary>Requests answered with RTT-CALL-005 because a service's lane (or its in-flight window) was full.</summary>
    public long UpstreamFullRefusals => Volatile.Read(ref _upstreamFull);

    /// <summary>Requests whose driver threw on the worker (each answered with an error frame; the worker went on).</summary>
    public long DriverFaults => Volatile.Read(ref _faults);

    /// <summary>Called beside the worker when an async driver call is done: queued for the worker to write out.</summary>
    internal void Complete(DriverCall call)
    {
        _completions.Enqueue((call, null));
        _doorbell.Ring();
    }

    /// <summary>Called beside the worker with an interim message of a call in progress: queued (in order with its answer) for the worker.</summary>
    internal void Interim(DriverCall call, byte[] message)
    {
        _completions.Enqueue((call, message));
        _doorbell.Ring();
    }

    /// <summary>Interim messages written to callers, and those dropped (the call was over, or the caller's lane was full or gone).</summary>
    public long InterimSent => Volatile.Read(ref _interimSent);

    public long InterimDropped => Volatile.Read(ref _interimDropped);

    private long _interimSent;
    private long _interimDropped;

    /// <summary>
    /// What wakes the idle worker: SHM lanes accepted with it (<see cref="ShmLane.Accept(System.Net.Sockets.Socket, LaneOptions, LaneDoorbell?)"/>,
    /// as <see cref="LaneHostListener"/> does) ring it after a frame when the worker sleeps; stream lanes wake it through their sockets.
    /// </summary>
    public LaneDoorbell Doorbell => _doorbell;

    /// <summary>Times the idle worker slept on the doorbell (all lanes at once).</summary>
    internal long DoorbellWaits => Volatile.Read(ref _doorbellWaits);

    /// <summary>Times a doorbell sleep ended because something was ready (not the timeout).</summary>
    internal long DoorbellWakes => Volatile.Read(ref _doorbellWakes);

    /// <summary>Times it could only nap (a lane attached without the doorbell, next to others).</summary>
    internal long Naps => Volatile.Read(ref _naps);

    public Task SwapAsync(RouteTable next)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stats = Telemetry?.Bind(next) ?? []; // made here, off the worker
        _commands.Enqueue(() => ApplySwap(next, stats, done));
        _doorbell.Ring();
        return done.Task;
    }

    /// <summary>Lanes closed because their token expired (RTT-TOKEN-019).</summary>
    public long ExpiredLanes => Volatile.Read(ref _expiredLanes);

    /// <summary>Adds a client lane; the host owns it from now on and disposes it when its peer goes.</summary>
    public Task AttachAsync(IFrameLane lane) => AttachAsync(lane, null, null);

    /// <summary>
    /// As above; with <paramref name="expires"/> (the attach token's expiry) the worker closes the lane then: an error frame
    /// RTT-TOKEN-019 (route 0, frame 0) and the close (docs/fabric.md, attach protocol). With <paramref name="saddr"/> (the
    /// token's symbol pattern) a frame for a route whose symbol the pattern does not cover is answered RTT-TOKEN-014: a lane
    /// attached with a token for one route cannot be used for another.
    /// </summary>
    public Task AttachAsync(IFrameLane lane, DateTimeOffset? expires, string? saddr = null)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var deadline = 0L;
        Timer? timer = null;
        if (expires is { } e)
        {
            var left = e - DateTimeOffset.UtcNow;
            deadline = Environment.TickCount64 + Math.Max(0, (long)left.TotalMilliseconds);
            timer = new Timer(static d => ((LaneDoorbell)d!).Ring(), _doorbell, left > TimeSpan.Zero ? left + TimeSpan.FromMilliseconds(1) : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }

        _commands.Enqueue(() =>
        {
            var slots = _inbound;
            var free = Array.IndexOf(slots, null);
            if (free < 0)
            {
                free = slots.Length;
                Array.Resize(ref slots, slots.Length * 2);
            }

            slots[free] = lane;
            if (_stalled.Length < slots.Length)
            {
                Array.Resize(ref _stalled, slots.Length);
            }

            _stalled[free] = false;
            if (_expiry.Length < slots.Length)
            {
                Array.Resize(ref _expiry, slots.Length);
                Array.Resize(ref _expiryTimers, slots.Length);
            }

            _expiry[free] = deadline;
            _expiryTimers[free] = timer;
            if (_allowed.Length < slots.Length)
            {
                Array.Resize(ref _allowed, slots.Length);
                Array.Resize(ref _allowedTable, slots.Length);
                Array.Resize(ref _allowedRoute, slots.Length);
            }

            _allowed[free] = saddr;
            _allowedTable[free] = null;
            if (deadline != 0 && deadline < _nextExpiry)
            {
                _nextExpiry = deadline;
            }

            Volatile.Write(ref _inbound, slots);
            done.SetResult();
        });
        _doorbell.Ring();
        return done.Task;
    }

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

    /// <summary>
    /// True while a request waits on another party (a service process, an async driver): the worker then spins only
    /// briefly and yields a little before sleeping on its doorbell, which that party rings. On a small machine a worker that spins for
    /// milliseconds takes the very core the service needs to answer (the client and the service spin too).
    /// </summary>
    private bool WaitingOnPeers
    {
        get
        {
            if (_asyncInFlight > 0)
            {
                return true;
            }

            foreach (var endpoint in _pumped)
            {
                if (endpoint.InFlight > 0)
                {
                    return true;
                }
            }

            return false;
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

        public void Idle(int workCount)
        {
            if (workCount > 0)
            {
                _rounds = 0;
                return;
            }

            var round = _rounds++;
            var waiting = host.WaitingOnPeers;
            var spinLimit = waiting ? PeerSpins : Volatile.Read(ref Spins);
            if (round < spinLimit)
            {
                if (round >= spinLimit / 2)
                {
                    Thread.SpinWait(1);
                }
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

    private void ApplySwap(RouteTable next, RouteStats[] stats, TaskCompletionSource done)
    {
        var old = _routes;
        _routeStats = stats; // this thread reads both, in DoWork
        Volatile.Write(ref _routes, next); // the one ordered write that publishes the table
        foreach (var r in next.Routes)
        {
            if (r.Endpoint is LaneEndpoint l && !_pumped.Contains(l))
            {
                _pumped.Add(l);
            }
        }

        var kept = next.Routes.Select(r => r.Endpoint).ToHashSet();
        var waiting = old.Routes.Select(r => r.Endpoint).Where(e => e is LaneEndpoint or AsyncDriverEndpoint && !kept.Contains(e)).ToHashSet();
        _swaps.Add((next, waiting, done));
    }

    private static readonly byte[] RouteDeniedPayload = ErrorPayload.Encode(Core.Errors.ErrorCodes.TokenRouteDenied,
        "this lane's capability token does not cover the route of the frame; attach to that route with a token for it");

    /// <summary>Whether the token pattern of the current lane covers the route at <paramref name="index"/> (cached per slot).</summary>
    private bool RouteAllowed(string pattern, int index, uint routeId)
    {
        var slot = _currentInbound;
        if (ReferenceEquals(_allowedTable[slot], _current) && _allowedRoute[slot] == routeId)
        {
            return true;
        }

        if (!Core.Tokens.CapabilityToken.Matches(pattern, _current.Routes[index].Name))
        {
            return false;
        }

        _allowedTable[slot] = _current;
        _allowedRoute[slot] = routeId;
        return true;
    }

    private static readonly byte[] ExpiredPayload = ErrorPayload.Encode(Core.Errors.ErrorCodes.TokenLaneExpired,
        "the lane's capability token expired: the lane host closed the lane; attach again with a fresh token");

    /// <summary>Closes the lanes whose token expired: an error frame (route 0, frame 0) saying so, then the close.</summary>
    private int CloseExpired(IFrameLane?[] inbound)
    {
        var now = Environment.TickCount64;
        var next = long.MaxValue;
        var closed = 0;
        for (var i = 0; i < inbound.Length && i < _expiry.Length; i++)
        {
            var deadline = _expiry[i];
            if (deadline == 0 || inbound[i] is not { } lane)
            {
                continue;
            }

            if (now < deadline)
            {
                next = Math.Min(next, deadline);
                continue;
            }

            lane.Send(0, 0, ExpiredPayload, FrameFlags.Error);
            lane.Flush();
            Report?.Invoke($"client lane {i} ({Describe(lane)}) closed: its capability token expired (RTT-TOKEN-019)");
            Interlocked.Increment(ref _expiredLanes);
            Release(inbound, i, lane);
            closed++;
        }

        _nextExpiry = next;
        return closed;
    }

    /// <summary>Releases a client lane whose peer is gone (this thread is the only one touching it), reporting a broken one.</summary>
    private void Release(IFrameLane?[] inbound, int i, IFrameLane lane)
    {
        if (_calls.Count > 0)
        {
            // The caller went away: its calls still in progress at drivers are withdrawn (cancelled upstream).
            foreach (var key in _calls.Keys.Where(k => k.Inbound == i).ToList())
            {
                _calls.Remove(key, out var call);
                Withdraw(call!);
            }
        }

        inbound[i] = null;
        _stalled[i] = false;
        if (i < _allowed.Length)
        {
            _allowed[i] = null;
            _allowedTable[i] = null;
        }

        if (i < _expiry.Length)
        {
            _expiry[i] = 0;
            _expiryTimers[i]?.Dispose();
            _expiryTimers[i] = null;
        }

        if (lane is ShmLane { BrokenReason: { } broken })
        {
            Report?.Invoke($"client lane {i} ({Describe(lane)}) dropped: {broken}");
            _dropped++; // after the report: whoever sees the count also finds the report
        }

        lane.Dispose();
    }

    public int DoWork()
    {
        var work = 0;
        while (_commands.TryDequeue(out var command))
        {
            command();
            work++;
        }

        if (!_completions.IsEmpty)
        {
            work += WriteCompletions();
            FinishPending();
        }

        _current = _routes; // one read per batch: every frame of the batch sees the same table
        _currentStats = _routeStats;
        var inbound = _inbound;
        if (_nextExpiry != long.MaxValue && Environment.TickCount64 >= _nextExpiry)
        {
            work += CloseExpired(inbound);
        }

        for (var i = 0; i < inbound.Length; i++)
        {
            var lane = inbound[i];
            if (lane is null)
            {
                continue;
            }

            _currentInbound = i;
            if (!lane.CanWrite(AnswerRoom(lane)))
            {
                if (lane.PeerGone)
                {
                    // A client that closed its lane reads nothing more: release it without calling it stalled.
                    Release(inbound, i, lane);
                    continue;
                }

                // The client does not read its answers: leave its requests where they are (it cannot send many more)
                // instead of waiting for room, so no client can stall the node. Counted, and reported once.
                lane.Counters.OnStall();
                _stalledRounds++;
                if (!_stalled[i])
                {
                    _stalled[i] = true;
                    Report?.Invoke($"client lane {i} ({Describe(lane)}) is not reading its answers; its requests wait until it does ({lane.Counters})");
                }

                lane.Flush(); // a stream lane sends what its socket takes now, no more
                if (lane.PeerGone)
                {
                    Release(inbound, i, lane);
                }

                continue;
            }

            if (_stalled[i])
            {
                _stalled[i] = false;
                Report?.Invoke($"client lane {i} ({Describe(lane)}) reads its answers again");
            }

            _batchStart = 0;
            var handled = lane.Poll(_onRequest);
            if (handled > 0)
            {
                lane.Flush(); // the drivers' answers go out now, not after the other lanes' turns
                FinishPending();
                work += handled;
            }
            if (lane.PeerGone)
            {
                Release(inbound, i, lane);
            }
        }

        foreach (var endpoint in _pumped)
        {
            _currentEndpoint = endpoint;
            var dropped = endpoint.Upstream.Counters.Dropped;
            work += endpoint.Upstream.Poll(_onResponse);
            if (endpoint.Upstream.Counters.Dropped != dropped && !endpoint.Malformed)
            {
                // A service that sends a malformed frame cannot say which request it answered: close its lane, so
                // every request inside it is answered at once (RTT-LANE-005, naming why) instead of timing out, and
                // its supervisor starts it again.
                endpoint.Malformed = true;
                Report?.Invoke($"endpoint \"{endpoint.Name}\" sent a malformed frame ({endpoint.Upstream.Counters}); its lane is closed");
                var why = "it sent a malformed frame";
                switch (endpoint.Upstream)
                {
                    case ShmLane shm: shm.Break(why); break;
                    case StreamLane stream: stream.Break(why); break;
                }
            }

            endpoint.Upstream.Flush();
            if (endpoint.Upstream.PeerGone && endpoint.InFlight > 0)
            {
                work += FailPending(endpoint);
            }
        }

        foreach (var lane in inbound)
        {
            lane?.Flush(); // responses batched during this round go out in one send per stream lane
        }

        FinishPending(); // relayed answers and failures, now that they are out

        if (_swaps.Count > 0)
        {
            CompleteDrainedSwaps();
        }

        return work;
    }

    private void CompleteDrainedSwaps()
    {
        for (var s = _swaps.Count - 1; s >= 0; s--)
        {
            var (_, waiting, done) = _swaps[s];
            waiting.RemoveWhere(e => e.InFlight == 0);
            if (waiting.Count == 0)
            {
                _swaps.RemoveAt(s);
                var stillUsed = _routes.Routes.Select(r => r.Endpoint).ToHashSet();
                _pumped.RemoveAll(e => !stillUsed.Contains(e) && e.InFlight == 0 && !_swaps.Any(x => x.Waiting.Contains(e)));

                done.SetResult();
            }
        }
    }

    private void OnRequest(in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if ((header.Flags & (FrameFlags.Cancel | FrameFlags.Interim)) != 0)
        {
            if ((header.Flags & FrameFlags.Interim) != 0)
            {
                // The caller replies inside a call in progress (e.g. its answer to an MCP sampling request): handed to the
                // call beside the worker in a pooled buffer; a reply for a call that is over is dropped.
                if (_calls.TryGetValue((_currentInbound, header.FrameId), out var running))
                {
                    var copy = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(1, payload.Length));
                    payload.CopyTo(copy);
                    ThreadPool.UnsafeQueueUserWorkItem(static s => s.Call.Deliver(s.Buffer, s.Length), (Call: running, Buffer: copy, Length: payload.Length), preferLocal: false);
                }

                return;
            }

            // The caller withdraws an earlier request: cancel its driver call if it is still out; never answered.
            if (_calls.Remove((_currentInbound, header.FrameId), out var withdrawn))
            {
                Withdraw(withdrawn);
            }

            return;
        }

        var lane = _inbound[_currentInbound]!;
        TraceParent trace = default;
        if ((header.Flags & FrameFlags.Traced) != 0)
        {
            // The caller's trace context: taken off the payload (the endpoint never sees it); noted for the call's span.
            if (!TraceParent.TryRead(payload, out trace))
            {
                AnswerError(lane, header.RouteId, header.FrameId, BadTracePayload);
                return;
            }

            payload = payload[TraceParent.Size..];
        }

        var index = _current.IndexOf(header.RouteId);
        var endpoint = index < 0 ? null : _current.EndpointAt(index);
        if (index >= 0 && _allowed[_currentInbound] is { } pattern && !RouteAllowed(pattern, index, header.RouteId))
        {
            lane.Counters.OnDrop(DropReason.UnknownRoute);
            AnswerError(lane, header.RouteId, header.FrameId, RouteDeniedPayload);
            return;
        }

        if ((header.Flags & FrameFlags.Probe) != 0 && endpoint is not null)
        {
            AnswerProbe(lane, endpoint, in header, payload);
            return;
        }

        RouteStats? stats = null;
        long start = 0;
        if ((uint)index < (uint)_currentStats.Length)
        {
            // Telemetry on: counted, timed, and let through only when the route's breaker allows it.
            stats = _currentStats[index];
            start = _batchStart != 0 ? _batchStart : (_batchStart = Stopwatch.GetTimestamp()); // one timestamp per batch read
            stats.RequestsCount++;
            stats.BytesInCount += payload.Length;
            var allowed = stats.Breaker.Allow(start);
            if (trace.Present && (!allowed || endpoint is not AsyncDriverEndpoint))
            {
                Telemetry!.TraceStarted(in trace, header.RouteId, header.FrameId, start); // a span from its flight record when it ends (an async driver's call makes its own)
            }

            if (!allowed)
            {
                AnswerError(lane, header.RouteId, header.FrameId, stats.BreakerPayload, stats, start, payload.Length, Outcome.BreakerOpen);
                return;
            }
        }

        switch (endpoint)
        {
            case DriverEndpoint d:
                d.Requests++;
                var outcome = Outcome.Ok;
                var answered = 0;
                try
                {
                    if (lane.TryLoan(d.Driver.MaxResponseLength(payload.Length), out var room))
                    {
                        var length = d.Driver.Handle(in header, payload, room); // the driver writes straight into the lane
                        if (length >= 0)
                        {
                            lane.Commit(length, header.RouteId, header.FrameId, FrameFlags.Response | (header.Flags & FrameFlags.NoPayloadCrc));
                            answered = length;
                        }
                    }
                    else
                    {
                        ClientFull(lane);
                        outcome = Outcome.ClientFull;
                    }
                }
                catch (Exception ex)
                {
                    // Caught per frame (Aeron's duty cycle: catch, report, go on): this request gets an error frame, the
                    // worker keeps serving every other route. A loan left uncommitted is simply overwritten.
                    d.Responses++;
                    OnDriverFault(lane, d, in header, ex, stats, start, payload.Length);
                    break;
                }

                d.Responses++;
                if (stats is not null)
                {
                    Defer(stats, start, header.RouteId, header.FrameId, payload.Length, answered, outcome, 0);
                }

                break;
            case AsyncDriverEndpoint a:
                Dispatch(a, lane, in header, payload, stats, start, in trace);
                break;
            case LaneEndpoint l:
                Forward(l, lane, in header, payload, stats, start);
                break;
            default:
                // Counted, and answered at once so the client does not wait for its timeout (one payload, made once).
                lane.Counters.OnDrop(DropReason.UnknownRoute);
                AnswerError(lane, header.RouteId, header.FrameId, UnknownRoutePayload);
                break;
        }
    }

    /// <summary>
    /// A request of a route with telemetry ended: noted, and counted when its answer has gone out (<see cref="FinishPending"/>
    /// after the lane's flush), so one timestamp serves a whole batch of answers.
    /// </summary>
    private void Defer(RouteStats s, long start, uint routeId, uint frameId, int requestBytes, int answerBytes, Outcome outcome, int code)
    {
        if (_finishCount == _finishes.Length)
        {
            FinishPending(); // a batch larger than the buffer: count what is noted so far now (no allocation)
        }

        ref var f = ref _finishes[_finishCount++];
        f.Stats = s;
        f.Start = start;
        f.RouteId = routeId;
        f.FrameId = frameId;
        f.RequestBytes = requestBytes;
        f.AnswerBytes = answerBytes;
        f.Outcome = outcome;
        f.Code = code;
    }

    /// <summary>Counts the requests noted since the last call, with one timestamp for all of them as their end.</summary>
    private void FinishPending()
    {
        if (_finishCount == 0)
        {
            return;
        }

        var now = Stopwatch.GetTimestamp();
        for (var i = 0; i < _finishCount; i++)
        {
            ref var f = ref _finishes[i];
            Finish(f.Stats, f.Start, f.RouteId, f.FrameId, f.RequestBytes, f.AnswerBytes, f.Outcome, f.Code, now);
        }

        _finishCount = 0;
    }

    private struct PendingFinish
    {
        public RouteStats Stats;
        public long Start;
        public uint RouteId;
        public uint FrameId;
        public int RequestBytes;
        public int AnswerBytes;
        public Outcome Outcome;
        public int Code;
    }

    private readonly PendingFinish[] _finishes = new PendingFinish[1024];
    private int _finishCount;
    private long _batchStart; // when the worker began reading the current lane's batch (taken at its first request; 0: not yet)

    /// <summary>
    /// A request of a route with telemetry ended: its counters, its latency (answers only, errors included), its breaker
    /// (answers only) and the flight recorder. Worker thread; plain stores, no allocation.
    /// </summary>
    private void Finish(RouteStats s, long start, uint routeId, uint frameId, int requestBytes, int answerBytes, Outcome outcome, int code, long now)
    {
        var ns = LatencyHistogram.TicksToNs(now - start);
        switch (outcome)
        {
            case Outcome.Ok:
                s.OkCount++;
                s.BytesOutCount += answerBytes;
                break;
            case Outcome.ClientFull:
                s.ClientFullCount++;
                break;
            case Outcome.ClientGone:
                s.ClientGoneCount++;
                break;
            default:
                s.ErrorCount++;
                s.ErrorsByCodeCounts[code]++;
                s.BytesOutCount += answerBytes;
                if (outcome == Outcome.Busy)
                {
                    s.BusyCount++;
                }
                else if (outcome == Outcome.BreakerOpen)
                {
                    s.BreakerRefusedCount++;
                }

                break;
        }

        if (outcome is Outcome.Ok or Outcome.Error)
        {
            s.Latency.Record(ns); // the endpoint's answers (errors included), not refusals or drops
        }

        var options = s.Breaker.Options;
        if (options.Enabled && outcome != Outcome.BreakerOpen)
        {
            // Every call let through ends here once, so a half-open breaker always hears of its trial calls.
            var failure = (outcome == Outcome.Error && ErrorCodeTable.CountsAgainstEndpoint(code))
                || (options.SlowCall > TimeSpan.Zero && outcome is Outcome.Ok or Outcome.Error && ns > options.SlowCall.Ticks * 100);
            s.Breaker.OnOutcome(now, failure);
        }

        Telemetry!.Flight.Record(start, ns, routeId, frameId, requestBytes, answerBytes, outcome, code);
    }

    private void OnDriverFault(IFrameLane lane, DriverEndpoint d, in FrameHeader header, Exception ex, RouteStats? stats, long start, int requestBytes)
    {
        byte[] error;
        if (ex is Rtt.Core.Errors.RttException rtt)
        {
            error = ErrorPayload.Encode(rtt.Code, rtt.Message); // an endpoint that answers with its own error (one that could not start)
        }
        else
        {
            _faults++;
            lane.Counters.OnDrop(DropReason.DriverFault);
            error = ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.DriverFault, $"endpoint \"{d.Name}\" failed: {ex.GetType().Name}: {ex.Message}");
        }

        AnswerError(lane, header.RouteId, header.FrameId, error, stats, start, requestBytes);
    }

    /// <summary>
    /// Hands a request to a driver that does I/O: the payload is copied into a pooled buffer and the call runs on the
    /// thread pool; the worker writes the answer when it comes back (<see cref="WriteCompletions"/>). An endpoint
    /// with <see cref="AsyncDriverEndpoint.MaxInFlight"/> calls in progress refuses at once with an error frame.
    /// </summary>
    private void Dispatch(AsyncDriverEndpoint a, IFrameLane lane, in FrameHeader header, ReadOnlySpan<byte> payload, RouteStats? stats, long start, in TraceParent trace)
    {
        if (a.InFlight >= a.MaxInFlight)
        {
            a.Busy++;
            lane.Counters.OnDrop(DropReason.EndpointBusy);
            AnswerError(lane, header.RouteId, header.FrameId, ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.DriverBusy,
                $"endpoint \"{a.Name}\" has {a.MaxInFlight} calls in progress; try again later"), stats, start, payload.Length, Outcome.Busy);
            return;
        }

        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(1, payload.Length));
        payload.CopyTo(buffer);
        a.Requests++;
        _asyncInFlight++;
        var call = new DriverCall
        {
            Host = this,
            Endpoint = a,
            Client = lane,
            Inbound = _currentInbound,
            RouteId = header.RouteId,
            FrameId = header.FrameId,
            Request = buffer,
            Length = payload.Length,
            Stats = stats,
            Start = start,
            AcceptsInterim = (header.Flags & FrameFlags.AcceptsInterim) != 0,
            Trace = stats is not null ? trace : default, // spans need telemetry on, as the others
        };
        _calls[(_currentInbound, header.FrameId)] = call; // so a Cancel frame or the lane's end can withdraw it
        ThreadPool.UnsafeQueueUserWorkItem(call, preferLocal: false);
    }

    /// <summary>Cancels a driver call on the thread pool: its cancellation callbacks (e.g. an MCP notifications/cancelled) never run on the worker.</summary>
    private static void Withdraw(DriverCall call) =>
        ThreadPool.UnsafeQueueUserWorkItem(static c => c.Withdrawn.Cancel(), call, preferLocal: false);

    /// <summary>Driver calls in progress by (client lane index, frame id): worker-only.</summary>
    private readonly Dictionary<(int Inbound, uint FrameId), DriverCall> _calls = [];

    /// <summary>Writes out the answers of async driver calls that completed (on the worker: it alone writes to client lanes).</summary>
    private int WriteCompletions()
    {
        var done = 0;
        while (_completions.TryDequeue(out var item))
        {
            var call = item.Call;
            if (item.Interim is { } interim)
            {
                WriteInterim(call, interim);
                continue;
            }

            done++;
            _asyncInFlight--;
            if (_calls.TryGetValue((call.Inbound, call.FrameId), out var tracked) && ReferenceEquals(tracked, call))
            {
                _calls.Remove((call.Inbound, call.FrameId));
            }

            call.Endpoint.Responses++;
            if (call.Error is not null)
            {
                call.Endpoint.Failed++;
            }

            var stats = call.Stats;
            var client = call.Inbound < _inbound.Length ? _inbound[call.Inbound] : null;
            if (!ReferenceEquals(client, call.Client) || client.PeerGone)
            {
                if (stats is not null)
                {
                    Defer(stats, call.Start, call.RouteId, call.FrameId, call.Length, 0, Outcome.ClientGone, 0);
                }

                continue; // the client went away while its call ran
            }

            if (call.Error is { } error)
            {
                AnswerError(client, call.RouteId, call.FrameId, error, stats, call.Start, call.Length);
            }
            else if (call.Answer.Length > client.Options.MaxPayload)
            {
                AnswerError(client, call.RouteId, call.FrameId, ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.DriverFault,
                    $"endpoint \"{call.Endpoint.Name}\" answered {call.Answer.Length} bytes, more than the lane's largest frame ({client.Options.MaxPayload} bytes)"),
                    stats, call.Start, call.Length);
            }
            else if (client.TryLoan(call.Answer.Length, out var room))
            {
                call.Answer.Span.CopyTo(room);
                client.Commit(call.Answer.Length, call.RouteId, call.FrameId, FrameFlags.Response);
                if (stats is not null)
                {
                    Defer(stats, call.Start, call.RouteId, call.FrameId, call.Length, call.Answer.Length, Outcome.Ok, 0);
                }
            }
            else
            {
                ClientFull(client);
                if (stats is not null)
                {
                    Defer(stats, call.Start, call.RouteId, call.FrameId, call.Length, 0, Outcome.ClientFull, 0);
                }
            }

            client.Flush();
        }

        return done;
    }

    /// <summary>An interim message of a call still in progress, to its caller (Response | Interim, the request's ids), or dropped.</summary>
    private void WriteInterim(DriverCall call, byte[] message)
    {
        var client = call.Inbound < _inbound.Length ? _inbound[call.Inbound] : null;
        if (!_calls.TryGetValue((call.Inbound, call.FrameId), out var tracked) || !ReferenceEquals(tracked, call)
            || !ReferenceEquals(client, call.Client) || client.PeerGone || message.Length > client.Options.MaxPayload || !client.TryLoan(message.Length, out var room))
        {
            _interimDropped++;
            return;
        }

        message.CopyTo(room);
        client.Commit(message.Length, call.RouteId, call.FrameId, FrameFlags.Response | FrameFlags.Interim);
        client.Flush();
        _interimSent++;
    }

    /// <summary>A verify probe: echoed when the endpoint can take calls, else an error frame with the reason.</summary>
    private void AnswerProbe(IFrameLane lane, Endpoint endpoint, in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        var why = endpoint switch
        {
            DriverEndpoint { Driver: UnavailableDriver u } => ErrorPayload.Encode(u.Code, u.Reason),
            AsyncDriverEndpoint { Driver.NotReady: { } notReady } => ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.EndpointUnavailable, notReady),
            LaneEndpoint { Upstream.PeerGone: true } l => l.GonePayload,
            _ => null,
        };
        if (why is not null)
        {
            AnswerError(lane, header.RouteId, header.FrameId, why);
        }
        else if (lane.TryLoan(payload.Length, out var room))
        {
            payload.CopyTo(room);
            lane.Commit(payload.Length, header.RouteId, header.FrameId, FrameFlags.Response | FrameFlags.Probe);
        }
    }

    private static readonly byte[] BadTracePayload = ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.LaneTraceInvalid, "the request has the Traced flag but its payload does not start with a trace context (26 bytes: version 0, a trace id and a parent id not all zeros, flags)");

    private static readonly byte[] UnknownRoutePayload = ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.LaneRouteUnknown, "this lane host serves no route with that id (it was never planned or has been removed)");

    private void Forward(LaneEndpoint l, IFrameLane from, in FrameHeader header, ReadOnlySpan<byte> payload, RouteStats? stats, long start)
    {
        ref var slot = ref l.Pending[l.NextId & (uint)l.Mask];
        if (slot.Used || !l.Upstream.TrySend(l.UpstreamRouteId ?? header.RouteId, l.NextId, payload, header.Flags & FrameFlags.NoPayloadCrc))
        {
            if (l.Upstream.PeerGone)
            {
                // The service is gone: the client gets an error frame at once instead of waiting for its timeout.
                AnswerError(from, header.RouteId, header.FrameId, l.GonePayload, stats, start, payload.Length);
                l.Failed++;
                return;
            }

            // The service's window or lane is full: refuse this request now rather than wait for room (the worker
            // never waits on one peer while others have work for it).
            _upstreamFull++;
            l.Busy++;
            from.Counters.OnDrop(DropReason.EndpointBusy);
            AnswerError(from, header.RouteId, header.FrameId, l.BusyPayload, stats, start, payload.Length, Outcome.Busy);
            return;
        }

        slot = new PendingRequest
        {
            Inbound = _currentInbound, ClientFrameId = header.FrameId, RouteId = header.RouteId, Used = true,
            RequestBytes = payload.Length, Start = start, Stats = stats,
        };
        l.NextId++;
        l.Requests++;
    }

    private static int AnswerRoom(IFrameLane lane) => Math.Min(lane.Options.MaxPayload, 16 * 1024);

    private static string Describe(IFrameLane lane) => lane is ShmLane shm ? $"shm, peer pid {shm.PeerPid}" : $"{lane.Kind.ToString().ToLowerInvariant()}";

    /// <summary>
    /// The service behind <paramref name="l"/> went away (its lane closed, kill -9 included): relays whatever
    /// answers it still got out, then answers every request still waiting on it with an error frame, so no client
    /// waits for an answer that cannot come and a swap that drains this endpoint completes.
    /// </summary>
    private int FailPending(LaneEndpoint l)
    {
        var saved = _currentEndpoint;
        _currentEndpoint = l;
        while (l.Upstream.Poll(_onResponse) > 0)
        {
            // answers published before the death are still in the ring (or the socket buffer): deliver them first
        }

        _currentEndpoint = saved;
        var failed = 0;
        var pending = l.Pending;
        for (var i = 0; i < pending.Length; i++)
        {
            ref var slot = ref pending[i];
            if (!slot.Used)
            {
                continue;
            }

            slot.Used = false;
            l.Responses++; // answered (with an error): no longer in flight
            l.Failed++;
            failed++;
            var client = slot.Inbound < _inbound.Length ? _inbound[slot.Inbound] : null;
            if (client is not null && !client.PeerGone)
            {
                AnswerError(client, slot.RouteId, slot.ClientFrameId, l.Malformed ? l.MalformedPayload : l.GonePayload, slot.Stats, slot.Start, slot.RequestBytes);
            }
            else if (slot.Stats is not null)
            {
                Defer(slot.Stats, slot.Start, slot.RouteId, slot.ClientFrameId, slot.RequestBytes, 0, Outcome.ClientGone, 0);
            }

            slot.Stats = null;
        }

        foreach (var lane in _inbound)
        {
            lane?.Flush();
        }

        return failed;
    }

    /// <summary>A response frame with the <see cref="FrameFlags.Error"/> flag in place of the service's answer.</summary>
    /// <param name="stats">Telemetry on: the request's route, counted as <paramref name="outcome"/> (or client_full when the error would not fit).</param>
    private void AnswerError(IFrameLane client, uint routeId, uint frameId, byte[] error, RouteStats? stats = null, long start = 0, int requestBytes = 0, Outcome outcome = Outcome.Error)
    {
        if (client.TryLoan(error.Length, out var room))
        {
            error.CopyTo(room);
            client.Commit(error.Length, routeId, frameId, FrameFlags.Response | FrameFlags.Error);
            if (stats is not null)
            {
                Defer(stats, start, routeId, frameId, requestBytes, error.Length, outcome, ErrorCodeTable.Of(error));
            }
        }
        else
        {
            ClientFull(client);
            if (stats is not null)
            {
                Defer(stats, start, routeId, frameId, requestBytes, 0, Outcome.ClientFull, 0);
            }
        }
    }

    private void ClientFull(IFrameLane client)
    {
        _clientFull++;
        client.Counters.OnDrop(DropReason.ClientFull);
    }

    private void OnResponse(in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        var l = _currentEndpoint!;
        ref var slot = ref l.Pending[header.FrameId & (uint)l.Mask];
        if (!slot.Used)
        {
            _unmatchedResponses++;
            return;
        }

        slot.Used = false;
        l.Responses++;
        var stats = slot.Stats;
        slot.Stats = null;
        var client = _inbound[slot.Inbound];
        if (client is null || client.PeerGone)
        {
            if (stats is not null)
            {
                Defer(stats, slot.Start, slot.RouteId, slot.ClientFrameId, slot.RequestBytes, 0, Outcome.ClientGone, 0);
            }

            return; // the client went away; its answer has nowhere to go
        }

        if (client.TryLoan(payload.Length, out var room))
        {
            payload.CopyTo(room);
            client.Commit(payload.Length, slot.RouteId, slot.ClientFrameId, FrameFlags.Response | (header.Flags & (FrameFlags.NoPayloadCrc | FrameFlags.Error)));
            if (stats is not null)
            {
                var error = (header.Flags & FrameFlags.Error) != 0;
                Defer(stats, slot.Start, slot.RouteId, slot.ClientFrameId, slot.RequestBytes, payload.Length, error ? Outcome.Error : Outcome.Ok, error ? ErrorCodeTable.Of(payload) : 0);
            }
        }
        else
        {
            ClientFull(client);
            if (stats is not null)
            {
                Defer(stats, slot.Start, slot.RouteId, slot.ClientFrameId, slot.RequestBytes, 0, Outcome.ClientFull, 0);
            }
        }
    }

    /// <summary>Stops the worker and closes every client lane (endpoint lanes belong to whoever made them).</summary>
    public void Dispose()
    {
        _runner?.Dispose();
        foreach (var lane in _inbound)
        {
            lane?.Dispose();
        }

        foreach (var (_, _, done) in _swaps)
        {
            done.TrySetCanceled();
        }

        _doorbell.Dispose();
        Telemetry?.Dispose();
    }
}
