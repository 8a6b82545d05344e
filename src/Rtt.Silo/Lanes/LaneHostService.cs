using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Core.Errors;
using Rtt.Core.Lanes;
using Rtt.Core.Workspace;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Routing;
using Rtt.Grains.Nodes;
using Rtt.Silo.Endpoints;
using System.Text.Json.Nodes;

namespace Rtt.Silo.Lanes;

/// <summary>The <c>Lanes</c> configuration section.</summary>
public sealed class RttLaneOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>The Unix control socket clients attach on; default <c>.rtt/state/lanes.sock</c>.</summary>
    public string? ControlSocket { get; set; }

    /// <summary>Also accept TCP lanes on <see cref="TcpAddress"/>:PORT (0: no TCP listener).</summary>
    public int TcpPort { get; set; }

    /// <summary>
    /// The address the TCP listener binds (default 127.0.0.1: this host only). In a cluster that spans hosts, the
    /// address the other hosts reach this one on (or 0.0.0.0), so their lane hosts can forward routes to this node.
    /// </summary>
    public string TcpAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// What this node publishes as its TCP lane address (<c>host:port</c>) for other hosts' lane hosts; default the bound
    /// address and port (the machine's host name when bound to 0.0.0.0 or ::).
    /// </summary>
    public string? TcpAdvertise { get; set; }

    public int RingCapacity { get; set; } = LaneDefaults.RingCapacity;

    public int MaxPayload { get; set; } = LaneDefaults.MaxPayload;

    /// <summary>CPUs the lane worker thread is pinned to (empty: not pinned).</summary>
    public List<int> Cpus { get; set; } = [];

    /// <summary>Per-route metrics, circuit breakers and the flight recorder (docs/observability.md).</summary>
    public bool Telemetry { get; set; } = true;

    /// <summary>Requests the flight recorder keeps (a power of two; 40 bytes each).</summary>
    public int FlightRecords { get; set; } = Fabric.Telemetry.FlightRecorder.DefaultCapacity;
}

/// <summary>
/// The silo's lane host: one per node, owning all its lanes. Starts a <see cref="LaneHost"/> worker thread
/// (outside any grain turn), serves the workspace's routes, and accepts client attachments on the control
/// socket. Grains drive it through <see cref="INodeLaneHost"/>; no frame ever enters the actor scheduler.
/// </summary>
public sealed class LaneHostService(RttWorkspace workspace, RttLaneOptions options, ILogger<LaneHostService> logger, string nodeId = "node0", LaneAdmission? admission = null)
    : IHostedService, INodeLaneHost, IDisposable, IAsyncDisposable
{
    private static readonly DriverEndpoint Echo = new(new EchoDriver());

    private LaneHost? _host;
    private int _ringCapacity = options.RingCapacity;

    /// <summary>The tuned profile the host started with (its hash), or null (docs/autotune.md).</summary>
    public string? TunedProfileHash { get; private set; }
    private LaneHostListener? _listener;

    /// <summary>
    /// <c>Lanes:ControlSocket</c>, else <c>.rtt/state/lanes.sock</c>, else (a workspace path too long for a Unix
    /// socket) a short path in the temp folder derived from the workspace, so each workspace has its own.
    /// </summary>
    public string ControlSocket => options.ControlSocket ?? workspace.LaneControlSocket;


    public IPEndPoint? TcpEndPoint => _listener?.TcpEndPoint;

    /// <summary>The TCP lane address other hosts' lane hosts forward to (<c>host:port</c>); null without a TCP listener.</summary>
    public string? TcpAdvertised => TcpEndPoint is not { } bound ? null
        : options.TcpAdvertise is { Length: > 0 } advertised ? advertised
        : bound.Address.Equals(IPAddress.Any) || bound.Address.Equals(IPAddress.IPv6Any) ? $"{System.Net.Dns.GetHostName()}:{bound.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)}"
        : bound.ToString();

    private static IPAddress TcpBindAddress(string text) =>
        IPAddress.TryParse(text, out var address) ? address
        : throw new RttException(ErrorCodes.LaneConfigInvalid, $"Lanes:TcpAddress \"{text}\" is not an IP address", "Lanes:TcpAddress",
            "give the address to bind, e.g. 127.0.0.1 (this host only), 0.0.0.0 (every interface) or this host's address on the cluster network");

    public RouteTable Routes => _host?.Routes ?? RouteTable.Empty;

    public IReadOnlyList<IFrameLane> Inbound => _host?.Inbound ?? [];

    public bool Running => _host is not null;

    public Task SwapAsync(RouteTable next) => (_host ?? throw new InvalidOperationException("the lane host is not running")).SwapAsync(next);

    public string NodeId => nodeId;

    /// <summary>The route ids of the table in force, made once per table (a node's commit, verify and status each ask).</summary>
    public IReadOnlySet<uint> RouteIds
    {
        get
        {
            var table = Routes;
            if (_routeIds is { } kept && ReferenceEquals(kept.Table, table))
            {
                return kept.Ids;
            }

            var ids = new System.Collections.ObjectModel.ReadOnlySet<uint>(table.Routes.Select(r => r.RouteId).ToHashSet());
            _routeIds = new RouteIdSet(table, ids);
            return ids;
        }
    }

    private sealed record RouteIdSet(RouteTable Table, IReadOnlySet<uint> Ids);

    private volatile RouteIdSet? _routeIds;

    private readonly SemaphoreSlim _serveGate = new(1, 1);
    private readonly Dictionary<string, IServedEndpoint> _endpoints = new(StringComparer.Ordinal); // by endpoint hash
    private IReadOnlyList<LaneTarget> _served = [];

    /// <summary>Endpoints running now, by hash (tests and status).</summary>
    public IReadOnlyDictionary<string, Endpoint> Endpoints
    {
        get
        {
            lock (_endpoints)
            {
                return _endpoints.ToDictionary(e => e.Key, e => e.Value.Endpoint, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>
    /// Makes the host serve exactly these lanes: starts the endpoints the plan names that do not run yet (a process
    /// started and attached, a plugin loaded, an MCP session opened), swaps the table in one step (removed endpoints
    /// drain first), then stops the endpoints no lane uses any more. An endpoint that fails to start answers its
    /// calls and the verify probe with the reason, so the plan's verify fails and the reconciler rolls back.
    /// </summary>
    public async Task ServeAsync(IReadOnlyList<LaneTarget> lanes)
    {
        await _serveGate.WaitAsync();
        try
        {
            var wanted = new SortedDictionary<string, string>(StringComparer.Ordinal);
            var refused = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var lane in lanes)
            {
                if (ForwardKey(lane) is { } forward)
                {
                    wanted[forward] = ""; // a route placed across nodes: forwarded to the target node's lane host
                }
                else if (lane.Endpoint is { } hash && lane.Serve is { } serve)
                {
                    wanted[hash] = serve;
                    if (Strict && lane.SandboxRefusal() is { } why)
                    {
                        refused[hash] = why; // a strict silo restoring lanes never starts a driver unsandboxed (prepare refuses new ones)
                    }
                }
            }

            var starting = new List<(string Hash, Task<IServedEndpoint> Started)>();
            foreach (var (hash, serve) in wanted)
            {
                bool running;
                lock (_endpoints)
                {
                    running = _endpoints.ContainsKey(hash);
                }

                if (!running && lanes.FirstOrDefault(l => ForwardKey(l) == hash) is { } forwarded)
                {
                    var started = ForwardEndpoint.Start(forwarded, ContextFor(hash));
                    lock (_endpoints)
                    {
                        _endpoints[hash] = started;
                    }
                }
                else if (!running)
                {
                    var block = (JsonObject)JsonNode.Parse(serve)!;
                    starting.Add((hash, refused.TryGetValue(hash, out var why)
                        ? Task.FromResult(EndpointFactory.Refused(ContextFor(hash), (string?)block["kind"], ErrorCodes.SandboxRequired, why))
                        : EndpointFactory.StartAsync(block, ContextFor(hash), CancellationToken.None)));
                }
            }

            // The new endpoints start side by side (processes spawned and attached, plugins loaded, MCP sessions opened at
            // once), so a commit waits for the slowest of them, not for their sum. A start never throws: one that fails
            // gives an endpoint answering with the reason (EndpointFactory).
            await Task.WhenAll(starting.Select(s => s.Started));
            lock (_endpoints)
            {
                foreach (var (hash, started) in starting)
                {
                    _endpoints[hash] = started.Result;
                }
            }

            if (_host?.Telemetry is { } telemetry)
            {
                Telemetry.LaneTelemetrySetup.Refresh(telemetry, workspace, logger); // breaker settings as policy.json says now
            }

            await SwapAsync(Build(lanes));
            _served = lanes;
            ApplyIdle(lanes);
            List<IServedEndpoint> retired;
            lock (_endpoints)
            {
                retired = [.. _endpoints.Where(e => !wanted.ContainsKey(e.Key)).Select(e => e.Value)];
                foreach (var hash in _endpoints.Keys.Where(h => !wanted.ContainsKey(h)).ToList())
                {
                    _endpoints.Remove(hash);
                }
            }

            foreach (var endpoint in retired)
            {
                await StopQuietly(endpoint);
            }
        }
        finally
        {
            _serveGate.Release();
        }
    }

    /// <summary>
    /// A tuned plan's idle spins, yields and doorbell use (on each of its lanes, docs/autotune.md) go to the worker; a plan without them
    /// gives back what the host started with (its configuration or the profile it loaded then).
    /// </summary>
    private void ApplyIdle(IReadOnlyList<LaneTarget> lanes)
    {
        var tuned = lanes.FirstOrDefault(l => l.IdleSpins is not null && l.IdleYields is not null);
        var (spins, yields, park) = tuned is null ? _startIdle : (tuned.IdleSpins!.Value, tuned.IdleYields!.Value, tuned.IdlePark ?? true);
        if ((spins, yields, park) != _idle && _host?.SetIdle(spins, yields, park) == true)
        {
            _idle = (spins, yields, park);
            logger.LogInformation("Lane host: idle spins {Spins}, yields {Yields}{Park} ({Source})", spins, yields, park ? "" : ", never parks (busy polling)",
                tuned is null ? "as at start" : "from the applied plan's tuning");
        }
    }

    private (int Spins, int Yields, bool Park) _startIdle = (LaneHost.DefaultIdleSpins, LaneHost.DefaultIdleYields, true);
    private (int Spins, int Yields, bool Park) _idle = (LaneHost.DefaultIdleSpins, LaneHost.DefaultIdleYields, true);

    private RouteTable Build(IReadOnlyList<LaneTarget> lanes)
    {
        lock (_endpoints)
        {
            return new(lanes.Select(l => new RouteEntry(l.RouteId, l.Name,
                (ForwardKey(l) ?? l.Endpoint) is { } hash && _endpoints.TryGetValue(hash, out var served) ? served.Endpoint : Echo, l.From,
                LanePlan.Of(l.Kind, l.RingSize, _ringCapacity))));
        }
    }

    /// <summary>The key of a forwarded lane's endpoint (route id and where it goes), or null for a lane served here.</summary>
    private static string? ForwardKey(LaneTarget lane) =>
        lane.Forward is null ? null : $"forward:{lane.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture)}>{lane.Forward}@{lane.ForwardTo}";

    /// <summary>Strict security mode: lane attaches need tokens, and driver processes a sandbox (docs/security.md).</summary>
    public bool Strict => admission is { Strict: true };

    private EndpointContext ContextFor(string hash) => new(hash, workspace, logger, ReplaceAsync, _host?.Doorbell);

    /// <summary>An endpoint replaced itself (a restarted service attached again): the same lanes, the new endpoint.</summary>
    private async Task ReplaceAsync(Endpoint old, Endpoint next)
    {
        await _serveGate.WaitAsync();
        try
        {
            if (_host is not null)
            {
                await SwapAsync(Build(_served));
            }
        }
        finally
        {
            _serveGate.Release();
        }
    }

    private async Task StopQuietly(IServedEndpoint endpoint)
    {
        try
        {
            await endpoint.DisposeAsync();
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Stopping endpoint {Endpoint} failed", endpoint.Endpoint.Name);
        }
    }

    /// <summary>
    /// Attaches over the control socket like a client (SHM, UDS, or TCP when a TCP port is open: one lane per kind)
    /// and sends one probe frame per lane with that lane's route id; the host routes each by its id, so every answer
    /// has crossed the real table and endpoint.
    /// </summary>
    public async Task<IReadOnlyList<(LaneTarget Lane, string Why)>> ProbeAsync(IReadOnlyList<LaneTarget> lanes, TimeSpan timeout)
    {
        // Forwarded lanes attach to the other node's lane host once its commit serves the route: give them part of the budget.
        List<Task> attaching;
        lock (_endpoints)
        {
            attaching = [.. _endpoints.Values.OfType<ForwardEndpoint>().Select(f => f.Attached).Where(t => !t.IsCompleted)];
        }

        if (attaching.Count > 0)
        {
            await Task.WhenAny(Task.WhenAll(attaching), Task.Delay(timeout / 2));
        }

        return await Task.Run(() => (IReadOnlyList<(LaneTarget, string)>)[.. lanes.GroupBy(l => l.Kind).SelectMany(g => Probe([.. g], timeout))]);
    }

    private List<(LaneTarget Lane, string Why)> Probe(List<LaneTarget> lanes, TimeSpan timeout)
    {
        if (_host is null)
        {
            return [.. lanes.Select(l => (l, "the lane host is not running"))];
        }

        if (!_host.WorkerAlive)
        {
            return [.. lanes.Select(l => (l, $"the lane worker is not running: {_host.Fault?.Message ?? "it stopped"}"))];
        }

        var kind = lanes[0].Kind;
        lock (_probeGate)
        {
            IFrameLane client;
            if (_probes.TryGetValue(kind, out var cached) && !cached.PeerGone)
            {
                client = cached; // attached once per kind and kept: a verify costs frames, not an attach
            }
            else
            {
                cached?.Dispose();
                try
                {
                    // The probe lane carries frames for every route of its kind: a token for all of them when tokens are needed.
                    var token = admission is { Strict: true } || (kind == "tcp" && admission is not null) ? ProbeToken() : null;
                    client = kind == "tcp" && TcpEndPoint is { } tcp
                        ? LaneAttach.ConnectTcp(tcp, Id(lanes[0]), null, token).Lane
                        : LaneAttach.ConnectUnix(ControlSocket, Id(lanes[0]), kind is "uds" or "tcp" ? LaneKind.Uds : LaneKind.Shm, null, token).Lane;
                }
                catch (RttException ex)
                {
                    _probes.Remove(kind);
                    return [.. lanes.Select(l => (l, $"attach failed: {ex.Message}"))];
                }

                _probes[kind] = client;
            }

            var pending = new Dictionary<uint, LaneTarget>();
            var wrong = new List<(LaneTarget, string)>();
            Span<byte> probe = stackalloc byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(probe, 0x45424f52505454UL); // "TTPROBE"
            for (var i = 0; i < lanes.Count; i++)
            {
                var frameId = unchecked(_probeFrame++); // never reused soon: a late answer to an earlier probe matches nothing
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(probe[8..], lanes[i].RouteId);
                if (!client.Send(lanes[i].RouteId, frameId, probe, FrameFlags.Probe))
                {
                    return [.. lanes.Select(l => (l, "the probe frame could not be sent"))];
                }

                pending[frameId] = lanes[i];
                if (i % 64 == 63)
                {
                    client.Flush();
                    Drain(client, pending, wrong, TimeSpan.Zero);
                }
            }

            client.Flush();
            Drain(client, pending, wrong, timeout);
            foreach (var (_, lane) in pending)
            {
                wrong.Add((lane, client.PeerGone ? "the lane host closed the lane" : $"no answer within {timeout.TotalMilliseconds:0} ms"));
            }

            return wrong;
        }
    }

    private string ProbeToken() => Core.Tokens.ManagementTokens.MintLane(workspace.Signer.Current(), "rtt://*", TimeSpan.FromHours(1));

    /// <summary>The SLO gates of verify (policy.json <c>slo</c>, see observability.md); none without telemetry or rules.</summary>
    public Task<(IReadOnlyList<string> Breaches, string Note)> GateAsync(IReadOnlyList<LaneTarget> lanes) =>
        _host?.Telemetry is { } telemetry && Telemetry.SloRule.Read(workspace.PolicyPath) is { Count: > 0 } rules
            ? Telemetry.SloGate.RunAsync(telemetry, rules, lanes.Select(l => (l.RouteId, l.Name)))
            : Task.FromResult(((IReadOnlyList<string>)[], ""));

    private static string Id(LaneTarget lane) => lane.RouteId.ToString(System.Globalization.CultureInfo.InvariantCulture); // unambiguous, unlike the name

    private readonly Lock _probeGate = new();
    private readonly Dictionary<string, IFrameLane> _probes = new(StringComparer.Ordinal);
    private uint _probeFrame;

    private static void Drain(IFrameLane client, Dictionary<uint, LaneTarget> pending, List<(LaneTarget, string)> wrong, TimeSpan timeout)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        do
        {
            var got = client.Poll((in FrameHeader h, ReadOnlySpan<byte> payload) =>
            {
                if (!pending.Remove(h.FrameId, out var lane))
                {
                    return; // a late answer to an earlier probe
                }

                if ((h.Flags & FrameFlags.Error) != 0)
                {
                    var (code, message) = ErrorPayload.Decode(payload, ErrorCodes.LaneRouteUnknown);
                    wrong.Add((lane, $"{code}: {message}"));
                }
                else if (h.RouteId != lane.RouteId || payload.Length != 16 || System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(payload[8..]) != lane.RouteId)
                {
                    wrong.Add((lane, "the answer did not match the probe"));
                }
            });
            if (got == 0 && pending.Count > 0 && timeout > TimeSpan.Zero)
            {
                client.WaitForData(TimeSpan.FromMilliseconds(5));
            }
        }
        while (pending.Count > 0 && Environment.TickCount64 < deadline && !client.PeerGone);
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            return;
        }

        if (!LaneDefaults.SocketPathFits(ControlSocket))
        {
            throw new HostingException(ErrorCodes.LaneConfigInvalid, $"the lane control socket path is longer than a Unix socket allows ({LaneDefaults.MaxSocketPath} characters)", "Lanes:ControlSocket",
                "set Lanes:ControlSocket (or RTT_Lanes__ControlSocket) to a shorter path");
        }

        // A tuned profile made on this machine (rtt autotune, docs/autotune.md) sets what the configuration leaves at its
        // default; one made on another machine is ignored with a warning; one whose signature fails stops the start (RTT-TUNE-005).
        var cpus = options.Cpus;
        int spins = LaneHost.DefaultIdleSpins, yields = LaneHost.DefaultIdleYields;
        var park = true;
        _ringCapacity = options.RingCapacity;
        var profile = Core.Autotune.TunedProfile.Load(workspace, Core.Autotune.MachineKey.Local(), out var mismatch);
        if (mismatch is not null)
        {
            logger.LogWarning("Lane host: {Why}", mismatch);
        }
        else if (profile is not null)
        {
            var tuned = profile.Settings;
            _ringCapacity = options.RingCapacity == LaneDefaults.RingCapacity ? Math.Max(options.RingCapacity, tuned.RingCapacity) : options.RingCapacity;
            cpus = cpus.Count == 0 ? [.. tuned.Cpus] : cpus;
            (spins, yields, park) = (tuned.Spins, tuned.Yields, tuned.Park);
            logger.LogInformation("Lane host: tuned profile {Hash} applied: ring {Ring} bytes, spins {Spins}, yields {Yields}, park {Park}, worker CPUs {Cpus}",
                profile.Hash, _ringCapacity, spins, yields, park, cpus.Count == 0 ? "any" : string.Join(',', cpus));
        }

        TunedProfileHash = profile?.Hash;
        _startIdle = _idle = (spins, yields, park);
        var laneOptions = new LaneOptions { RingCapacity = _ringCapacity, MaxPayload = options.MaxPayload };
        var telemetry = options.Telemetry ? Telemetry.LaneTelemetrySetup.Create(workspace, nodeId, options.FlightRecords, logger) : null;
        _host = new LaneHost(cpus: cpus, telemetry: telemetry, idleSpins: spins, idleYields: yields, idlePark: park) { Report = message => logger.LogWarning("Lane host: {Message}", message) };
        // Starts empty: the node grain makes it serve the last committed plan's lanes when the node registers.
        _listener = new LaneHostListener(_host, laneOptions, ControlSocket, options.TcpPort != 0 ? new IPEndPoint(TcpBindAddress(options.TcpAddress), options.TcpPort) : null, admission: admission);
        logger.LogInformation("Lane host up: {Routes} route(s), control socket {Socket}, {Mode} mode", _host.Routes.Routes.Count, ControlSocket,
            admission is null ? "open" : admission.Strict ? "strict token" : "dev token");
        if (Rtt.Silo.Endpoints.Sandbox.Unavailable() is { } why)
        {
            // Said once at start (and again as a warning by each sandboxed endpoint): a serve block with a sandbox is then
            // refused (RTT-SEC-002), never run unconfined.
            logger.LogInformation("Driver sandbox unavailable: {Why}; endpoints whose serve block asks for a sandbox will not start", why);
        }
        else if (Rtt.Silo.Endpoints.Sandbox.SeccompUnavailable() is { } noFilter)
        {
            logger.LogInformation("Driver sandbox without seccomp: {Why}; sandboxed endpoints {What}", noFilter,
                Rtt.Silo.Endpoints.Sandbox.AllowWithoutSeccomp ? "run in their bubblewrap namespaces WITHOUT the syscall filter (Security:SandboxWithoutSeccomp)" : "will not start (RTT-SEC-002)");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => DisposeAsync().AsTask();

    /// <summary>Stops the worker and the listener, then each endpoint in turn (processes stopped, plugins unloaded, MCP sessions closed).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var endpoint in StopHost())
        {
            await StopQuietly(endpoint);
        }
    }

    public void Dispose()
    {
        var endpoints = StopHost();
        if (endpoints.Count > 0)
        {
            // Disposal without a caller to await it: the endpoints stop on the thread pool, and this waits for them.
            Task.Run(async () =>
            {
                foreach (var endpoint in endpoints)
                {
                    await StopQuietly(endpoint);
                }
            }).GetAwaiter().GetResult();
        }
    }

    /// <summary>Stops probes, the listener and the worker; returns the endpoints still to stop (each once).</summary>
    private List<IServedEndpoint> StopHost()
    {
        lock (_probeGate)
        {
            foreach (var probe in _probes.Values)
            {
                probe.Dispose();
            }

            _probes.Clear();
        }

        _listener?.Dispose();
        _listener = null;
        if (_host?.Telemetry is { } telemetry)
        {
            Telemetry.LaneMeters.Unregister(telemetry);
        }

        _host?.Dispose();
        _host = null;
        List<IServedEndpoint> endpoints;
        lock (_endpoints)
        {
            endpoints = [.. _endpoints.Values];
            _endpoints.Clear();
        }

        return endpoints;
    }
}

public static class LaneHostingExtensions
{
    /// <summary>Registers the lane host (after Orleans, so it starts once the silo is up).</summary>
    public static IServiceCollection AddRttLanes(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection("Lanes").Get<RttLaneOptions>() ?? new RttLaneOptions();
        services.AddSingleton(options);
        services.AddSingleton(sp => new LaneHostService(
            sp.GetRequiredService<RttWorkspace>(), options, sp.GetRequiredService<ILogger<LaneHostService>>(), sp.GetRequiredService<Hosting.RttSiloOptions>().NodeId,
            sp.GetService<Core.Tokens.TokenVerifier>() is { } verifier
                ? new LaneAdmission(verifier, sp.GetService<Security.RttSecurityOptions>()?.Strict ?? false) : null));
        services.AddSingleton<INodeLaneHost>(sp => sp.GetRequiredService<LaneHostService>());
        services.AddHostedService(sp => sp.GetRequiredService<LaneHostService>());
        return services;
    }
}
