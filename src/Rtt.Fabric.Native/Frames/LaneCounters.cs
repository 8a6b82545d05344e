namespace Rtt.Fabric.Frames;

/// <summary>
/// A lane's counters. Each field has one writer (the lane's reader or writer thread), so plain
/// increments suffice; other threads read them with Volatile for reports.
/// </summary>
public sealed class LaneCounters
{
    private long _sent;
    private long _received;
    private long _full;
    private long _badMagic;
    private long _tooLong;
    private long _badCrc;
    private long _truncated;
    private long _unknownRoute;
    private long _endpointBusy;
    private long _driverFault;
    private long _clientFull;
    private long _stalls;

    public long Sent => Volatile.Read(ref _sent);

    public long Received => Volatile.Read(ref _received);

    /// <summary>Times a writer found the ring (or socket buffer) full.</summary>
    public long Full => Volatile.Read(ref _full);

    public long BadMagic => Volatile.Read(ref _badMagic);

    public long TooLong => Volatile.Read(ref _tooLong);

    public long BadCrc => Volatile.Read(ref _badCrc);

    public long Truncated => Volatile.Read(ref _truncated);

    public long UnknownRoute => Volatile.Read(ref _unknownRoute);

    /// <summary>Requests refused because their endpoint's queue was full (answered with RTT-CALL-005).</summary>
    public long EndpointBusy => Volatile.Read(ref _endpointBusy);

    /// <summary>Requests whose driver threw (answered with RTT-CALL-004).</summary>
    public long DriverFault => Volatile.Read(ref _driverFault);

    /// <summary>Answers dropped because this lane stayed full (its reader stopped reading).</summary>
    public long ClientFull => Volatile.Read(ref _clientFull);

    /// <summary>Lane host rounds that skipped this lane's requests because its answers would not fit (the reader is behind).</summary>
    public long Stalls => Volatile.Read(ref _stalls);

    public long Dropped => BadMagic + TooLong + BadCrc + Truncated + UnknownRoute + EndpointBusy + DriverFault + ClientFull;

    internal void OnStall() => _stalls++;

    internal void OnSent() => _sent++;

    internal void OnReceived() => _received++;

    internal void OnFull() => _full++;

    public void OnDrop(DropReason reason)
    {
        switch (reason)
        {
            case DropReason.BadMagic: _badMagic++; break;
            case DropReason.TooLong: _tooLong++; break;
            case DropReason.BadCrc: _badCrc++; break;
            case DropReason.Truncated: _truncated++; break;
            case DropReason.UnknownRoute: Interlocked.Increment(ref _unknownRoute); break; // counted by the router, maybe another thread
            case DropReason.EndpointBusy: Interlocked.Increment(ref _endpointBusy); break;
            case DropReason.DriverFault: Interlocked.Increment(ref _driverFault); break;
            case DropReason.ClientFull: _clientFull++; break;
            case DropReason.RingCorrupt: _truncated++; break; // counted with the broken framing it is
            default: break;
        }
    }

    public override string ToString() =>
        $"sent {Sent}, received {Received}, full {Full}, dropped {Dropped} (magic {BadMagic}, too long {TooLong}, crc {BadCrc}, truncated {Truncated}, route {UnknownRoute}, busy {EndpointBusy}, fault {DriverFault}, client full {ClientFull}; stalls {Stalls})";
}
