using System.Diagnostics;
using System.Text.Json;
using Rtt.Fabric.Drivers;
using Rtt.Fabric.Routing;
using Rtt.Fabric.Telemetry;

namespace Rtt.Fabric.Tests;

/// <summary>The flight dump's frame lines are written by hand for speed: byte for byte what System.Text.Json's writer gives.</summary>
public sealed class FlightNdjsonTests
{
    [Fact]
    public void Frame_lines_are_the_bytes_the_json_writer_gives_for_the_same_object()
    {
        using var telemetry = new LaneTelemetry(1024, start: false);
        telemetry.Bind(new RouteTable([
            new RouteEntry(7, "rtt://t/plain", new DriverEndpoint(new EchoDriver())),
            new RouteEntry(9, "rtt://t/\"quoted\" <ü> 🚀", new DriverEndpoint(new EchoDriver()), "rtt://t/caller"),
        ]));
        var t0 = Stopwatch.GetTimestamp();
        var records = new List<FlightRecord>();
        var rnd = new Random(5);
        for (var i = 0; i < 2000; i++)
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
}
