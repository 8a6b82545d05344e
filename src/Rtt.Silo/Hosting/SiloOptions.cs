using Rtt.Core.Errors;

namespace Rtt.Silo.Hosting;

/// <summary>
/// The silo's settings, bound from configuration: appsettings.json beside the binary, then
/// <c>RTT_</c>-prefixed environment variables (<c>RTT_Silo__GatewayPort=30001</c>), then command-line options.
/// </summary>
public sealed class RttSiloOptions
{
    public string NodeId { get; set; } = "node0";
    public int SiloPort { get; set; } = 11111;
    public int GatewayPort { get; set; } = 30000;
    public string ClusterId { get; set; } = "rtt";
    public string ServiceId { get; set; } = "rtt";

    /// <summary>The NUMA node this silo runs on (its threads and lane workers bound to the node's CPUs); null: no binding.</summary>
    public int? Numa { get; set; }

    /// <summary>Where the machine's topology is read (<c>devices/system/node/node*/cpulist</c>): /sys, or a stand-in tree for tests.</summary>
    public string SysRoot { get; set; } = "/sys";

    public void Validate()
    {
        if (Numa is < 0)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"NUMA node {Numa} is negative", "Silo:Numa", "give a node id from /sys/devices/system/node (0, 1, …)");
        }

        if (NodeId.Length is 0 or > 64 || !NodeId.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"invalid node id \"{NodeId}\"", "Silo:NodeId",
                "use 1-64 characters from A-Z a-z 0-9 - _ .");
        }

        foreach (var (name, port) in new[] { ("Silo:SiloPort", SiloPort), ("Silo:GatewayPort", GatewayPort) })
        {
            if (port is < 1 or > 65535)
            {
                throw new HostingException(ErrorCodes.ConfigInvalid, $"port {port} is out of range", name, "use a port from 1 to 65535");
            }
        }

        if (SiloPort == GatewayPort)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"silo port and gateway port are both {SiloPort}", "Silo:GatewayPort",
                "give the gateway its own port");
        }
    }
}

/// <summary>Grain storage settings.</summary>
public sealed class RttStorageOptions
{
    /// <summary><c>sqlite</c> (embedded default, in .rtt/state/rtt.db).</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>Overrides the database location; by default the workspace's .rtt/state/rtt.db.</summary>
    public string? ConnectionString { get; set; }
}

/// <summary>Where the reconciler's Merkle WAL lives (the <c>Wal</c> section).</summary>
public sealed class RttWalOptions
{
    /// <summary><c>sqlite</c> (embedded default: tables in .rtt/state/rtt.db) or <c>postgres</c> (a cluster's shared log).</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>For <c>postgres</c>: the Npgsql connection string (required).</summary>
    public string? ConnectionString { get; set; }
}

/// <summary>OpenTelemetry metrics export settings.</summary>
public sealed class RttMetricsOptions
{
    /// <summary>Print metrics to the console periodically.</summary>
    public bool Console { get; set; }

    /// <summary>Serve Prometheus text at http://127.0.0.1:PORT/metrics when non-zero.</summary>
    public int PrometheusPort { get; set; }

    /// <summary>Where the call spans (source <c>Rtt</c>) are pushed by OTLP, e.g. <c>http://127.0.0.1:4318/v1/traces</c> (protocol as <see cref="OtlpProtocol"/>); null: not exported.</summary>
    public string? OtlpTracesEndpoint { get; set; }

    /// <summary>Push metrics with OTLP to this endpoint (e.g. http://127.0.0.1:4318/v1/metrics) when set.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>http/protobuf</c> (default) or <c>grpc</c>.</summary>
    public string OtlpProtocol { get; set; } = "http/protobuf";

    /// <summary>How often the OTLP exporter pushes, in milliseconds.</summary>
    public int ExportIntervalMs { get; set; } = 10_000;
}

/// <summary>
/// Cluster mode (the <c>Cluster</c> section): <c>Provider=postgres</c> puts membership (Orleans ADO.NET clustering),
/// grain state, the participants' ledgers and the Merkle WAL in one PostgreSQL database shared by every silo.
/// </summary>
public sealed class RttClusterOptions
{
    /// <summary><c>none</c> (default: the embedded single silo on SQLite) or <c>postgres</c>.</summary>
    public string Provider { get; set; } = "none";

    /// <summary>For <c>postgres</c>: the Npgsql connection string (required).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The address other silos and clients reach this silo at (default 127.0.0.1: silos of one host).</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    public bool IsPostgres => string.Equals(Provider, "postgres", StringComparison.OrdinalIgnoreCase);

    public void Validate()
    {
        if (!IsPostgres && !string.Equals(Provider, "none", StringComparison.OrdinalIgnoreCase))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"unknown cluster provider \"{Provider}\"", "Cluster:Provider",
                "use \"none\" (the embedded single silo) or \"postgres\" (with Cluster:ConnectionString, or `rtt up --cluster CONNSTR`)");
        }

        if (IsPostgres && string.IsNullOrWhiteSpace(ConnectionString))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, "Cluster:Provider is postgres but Cluster:ConnectionString is not set", "Cluster:ConnectionString",
                "set it (RTT_Cluster__ConnectionString, or `rtt up --cluster CONNSTR`) to an Npgsql connection string, e.g. Host=db;Port=5432;Database=rtt;Username=rtt;Password=…");
        }

        if (IsPostgres && !System.Net.IPAddress.TryParse(AdvertisedAddress, out _))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"\"{AdvertisedAddress}\" is not an IP address", "Cluster:AdvertisedAddress",
                "give the IP address other silos reach this one at (e.g. 10.0.0.5)");
        }
    }

    /// <summary>The cluster's connection string when the configuration puts the silo in a PostgreSQL cluster, else null.</summary>
    public static string? PostgresConnection(Microsoft.Extensions.Configuration.IConfiguration configuration) =>
        string.Equals(configuration["Cluster:Provider"], "postgres", StringComparison.OrdinalIgnoreCase) && configuration["Cluster:ConnectionString"] is { Length: > 0 } c ? c : null;
}
