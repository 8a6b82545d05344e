using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Fabric.Telemetry;
using Spectre.Console;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt metrics</c>, <c>rtt top</c>, <c>rtt tap</c>: the lane host's per-route telemetry, read over its control socket (docs/observability.md).</summary>
public static class TelemetryCommands
{
    public static IEnumerable<Command> Create() => [Metrics(), Top(), Tap()];

    private static Command Metrics()
    {
        var json = RttCommands.JsonOption();
        var command = new Command("metrics", "Print one snapshot of the lane host's per-route metrics (requests, errors, latency, breakers)") { json };
        command.SetAction(RttCommands.Guard((parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var bytes = TelemetryProtocol.Metrics(LaneClient.ControlSocketOf(ws));
            if (parse.GetValue(json))
            {
                using var stdout = Console.OpenStandardOutput();
                stdout.Write(bytes);
                return Task.FromResult(RttCommands.Ok);
            }

            var snapshot = JsonNode.Parse(bytes)!;
            if (Console.IsOutputRedirected)
            {
                AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 200);
            }

            AnsiConsole.Write(Table(snapshot, null, "route"));
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    private static readonly string[] SortColumns = ["route", "rps", "p50", "p95", "p99", "errors", "in_flight", "requests"];

    private static Command Top()
    {
        var once = new Option<bool>("--once") { Description = "Print one table (rates over one second) and exit" };
        var iterations = new Option<int?>("--iterations", "-n") { Description = "Refresh this many times, then exit" };
        var sort = new Option<string>("--sort") { Description = "Sort by route, rps, p50, p95, p99, errors, in_flight or requests (descending, route ascending)", DefaultValueFactory = _ => "rps" };
        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes", DefaultValueFactory = _ => 1 };
        var command = new Command("top", "A live table of the lane host's routes: rps, p50/p95/p99, in-flight, drops, errors and breaker state") { once, iterations, sort, interval };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var by = parse.GetValue(sort)!;
            if (!SortColumns.Contains(by))
            {
                throw new RttException(ErrorCodes.ObsInputInvalid, $"--sort {by} is not a column", "--sort", $"use one of {string.Join(", ", SortColumns)}");
            }

            var seconds = parse.GetValue(interval);
            if (!(seconds >= 0.1 && seconds <= 3600))
            {
                throw new RttException(ErrorCodes.ObsInputInvalid, $"--interval {seconds.ToString(CultureInfo.InvariantCulture)} is not from 0.1 to 3600 seconds", "--interval", "for example --interval 1");
            }

            var rounds = parse.GetValue(once) ? 1 : parse.GetValue(iterations) ?? int.MaxValue;
            if (rounds < 1)
            {
                throw new RttException(ErrorCodes.ObsInputInvalid, $"--iterations {rounds} is below 1", "--iterations", "for example --iterations 5");
            }

            var socket = LaneClient.ControlSocketOf(ws);
            var previous = JsonNode.Parse(TelemetryProtocol.Metrics(socket))!;
            var step = TimeSpan.FromSeconds(seconds);
            if (Console.IsOutputRedirected || rounds < int.MaxValue && !AnsiConsole.Profile.Capabilities.Interactive)
            {
                AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 200); // a file or a pipe: rows on one line each
                for (var i = 0; i < rounds && !cancellationToken.IsCancellationRequested; i++)
                {
                    await Task.Delay(step, cancellationToken);
                    var current = JsonNode.Parse(TelemetryProtocol.Metrics(socket))!;
                    AnsiConsole.Write(Table(current, previous, by));
                    previous = current;
                }

                return RttCommands.Ok;
            }

            await AnsiConsole.Live(Table(previous, null, by)).StartAsync(async live =>
            {
                for (var i = 0; i < rounds && !cancellationToken.IsCancellationRequested; i++)
                {
                    try
                    {
                        await Task.Delay(step, cancellationToken);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }

                    var current = JsonNode.Parse(TelemetryProtocol.Metrics(socket))!;
                    live.UpdateTarget(Table(current, previous, by));
                    previous = current;
                }
            });
            return RttCommands.Ok;
        }));
        return command;
    }

    private static Command Tap()
    {
        var flight = new Option<string?>("--flight") { Description = "Write the last DURATION of the flight record as NDJSON (e.g. 5s, 500ms, 2m)" };
        var follow = new Option<bool>("--follow") { Description = "Stream each request as NDJSON as it is recorded, until Ctrl-C" };
        var command = new Command("tap", "The lane host's flight recorder: every request's route, endpoint, sizes, latency and outcome, as NDJSON") { flight, follow };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var window = parse.GetValue(flight);
            if ((window is null) == !parse.GetValue(follow))
            {
                throw new RttException(ErrorCodes.ObsInputInvalid, "give one of --flight DURATION or --follow", "rtt tap", "for example rtt tap --flight 5s > flight.ndjson");
            }

            var socket = LaneClient.ControlSocketOf(ws);
            await using var stdout = Console.OpenStandardOutput();
            if (window is not null)
            {
                TelemetryProtocol.Flight(socket, Duration(window, "--flight"), stdout);
                return RttCommands.Ok;
            }

            await TelemetryProtocol.FollowAsync(socket, stdout, cancellationToken);
            return RttCommands.Ok;
        }));
        return command;
    }

    /// <summary>A duration like 5s, 500ms, 2m or 1h (a bare number is seconds), above 0 and at most an hour.</summary>
    public static TimeSpan Duration(string text, string option)
    {
        var t = text.Trim();
        var (number, unit) = t.EndsWith("ms", StringComparison.Ordinal) ? (t[..^2], 0.001)
            : t.EndsWith('s') ? (t[..^1], 1.0)
            : t.EndsWith('m') ? (t[..^1], 60.0)
            : t.EndsWith('h') ? (t[..^1], 3600.0)
            : (t, 1.0);
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !(value * unit > 0) || value * unit > 3600)
        {
            throw new RttException(ErrorCodes.ObsInputInvalid, $"{option} {text} is not a duration from above 0 to 1h", option, "for example 5s, 500ms or 2m");
        }

        return TimeSpan.FromSeconds(value * unit);
    }

    /// <summary>The routes of a snapshot as a table; with <paramref name="previous"/>, rps and latency over the time between the two.</summary>
    internal static Table Table(JsonNode snapshot, JsonNode? previous, string sort)
    {
        var before = (previous?["routes"] as JsonArray ?? []).ToDictionary(r => (uint)r!["route_id"]!, r => r!);
        double elapsed = 0;
        if (previous is not null)
        {
            elapsed = (double)snapshot["uptime_s"]! - (double)previous["uptime_s"]!;
        }

        var rows = new List<(JsonNode Route, double Rps)>();
        foreach (var r in snapshot["routes"] as JsonArray ?? [])
        {
            var requests = (long)r!["requests"]!;
            var rps = elapsed > 0 && before.TryGetValue((uint)r["route_id"]!, out var b)
                ? (requests - (long)b["requests"]!) / elapsed
                : (double)r["window"]!["rps"]!;
            rows.Add((r, rps));
        }

        IEnumerable<(JsonNode Route, double Rps)> sorted = sort switch
        {
            "rps" => rows.OrderByDescending(r => r.Rps),
            "p50" => rows.OrderByDescending(r => (long)r.Route["window"]!["p50_ns"]!),
            "p95" => rows.OrderByDescending(r => (long)r.Route["window"]!["p95_ns"]!),
            "p99" => rows.OrderByDescending(r => (long)r.Route["window"]!["p99_ns"]!),
            "errors" => rows.OrderByDescending(r => (long)r.Route["errors"]!),
            "in_flight" => rows.OrderByDescending(r => (long)r.Route["in_flight"]!),
            "requests" => rows.OrderByDescending(r => (long)r.Route["requests"]!),
            _ => rows,
        };
        sorted = sort == "route" ? sorted : ((IOrderedEnumerable<(JsonNode Route, double Rps)>)sorted).ThenBy(r => (string)r.Route["route"]!, StringComparer.Ordinal);
        var node = (string?)snapshot["node"];
        var table = new Table()
            .Title($"rtt top: {Markup.Escape(node ?? "lane host")} at {Markup.Escape((string)snapshot["at"]!)} (latency over the last {Window(snapshot)})")
            .AddColumns("route", "endpoint", "rps", "p50", "p95", "p99", "in-flight", "requests", "errors", "drops", "breaker");
        foreach (var (r, rps) in sorted)
        {
            var w = r["window"]!;
            var drops = r["drops"]!.AsObject().Where(d => (long)d.Value! > 0).Select(d => $"{d.Key} {(long)d.Value!}");
            var breaker = (string)r["breaker"]!["state"]!;
            table.AddRow(
                Markup.Escape((string)r["route"]!),
                Markup.Escape((string)r["endpoint"]!),
                rps.ToString("0.0", CultureInfo.InvariantCulture),
                Ns((long)w["p50_ns"]!), Ns((long)w["p95_ns"]!), Ns((long)w["p99_ns"]!),
                Count((long)r["in_flight"]!), Count((long)r["requests"]!), Count((long)r["errors"]!),
                Markup.Escape(string.Join(", ", drops)),
                breaker == "closed" ? breaker : $"[red]{breaker}[/] ({(long)r["breaker"]!["trips"]!} trips)");
        }

        return table;
    }

    private static string Window(JsonNode snapshot) =>
        (snapshot["routes"] as JsonArray ?? []).Select(r => (double)r!["window"]!["seconds"]!).DefaultIfEmpty(0).Max().ToString("0.0", CultureInfo.InvariantCulture) + " s";

    private static string Count(long n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>Nanoseconds for people: 850ns, 12.3us, 4.56ms, 1.23s.</summary>
    public static string Ns(long ns) => ns switch
    {
        0 => "-",
        < 1_000 => $"{ns}ns",
        < 1_000_000 => (ns / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + "us",
        < 1_000_000_000 => (ns / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + "ms",
        _ => (ns / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + "s",
    };
}
