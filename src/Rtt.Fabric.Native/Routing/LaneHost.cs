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
public sealed partial class LaneHost : IAgent, IDisposable
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

    /// <summary>Times frames (work) sent the idle worker back to spinning; commands such as a swap do not (tests).</summary>
    internal long BackoffRestarts => _idle is HostIdle idle ? Volatile.Read(ref idle.Restarts) : 0;

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
        _probesAnswered = 0;
        while (_commands.TryDequeue(out var command))
        {
            command(); // not counted as work: a command (a swap, an attach) says nothing about frames to come, so the worker
                       // does not start its idle backoff again for it (spinning a core the control plane then lacks)
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
            work += _swaps.Count; // a swap still draining keeps the worker polling until it completes
        }

        // Probe frames (verify's, the health checks') are answered but not counted: like a command, a probe says nothing
        // about frames to come, so it does not send the worker back to spinning (a core the control plane then lacks).
        return work - _probesAnswered;
    }

    /// <summary>Probe frames answered in this round of <see cref="DoWork"/>.</summary>
    private int _probesAnswered;

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

    private static readonly byte[] BadTracePayload = ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.LaneTraceInvalid, "the request has the Traced flag but its payload does not start with a trace context (26 bytes: version 0, a trace id and a parent id not all zeros, flags)");

    private static readonly byte[] UnknownRoutePayload = ErrorPayload.Encode(Rtt.Core.Errors.ErrorCodes.LaneRouteUnknown, "this lane host serves no route with that id (it was never planned or has been removed)");

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
