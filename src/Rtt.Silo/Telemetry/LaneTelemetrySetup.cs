using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Rtt.Core.Workspace;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;
using Rtt.Planning;

namespace Rtt.Silo.Telemetry;

/// <summary>
/// The silo's side of lane telemetry: makes a lane host's <see cref="LaneTelemetry"/> (breaker settings from
/// <c>policy.json</c>, flight dumps to <c>.rtt/flight</c>, breaker changes logged), and exports it through the
/// <c>Rtt</c> meter (<see cref="LaneMeters"/>).
/// </summary>
public static class LaneTelemetrySetup
{
    /// <summary>Where a lane host dumps its flight window when a breaker opens.</summary>
    public static string FlightFolder(RttWorkspace workspace) => Path.Combine(workspace.Dir, "flight");

    public static LaneTelemetry Create(RttWorkspace workspace, string nodeId, int flightRecords, ILogger logger)
    {
        var telemetry = new LaneTelemetry(flightRecords)
        {
            Node = nodeId,
            FlightDumpFolder = FlightFolder(workspace),
        };
        telemetry.BreakerChanged = (change, route, dump) =>
        {
            if (change.To == BreakerState.Open)
            {
                logger.LogWarning("Breaker of route {Route} ({RouteId}, endpoint {Endpoint}) {From} -> open after {Failures} failures in {Calls} calls; flight window written to {Dump}",
                    route.Name, route.RouteId, route.Endpoint, LaneTelemetry.StateName(change.From), change.Failures, change.Calls, dump ?? "(not written)");
            }
            else
            {
                logger.LogInformation("Breaker of route {Route} ({RouteId}, endpoint {Endpoint}) {From} -> {To}",
                    route.Name, route.RouteId, route.Endpoint, LaneTelemetry.StateName(change.From), LaneTelemetry.StateName(change.To));
            }
        };
        Refresh(telemetry, workspace, logger);
        LaneMeters.Register(telemetry);
        return telemetry;
    }

    /// <summary>Reads the breaker settings again (before each swap): a policy that cannot be read keeps the ones in use, with a warning.</summary>
    public static void Refresh(LaneTelemetry telemetry, RttWorkspace workspace, ILogger logger)
    {
        try
        {
            telemetry.BreakerPolicy = BreakerPolicy.Read(workspace.PolicyPath);
        }
        catch (Exception ex) when (ex is Core.Errors.RttException or IOException or System.Text.Json.JsonException)
        {
            logger.LogWarning("Breaker settings in {Policy} not applied, the previous ones stay: {Message}", workspace.PolicyPath, ex.Message);
        }
    }
}

/// <summary>
/// <c>policy.json</c> <c>breakers</c>: <c>default</c> (every route) and <c>routes</c> (the first entry whose
/// <c>match</c> pattern matches the route's target symbol overrides the fields it sets). Fields: <c>enabled</c>
/// (true), <c>window_s</c> (10), <c>min_calls</c> (20), <c>failure_ratio</c> (0.5), <c>slow_call_ms</c> (0: off),
/// <c>open_s</c> (5), <c>half_open_calls</c> (3).
/// </summary>
public static class BreakerPolicy
{
    public static Func<RouteEntry, BreakerOptions> Read(string policyPath)
    {
        if (!File.Exists(policyPath))
        {
            return _ => BreakerOptions.Default;
        }

        var policy = RttWorkspace.ReadObject(policyPath);
        return From(policy["breakers"] as JsonObject);
    }

    public static Func<RouteEntry, BreakerOptions> From(JsonObject? breakers)
    {
        var baseline = Apply(BreakerOptions.Default, breakers?["default"] as JsonObject);
        var rules = (breakers?["routes"] as JsonArray ?? [])
            .OfType<JsonObject>()
            .Select(r => ((string)r["match"]!, Apply(baseline, r)))
            .ToList();
        return route =>
        {
            foreach (var (match, options) in rules)
            {
                if (AddressPattern.Matches(match, route.Name))
                {
                    return options;
                }
            }

            return baseline;
        };
    }

    private static BreakerOptions Apply(BreakerOptions options, JsonObject? o)
    {
        if (o is null)
        {
            return options;
        }

        return options with
        {
            Enabled = o["enabled"] is JsonValue e ? e.GetValue<bool>() : options.Enabled,
            Window = o["window_s"] is JsonValue w ? TimeSpan.FromSeconds(Number(w)) : options.Window,
            MinCalls = o["min_calls"] is JsonValue m ? (int)Number(m) : options.MinCalls,
            FailureRatio = o["failure_ratio"] is JsonValue f ? Number(f) : options.FailureRatio,
            SlowCall = o["slow_call_ms"] is JsonValue s ? TimeSpan.FromMilliseconds(Number(s)) : options.SlowCall,
            OpenFor = o["open_s"] is JsonValue op ? TimeSpan.FromSeconds(Number(op)) : options.OpenFor,
            HalfOpenCalls = o["half_open_calls"] is JsonValue h ? (int)Number(h) : options.HalfOpenCalls,
        };
    }

    private static double Number(JsonValue v) => double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture);
}
