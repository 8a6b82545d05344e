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

/// <summary>The per-frame path: requests to drivers and upstream lanes, answers, interim messages, errors, telemetry.</summary>
public sealed partial class LaneHost
{
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
            _probesAnswered++;
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
}
