using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Shm;
using Rtt.Fabric.Streams;

namespace Rtt.Fabric.Stubs;

/// <summary>One rule of docs/stub-protocol.md section 8 and how the service fared.</summary>
public sealed record StubRuleResult(string Rule, bool Passed, string Detail, bool Applicable = true);

/// <summary>What <see cref="StubConformance.Run"/> starts and how.</summary>
public sealed record StubCheckOptions
{
    /// <summary>The service's command line (program, then arguments).</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The lane the service is asked for (<c>RTT_SERVICE_LANE</c>) and must attach with.</summary>
    public LaneKind Lane { get; init; } = LaneKind.Uds;

    /// <summary>Working directory of the service (default: the current one).</summary>
    public string? WorkingDirectory { get; init; }

    public TimeSpan AttachTimeout { get; init; } = TimeSpan.FromSeconds(30); // generous: on a loaded machine an interpreter (or a pyenv shim) can take seconds to start

    /// <summary>How long a rule waits for the answers it expects.</summary>
    public TimeSpan AnswerTimeout { get; init; } = TimeSpan.FromSeconds(20); // only a broken stub waits this long; a loaded machine can be slow

    /// <summary>Called with each result as soon as it is known.</summary>
    public Action<StubRuleResult>? OnResult { get; init; }
}

/// <summary>
/// The conformance kit of the universal stub protocol (docs/stub-protocol.md): plays the host's side against a service
/// process and checks every rule (good frames, bad CRC, bad magic, oversized and truncated frames, interleaved
/// requests, error frames, heartbeats, shutdown, peer death). Every frame the service sends is checked strictly.
/// </summary>
public static class StubConformance
{
    public const int MaxPayload = Rtt.Core.Lanes.LaneDefaults.MaxPayload;

    /// <summary>
    /// How long the kit waits for a service to exit after its lane closed. The protocol says 2 s (the silo's SIGKILL);
    /// the kit allows 5 s so a loaded machine does not fail a good stub, and prints the time it took.
    /// </summary>
    public static readonly TimeSpan ExitGrace = TimeSpan.FromSeconds(5);
    private const string SocketVariable = "RTT_SERVICE_SOCKET";
    private const string LaneVariable = "RTT_SERVICE_LANE";

    public static IReadOnlyList<StubRuleResult> Run(StubCheckOptions options)
    {
        var results = new List<StubRuleResult>();
        void Add(StubRuleResult r)
        {
            results.Add(r);
            options.OnResult?.Invoke(r);
        }

        var dir = Directory.CreateTempSubdirectory("rtt-stub-");
        try
        {
            RunMain(options, dir.FullName, Add);
            RunPeerDeath(options, dir.FullName, Add);
            RunNoSocket(options, Add);
        }
        finally
        {
            try
            {
                dir.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }

        return results;
    }

    private static void RunMain(StubCheckOptions options, string dir, Action<StubRuleResult> add)
    {
        using var service = ServiceProcess.Start(options, Path.Combine(dir, "main.sock"), withSocket: true);
        KitLane? lane;
        try
        {
            lane = KitLane.Attach(service, options);
        }
        catch (KitFailure ex)
        {
            add(new StubRuleResult("attach", false, ex.Message + service.Tail()));
            add(new StubRuleResult("(remaining rules)", false, "not run: the service did not attach"));
            return;
        }

        add(new StubRuleResult("attach", true, $"{lane.Kind} lane, attach version 2"));
        using (lane)
        {
            var rules = new (string Name, Func<KitLane, string?> Check, bool UdsOnly)[]
            {
                ("echo", l => ExpectEcho(l, [Request(0x0A0B0C0D, 1, "hello, rtt!"u8.ToArray())]), false),
                ("empty", l => ExpectEcho(l, [Request(3, 2, [])]), false),
                ("max-payload", l => ExpectEcho(l, [Request(3, 3, Pattern(l.MaxPayload, 7))]), false),
                ("no-payload-crc", l => ExpectEcho(l, [Request(3, 4, Pattern(1000, 9), FrameFlags.NoPayloadCrc)]), false),
                ("split", l => ExpectEcho(l, [Request(5, 5, Pattern(300, 1))], split: true), true),
                ("interleaved", Interleaved, false),
                ("bad-crc", l => ExpectOnly(l, [Corrupt(Request(6, 6, Pattern(100, 2))), Request(6, 7, Pattern(100, 3))], [7]), false),
                ("bad-magic", l => ExpectOnly(l, ["GARBAGE"u8.ToArray(), Request(6, 8, Pattern(50, 4))], [8]), false),
                ("oversized", l => ExpectOnly(l, [Header(6, 9, (uint)l.MaxPayload + 1), Request(6, 10, Pattern(40, 5))], [10]), false),
                ("truncated", Truncated, true),
                ("response-ignored", l => ExpectOnly(l, [Frame(FrameFlags.Response, 6, 11, Pattern(20, 6)), Request(6, 12, Pattern(20, 7))], [12]), false),
                ("error-frame", ErrorFrame, false),
                ("heartbeat", Heartbeat, false),
                ("still-serving", l => ExpectEcho(l, [Request(0xFFFFFFFF, 0xFFFFFFFE, Pattern(64, 8))]), false),
            };
            foreach (var (name, check, udsOnly) in rules)
            {
                if (udsOnly && lane.Kind != LaneKind.Uds)
                {
                    add(new StubRuleResult(name, true, "not applicable on an SHM lane (records delimit frames)", Applicable: false));
                    continue;
                }

                string? problem;
                try
                {
                    problem = check(lane) ?? lane.TakeViolation();
                }
                catch (KitFailure ex)
                {
                    problem = ex.Message;
                }

                if (problem is null && service.HasExited)
                {
                    problem = $"the service exited (status {service.ExitCode})";
                }

                add(new StubRuleResult(name, problem is null, problem is null ? "ok" : problem + service.Tail()));
                if (service.HasExited)
                {
                    add(new StubRuleResult("(remaining rules)", false, "not run: the service exited" + service.Tail()));
                    return;
                }
            }

            lane.Close();
        }

        var exited = service.WaitForExit(ExitGrace);
        add(!exited
            ? new StubRuleResult("shutdown", false, $"the host closed the lane but the service was still running {ExitGrace.TotalSeconds:0} s later" + service.Tail())
            : service.ExitCode == 0
                ? new StubRuleResult("shutdown", true, $"exited with status 0 in {service.ExitedAfterMs} ms")
                : new StubRuleResult("shutdown", false, $"exited with status {service.ExitCode} (0 expected after a graceful close)" + service.Tail()));
    }

    private static void RunPeerDeath(StubCheckOptions options, string dir, Action<StubRuleResult> add)
    {
        using var service = ServiceProcess.Start(options, Path.Combine(dir, "death.sock"), withSocket: true);
        try
        {
            var lane = KitLane.Attach(service, options);
            for (uint i = 0; i < 16; i++)
            {
                lane.Write([Request(1, 100 + i, Pattern(16 * 1024, (int)i))]);
            }

            lane.Abort();
        }
        catch (KitFailure ex)
        {
            add(new StubRuleResult("peer-death", false, "could not attach: " + ex.Message + service.Tail()));
            return;
        }

        add(service.WaitForExit(ExitGrace)
            ? new StubRuleResult("peer-death", true, $"exited with status {service.ExitCode} in {service.ExitedAfterMs} ms")
            : new StubRuleResult("peer-death", false, $"the host went away with requests in flight, but the service was still running {ExitGrace.TotalSeconds:0} s later" + service.Tail()));
    }

    private static void RunNoSocket(StubCheckOptions options, Action<StubRuleResult> add)
    {
        using var service = ServiceProcess.Start(options, null, withSocket: false);
        add(!service.WaitForExit(TimeSpan.FromSeconds(30))
            ? new StubRuleResult("no-socket", false, $"started without {SocketVariable}, the service was still running 30 s later")
            : service.ExitCode != 0
                ? new StubRuleResult("no-socket", true, $"exited with status {service.ExitCode}")
                : new StubRuleResult("no-socket", false, $"started without {SocketVariable}, the service exited with status 0 (non-zero expected)"));
    }

    // ---- rules ----

    private static string? ExpectEcho(KitLane lane, byte[][] requests, bool split = false)
    {
        var got = lane.Exchange(requests, split);
        return Match(got, requests);
    }

    private static string? ExpectOnly(KitLane lane, byte[][] chunks, uint[] answered)
    {
        var got = lane.Exchange(chunks);
        var good = chunks.Where(c => c.Length >= FrameHeader.Size && answered.Contains(BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(12)))).ToArray();
        return Match(got, good);
    }

    private static string? Interleaved(KitLane lane)
    {
        var random = new Random(18);
        var requests = new byte[64][];
        var ids = new HashSet<uint>();
        for (var i = 0; i < requests.Length; i++)
        {
            uint id;
            do
            {
                id = (uint)random.NextInt64(1, uint.MaxValue);
            }
            while (!ids.Add(id));
            requests[i] = Request((uint)random.NextInt64(0, uint.MaxValue), id, Pattern(random.Next(0, 8193), i));
        }

        return Match(lane.Exchange(requests), requests);
    }

    private static string? Truncated(KitLane lane)
    {
        // A header that claims 100 bytes with only 10 after it: its CRC fails once 100 bytes are there (they include
        // the next request), the reader re-synchronises on the next "RTT1", and the requests after it are answered
        // (frame 21, whose bytes the truncated frame covered, may be found by the scan or lost; both are allowed).
        var claimed = Pattern(100, 1);
        var full = Frame(FrameFlags.None, 7, 20, claimed);
        var cut = full.AsSpan(0, FrameHeader.Size + 10).ToArray();
        var r21 = Request(7, 21, Pattern(80, 2));
        var r22 = Request(7, 22, Pattern(80, 3));
        var r23 = Request(7, 23, Pattern(300, 4));
        var got = lane.Exchange([cut, r21, r22, r23]);
        if (got.Any(g => g.FrameId == 20))
        {
            return "the truncated frame (id 20) was answered";
        }

        return Match(got.Where(g => g.FrameId != 21).ToList(), [r22, r23]) ?? Match(got.Where(g => g.FrameId == 21).ToList(), got.Any(g => g.FrameId == 21) ? [r21] : []);
    }

    private static string? ErrorFrame(KitLane lane)
    {
        var got = lane.Exchange([Request(8, 30, "!fail"u8.ToArray())]);
        if (got.Count != 1 || got[0].FrameId != 30 || got[0].RouteId != 8)
        {
            return $"expected one answer to frame 30 on route 8, got {Describe(got)}";
        }

        var text = Encoding.UTF8.GetString(got[0].Payload);
        if (got[0].Flags != (FrameFlags.Response | FrameFlags.Error))
        {
            return $"the answer to \"!fail\" has flags 0x{(ushort)got[0].Flags:x4}, not Response|Error (0x0006); payload \"{Clip(text)}\"";
        }

        return text.StartsWith("RTT-CALL-004 ", StringComparison.Ordinal) ? null : $"the error payload \"{Clip(text)}\" does not start with \"RTT-CALL-004 \"";
    }

    private static string? Heartbeat(KitLane lane)
    {
        var payload = "ping 42"u8.ToArray();
        var got = lane.Exchange([Frame(FrameFlags.Probe, 9, 40, payload)]);
        if (got.Count != 1 || got[0].FrameId != 40 || got[0].RouteId != 9)
        {
            return $"expected one answer to the probe (frame 40, route 9), got {Describe(got)}";
        }

        if (got[0].Flags != (FrameFlags.Response | FrameFlags.Probe))
        {
            return $"the probe's answer has flags 0x{(ushort)got[0].Flags:x4}, not Response|Probe (0x000a)";
        }

        return got[0].Payload.AsSpan().SequenceEqual(payload) ? null : "the probe's payload was not echoed";
    }

    /// <summary>Every request answered once with its own route, id and payload, nothing else.</summary>
    private static string? Match(List<Received> got, byte[][] requests)
    {
        var expected = requests.ToDictionary(r => BinaryPrimitives.ReadUInt32LittleEndian(r.AsSpan(12)));
        var seen = new HashSet<uint>();
        foreach (var g in got)
        {
            if (!expected.TryGetValue(g.FrameId, out var request))
            {
                return $"an answer to frame id {g.FrameId}, which was not a request to answer (flags 0x{(ushort)g.Flags:x4})";
            }

            if (!seen.Add(g.FrameId))
            {
                return $"frame id {g.FrameId} was answered twice";
            }

            var route = BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(8));
            if (g.RouteId != route)
            {
                return $"the answer to frame {g.FrameId} carries route {g.RouteId}, its request route {route}";
            }

            if ((g.Flags & ~FrameFlags.NoPayloadCrc) != FrameFlags.Response)
            {
                return $"the answer to frame {g.FrameId} has flags 0x{(ushort)g.Flags:x4} (Response expected{((g.Flags & FrameFlags.Error) != 0 ? ": an error frame \"" + Clip(Encoding.UTF8.GetString(g.Payload)) + "\"" : "")})";
            }

            var requestFlags = (FrameFlags)BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(4));
            if ((g.Flags & FrameFlags.NoPayloadCrc) != 0 && (requestFlags & FrameFlags.NoPayloadCrc) == 0)
            {
                return $"the answer to frame {g.FrameId} sets NoPayloadCrc, its request did not";
            }

            if (!g.Payload.AsSpan().SequenceEqual(request.AsSpan(FrameHeader.Size)))
            {
                return $"the answer to frame {g.FrameId} has {g.Payload.Length} bytes that differ from the request's {request.Length - FrameHeader.Size}";
            }
        }

        var missing = expected.Keys.Where(k => !seen.Contains(k)).ToList();
        return missing.Count == 0 ? null : $"{missing.Count} of {expected.Count} requests not answered (first: frame id {missing[0]})";
    }

    private static string Describe(List<Received> got) =>
        got.Count == 0 ? "nothing" : string.Join("; ", got.Select(g => $"id {g.FrameId} route {g.RouteId} flags 0x{(ushort)g.Flags:x4} {g.Payload.Length} bytes"));

    private static string Clip(string text) => text.Length <= 120 ? text : text[..120] + "…";

    // ---- frames ----

    internal static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((i * 31) + (seed * 7) + (i >> 8));
        }

        return bytes;
    }

    internal static byte[] Request(uint route, uint id, byte[] payload, FrameFlags flags = FrameFlags.None) => Frame(flags, route, id, payload);

    internal static byte[] Frame(FrameFlags flags, uint route, uint id, byte[] payload)
    {
        var frame = new byte[FrameHeader.Size + payload.Length];
        payload.CopyTo(frame, FrameHeader.Size);
        new FrameCodec(int.MaxValue).Seal(frame.AsSpan(0, FrameHeader.Size), payload, flags, route, id);
        return frame;
    }

    /// <summary>A header alone, claiming <paramref name="length"/> payload bytes (its CRC covers the header only).</summary>
    private static byte[] Header(uint route, uint id, uint length)
    {
        var header = new byte[FrameHeader.Size];
        FrameHeader.WriteWithoutCrc(header, FrameFlags.NoPayloadCrc, route, id, length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), Crc32C.Compute(header.AsSpan(0, 20)));
        return header;
    }

    private static byte[] Corrupt(byte[] frame)
    {
        frame[20] ^= 0x5A;
        return frame;
    }

    // ---- the host's side ----

    private sealed class KitFailure(string message) : Exception(message);

    internal sealed record Received(FrameFlags Flags, uint RouteId, uint FrameId, byte[] Payload);

    /// <summary>The service process, its output kept for failure messages.</summary>
    private sealed class ServiceProcess : IDisposable
    {
        private readonly Process _process;
        private readonly Queue<string> _tail = new();
        private readonly Stopwatch _since = new();

        private ServiceProcess(Process process, Socket? listener)
        {
            _process = process;
            Listener = listener;
        }

        public Socket? Listener { get; }

        public static ServiceProcess Start(StubCheckOptions options, string? socketPath, bool withSocket)
        {
            if (options.Command.Count == 0)
            {
                throw new ArgumentException("no command", nameof(options));
            }

            var listener = withSocket ? LaneSockets.ListenUnix(socketPath!) : null;
            var info = new ProcessStartInfo(options.Command[0])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
                WorkingDirectory = options.WorkingDirectory ?? Directory.GetCurrentDirectory(),
            };
            foreach (var arg in options.Command.Skip(1))
            {
                info.ArgumentList.Add(arg);
            }

            info.Environment.Remove(SocketVariable);
            info.Environment[LaneVariable] = options.Lane == LaneKind.Shm ? "shm" : "uds";
            if (withSocket)
            {
                info.Environment[SocketVariable] = socketPath;
            }

            Process process;
            try
            {
                process = Process.Start(info) ?? throw new InvalidOperationException("no process started");
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                listener?.Dispose();
                throw new Core.Errors.RttException(Core.Errors.ErrorCodes.StubCheckUsage, $"cannot start \"{options.Command[0]}\": {ex.Message}", options.Command[0],
                    "give the service's command line after -- (a program on PATH or a path)");
            }

            var service = new ServiceProcess(process, listener);
            process.OutputDataReceived += (_, e) => service.Keep("stdout", e.Data);
            process.ErrorDataReceived += (_, e) => service.Keep("stderr", e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return service;
        }

        private void Keep(string stream, string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_tail)
            {
                _tail.Enqueue($"{stream}: {line}");
                while (_tail.Count > 5)
                {
                    _tail.Dequeue();
                }
            }
        }

        /// <summary>The service's last output lines, for a failure message.</summary>
        public string Tail()
        {
            lock (_tail)
            {
                return _tail.Count == 0 ? "" : " [service output: " + string.Join(" | ", _tail) + "]";
            }
        }

        public bool HasExited => _process.HasExited;

        public int ExitCode => _process.ExitCode;

        public long ExitedAfterMs { get; private set; }

        public bool WaitForExit(TimeSpan timeout)
        {
            _since.Restart();
            var exited = _process.WaitForExit(timeout);
            ExitedAfterMs = _since.ElapsedMilliseconds;
            if (exited)
            {
                _process.WaitForExit(); // drain the output
            }

            return exited;
        }

        public void Dispose()
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
            }

            _process.Dispose();
            Listener?.Dispose();
        }
    }

    /// <summary>The kit's end of the service's lane: raw writes (so it can send bad frames) and strict reads.</summary>
    private sealed class KitLane : IDisposable
    {
        private readonly Socket _socket;
        private readonly ShmLane? _shm;
        private readonly TimeSpan _answerTimeout;
        private readonly byte[] _in = new byte[4 * (FrameHeader.Size + StubConformance.MaxPayload)];
        private int _inStart;
        private int _inEnd;
        private uint _syncId = 0xC0DE0000;
        private string? _violation;
        private long _drops;

        private KitLane(Socket socket, ShmLane? shm, TimeSpan answerTimeout)
        {
            _socket = socket;
            _shm = shm;
            _answerTimeout = answerTimeout;
        }

        public LaneKind Kind => _shm is null ? LaneKind.Uds : LaneKind.Shm;

        public int MaxPayload => _shm?.Options.MaxPayload ?? StubConformance.MaxPayload;

        public static KitLane Attach(ServiceProcess service, StubCheckOptions options)
        {
            var listener = service.Listener!;
            var deadline = Stopwatch.StartNew();
            while (!listener.Poll(50_000, SelectMode.SelectRead))
            {
                if (service.HasExited)
                {
                    throw new KitFailure($"the service exited with status {service.ExitCode} before attaching");
                }

                if (deadline.Elapsed > options.AttachTimeout)
                {
                    throw new KitFailure($"no attach within {options.AttachTimeout.TotalSeconds:0} s");
                }
            }

            var socket = listener.Accept();
            try
            {
                socket.ReceiveTimeout = 5000;
                var head = new byte[8];
                ReadExactly(socket, head, "the attach request");
                if (BinaryPrimitives.ReadUInt32LittleEndian(head) != 0x51545452)
                {
                    throw new KitFailure($"the attach request starts with {Convert.ToHexString(head, 0, 4)}, not \"RTTQ\" (52545451)");
                }

                if (head[4] != 2)
                {
                    throw new KitFailure($"attach version {head[4]}; version 2 expected");
                }

                var asked = head[5];
                var name = new byte[BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(6))];
                ReadExactly(socket, name, "the attach request's name");
                var wanted = options.Lane == LaneKind.Shm ? 0 : 1;
                if (asked != wanted)
                {
                    throw new KitFailure($"the service asked for lane kind {asked}; {wanted} ({options.Lane.ToString().ToLowerInvariant()}) expected");
                }

                var reply = new byte[16];
                BinaryPrimitives.WriteUInt32LittleEndian(reply, 0x52545452);
                BinaryPrimitives.WriteInt32LittleEndian(reply.AsSpan(4), 0);
                BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(8), 1);
                BinaryPrimitives.WriteInt32LittleEndian(reply.AsSpan(12), asked);
                socket.Send(reply);
                socket.ReceiveTimeout = 0;
                if (asked == 1)
                {
                    return new KitLane(socket, null, options.AnswerTimeout);
                }

                var shm = ShmLane.Accept(socket, new LaneOptions { Backpressure = BackpressurePolicy.Block }, Doorbell, TimeSpan.FromSeconds(5));
                return new KitLane(socket, shm, options.AnswerTimeout);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new KitFailure($"attach failed: {ex.Message}");
            }
            catch (Core.Errors.RttException ex)
            {
                socket.Dispose();
                throw new KitFailure($"the SHM handshake failed: {ex.Message}");
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        /// <summary>One doorbell for every SHM lane the kit makes: the service must handle the version 2 hello (two fds).</summary>
        private static readonly LaneDoorbell Doorbell = new();

        private static void ReadExactly(Socket socket, byte[] buffer, string what)
        {
            var n = 0;
            while (n < buffer.Length)
            {
                int r;
                try
                {
                    r = socket.Receive(buffer, n, buffer.Length - n, SocketFlags.None);
                }
                catch (SocketException ex) when (ex.SocketErrorCode == SocketError.TimedOut || ex.SocketErrorCode == SocketError.WouldBlock)
                {
                    throw new KitFailure($"{what} did not arrive within 5 s");
                }

                if (r == 0)
                {
                    throw new KitFailure($"the service closed the socket during {what}");
                }

                n += r;
            }
        }

        /// <summary>A violation seen outside a rule's own checks (a bad frame from the service), once.</summary>
        public string? TakeViolation()
        {
            var v = _violation;
            _violation = null;
            return v;
        }

        public void Write(byte[][] chunks, bool split = false)
        {
            if (_shm is not null)
            {
                foreach (var chunk in chunks)
                {
                    var deadline = Stopwatch.StartNew();
                    while (!_shm.TryWriteRaw(chunk))
                    {
                        if (_shm.PeerGone || deadline.Elapsed > _answerTimeout)
                        {
                            throw new KitFailure("the service does not read its ring (no room for a request)");
                        }

                        Thread.Sleep(1);
                    }
                }

                _shm.Flush();
                return;
            }

            try
            {
                foreach (var chunk in chunks)
                {
                    if (split)
                    {
                        for (var i = 0; i < chunk.Length; i++)
                        {
                            _socket.Send(chunk, i, 1, SocketFlags.None);
                            Thread.Sleep(i % 64 == 0 ? 1 : 0);
                        }
                    }
                    else
                    {
                        _socket.Send(chunk);
                    }
                }
            }
            catch (SocketException ex)
            {
                throw new KitFailure($"the service's lane closed: {ex.Message}");
            }
        }

        /// <summary>Writes the chunks and a sync request after them; returns every frame received before the sync's answer.</summary>
        public List<Received> Exchange(byte[][] chunks, bool split = false)
        {
            var sync = ++_syncId;
            Write([.. chunks, Request(0x5EC, sync, BitConverter.GetBytes(sync))], split);
            var got = new List<Received>();
            var clock = Stopwatch.StartNew();
            while (true)
            {
                foreach (var r in ReadSome())
                {
                    if (r.FrameId == sync && (r.Flags & FrameFlags.Response) != 0)
                    {
                        return got;
                    }

                    got.Add(r);
                }

                if (_violation is not null)
                {
                    throw new KitFailure(TakeViolation()!);
                }

                if (clock.Elapsed > _answerTimeout)
                {
                    throw new KitFailure($"no answer to the sync request within {_answerTimeout.TotalSeconds:0} s; received before it: {Describe(got)}");
                }
            }
        }

        private List<Received> ReadSome()
        {
            var list = new List<Received>();
            if (_shm is not null)
            {
                var n = _shm.Poll((in FrameHeader h, ReadOnlySpan<byte> p) => list.Add(new Received(h.Flags, h.RouteId, h.FrameId, p.ToArray())));
                var drops = _shm.Counters.Dropped;
                if (drops != _drops)
                {
                    _drops = drops;
                    _violation = $"the service wrote a bad frame into its ring (bad magic {_shm.Counters.BadMagic}, too long {_shm.Counters.TooLong}, bad CRC {_shm.Counters.BadCrc}, truncated {_shm.Counters.Truncated})";
                }

                if (n == 0)
                {
                    if (_shm.PeerGone)
                    {
                        throw new KitFailure("the service closed its lane");
                    }

                    _shm.WaitForData(TimeSpan.FromMilliseconds(20));
                }

                return list;
            }

            if (!_socket.Poll(20_000, SelectMode.SelectRead))
            {
                return list;
            }

            if (_inStart == _inEnd)
            {
                _inStart = _inEnd = 0;
            }
            else if (_inStart > 0)
            {
                Buffer.BlockCopy(_in, _inStart, _in, 0, _inEnd - _inStart);
                _inEnd -= _inStart;
                _inStart = 0;
            }

            int r;
            try
            {
                r = _socket.Receive(_in, _inEnd, _in.Length - _inEnd, SocketFlags.None);
            }
            catch (SocketException ex)
            {
                throw new KitFailure($"the service's lane failed: {ex.Message}");
            }

            if (r == 0)
            {
                throw new KitFailure("the service closed its lane");
            }

            _inEnd += r;
            var codec = new FrameCodec(MaxPayload);
            while (_inEnd - _inStart >= FrameHeader.Size)
            {
                var span = _in.AsSpan(_inStart, _inEnd - _inStart);
                var length = FrameHeader.Read(span).Length;
                if (FrameHeader.ReadMagic(span) == FrameHeader.Magic && length <= (uint)MaxPayload && span.Length < FrameHeader.Size + length)
                {
                    break; // not all there yet
                }

                var reason = codec.Check(span, out var header);
                if (reason != DropReason.None)
                {
                    _violation = $"the service sent a bad frame ({reason}): {Convert.ToHexString(span[..Math.Min(24, span.Length)])}";
                    _inStart = _inEnd; // nothing after it can be trusted
                    break;
                }

                list.Add(new Received(header.Flags, header.RouteId, header.FrameId, span.Slice(FrameHeader.Size, (int)header.Length).ToArray()));
                _inStart += FrameHeader.Size + (int)header.Length;
            }

            return list;
        }

        /// <summary>Graceful shutdown: the host closes its end.</summary>
        public void Close()
        {
            if (_shm is not null)
            {
                _shm.Dispose();
            }
            else
            {
                try
                {
                    _socket.Shutdown(SocketShutdown.Both);
                }
                catch (SocketException)
                {
                }
            }

            _socket.Dispose();
        }

        /// <summary>Peer death: the host goes away without reading (unread bytes make the close a reset).</summary>
        public void Abort()
        {
            if (_shm is not null)
            {
                _shm.Dispose();
            }

            _socket.Close(0);
        }

        public void Dispose()
        {
            _shm?.Dispose();
            _socket.Dispose();
        }
    }
}
