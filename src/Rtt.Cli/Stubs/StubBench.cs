using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using HdrHistogram;
using Rtt.Core.Errors;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Cli.Stubs;

/// <summary>
/// <c>rtt stub bench</c>: per stub, its sample echo service over UDS (and SHM where it has it) against the C# stub's
/// echo over the same lane kind, in the same run: both services stay up and the round trips are measured in 50 ms
/// slices taking turns, so a change in the machine weighs on both alike. The host side is a lane like the silo's
/// (<see cref="StreamLane"/> or <see cref="ShmLane"/>), polled by this thread.
/// </summary>
public static class StubBench
{
    public const string Baseline = "csharp";

    public sealed record Case(string Language, string Lane, int Size, double P50Us, double P99Us, double BaselineP50Us, double BaselineP99Us, long Count);

    public static List<Case> Run(IReadOnlyList<StubEntry> stubs, IReadOnlyList<int> sizes, double seconds, Action<string> progress)
    {
        var baseline = stubs.Single(s => s.Language == Baseline);
        var cases = new List<Case>();
        foreach (var stub in stubs.Where(s => s.Language != Baseline))
        {
            foreach (var lane in stub.Shm ? new[] { LaneKind.Uds, LaneKind.Shm } : [LaneKind.Uds])
            {
                progress($"{stub.Language} over {lane.ToString().ToLowerInvariant()}");
                using var subject = Service.Start(stub, lane);
                using var control = Service.Start(baseline, lane);
                foreach (var size in sizes)
                {
                    var payload = new byte[size];
                    new Random(size).NextBytes(payload);
                    var hs = new LongHistogram(Stopwatch.Frequency * 10, 3);
                    var hb = new LongHistogram(Stopwatch.Frequency * 10, 3);
                    for (var i = 0; i < 50; i++)
                    {
                        subject.RoundTrip(payload); // warm-up (JIT, caches)
                        control.RoundTrip(payload);
                    }

                    var end = Stopwatch.GetTimestamp() + (long)(seconds * 2 * Stopwatch.Frequency);
                    var slice = Stopwatch.Frequency / 20;
                    var turn = 0;
                    while (Stopwatch.GetTimestamp() < end)
                    {
                        var (service, histogram) = turn++ % 2 == 0 ? (subject, hs) : (control, hb);
                        var sliceEnd = Stopwatch.GetTimestamp() + slice;
                        while (Stopwatch.GetTimestamp() < sliceEnd)
                        {
                            histogram.RecordValue(service.RoundTrip(payload));
                        }
                    }

                    cases.Add(new Case(stub.Language, lane.ToString().ToLowerInvariant(), size, Us(hs, 50), Us(hs, 99), Us(hb, 50), Us(hb, 99), hs.TotalCount));
                }
            }
        }

        return cases;
    }

    private static double Us(LongHistogram h, double percentile) => Math.Round(h.GetValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency, 1);

    /// <summary>The 1-, 5- and 15-minute load averages (/proc/loadavg), for the report.</summary>
    public static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    public static void Print(List<Case> cases, string loadBefore, string loadAfter, TextWriter output)
    {
        output.WriteLine($"stub echo round trips against the C# stub's echo over the same lane, alternating 50 ms slices; load {loadBefore} before, {loadAfter} after");
        output.WriteLine($"{"language",-10} {"lane",-4} {"size",6} {"p50 us",9} {"p99 us",9} {"C# p50",9} {"C# p99",9} {"p50 ratio",9}");
        foreach (var c in cases)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{c.Language,-10} {c.Lane,-4} {c.Size,6} {c.P50Us,9:0.0} {c.P99Us,9:0.0} {c.BaselineP50Us,9:0.0} {c.BaselineP99Us,9:0.0} {(c.BaselineP50Us > 0 ? c.P50Us / c.BaselineP50Us : 0),9:0.00}"));
        }
    }

    public static JsonObject ToJson(List<Case> cases, string loadBefore, string loadAfter)
    {
        var array = new JsonArray();
        foreach (var c in cases)
        {
            array.Add(new JsonObject
            {
                ["language"] = c.Language, ["lane"] = c.Lane, ["size"] = c.Size, ["p50_us"] = c.P50Us, ["p99_us"] = c.P99Us,
                ["baseline"] = Baseline, ["baseline_p50_us"] = c.BaselineP50Us, ["baseline_p99_us"] = c.BaselineP99Us, ["round_trips"] = c.Count,
            });
        }

        return new JsonObject { ["load_before"] = loadBefore, ["load_after"] = loadAfter, ["cases"] = array };
    }

    /// <summary>A stub's echo service attached to a lane this thread drives.</summary>
    private sealed class Service : IDisposable
    {
        private readonly Process _process;
        private readonly IFrameLane _lane;
        private readonly string _dir;
        private readonly FrameHandler _onFrame;
        private uint _id;
        private bool _answered;

        private Service(Process process, IFrameLane lane, string dir)
        {
            _process = process;
            _lane = lane;
            _dir = dir;
            _onFrame = (in FrameHeader h, ReadOnlySpan<byte> p) =>
            {
                if (h.FrameId == _id && (h.Flags & FrameFlags.Response) != 0)
                {
                    _answered = true;
                }
            };
        }

        private static readonly LaneDoorbell Doorbell = new();

        public static Service Start(StubEntry stub, LaneKind lane)
        {
            var dir = Directory.CreateTempSubdirectory("rtt-stub-bench-").FullName;
            var path = Path.Combine(dir, "s.sock");
            using var listener = LaneSockets.ListenUnix(path);
            var info = new ProcessStartInfo(stub.Run[0]) { UseShellExecute = false, RedirectStandardInput = true, WorkingDirectory = stub.Source };
            foreach (var a in stub.Run.Skip(1))
            {
                info.ArgumentList.Add(a);
            }

            info.Environment["RTT_SERVICE_SOCKET"] = path;
            info.Environment["RTT_SERVICE_LANE"] = lane == LaneKind.Shm ? "shm" : "uds";
            var process = Process.Start(info)!;
            try
            {
                if (!listener.Poll(30_000_000, SelectMode.SelectRead))
                {
                    throw new RttException(ErrorCodes.StubCheckUsage, $"the {stub.Language} stub did not attach within 30 s", stub.Source, "run rtt stub check on it first");
                }

                var socket = listener.Accept();
                var head = new byte[8];
                socket.ReceiveTimeout = 10_000;
                ReadExactly(socket, head);
                ReadExactly(socket, new byte[BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(6))]);
                var reply = new byte[16];
                BinaryPrimitives.WriteUInt32LittleEndian(reply, 0x52545452);
                BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(8), 1);
                BinaryPrimitives.WriteInt32LittleEndian(reply.AsSpan(12), head[5]);
                socket.Send(reply);
                socket.ReceiveTimeout = 0;
                var options = new LaneOptions();
                IFrameLane l = head[5] == 0 ? ShmLane.Accept(socket, options, Doorbell, TimeSpan.FromSeconds(10)) : new StreamLane(socket, LaneKind.Uds, options);
                return new Service(process, l, dir);
            }
            catch
            {
                process.Kill();
                process.Dispose();
                throw;
            }
        }

        private static void ReadExactly(Socket socket, byte[] buffer)
        {
            for (var n = 0; n < buffer.Length;)
            {
                var r = socket.Receive(buffer, n, buffer.Length - n, SocketFlags.None);
                if (r == 0)
                {
                    throw new RttException(ErrorCodes.StubCheckUsage, "the stub closed its socket during attach", "stub", "run rtt stub check on it first");
                }

                n += r;
            }
        }

        /// <summary>One request and its answer; returns the round trip in Stopwatch ticks.</summary>
        public long RoundTrip(byte[] payload)
        {
            _id++;
            _answered = false;
            var t0 = Stopwatch.GetTimestamp();
            if (!_lane.Send(0x5EC, _id, payload) || !_lane.Flush())
            {
                throw new RttException(ErrorCodes.StubCheckUsage, "the stub's lane closed during the bench", "stub", "run rtt stub check on it");
            }

            var spins = 0;
            while (!_answered)
            {
                if (_lane.Poll(_onFrame) == 0)
                {
                    if (_lane.PeerGone)
                    {
                        throw new RttException(ErrorCodes.StubCheckUsage, "the stub went away during the bench", "stub", "run rtt stub check on it");
                    }

                    if (++spins > 20_000)
                    {
                        _lane.WaitForData(TimeSpan.FromMilliseconds(1));
                    }
                }
            }

            return Stopwatch.GetTimestamp() - t0;
        }

        public void Dispose()
        {
            _lane.Dispose();
            if (!_process.WaitForExit(2000))
            {
                _process.Kill();
            }

            _process.Dispose();
            try
            {
                Directory.Delete(_dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
