using System.Diagnostics.Metrics;

namespace Rtt.Core.Telemetry;

/// <summary>
/// RTT's own meter. Hosts export it with OpenTelemetry beside Orleans' "Microsoft.Orleans" meter.
/// Instruments are created once here and shared; recording on them does not allocate.
/// </summary>
public static class RttMetrics
{
    public const string MeterName = "Rtt";

    public static readonly Meter Meter = new(MeterName, typeof(RttMetrics).Assembly.GetName().Version?.ToString());

    /// <summary>Node registrations handled by node grains.</summary>
    public static readonly Counter<long> NodeRegistrations =
        Meter.CreateCounter<long>("rtt.node.registrations", unit: "{registration}", description: "Node registrations handled by node grains");

    /// <summary>Silo start-up time, from host build to the node being registered.</summary>
    public static readonly Histogram<double> SiloStartup =
        Meter.CreateHistogram<double>("rtt.silo.startup", unit: "ms", description: "Time from silo start to node registered");
}
