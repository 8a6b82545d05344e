using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Fabric.Agents;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Routing;

namespace Rtt.Client.Lanes;

/// <summary>
/// A client process's lane to one route on the local silo: attached over the silo's control socket (it
/// receives the memfd of an SHM lane, or keeps a UDS/TCP connection). Requests go out as frames; responses
/// come back on a receive thread and complete <see cref="RequestAsync"/>, or reach the zero-copy
/// <c>onFrame</c> callback with a span over the ring.
/// <code>
/// using var lane = LaneClient.Attach(LaneClient.ControlSocketOf(workspace), "rtt://core/api/metrics");
/// byte[] answer = await lane.RequestAsync("ping"u8.ToArray());
/// </code>
/// </summary>
public sealed class LaneClient : IAgent, IDisposable
{
    private readonly IFrameLane _lane;
    private readonly FrameHandler? _onFrame;
    private readonly FrameHandler _receive;
    private readonly ConcurrentDictionary<uint, Pending> _pending = new();
    private readonly Lock _sendLock = new(); // a lane has one writer: concurrent callers take turns
    private readonly AgentRunner _runner;
    private readonly TaskCreationOptions _continuations;
    private uint _nextId;
    private volatile bool _closeOnExit;
    private long _nextExpiryScan;
    private int _rounds;

    private LaneClient(IFrameLane lane, uint routeId, FrameHandler? onFrame, bool inlineContinuations)
    {
        _lane = lane;
        RouteId = routeId;
        _onFrame = onFrame;
        _continuations = inlineContinuations ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously;
        _receive = OnFrame;
        // With continuations on the thread pool, the code that sends the next request needs a core: a receive thread that
        // spins long after each answer takes it (on 2 cores, with the lane host's worker spinning too, the continuation
        // then waits for a time slice, about 1 ms). Inline continuations run on this thread, so it may spin.
        _runner = new AgentRunner(this, new BackoffIdleStrategy(inlineContinuations ? 20_000 : 200, inlineContinuations ? 100 : 10, lane.WaitForData, TimeSpan.FromMilliseconds(50)), null, null,
            ex => Faulted?.Invoke(ex));
    }

    /// <summary>The silo's control socket for a workspace when <c>Lanes:ControlSocket</c> is not set (the same rule as the silo's).</summary>
    public static string ControlSocketOf(RttWorkspace workspace) => workspace.LaneControlSocket;

    /// <summary>
    /// Attaches over the Unix control socket: SHM or UDS, or (<paramref name="kind"/> null, the default) the kind the
    /// applied plan gives the route (SHM when it gives none). With <paramref name="inlineContinuations"/>,
    /// code awaiting <see cref="RequestAsync"/> resumes on the lane's receive thread (lowest latency, no thread
    /// hop; it must not block there); otherwise it resumes on the thread pool.
    /// </summary>
    public static LaneClient Attach(string controlSocket, string route, LaneKind? kind = null, FrameHandler? onFrame = null, LaneOptions? options = null, bool inlineContinuations = false,
        string? token = null)
    {
        var (lane, routeId) = LaneAttach.ConnectUnix(controlSocket, route, kind, options, token);
        return new LaneClient(lane, routeId, onFrame, inlineContinuations);
    }

    /// <summary>Attaches over TCP (the silo's <c>Lanes:TcpPort</c>).</summary>
    public static LaneClient AttachTcp(IPEndPoint silo, string route, FrameHandler? onFrame = null, LaneOptions? options = null, string? token = null)
    {
        var (lane, routeId) = LaneAttach.ConnectTcp(silo, route, options, token);
        return new LaneClient(lane, routeId, onFrame, inlineContinuations: false);
    }

    public uint RouteId { get; }

    public LaneKind Kind => _lane.Kind;

    public LaneCounters Counters => _lane.Counters;

    public bool Connected => !_lane.PeerGone;

    /// <summary>
    /// Told (on the receive thread) of a fault the receive loop caught, e.g. an <c>onFrame</c> callback that threw; the
    /// loop goes on. <see cref="Faults"/> counts them.
    /// </summary>
    public event Action<Exception>? Faulted;

    /// <summary>Faults the receive loop caught and went on from.</summary>
    public long Faults => _runner.Faults;

    string IAgent.Name => "lane-client";

    /// <summary>
    /// How long <see cref="RequestAsync(ReadOnlyMemory{byte}, CancellationToken)"/> waits for an answer before it
    /// fails with <c>RTT-LANE-006</c> (default 10 s; <see cref="Timeout.InfiniteTimeSpan"/>: no limit). Checked
    /// on the receive thread, so a request fails within about 0.1 s after its deadline.
    /// </summary>
    public TimeSpan RequestTimeout
    {
        get;
        set => field = value == Timeout.InfiniteTimeSpan || value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(value), "a positive time, or Timeout.InfiniteTimeSpan");
    } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Sends one request and completes with its response (a copy: the ring slot is released at once). Fails with
    /// <see cref="RttException"/> <c>RTT-LANE-005</c> when the service behind the route went away before answering
    /// (the lane host answers with an error frame), <c>RTT-LANE-006</c> after <see cref="RequestTimeout"/>, and is
    /// cancelled by <paramref name="cancellationToken"/>.
    /// </summary>
    public Task<byte[]> RequestAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) =>
        RequestAsync(payload, RequestTimeout, cancellationToken);

    /// <summary>As <see cref="RequestAsync(ReadOnlyMemory{byte}, CancellationToken)"/> with this request's own timeout.</summary>
    public Task<byte[]> RequestAsync(ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Request(payload, timeout, FrameFlags.None, cancellationToken);

    /// <summary>
    /// Asks the lane host whether the route's endpoint can take calls (the verify probe: answered by the lane host, never
    /// passed to the endpoint). Completes when it can; fails with the endpoint's reason (e.g. <c>RTT-MCP-003</c> for a
    /// drifted MCP tool) when it cannot.
    /// </summary>
    public Task ProbeAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        Request("RTTPROBE"u8.ToArray(), timeout, FrameFlags.Probe, cancellationToken);

    /// <summary>
    /// As <see cref="RequestAsync(ReadOnlyMemory{byte}, TimeSpan, CancellationToken)"/>, taking interim frames (fabric.md,
    /// "Interim frames"): the endpoint's messages while the call runs go to <paramref name="onInterim"/> (on the lane's
    /// receive thread, in order: hand them on, do not block) with the request's frame id, for <see cref="Reply"/>.
    /// </summary>
    public Task<byte[]> RequestAsync(ReadOnlyMemory<byte> payload, TimeSpan timeout, Action<uint, byte[]> onInterim, CancellationToken cancellationToken = default) =>
        Request(payload, timeout, FrameFlags.AcceptsInterim, cancellationToken, onInterim);

    /// <summary>Sends a reply inside a call in progress (an Interim request frame with the call's frame id). False when the lane is gone.</summary>
    public bool Reply(uint frameId, ReadOnlySpan<byte> payload)
    {
        lock (_sendLock)
        {
            return !_lane.PeerGone && _lane.Send(RouteId, frameId, payload, FrameFlags.Interim) && _lane.Flush();
        }
    }

    private Task<byte[]> Request(ReadOnlyMemory<byte> payload, TimeSpan timeout, FrameFlags flags, CancellationToken cancellationToken, Action<uint, byte[]>? onInterim = null)
    {
        if (timeout != Timeout.InfiniteTimeSpan && timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), "a positive time, or Timeout.InfiniteTimeSpan");
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<byte[]>(cancellationToken);
        }

        var done = new Pending(_continuations)
        {
            Deadline = timeout == Timeout.InfiniteTimeSpan ? long.MaxValue : Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency),
            OnInterim = onInterim,
        };
        // The caller's trace context (TraceParent.Outgoing: rtt call --traceparent, the MCP gateway's _meta.traceparent,
        // or Activity.Current) goes in front of the payload with the Traced flag; the lane host takes it off.
        if ((flags & FrameFlags.Probe) == 0 && TraceParent.Outgoing is { Present: true } trace)
        {
            var traced = new byte[TraceParent.Size + payload.Length];
            trace.Write(traced);
            payload.Span.CopyTo(traced.AsSpan(TraceParent.Size));
            payload = traced;
            flags |= FrameFlags.Traced;
        }

        uint id;
        lock (_sendLock)
        {
            id = _nextId++;
            _pending[id] = done;
            if (!_lane.Send(RouteId, id, payload.Span, flags) || !_lane.Flush())
            {
                _pending.TryRemove(id, out _);
                done.TrySetException(new IOException("the silo closed the lane"));
                return done.Task;
            }
        }

        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(static state =>
            {
                var (client, id, token) = ((LaneClient, uint, CancellationToken))state!;
                if (client._pending.TryRemove(id, out var t))
                {
                    t.TrySetCanceled(token);
                    client.Withdraw(id);
                }
            }, (this, id, cancellationToken));
            done.Track(registration);
        }

        return done.Task;
    }

    /// <summary>Tells the lane host the request is withdrawn (a Cancel frame): a driver call still in progress is cancelled upstream.</summary>
    private void Withdraw(uint id)
    {
        lock (_sendLock)
        {
            if (!_lane.PeerGone && _lane.Send(RouteId, id, [], FrameFlags.Cancel))
            {
                _lane.Flush();
            }
        }
    }

    /// <summary>Sends one frame without waiting for an answer; its response, if any, goes to the onFrame callback.</summary>
    public bool Send(ReadOnlySpan<byte> payload)
    {
        lock (_sendLock)
        {
            return _lane.Send(RouteId, _nextId++, payload) && _lane.Flush();
        }
    }

    int IAgent.DoWork()
    {
        var n = _lane.Poll(_receive);
        if (_lane.PeerGone)
        {
            Thread.Sleep(50); // a client whose silo went costs no CPU while its owner notices
            foreach (var id in _pending.Keys)
            {
                if (_pending.TryRemove(id, out var t))
                {
                    t.TrySetException(CloseReason ?? (Exception)new IOException("the silo closed the lane"));
                }
            }
        }

        if (n == 0 || (++_rounds & 4095) == 0)
        {
            ExpireOverdue();
        }

        return n;
    }

    /// <summary>Fails the requests whose deadline passed (at most every 50 ms; the receive thread parks at most 50 ms).</summary>
    private void ExpireOverdue()
    {
        var now = Stopwatch.GetTimestamp();
        if (now < _nextExpiryScan)
        {
            return;
        }

        _nextExpiryScan = now + Stopwatch.Frequency / 20;
        if (_pending.IsEmpty)
        {
            return;
        }

        foreach (var (id, request) in _pending)
        {
            if (request.Deadline <= now && _pending.TryRemove(id, out var expired))
            {
                expired.TrySetException(new RttException(ErrorCodes.LaneRequestTimeout, $"no answer on route {RouteId} within the request's timeout", $"lane {Kind} to route {RouteId}",
                    "check the service behind the route is running and answering; raise LaneClient.RequestTimeout for slow services"));
            }
        }
    }

    /// <summary>Why the lane host closed the lane, when it said (its token expired: RTT-TOKEN-019); null otherwise.</summary>
    public RttException? CloseReason { get; private set; }

    private void OnFrame(in FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.RouteId == 0 && header.FrameId == 0 && (header.Flags & FrameFlags.Error) != 0)
        {
            // The host's word before it closes the lane (route 0, frame 0: no request has those).
            var (code, message) = ErrorPayload.Decode(payload, ErrorCodes.LaneUpstreamGone);
            CloseReason = new RttException(code, message, $"lane {Kind} to route {RouteId}", "attach again (with a fresh token)");
            return;
        }

        if ((header.Flags & FrameFlags.Interim) != 0)
        {
            // A message inside a call in progress: to the request's handler; the request stays pending.
            if (_pending.TryGetValue(header.FrameId, out var running) && running.OnInterim is { } handler)
            {
                handler(header.FrameId, payload.ToArray());
            }

            return;
        }

        if (_pending.TryRemove(header.FrameId, out var done))
        {
            if ((header.Flags & FrameFlags.Error) != 0)
            {
                var (code, message) = ErrorPayload.Decode(payload, ErrorCodes.LaneUpstreamGone);
                done.TrySetException(new RttException(code, message, $"lane {Kind} to route {header.RouteId}", "start the service again; requests sent after it is back are served"));
            }
            else
            {
                done.TrySetResult(payload.ToArray());
            }
        }
        else
        {
            _onFrame?.Invoke(in header, payload);
        }
    }

    /// <summary>A request waiting for its answer: its deadline and its cancellation registration (released when it completes).</summary>
    private sealed class Pending(TaskCreationOptions options) : TaskCompletionSource<byte[]>(options)
    {
        private readonly Lock _gate = new();
        private CancellationTokenRegistration _registration;
        private bool _finished;

        public long Deadline { get; init; }

        public Action<uint, byte[]>? OnInterim { get; init; }

        public void Track(CancellationTokenRegistration registration)
        {
            lock (_gate)
            {
                if (!_finished)
                {
                    _registration = registration;
                    return;
                }
            }

            registration.Unregister(); // already answered
        }

        public new void TrySetResult(byte[] result)
        {
            Finish();
            base.TrySetResult(result);
        }

        public new void TrySetException(Exception exception)
        {
            Finish();
            base.TrySetException(exception);
        }

        private void Finish()
        {
            CancellationTokenRegistration registration;
            lock (_gate)
            {
                _finished = true;
                registration = _registration;
                _registration = default;
            }

            registration.Unregister(); // never waits for a running callback
        }
    }

    public void Dispose()
    {
        _runner.Dispose(); // the receive thread leaves the lane before it is unmapped
        if (_runner.IsCurrentThread)
        {
            _closeOnExit = true; // disposed from an inline continuation: the receive loop is still inside the lane
        }
        else
        {
            _lane.Dispose();
        }
    }

    void IAgent.OnClose()
    {
        if (_closeOnExit)
        {
            _lane.Dispose();
        }
    }
}
