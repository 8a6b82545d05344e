using System.Text;
using System.Text.Json.Nodes;
using Rtt.Cli.Panel;

namespace Rtt.Cli.Tests;

/// <summary>The Live page's summary of flight records: the cut at <c>since</c> by end time, nearest-rank percentiles, outcomes.</summary>
public sealed class FlightSummaryTests
{
    private const string Window = """{"type":"window","at":"2026-12-02T10:00:02.0000000Z","seconds":2,"frames":5,"metrics":1,"reason":null,"recorded":40,"capacity":131072}""";

    private static string Frame(uint route, string ts, long latencyNs, string outcome = "ok") =>
        $$"""{"type":"frame","ts":"{{ts}}","route_id":{{route}},"route":"rtt://a/b/r{{route}}","endpoint":"e{{route}}","frame_id":1,"request_bytes":1,"answer_bytes":1,"latency_ns":{{latencyNs}},"outcome":"{{outcome}}"}""";

    [Fact]
    public void Requests_that_ended_after_since_are_summarised_per_route_with_nearest_rank_percentiles()
    {
        var lines = new[]
        {
            Window,
            """{"type":"metrics","ts":"2026-12-02T10:00:01.0000000Z","route_id":7,"route":"rtt://a/b/r7","requests":1,"answers":1,"errors":0,"in_flight":0,"breaker":"closed"}""",
            Frame(7, "2026-12-02T10:00:00.9000000Z", 50_000_000), // ends 00.95: before since, cut
            Frame(7, "2026-12-02T10:00:00.9990000Z", 2_000_000),  // starts before since, ends 01.001: counted
            Frame(7, "2026-12-02T10:00:01.2000000Z", 1_000_000),
            Frame(7, "2026-12-02T10:00:01.3000000Z", 3_000_000, "error"),
            Frame(3, "2026-12-02T10:00:01.5000000Z", 400),
        };
        var since = FlightSummary.ParseTime("2026-12-02T10:00:01.0000000Z");
        var s = FlightSummary.Of(Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n"), since);

        Assert.Equal("2026-12-02T10:00:01.5000004Z", (string?)s["until"]); // the newest end: ts + 400 ns (4 ticks)
        Assert.Equal(40, (long)s["recorded"]!);
        var routes = (JsonArray)s["routes"]!;
        Assert.Equal([3u, 7u], routes.Select(r => (uint)r!["route_id"]!));
        var r7 = routes[1]!;
        Assert.Equal(3, (int)r7["frames"]!);
        Assert.Equal(1, (long)r7["errors"]!);
        Assert.Equal(2_000_000, (long)r7["p50_ns"]!); // sorted 1, 2, 3 ms
        Assert.Equal(3_000_000, (long)r7["p99_ns"]!);
        Assert.Equal(3_000_000, (long)r7["max_ns"]!);
        Assert.Equal(1, (long)r7["outcomes"]!["error"]!);

        // The next call with since = until sees nothing twice.
        var next = FlightSummary.Of(Encoding.UTF8.GetBytes(string.Join('\n', lines)), FlightSummary.ParseTime((string?)s["until"]));
        Assert.Empty((JsonArray)next["routes"]!);
        Assert.Equal((string?)s["until"], (string?)next["until"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("2026-12-02 10:00:01")]
    [InlineData("2026-12-02T10:00:01+01:00")]
    [InlineData("yesterday")]
    public void Times_not_written_as_the_flight_record_writes_them_are_not_read(string text) => Assert.Null(FlightSummary.ParseTime(text));

    [Theory]
    [InlineData("2026-12-02T10:00:01.1234567Z", 1_234_567)]
    [InlineData("2026-12-02T10:00:01.12Z", 1_200_000)] // the JSON writer drops trailing zeros
    [InlineData("2026-12-02T10:00:01Z", 0)]
    public void Times_with_up_to_seven_fractional_digits_are_read(string text, long ticks) =>
        Assert.Equal(new DateTime(2026, 12, 2, 10, 0, 1, DateTimeKind.Utc).AddTicks(ticks), FlightSummary.ParseTime(text));
}
