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

    public void Validate()
    {
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

    /// <summary>Push metrics with OTLP to this endpoint (e.g. http://127.0.0.1:4318/v1/metrics) when set.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>http/protobuf</c> (default) or <c>grpc</c>.</summary>
    public string OtlpProtocol { get; set; } = "http/protobuf";

    /// <summary>How often the OTLP exporter pushes, in milliseconds.</summary>
    public int ExportIntervalMs { get; set; } = 10_000;
}
