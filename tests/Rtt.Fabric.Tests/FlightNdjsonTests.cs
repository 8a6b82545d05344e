using System.Diagnostics;
using System.Text.Json;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;

namespace Rtt.Fabric.Tests;

/// <summary>The flight dump's frame lines are written by hand for speed: byte for byte what System.Text.Json's writer gives.</summary>
public sealed class FlightNdjsonTests
{
    [Theory]
    [InlineData(2000)]
    [InlineData(50_000)] // several 8,192-record segments: formatted on several threads, written in order
    public void Frame_lines_are_the_bytes_the_json_writer_gives_for_the_same_object(int n)
    {
        using var telemetry = new LaneTelemetry(1024, start: false);
        telemetry.Bind(new RouteTable([
            new RouteEntry(7, "rtt://t/plain", new DriverEndpoint(new EchoDriver())),
            new RouteEntry(9, "rtt://t/\"quoted\" <ü> 🚀", new DriverEndpoint(new EchoDriver()), "rtt://t/caller"),
        ]));
        var t0 = Stopwatch.GetTimestamp();
        var records = new List<FlightRecord>();
        var rnd = new Random(5);
        for (var i = 0; i < n; i++)
        {
            var ticks = t0 + (i % 3 == 0 ? i * Stopwatch.Frequency : rnd.NextInt64(0, 10 * Stopwatch.Frequency)); // whole seconds too: a fraction of 0
            var outcome = (Outcome)(i % 6);
            records.Add(new FlightRecord
            {
                Start = ticks,
                LatencyNs = rnd.NextInt64(0, long.MaxValue / 2),
                RouteId = (uint)(i % 4 == 3 ? 12345 : i % 2 == 0 ? 7 : 9), // 12345: no such route (no name written)
                FrameId = (uint)rnd.NextInt64(0, uint.MaxValue),
                RequestBytes = rnd.Next(),
                AnswerBytes = i % 5 == 0 ? 0 : rnd.Next(),
                Outcome = outcome,
                Code = (ushort)(outcome == Outcome.Error || i % 7 == 0 ? rnd.Next(0, ErrorCodeTable.Count) : 0),
            });
        }

        using var actual = new MemoryStream();
        telemetry.WriteRecords(actual, null, records);

        using var expected = new MemoryStream();
        foreach (var r in records)
        {
            using (var w = new Utf8JsonWriter(expected))
            {
                w.WriteStartObject();
                w.WriteString("type", "frame");
                w.WriteString("ts", telemetry.UtcOf(r.Start));
                w.WriteNumber("route_id", r.RouteId);
                if (telemetry.Route(r.RouteId) is { } stats)
                {
                    w.WriteString("route", stats.Name);
                    w.WriteString("endpoint", stats.Endpoint);
                }

                w.WriteNumber("frame_id", r.FrameId);
                w.WriteNumber("request_bytes", r.RequestBytes);
                w.WriteNumber("answer_bytes", r.AnswerBytes);
                w.WriteNumber("latency_ns", r.LatencyNs);
                w.WriteString("outcome", LaneTelemetry.OutcomeName(r.Outcome));
                if (r.Code != 0 || r.Outcome == Outcome.Error)
                {
                    w.WriteString("code", ErrorCodeTable.Codes[r.Code]);
                }

                w.WriteEndObject();
            }

            expected.WriteByte((byte)'\n');
        }

        Assert.Equal(System.Text.Encoding.UTF8.GetString(expected.ToArray()), System.Text.Encoding.UTF8.GetString(actual.ToArray()));
        Assert.Contains("\\u0022quoted\\u0022", System.Text.Encoding.UTF8.GetString(actual.ToArray())); // escaped as the writer escapes
    }

    [Fact]
    public void A_window_copied_out_of_a_ring_that_wrapped_holds_the_newest_records_that_ended_in_it_in_order()
    {
        var flight = new FlightRecorder(1024);
        for (var i = 0; i < 2500; i++) // wraps twice and a half
        {
            flight.Record(1_000_000 + (i * 10L), 0, 1, (uint)i, 1, 1, Outcome.Ok, 0);
        }

        var all = flight.CopySince(0, out var count);
        Assert.Equal(1023, count); // the oldest slot is left out: the writer's next record overwrites it
        Assert.Equal(Enumerable.Range(2500 - 1023, 1023).Select(i => (uint)i), all.Take(count).Select(r => r.FrameId));

        var since = 1_000_000 + (2400 * 10L);
        var recent = flight.Since(since);
        Assert.Equal(Enumerable.Range(2400, 100).Select(i => (uint)i), recent.Select(r => r.FrameId));
    }

    [Theory]
    [InlineData(40_000)]  // room behind the window: formatted straight out of the ring
    [InlineData(100_000)] // the ring wrapped, the window fills it: copied first
    public void A_dump_holds_the_records_that_ended_in_the_window_and_counts_them_in_its_window_line(int written)
    {
        using var telemetry = new LaneTelemetry(65_536, start: false);
        telemetry.Bind(new RouteTable([new RouteEntry(7, "rtt://t/plain", new DriverEndpoint(new EchoDriver()))]));
        var now = Stopwatch.GetTimestamp();
        for (var i = 0; i < written; i++)
        {
            var start = i % 3 == 0 ? now - (7200 * Stopwatch.Frequency) : now - Stopwatch.Frequency + i; // a third ended before the window
            telemetry.Flight.Record(start, 1000, 7, (uint)i, 64, 64, Outcome.Ok, 0);
        }

        using var dump = new MemoryStream();
        telemetry.WriteFlight(dump, TimeSpan.FromHours(1));
        var lines = System.Text.Encoding.UTF8.GetString(dump.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        using var header = JsonDocument.Parse(lines[0]);
        var frames = lines.Skip(1).Where(l => l.Contains("\"type\":\"frame\"", StringComparison.Ordinal)).ToList();
        Assert.Equal(header.RootElement.GetProperty("frames").GetInt32(), frames.Count);

        var expectedIds = Enumerable.Range(Math.Max(0, written - 65_535), Math.Min(written, 65_535)).Where(i => i % 3 != 0).ToList();
        Assert.Equal(expectedIds, frames.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("frame_id").GetInt32()).ToList());
        Assert.Equal(0, telemetry.DumpLost);
    }
}
