using System.Collections.Frozen;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;

namespace Rtt.Fabric.Routing;

/// <summary>Where a route's requests go: a driver in this process, or another process over a lane.</summary>
public abstract class Endpoint(string name)
{
    public string Name { get; } = name;

    /// <summary>Requests handed to this endpoint.</summary>
    public long Requests { get; internal set; }

    /// <summary>Responses it gave back.</summary>
    public long Responses { get; internal set; }

    /// <summary>Requests sent on and not yet answered (always 0 for a driver).</summary>
    public long InFlight => Requests - Responses;

    public override string ToString() => $"{Name} ({Requests} requests, {Responses} responses)";
}

/// <summary>A driver called on the lane worker thread; answers at once.</summary>
public sealed class DriverEndpoint(ILaneDriver driver) : Endpoint(driver.Name)
{
    public ILaneDriver Driver { get; } = driver;
}

/// <summary>
/// A service in another process reached over a lane (the host forwards requests and relays responses,
/// matching them by its own frame ids). The lane worker is the only thread that touches the lane.
/// </summary>
public sealed class LaneEndpoint(string name, IFrameLane upstream, uint? upstreamRouteId = null, int window = 4096) : Endpoint(name)
{
    /// <summary>The route id the service behind the lane expects (null: the client's route id unchanged).</summary>
    public uint? UpstreamRouteId { get; } = upstreamRouteId;

    internal readonly PendingRequest[] Pending = new PendingRequest[window]; // by upstream frame id & mask; allocated once
    internal uint NextId;

    /// <summary>Requests answered by the host with an error frame because the service went away (counted on the worker).</summary>
    internal long Failed;

    private byte[]? _gone;
    private byte[]? _busy;
    private byte[]? _malformed;

    /// <summary>The service sent a malformed frame; the host closed its lane (worker thread only).</summary>
    internal bool Malformed;

    internal byte[] MalformedPayload => _malformed ??= ErrorPayload.Encode(Core.Errors.ErrorCodes.LaneUpstreamGone,
        $"the service behind endpoint \"{Name}\" sent a malformed frame; the lane host closed its lane before it answered");

    /// <summary>Requests refused because the window of requests in flight or the service's lane was full.</summary>
    public long Busy { get; internal set; }

    /// <summary>The error payload for a request refused because the service is not keeping up (built on first use).</summary>
    internal byte[] BusyPayload => _busy ??= ErrorPayload.Encode(Core.Errors.ErrorCodes.DriverBusy,
        $"the service behind endpoint \"{Name}\" is not keeping up (its lane or its {Pending.Length} requests in flight are full); try again");

    /// <summary>The error payload sent in place of an answer once the service is gone (built on first use).</summary>
    internal byte[] GonePayload => _gone ??= ErrorPayload.Encode(Core.Errors.ErrorCodes.LaneUpstreamGone,
        $"the service behind endpoint \"{Name}\" went away (its lane closed) before answering");

    public IFrameLane Upstream { get; } = upstream;

    /// <summary>Requests that may be in flight to the service at once (a power of two).</summary>
    public int Window => Pending.Length;

    internal int Mask => Pending.Length - 1;
}

internal struct PendingRequest
{
    public int Inbound;       // index of the client lane in the host's inbound array
    public uint ClientFrameId;
    public uint RouteId;
    public bool Used;
    public int RequestBytes;
    public long Start;                       // Stopwatch ticks when the worker read the request (telemetry on)
    public Telemetry.RouteStats? Stats;      // the route's stats (telemetry on), kept across a swap
}

/// <summary>
/// One route of the table: its id, its name (the target symbol), where it goes, and (planned routes) its caller and the
/// lane the plan gives it.
/// </summary>
public sealed record RouteEntry(uint RouteId, string Name, Endpoint Endpoint, string? From = null, LanePlan? Lane = null);

/// <summary>
/// The lane a signed plan gives a route: the kind a client that asks for "the planned kind" gets, and the bytes of each
/// SHM ring the host creates for it.
/// </summary>
public sealed record LanePlan(LaneKind Kind, int RingCapacity)
{
    /// <summary>Bytes per planned frame slot: a plan's <c>ring_size</c> (frames) times this is the ring's capacity.</summary>
    public const int SlotBytes = 4096;

    /// <summary>The largest ring a plan can ask for.</summary>
    public const int MaxRingCapacity = 64 << 20;

    /// <summary>
    /// From a plan's lane: kind <c>shm</c>/<c>uds</c>/<c>tcp</c> and <c>ring_size</c> in frames. The ring holds
    /// <c>ring_size</c> × 4 KiB rounded up to a power of two, at least <paramref name="minCapacity"/> (room for the
    /// largest frame) and at most 64 MiB; 256 frames give the 1 MiB default.
    /// </summary>
    public static LanePlan? Of(string? kind, int? ringSize, int minCapacity)
    {
        LaneKind? parsed = kind switch { "shm" => LaneKind.Shm, "uds" => LaneKind.Uds, "tcp" => LaneKind.Tcp, _ => null };
        if (parsed is null)
        {
            return null;
        }

        var capacity = (long)Math.Max(1, ringSize ?? 256) * SlotBytes;
        capacity = Math.Clamp((long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)capacity), minCapacity, MaxRingCapacity);
        return new LanePlan(parsed.Value, (int)capacity);
    }
}

/// <summary>An immutable route table: route_id -> endpoint. Replaced whole, never changed in place.</summary>
public sealed class RouteTable
{
    private const uint MaxDenseId = 1 << 16;
    private readonly int[] _byId; // dense by route id: the route's index in Routes + 1 (0: none), one bounds-checked load per frame
    private readonly FrozenDictionary<uint, int>? _sparse; // ids beyond MaxDenseId (hashed ids of planned routes) -> index
    private readonly Endpoint[] _endpoints; // by index in Routes

    public RouteTable(IEnumerable<RouteEntry> routes)
    {
        Routes = routes.OrderBy(r => r.RouteId).ToArray();
        _endpoints = [.. Routes.Select(r => r.Endpoint)];
        var dense = Routes.Where(r => r.RouteId < MaxDenseId).ToList();
        _byId = new int[dense.Count == 0 ? 1 : (int)dense.Max(r => r.RouteId) + 1];
        for (var i = 0; i < Routes.Count; i++)
        {
            var r = Routes[i];
            if (r.RouteId >= MaxDenseId)
            {
                continue;
            }

            if (_byId[r.RouteId] != 0)
            {
                throw new ArgumentException($"route id {r.RouteId} appears twice", nameof(routes));
            }

            _byId[r.RouteId] = i + 1;
        }

        var sparse = Enumerable.Range(0, Routes.Count).Where(i => Routes[i].RouteId >= MaxDenseId).ToList();
        if (sparse.Count > 0)
        {
            if (sparse.DistinctBy(i => Routes[i].RouteId).Count() != sparse.Count)
            {
                throw new ArgumentException("a route id appears twice", nameof(routes));
            }

            _sparse = sparse.ToFrozenDictionary(i => Routes[i].RouteId, i => i);
        }
    }

    public static RouteTable Empty { get; } = new([]);

    public IReadOnlyList<RouteEntry> Routes { get; }

    public Endpoint? Find(uint routeId)
    {
        var i = IndexOf(routeId);
        return i < 0 ? null : _endpoints[i];
    }

    /// <summary>The route's index in <see cref="Routes"/>, or -1.</summary>
    public int IndexOf(uint routeId) =>
        routeId < (uint)_byId.Length ? _byId[routeId] - 1 : _sparse is not null && _sparse.TryGetValue(routeId, out var i) ? i : -1;

    /// <summary>The endpoint of the route at <paramref name="index"/> (from <see cref="IndexOf"/>).</summary>
    public Endpoint EndpointAt(int index) => _endpoints[index];

    public RouteTable With(RouteEntry entry) => new(Routes.Where(r => r.RouteId != entry.RouteId).Append(entry));

    public RouteTable Without(uint routeId) => new(Routes.Where(r => r.RouteId != routeId));
}
