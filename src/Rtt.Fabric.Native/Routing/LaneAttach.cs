using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Rtt.Core.Errors;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Fabric.Routing;

/// <summary>
/// The attach protocol on a lane host's control socket. The client sends
/// <c>"RTTQ" u8 version u8 kind u16 name_len name(utf-8)</c>; the host answers <c>"RTTR" i32 status u32 route_id</c>
/// (status 0 ok, 1 unknown route, 2 lane kind not offered here, 3 a route name shared by several routes: attach by id or
/// "from -> to"). Then, for SHM, the host sends the segment's fd
/// (see <see cref="ShmLane"/>) and the socket stays open as the liveness signal; for UDS and TCP the same socket
/// carries the frames from then on.
/// </summary>
public static class LaneAttach
{
    public const uint RequestMagic = 0x51545452; // "RTTQ"
    public const uint ReplyMagic = 0x52545452;   // "RTTR"
    /// <summary>
    /// Version 2 answers with the lane kind it attached (16-byte reply) and takes <see cref="PlannedKind"/>; a version 1
    /// request (12-byte reply, an explicit kind) is still answered.
    /// </summary>
    public const int Version = 2;

    /// <summary>
    /// Version 3 adds a capability token after the name (<c>u16 token_len token(ascii)</c>, docs/tokens.md); a refusal is
    /// status 4 followed by <c>u16 len</c> and <c>"RTT-TOKEN-NNN message"</c> (utf-8). A client without a token sends version 2.
    /// </summary>
    public const int TokenVersion = 3;

    /// <summary>Reply status: the attach was refused by the host's admission (token missing, invalid or not allowing the route).</summary>
    public const int StatusRefused = 4;

    /// <summary>The kind byte of a request that asks for the kind the plan gives the route (SHM when it gives none).</summary>
    public const byte PlannedKind = 0xFF;

    /// <summary>
    /// Client side over the host's Unix control socket: an SHM or UDS lane for <paramref name="route"/>; with
    /// <paramref name="kind"/> null, the kind the applied plan gives the route (SHM when it gives none, or TCP).
    /// </summary>
    public static (IFrameLane Lane, uint RouteId) ConnectUnix(string controlPath, string route, LaneKind? kind = LaneKind.Shm, LaneOptions? options = null, string? token = null)
    {
        if (kind == LaneKind.Tcp)
        {
            throw new ArgumentException("TCP lanes attach with ConnectTcp", nameof(kind));
        }

        return Handshake(LaneSockets.ConnectUnix(controlPath), route, kind, options ?? new LaneOptions(), controlPath, token);
    }

    /// <summary>Client side over TCP (another host): the connection becomes the lane.</summary>
    public static (IFrameLane Lane, uint RouteId) ConnectTcp(IPEndPoint host, string route, LaneOptions? options = null, string? token = null) =>
        Handshake(LaneSockets.ConnectTcp(host), route, LaneKind.Tcp, options ?? new LaneOptions(), host.ToString(), token);

    private static (IFrameLane, uint) Handshake(Socket socket, string route, LaneKind? asked, LaneOptions options, string where, string? token)
    {
        try
        {
            var name = Encoding.UTF8.GetBytes(route);
            var tokenBytes = token is null ? [] : Encoding.ASCII.GetBytes(token);
            if (tokenBytes.Length > Core.Tokens.CapabilityToken.MaxChars)
            {
                throw new Core.Tokens.TokenException(ErrorCodes.TokenTooLarge, $"the token is {tokenBytes.Length} characters (at most {Core.Tokens.CapabilityToken.MaxChars})", where, "use the token as rtt made it");
            }

            var request = new byte[8 + name.Length + (token is null ? 0 : 2 + tokenBytes.Length)];
            BinaryPrimitives.WriteUInt32LittleEndian(request, RequestMagic);
            request[4] = token is null ? (byte)Version : (byte)TokenVersion;
            request[5] = asked is { } k ? (byte)k : PlannedKind;
            BinaryPrimitives.WriteUInt16LittleEndian(request.AsSpan(6), (ushort)name.Length);
            name.CopyTo(request, 8);
            if (token is not null)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(request.AsSpan(8 + name.Length), (ushort)tokenBytes.Length);
                tokenBytes.CopyTo(request, 10 + name.Length);
            }

            socket.Send(request);

            Span<byte> reply = stackalloc byte[16];
            socket.ReceiveTimeout = 10_000;
            FdPassing.ReadExactly(socket, reply);
            socket.ReceiveTimeout = 0;
            var status = BinaryPrimitives.ReadInt32LittleEndian(reply[4..]);
            if (BinaryPrimitives.ReadUInt32LittleEndian(reply) != ReplyMagic)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, "the lane host answered with another protocol", where, "check the silo and the client run the same rtt version");
            }

            if (status == 1)
            {
                throw new RttException(ErrorCodes.LaneRouteUnknown, $"no lane serves route \"{route}\" here", where, "list the node's routes (rtt up --once shows them) or check routes.json");
            }

            if (status == StatusRefused)
            {
                var (code, message) = (ErrorCodes.TokenMissing, "the lane host requires a capability token for this attach");
                if (token is not null)
                {
                    Span<byte> len = stackalloc byte[2];
                    FdPassing.ReadExactly(socket, len);
                    var text = new byte[BinaryPrimitives.ReadUInt16LittleEndian(len)];
                    FdPassing.ReadExactly(socket, text);
                    (code, message) = Frames.ErrorPayload.Decode(text, ErrorCodes.TokenMissing);
                }

                throw new Core.Tokens.TokenException(code, $"attach to \"{route}\" refused: {message}", where, "see docs/errors.md for the code; `rtt token inspect` shows what a token allows");
            }

            if (status == 3)
            {
                throw new RttException(ErrorCodes.LaneRouteUnknown, $"\"{route}\" names several routes here (routes from different callers to the same symbol)", where,
                    "attach by route id (decimal) or by \"from -> to\"");
            }

            if (status != 0)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, $"the lane host does not offer {asked?.ToString() ?? "the planned"} lanes here", where, "attach with another lane kind");
            }

            var routeId = BinaryPrimitives.ReadUInt32LittleEndian(reply[8..]);
            var kind = (LaneKind)BinaryPrimitives.ReadInt32LittleEndian(reply[12..]);
            if (kind is not (LaneKind.Shm or LaneKind.Uds or LaneKind.Tcp) || (asked is { } a && a != kind))
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, $"the lane host attached a lane of another kind ({(int)kind})", where, "check the silo and the client run the same rtt version");
            }

            IFrameLane lane = kind == LaneKind.Shm ? ShmLane.Attach(socket, options) : new StreamLane(socket, kind, options);
            return (lane, routeId);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RttException(ErrorCodes.LaneAttachFailed, $"attach failed: {ex.Message}", where, "check the silo is running (rtt up)", ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Host side: reads an attach request and answers it; returns the lane, or null when refused.</summary>
    public static IFrameLane? Accept(Socket socket, Func<string, uint?> resolve, LaneOptions options) => Accept(socket, resolve, options, null);

    /// <summary>As <see cref="Accept(Socket, Func{string, uint?}, LaneOptions)"/>; an SHM client also gets <paramref name="doorbell"/> to wake the host with.</summary>
    public static IFrameLane? Accept(Socket socket, Func<string, uint?> resolve, LaneOptions options, LaneDoorbell? doorbell) =>
        Accept(socket, resolve, options, doorbell, TimeSpan.FromSeconds(10));

    /// <summary>As above; every read of the handshake must complete within <paramref name="handshakeTimeout"/> (a silent peer is dropped).</summary>
    public static IFrameLane? Accept(Socket socket, Func<string, uint?> resolve, LaneOptions options, LaneDoorbell? doorbell, TimeSpan handshakeTimeout) =>
        Accept(socket, resolve, null, options, doorbell, handshakeTimeout);

    /// <summary>
    /// As above, with the lane the plan gives each route (<paramref name="planOf"/>, by route id): a client asking for
    /// the planned kind gets it when this socket offers it (SHM or UDS on a Unix socket, TCP on TCP; else SHM, or TCP),
    /// and an SHM lane's rings get the planned capacity.
    /// </summary>
    public static IFrameLane? Accept(Socket socket, Func<string, uint?> resolve, Func<uint, LanePlan?>? planOf, LaneOptions options, LaneDoorbell? doorbell, TimeSpan handshakeTimeout) =>
        Accept(socket, resolve, planOf, options, doorbell, handshakeTimeout, null, out _);

    /// <summary>
    /// As above, with <paramref name="admit"/> deciding each attach of a known route from its id and the token the client
    /// presented (null for a version 1/2 request): it returns the token's grant (null: none) or throws an RttException,
    /// which the client receives as status 4 with the code and message (version 3; version 1/2 get status 4 alone).
    /// </summary>
    public static IFrameLane? Accept(Socket socket, Func<string, uint?> resolve, Func<uint, LanePlan?>? planOf, LaneOptions options, LaneDoorbell? doorbell, TimeSpan handshakeTimeout,
        Func<uint, string?, LaneGrant?>? admit, out LaneGrant? grant)
    {
        grant = null;
        Span<byte> head = stackalloc byte[8];
        socket.ReceiveTimeout = (int)Math.Max(1, handshakeTimeout.TotalMilliseconds);
        FdPassing.ReadExactly(socket, head);
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != RequestMagic || head[4] is not (1 or Version or TokenVersion) || (head[4] == 1 && head[5] == PlannedKind))
        {
            socket.Dispose();
            return null;
        }

        var version = head[4];
        var name = new byte[BinaryPrimitives.ReadUInt16LittleEndian(head[6..])];
        FdPassing.ReadExactly(socket, name);
        string? token = null;
        if (version == TokenVersion)
        {
            Span<byte> len = stackalloc byte[2];
            FdPassing.ReadExactly(socket, len);
            var length = BinaryPrimitives.ReadUInt16LittleEndian(len);
            if (length > Core.Tokens.CapabilityToken.MaxChars)
            {
                socket.Dispose(); // never read more than a token can be
                return null;
            }

            var bytes = new byte[length];
            FdPassing.ReadExactly(socket, bytes);
            token = Encoding.ASCII.GetString(bytes);
        }

        socket.ReceiveTimeout = 0;
        var routeId = resolve(Encoding.UTF8.GetString(name));
        var isUnix = socket.AddressFamily == AddressFamily.Unix;
        var plan = routeId is { } id and not 0 ? planOf?.Invoke(id) : null;
        var kind = head[5] != PlannedKind ? (LaneKind)head[5]
            : !isUnix ? LaneKind.Tcp
            : plan?.Kind is LaneKind.Uds ? LaneKind.Uds
            : LaneKind.Shm;
        var offered = isUnix ? kind is LaneKind.Shm or LaneKind.Uds : kind == LaneKind.Tcp;
        Span<byte> reply = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, ReplyMagic);
        if (admit is not null && routeId is { } admitted and not 0 && offered)
        {
            try
            {
                grant = admit(admitted, token);
            }
            catch (RttException ex)
            {
                BinaryPrimitives.WriteInt32LittleEndian(reply[4..], StatusRefused);
                BinaryPrimitives.WriteUInt32LittleEndian(reply[8..], 0);
                BinaryPrimitives.WriteInt32LittleEndian(reply[12..], (int)kind);
                socket.Send(version == 1 ? reply[..12] : reply);
                if (version == TokenVersion)
                {
                    var text = Frames.ErrorPayload.Encode(ex.Code, ex.Message.Length > 1000 ? ex.Message[..1000] : ex.Message);
                    var framed = new byte[2 + text.Length];
                    BinaryPrimitives.WriteUInt16LittleEndian(framed, (ushort)text.Length);
                    text.CopyTo(framed, 2);
                    socket.Send(framed);
                }

                socket.Dispose();
                throw;
            }
        }

        BinaryPrimitives.WriteInt32LittleEndian(reply[4..], routeId is null ? 1 : routeId == 0 ? 3 : offered ? 0 : 2);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[8..], routeId ?? 0);
        BinaryPrimitives.WriteInt32LittleEndian(reply[12..], (int)kind);
        socket.Send(version == 1 ? reply[..12] : reply);
        if (routeId is null or 0 || !offered)
        {
            socket.Dispose();
            return null;
        }

        if (kind == LaneKind.Shm)
        {
            var shm = plan is { RingCapacity: var capacity } && capacity > options.RingCapacity ? options with { RingCapacity = capacity } : options;
            return ShmLane.Accept(socket, shm, doorbell, handshakeTimeout);
        }

        return new StreamLane(socket, kind, options);
    }
}

/// <summary>
/// Accepts clients on a lane host's control socket (Unix, and TCP if configured) and attaches their lanes. Each
/// handshake runs on its own short-lived thread with a deadline (<see cref="HandshakeTimeout"/>), so silent peers never
/// hold up the accept loop or the thread pool; at most <see cref="MaxPendingHandshakes"/> run at once and at most
/// <see cref="MaxClients"/> lanes are attached: connections beyond either are closed at once and counted.
/// </summary>
public sealed class LaneHostListener : IDisposable
{
    private readonly LaneHost _host;
    private readonly LaneOptions _options;
    private readonly List<Socket> _listeners = [];
    private readonly List<Thread> _threads = [];
    private volatile bool _stopping;
    private int _pending;
    private long _refused;
    private long _failures;
    private long _lastRefusalReport;

    public LaneHostListener(LaneHost host, LaneOptions options, string? unixPath, IPEndPoint? tcp = null, int maxClients = 1024, int maxPendingHandshakes = 64, TimeSpan? handshakeTimeout = null,
        LaneAdmission? admission = null)
    {
        _host = host;
        Admission = admission;
        _options = options with { Backpressure = BackpressurePolicy.Fail }; // the host's side of a lane never waits for its peer
        MaxClients = maxClients;
        MaxPendingHandshakes = maxPendingHandshakes;
        HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(2);
        if (unixPath is not null)
        {
            _listeners.Add(LaneSockets.ListenUnix(unixPath, backlog: 128));
            UnixPath = unixPath;
        }

        if (tcp is not null)
        {
            var listener = LaneSockets.ListenTcp(tcp.Address, tcp.Port);
            _listeners.Add(listener);
            TcpEndPoint = (IPEndPoint)listener.LocalEndPoint!;
        }

        foreach (var listener in _listeners)
        {
            var thread = new Thread(() => AcceptLoop(listener)) { IsBackground = true, Name = "rtt-lane-accept" };
            _threads.Add(thread);
            thread.Start();
        }
    }

    public string? UnixPath { get; }

    /// <summary>Who may attach (tokens, dev/strict); null admits every peer that reaches the socket (tests, benches).</summary>
    public LaneAdmission? Admission { get; }

    /// <summary>Attaches refused by <see cref="Admission"/> (each also reported, at most once a second).</summary>
    public long RefusedAttaches => Interlocked.Read(ref _refusedAttaches);

    private long _refusedAttaches;

    public IPEndPoint? TcpEndPoint { get; }

    /// <summary>Lanes attached at most (each holds descriptors and, for SHM, a segment).</summary>
    public int MaxClients { get; }

    /// <summary>Handshakes in progress at most.</summary>
    public int MaxPendingHandshakes { get; }

    /// <summary>A peer that does not complete its handshake within this time is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; }

    /// <summary>Attach failures (a client that died or stayed silent mid-handshake); the listener carries on.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Connections closed at once because of <see cref="MaxClients"/> or <see cref="MaxPendingHandshakes"/>.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    private void AcceptLoop(Socket listener)
    {
        while (!_stopping)
        {
            Socket client;
            try
            {
                client = listener.Accept();
            }
            catch (Exception) when (_stopping)
            {
                return;
            }
            catch (SocketException ex)
            {
                if (ex.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
                {
                    Refuse(null, $"out of descriptors ({ex.Message})");
                    Thread.Sleep(50); // the process is at its descriptor limit: do not spin on it
                }

                continue;
            }

            if (Volatile.Read(ref _pending) >= MaxPendingHandshakes)
            {
                Refuse(client, $"{MaxPendingHandshakes} handshakes already in progress");
                continue;
            }

            if (_host.InboundCount + Volatile.Read(ref _pending) >= MaxClients)
            {
                Refuse(client, $"{MaxClients} lanes attached already");
                continue;
            }

            Interlocked.Increment(ref _pending);
            try
            {
                new Thread(() => Handshake(client)) { IsBackground = true, Name = "rtt-lane-handshake" }.Start();
            }
            catch (OutOfMemoryException)
            {
                Interlocked.Decrement(ref _pending);
                Refuse(client, "no thread for the handshake");
            }
        }
    }

    private void Handshake(Socket client)
    {
        var pending = true;
        try
        {
            if (Telemetry.TelemetryProtocol.IsRequest(client, HandshakeTimeout))
            {
                // rtt metrics / tap / top: answered on this thread, which a follow keeps; it no longer counts as a handshake.
                Interlocked.Decrement(ref _pending);
                pending = false;
                if (Interlocked.Increment(ref _telemetrySessions) > MaxTelemetrySessions)
                {
                    client.Dispose();
                    return;
                }

                try
                {
                    Telemetry.TelemetryProtocol.Serve(client, _host.Telemetry, () => _stopping, HandshakeTimeout);
                }
                finally
                {
                    Interlocked.Decrement(ref _telemetrySessions);
                }

                return;
            }

            LaneGrant? grant;
            IFrameLane? lane;
            try
            {
                lane = LaneAttach.Accept(client, Resolve, PlanOf, _options, _host.Doorbell, HandshakeTimeout,
                    Admission is { } admission ? (id, token) => admission.Admit(SymbolOf(id), token, client) : null, out grant);
            }
            catch (RttException ex)
            {
                // Refused by admission: the client was told why; the log says which code, never the token.
                var refused = Interlocked.Increment(ref _refusedAttaches);
                var now = Environment.TickCount64;
                var last = Interlocked.Read(ref _lastRefusalReport);
                if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastRefusalReport, now, last) == last)
                {
                    _host.Report?.Invoke($"lane attach refused: {ex.Code}: {ex.Message} ({refused} refused so far)");
                }

                return;
            }

            if (lane is not null)
            {
                _host.AttachAsync(lane, grant?.Expires, grant?.Saddr).Wait();
            }
        }
        catch (Exception)
        {
            Interlocked.Increment(ref _failures);
            client.Dispose();
        }
        finally
        {
            if (pending)
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    /// <summary>Telemetry readers (rtt metrics, tap, top) served at once at most; more are closed.</summary>
    public const int MaxTelemetrySessions = 16;

    private int _telemetrySessions;

    private void Refuse(Socket? client, string why)
    {
        client?.Dispose();
        var refused = Interlocked.Increment(ref _refused);
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastRefusalReport);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastRefusalReport, now, last) == last)
        {
            _host.Report?.Invoke($"lane connections refused: {why} ({refused} refused so far)");
        }
    }

    /// <summary>The target symbol of a route of the current table (what a token's saddr must cover).</summary>
    private string SymbolOf(uint routeId)
    {
        var routes = _host.Routes;
        var i = routes.IndexOf(routeId);
        return i < 0 ? routeId.ToString(System.Globalization.CultureInfo.InvariantCulture) : routes.Routes[i].Name;
    }

    /// <summary>The lane the plan gives a route of the current table, if any.</summary>
    private LanePlan? PlanOf(uint routeId)
    {
        var routes = _host.Routes;
        var i = routes.IndexOf(routeId);
        return i < 0 ? null : routes.Routes[i].Lane;
    }

    /// <summary>
    /// A route by its id in decimal, its key "from -> to", or its name (the target symbol) when only one route has it.
    /// 0 when the name is ambiguous (A -> X and B -> X): the client is told to attach by id or key.
    /// </summary>
    private uint? Resolve(string route)
    {
        uint? byName = null;
        var named = 0;
        foreach (var r in _host.Routes.Routes)
        {
            if (r.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture) == route || (r.From is not null && $"{r.From} -> {r.Name}" == route))
            {
                return r.RouteId;
            }

            if (r.Name == route)
            {
                byName = r.RouteId;
                named++;
            }
        }

        return named > 1 ? 0 : byName;
    }

    public void Dispose()
    {
        _stopping = true;
        foreach (var listener in _listeners)
        {
            try
            {
                listener.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }

            listener.Dispose();
        }

        foreach (var thread in _threads)
        {
            thread.Join(TimeSpan.FromSeconds(5));
        }

        if (UnixPath is not null && File.Exists(UnixPath))
        {
            File.Delete(UnixPath);
        }
    }
}
