using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Orleans.Configuration;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Rtt.Core.Errors;
using Rtt.Core.Telemetry;
using Rtt.Core.Workspace;
using Rtt.Grains;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Reconciling.State;
using Rtt.Reconciling.Wal;
using Rtt.Silo.Lanes;
using Rtt.Silo.Nodes;
using Rtt.Silo.Storage;
using Rtt.Silo.Storage.Postgres;

namespace Rtt.Silo.Hosting;

/// <summary>
/// Builds the embedded silo for a workspace: localhost clustering, grain state in the workspace's SQLite
/// database, OpenTelemetry metrics, node registration at start-up.
/// </summary>
public static class RttSiloHost
{
    /// <summary>
    /// Configuration sources in .NET's order of precedence (last wins): appsettings.json beside the binary,
    /// RTT_-prefixed environment variables, then <paramref name="overrides"/> (the command line).
    /// </summary>
    public static IConfigurationRoot LoadConfiguration(IReadOnlyDictionary<string, string?>? overrides = null) =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true, reloadOnChange: false)
            .AddEnvironmentVariables("RTT_")
            .AddInMemoryCollection(overrides ?? new Dictionary<string, string?>())
            .Build();

    /// <summary>Checks everything a start needs and builds the host; nothing is started yet.</summary>
    /// <param name="web">
    /// Features the silo's web host may serve (the CLI passes the panel); each is served when its section's <c>Enabled</c>
    /// is true (<c>Panel:Enabled</c>), as is the built-in Orleans Dashboard (<c>Dashboard:Enabled</c>). None enabled: no web host.
    /// </param>
    public static RttSilo Build(RttWorkspace workspace, IReadOnlyDictionary<string, string?>? overrides = null, Action<ILoggingBuilder>? logging = null,
        IEnumerable<Web.IRttWebModule>? web = null)
    {
        var clock = Stopwatch.StartNew();
        var configuration = LoadConfiguration(overrides);
        var silo = Bind<RttSiloOptions>(configuration, "Silo");
        var storage = Bind<RttStorageOptions>(configuration, "Storage");
        var metrics = Bind<RttMetricsOptions>(configuration, "Metrics");
        var wal = Bind<RttWalOptions>(configuration, "Wal");
        var cluster = Bind<RttClusterOptions>(configuration, "Cluster");
        var security = Bind<Security.RttSecurityOptions>(configuration, "Security");
        var retry = Bind<Rtt.Reconciling.Resilience.RttRetryOptions>(configuration, "Retry");
        if (retry.Problem() is { } retryProblem)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"retry settings are not usable: {retryProblem}", "Retry",
                "fix the value in appsettings.json, the RTT_ environment variable or the command-line option (Attempts >= 1, 0 <= Delay <= MaxDelay)");
        }
        silo.Validate();
        cluster.Validate();
        security.Validate();
        var webOptions = Bind<Web.RttWebOptions>(configuration, "Web");
        var modules = (web ?? []).Append(new Web.DashboardModule()).Where(m => Bind<Web.RttWebFeatureOptions>(configuration, m.Name).Enabled).ToList();
        if (modules.Count > 0)
        {
            webOptions.Validate();
        }

        Endpoints.Sandbox.AllowWithoutSeccomp = security.SandboxWithoutSeccomp; // one silo per process

        workspace.Validate(); // malformed documents and a missing signing key stop the start with a clear error
        WorkspaceModes.Check(workspace); // another local user must not be able to change what this silo trusts (RTT-SEC-001)
        EnsureWritable(workspace.State);
        var siloLock = SiloLock.Acquire(workspace); // before anything is touched: a second silo on this workspace stops here
        var opened = new List<SqliteStateDatabase>();
        try
        {
            return Build(workspace, configuration, silo, storage, metrics, wal, cluster, security, retry, siloLock, logging, clock, webOptions, modules, opened);
        }
        catch
        {
            foreach (var database in opened)
            {
                database.Dispose();
            }

            siloLock.Dispose();
            throw;
        }
    }

    private static RttSilo Build(RttWorkspace workspace, IConfigurationRoot configuration, RttSiloOptions silo, RttStorageOptions storage, RttMetricsOptions metrics,
        RttWalOptions wal, RttClusterOptions cluster, Security.RttSecurityOptions security, Rtt.Reconciling.Resilience.RttRetryOptions retry, SiloLock siloLock, Action<ILoggingBuilder>? logging, Stopwatch clock,
        Web.RttWebOptions webOptions, IReadOnlyList<Web.IRttWebModule> modules, List<SqliteStateDatabase> opened)
    {
        EnsurePortFree(silo.SiloPort, "Silo:SiloPort", "--silo-port");
        EnsurePortFree(silo.GatewayPort, "Silo:GatewayPort", "--gateway-port");
        if (metrics.OtlpTracesEndpoint is { Length: > 0 } tracesEndpoint && (!Uri.TryCreate(tracesEndpoint, UriKind.Absolute, out var tracesUri) || tracesUri.Scheme is not ("http" or "https")))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"OTLP trace export endpoint \"{tracesEndpoint}\" is not an http(s) URL",
                "Metrics:OtlpTracesEndpoint", "give an http(s) URL, e.g. http://127.0.0.1:4318/v1/traces");
        }

        if (metrics.OtlpEndpoint is { Length: > 0 } otlpEndpoint && (!Uri.TryCreate(otlpEndpoint, UriKind.Absolute, out var otlpUri) || otlpUri.Scheme is not ("http" or "https")
            || metrics.OtlpProtocol is not ("http/protobuf" or "grpc") || metrics.ExportIntervalMs < 100))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"OTLP export settings are not usable: endpoint \"{otlpEndpoint}\", protocol \"{metrics.OtlpProtocol}\", interval {metrics.ExportIntervalMs} ms",
                "Metrics:OtlpEndpoint", "give an http(s) URL (http://127.0.0.1:4318/v1/metrics), Metrics:OtlpProtocol http/protobuf or grpc, Metrics:ExportIntervalMs of at least 100");
        }

        if (metrics.PrometheusPort != 0)
        {
            EnsurePortFree(metrics.PrometheusPort, "Metrics:PrometheusPort", "--metrics-port");
        }

        if (modules.Count > 0 && webOptions.Port != 0)
        {
            EnsurePortFree(webOptions.Port, "Web:Port", "--panel-port", webOptions.Address);
        }

        if (!string.Equals(storage.Provider, "sqlite", StringComparison.OrdinalIgnoreCase))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"unknown storage provider \"{storage.Provider}\"", "Storage:Provider",
                "use \"sqlite\" (the embedded default)");
        }

        // One silo per NUMA node: bind the process to the node's CPUs before the host creates its threads (they inherit
        // the mask), and pin lane workers within the node unless Lanes:Cpus says otherwise.
        var numa = "all";
        if (silo.Numa is int numaId)
        {
            var node = NumaPlacement.Resolve(numaId, silo.SysRoot);
            NumaPlacement.Bind(node.Cpus);
            if (!configuration.GetSection("Lanes:Cpus").GetChildren().Any())
            {
                for (var i = 0; i < node.Cpus.Count; i++)
                {
                    configuration[$"Lanes:Cpus:{i}"] = node.Cpus[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
            }

            numa = numaId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        // Cluster mode: membership, grain state, ledgers and the WAL all live in the cluster's PostgreSQL database, whose
        // schema `rtt db init` applies; the silo only checks it (RTT-CLUSTER-001 names what is missing). One pool of at
        // most ClusterDatabase.DefaultMaxPoolSize connections serves all of them (unless the string sets its own).
        var clusterConnection = cluster.IsPostgres ? ClusterDatabase.ForSilo(cluster.ConnectionString!) : null;
        if (clusterConnection is not null)
        {
            ClusterDatabase.Check(clusterConnection);
        }

        if (clusterConnection is null && storage.ConnectionString is null && !OperatingSystem.IsWindows() && !File.Exists(workspace.StateDatabasePath))
        {
            // Created empty with 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database's mode.
            using (new FileStream(workspace.StateDatabasePath, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = WorkspaceModes.File }))
            {
            }

            File.SetUnixFileMode(workspace.StateDatabasePath, WorkspaceModes.File);
        }

        // Embedded mode: the state database has one owner, opened (checked, schema applied, old grain state carried over)
        // before the silo starts. Its one writer group-commits the WAL's appends, the ledgers and grain state. Grain
        // state goes to another SQLite file only when Storage:ConnectionString names one (then that file has its own).
        SqliteStateDatabase? stateDatabase = null;
        SqliteStateDatabase? grainDatabase = null;
        if (clusterConnection is null)
        {
            stateDatabase = SqliteStateStore.Open(workspace.StateDatabasePath);
            opened.Add(stateDatabase);
            grainDatabase = stateDatabase;
            if (storage.ConnectionString is { } other && Path.GetFullPath(SqliteStateStore.PathOf(other)) != Path.GetFullPath(workspace.StateDatabasePath))
            {
                grainDatabase = SqliteStateStore.Open(SqliteStateStore.PathOf(other));
                opened.Add(grainDatabase);
            }
        }

        // With a web feature enabled the silo runs on a web application builder (Kestrel in the same process and the same
        // container as the silo, so the panel and the Dashboard reach grains directly); without, on the plain host.
        IHostApplicationBuilder builder = modules.Count > 0 ? Web.RttWebHost.CreateBuilder(webOptions) : Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true, // we add exactly the sources above, in that order
            ContentRootPath = AppContext.BaseDirectory,
            ApplicationName = "rtt-silo",
        });
        builder.Configuration.AddConfiguration(configuration);
        builder.Logging.AddConfiguration(configuration.GetSection("Logging"));
        if (logging is null)
        {
            // One line per entry on stderr (stdout carries only the command's own output, JSON included); a failed
            // start's entries go to .rtt/state/silo-start.log, not the terminal (RttConsoleLog).
            var console = new RttConsoleLog();
            builder.Services.AddSingleton(console);
            builder.Logging.AddProvider(console);
        }
        else
        {
            logging(builder.Logging);
        }

        builder.Services.AddSingleton(workspace);
        builder.Services.AddSingleton(siloLock); // released when the host is disposed (or by the kernel when the process ends)
        builder.Services.AddSingleton(silo);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(retry);
        if (FaultKillSwitch.FromConfiguration(configuration) is { } killSwitch)
        {
            builder.Services.AddSingleton<Rtt.Reconciling.IFaultPoints>(killSwitch); // crash tests only; AddRttGrains then adds no other
        }

        // Capability tokens (docs/tokens.md): one verifier (trust store, revocations, replay cache) for lane attaches and
        // the management calls the incoming grain call filter checks.
        builder.Services.AddSingleton(security);
        builder.Services.AddSingleton(Core.Tokens.TokenVerifier.ForWorkspace(workspace, TimeProvider.System, new Core.Tokens.ReplayCache(security.ReplayCacheSize)));
        builder.UseOrleans(orleans =>
        {
            if (clusterConnection is null)
            {
                orleans.UseLocalhostClustering(silo.SiloPort, silo.GatewayPort, null, silo.ServiceId, silo.ClusterId);
            }
            else
            {
                orleans.UseAdoNetClustering(o =>
                {
                    o.Invariant = ClusterDatabase.Invariant;
                    o.ConnectionString = clusterConnection;
                });
                orleans.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = silo.ClusterId;
                    o.ServiceId = silo.ServiceId;
                });
                var advertised = IPAddress.Parse(cluster.AdvertisedAddress);
                orleans.ConfigureEndpoints(advertised, silo.SiloPort, silo.GatewayPort, listenOnAnyHostAddress: !IPAddress.IsLoopback(advertised));
                orleans.Configure<ClusterMembershipOptions>(configuration.GetSection("Cluster:Membership")); // failure detection, tunable per deployment
            }

            orleans.Configure<SiloOptions>(o => o.SiloName = silo.NodeId);
            orleans.UseSiloMetadata(new Dictionary<string, string> { ["host"] = Environment.MachineName, ["numa"] = numa, ["node"] = silo.NodeId });
            orleans.AddRttGrains();
            foreach (var module in modules)
            {
                module.ConfigureSilo(orleans);
            }

            orleans.Services.AddSingleton<IIncomingGrainCallFilter, Security.ManagementTokenFilter>();
            if (grainDatabase is not null)
            {
                orleans.Services.AddRttSqliteGrainStorage(grainDatabase);
            }
            else
            {
                // The cluster's database is shared by every silo: Orleans' ADO.NET storage over PostgreSQL (cluster.sql).
                orleans.AddAdoNetGrainStorage(RttStorage.Name, o =>
                {
                    o.Invariant = ClusterDatabase.Invariant;
                    o.ConnectionString = clusterConnection;
                });
            }
        });

        // Grain state is read without honouring $type names (StorageJson); after UseOrleans so it runs after Orleans' own set-up.
        builder.Services.PostConfigure<Orleans.Serialization.OrleansJsonSerializerOptions>(o => StorageJson.Harden(o.JsonSerializerSettings));

        // The Merkle WAL lives in the same SQLite file as grain state (tables rtt_wal, rtt_wal_heads), written through its one writer.
        var walStores = stateDatabase is null ? () => PostgresWalStore.Open(clusterConnection!, create: false) : WalStores(wal, stateDatabase);
        CheckWal(walStores, workspace);
        builder.Services.AddSingleton(walStores);
        builder.Services.AddSingleton<IParticipantLedgerStore>(_ => stateDatabase is null
            ? new PostgresLedgerStore(clusterConnection!)
            : new SqliteLedgerStore(stateDatabase));
        foreach (var database in opened)
        {
            builder.Services.AddSingleton(database); // an instance registration: RttSilo disposes it after the host
        }

        // Added after UseOrleans, so they start once the silo is up and stop before it goes down: first the lane host
        // (lane workers on their own threads, outside grain turns), then the node registration, which makes the node
        // grain restore the applied plan's lanes and the reconciler recover an in-doubt transaction.
        builder.Services.AddRttLanes(configuration);
        builder.Services.AddSingleton<NodeRegistrationService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<NodeRegistrationService>());
        if (clusterConnection is not null)
        {
            builder.Services.AddHostedService<AutoReplanService>(); // policy auto_replan: the survivors plan without a dead silo's node
            // The registry everywhere: this workspace's objects published to the database, objects it lacks read from there.
            var objects = new PostgresObjectStore(clusterConnection);
            Rtt.Registry.RegistryStore.Remote = objects;
            builder.Services.AddSingleton(objects);
            builder.Services.AddHostedService<ClusterObjectSync>();
        }

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("rtt-silo", serviceInstanceId: silo.NodeId))
            .WithMetrics(m =>
            {
                m.AddMeter("Microsoft.Orleans", RttMetrics.MeterName);
                if (metrics.Console)
                {
                    m.AddConsoleExporter();
                }

                if (metrics.OtlpEndpoint is { Length: > 0 } otlp)
                {
                    m.AddOtlpExporter((exporter, reader) =>
                    {
                        exporter.Endpoint = new Uri(otlp);
                        exporter.Protocol = metrics.OtlpProtocol == "grpc" ? OpenTelemetry.Exporter.OtlpExportProtocol.Grpc : OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf;
                        reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = metrics.ExportIntervalMs;
                    });
                }

                if (metrics.PrometheusPort != 0)
                {
                    m.AddPrometheusHttpListener(o =>
                    {
                        o.Host = "127.0.0.1";
                        o.Port = metrics.PrometheusPort;
                    });
                }
            })
            .WithTracing(t =>
            {
                // One span per traced call at the lane host (observability.md, "Traces"), source "Rtt".
                t.AddSource(Rtt.Fabric.Telemetry.LaneTelemetry.Source.Name);
                if (metrics.OtlpTracesEndpoint is { Length: > 0 } otlpTraces)
                {
                    t.AddOtlpExporter(exporter =>
                    {
                        exporter.Endpoint = new Uri(otlpTraces);
                        exporter.Protocol = metrics.OtlpProtocol == "grpc" ? OpenTelemetry.Exporter.OtlpExportProtocol.Grpc : OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf;
                    });
                }
            });

        foreach (var module in modules)
        {
            module.ConfigureServices(builder.Services);
        }

        IHost host;
        if (builder is Microsoft.AspNetCore.Builder.WebApplicationBuilder webBuilder)
        {
            var app = webBuilder.Build();
            Web.RttWebHost.Configure(app, modules);
            host = app;
        }
        else
        {
            host = ((HostApplicationBuilder)builder).Build();
        }

        return new RttSilo(host, silo, workspace, clock, modules);
    }

    /// <summary>
    /// The same checks as `rtt wal verify` (every leaf, canonical form, every signed head and the anchor beside the
    /// database), before anything starts: a damaged or shortened log stops the start with RTT-WAL-002 instead of a
    /// reconciler that would recover from it (and forget the applied plan).
    /// </summary>
    private static void CheckWal(WalStoreFactory stores, RttWorkspace workspace)
    {
        using var store = stores();
        var report = WalVerifier.Verify(store, workspace.LoadTrustStore(), WalAnchor.Of(workspace));
        if (!report.Ok)
        {
            var first = report.Faults[0];
            throw new HostingException(ErrorCodes.WalTampered,
                $"the WAL does not verify ({report.Faults.Count} fault(s); first: {first.Where}: {first.What})", store.Location,
                $"the silo was not started; `rtt wal verify` lists every fault; {report.Hint}");
        }
    }

    /// <summary>The WAL store the silo's WAL grain opens: SQLite beside grain state, or a PostgreSQL database.</summary>
    private static WalStoreFactory WalStores(RttWalOptions wal, SqliteStateDatabase stateDatabase)
    {
        if (string.Equals(wal.Provider, "sqlite", StringComparison.OrdinalIgnoreCase))
        {
            return () => SqliteWalStore.On(stateDatabase);
        }

        if (string.Equals(wal.Provider, "postgres", StringComparison.OrdinalIgnoreCase))
        {
            var connection = wal.ConnectionString ?? throw new HostingException(ErrorCodes.ConfigInvalid, "Wal:Provider is postgres but Wal:ConnectionString is not set", "Wal:ConnectionString",
                "set it (or RTT_Wal__ConnectionString) to an Npgsql connection string, e.g. Host=127.0.0.1;Port=5432;Database=rtt;Username=rtt");
            PostgresWalStore.Open(connection).Dispose(); // reachable, and the tables exist, before the silo starts
            return () => PostgresWalStore.Open(connection);
        }

        throw new HostingException(ErrorCodes.ConfigInvalid, $"unknown WAL provider \"{wal.Provider}\"", "Wal:Provider", "use \"sqlite\" (embedded default) or \"postgres\"");
    }

    private static T Bind<T>(IConfiguration configuration, string section)
        where T : new()
    {
        try
        {
            return configuration.GetSection(section).Get<T>() ?? new T();
        }
        catch (InvalidOperationException ex)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"invalid configuration: {ex.Message}", section,
                "fix the value in appsettings.json, the RTT_ environment variable or the command-line option", ex);
        }
    }

    private static void EnsureWritable(string stateDirectory)
    {
        var probe = Path.Combine(stateDirectory, $".write-probe-{Environment.ProcessId}");
        try
        {
            WorkspaceModes.CreatePrivateDirectory(stateDirectory);
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new HostingException(ErrorCodes.StateUnwritable, "the workspace state folder is not writable", stateDirectory,
                "make it writable by this user, or run on a workspace you own", ex);
        }
    }

    private static void EnsurePortFree(int port, string setting, string option, IPAddress? address = null)
    {
        // Orleans binds on loopback for localhost clustering; a trial bind there gives a clear answer early.
        using var socket = new Socket(address?.AddressFamily ?? AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.ExclusiveAddressUse = true;
            socket.Bind(new IPEndPoint(address ?? IPAddress.Loopback, port));
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            throw new HostingException(ErrorCodes.PortInUse, $"port {port} is already in use", setting,
                $"stop the process that holds it (is another silo running?) or choose another port with {option}", ex);
        }
    }
}

/// <summary>A built silo host with the settings it runs with.</summary>
public sealed class RttSilo(IHost host, RttSiloOptions options, RttWorkspace workspace, Stopwatch sinceBuild, IReadOnlyList<Web.IRttWebModule>? web = null) : IAsyncDisposable
{
    private bool _started;
    private bool _stopped;

    public IHost Host { get; } = host;
    public RttSiloOptions Options { get; } = options;
    public RttWorkspace Workspace { get; } = workspace;

    /// <summary>The registration made at start-up (available after <see cref="StartAsync"/>).</summary>
    public NodeRecord? Node => Host.Services.GetRequiredService<NodeRegistrationService>().Record;

    /// <summary>Time from the start of <see cref="RttSiloHost.Build"/> to the node registered.</summary>
    public TimeSpan StartupTime { get; private set; }

    public IGrainFactory Grains => Host.Services.GetRequiredService<IGrainFactory>();

    /// <summary>The web features served (empty: no web host).</summary>
    public IReadOnlyList<Web.IRttWebModule> WebModules { get; } = web ?? [];

    /// <summary>Where the web host listens (after <see cref="StartAsync"/>), or null when there is none.</summary>
    public Uri? WebAddress => WebModules.Count > 0 ? Web.RttWebHost.BaseAddress(Host.Services) : null;

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var console = Host.Services.GetService<RttConsoleLog>();
        try
        {
            await Host.StartAsync(cancellationToken);
        }
        catch (Exception ex)
        {
            var log = Path.Combine(Workspace.State, RttConsoleLog.StartLogName);
            console?.Failed(log);
            if (ex is RttException or OperationCanceledException)
            {
                throw;
            }

            if (Chain(ex).OfType<Grains.RttGrainException>().FirstOrDefault() is { Code.Length: > 0 } refused)
            {
                // A grain refused the start (e.g. RTT-CLUSTER-003, the node taken by another silo): its own code and remedy.
                throw new HostingException(refused.Code, refused.Message, refused.Location ?? Workspace.Root, refused.Remedy ?? "see the message", ex);
            }

            throw new HostingException(ErrorCodes.SiloStartFailed, $"the silo did not start: {Innermost(ex).Message}", Workspace.Root,
                console is null ? "see the message; run again with Logging__LogLevel__Default=Information for detail"
                    : $"see the message; the start's log is in {log} (Logging__LogLevel__Default=Information for more)", ex);
        }

        _started = true;
        console?.Started();
        StartupTime = sinceBuild.Elapsed;
        RttMetrics.SiloStartup.Record(StartupTime.TotalMilliseconds);
    }

    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        _stopped = true;
        await Host.StopAsync(cancellationToken);
    }

    /// <summary>Runs until Ctrl-C or SIGTERM, then shuts down cleanly.</summary>
    public async Task WaitForShutdownAsync(CancellationToken cancellationToken = default)
    {
        await Host.WaitForShutdownAsync(cancellationToken);
        _stopped = true; // WaitForShutdownAsync stops the host itself
    }

    /// <summary>
    /// Disposes the host. A silo that started and was not stopped (the command failed after the start: a discovery
    /// error in `rtt up --once`, say) is stopped first, so that its hosted services clean up what they published
    /// (silo.json, the lane socket) instead of leaving it behind for `rtt status` and clients to find.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        var siloLock = Host.Services.GetService<SiloLock>(); // an instance registration: the container does not dispose it
        var databases = Host.Services.GetServices<SqliteStateDatabase>().ToList(); // the same
        try
        {
            if (_started && !_stopped)
            {
                _stopped = true;
                try
                {
                    using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    await Host.StopAsync(bound.Token);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Stopping after a failure is best effort; the file it publishes is removed below all the same.
                }

                RemoveOwnSiloInfo();
            }

            if (Host is IAsyncDisposable asyncDisposable)
            {
                await asyncDisposable.DisposeAsync();
            }
            else
            {
                Host.Dispose();
            }
        }
        finally
        {
            foreach (var database in databases)
            {
                database.Dispose(); // after the host: every grain, WAL and ledger write has been made or has failed
            }

            siloLock?.Dispose(); // last: the workspace is free only once everything of this silo is gone
        }
    }

    /// <summary>Removes silo.json when it names this process (never another silo's).</summary>
    private void RemoveOwnSiloInfo()
    {
        try
        {
            if (SiloInfo.ReadLive(Workspace.SiloInfoPath) is { } info && info.ProcessId == Environment.ProcessId)
            {
                File.Delete(Workspace.SiloInfoPath);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // left for the next start, which takes a file whose process is gone for stale
        }
    }

    private static IEnumerable<Exception> Chain(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            yield return ex;
        }
    }

    private static Exception Innermost(Exception ex) => Chain(ex).Last();
}
