/**
 * RTT stub for D (Phobos only): serves a `process` endpoint over a UDS lane.
 *
 * Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
 * frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
 * the same route_id and frame_id. A handler returns the answer; throwing RttFailure (or any Exception) answers with
 * an error frame.
 */
module rttstub;

import std.algorithm : min;
import std.conv : to;
import std.process : environment;
import std.socket;
import std.stdio : stderr;

enum uint maxPayload = 65_536;
enum ushort flagNoPayloadCrc = 0x1, flagResponse = 0x2, flagError = 0x4, flagProbe = 0x8;
enum ubyte kindUds = 1;

/// Thrown by a handler to answer with an error frame carrying `code`.
class RttFailure : Exception
{
    string code;

    this(string code, string message)
    {
        super(message);
        this.code = code;
    }
}

private immutable uint[256] table = () {
    uint[256] t;
    foreach (uint i; 0 .. 256)
    {
        uint c = i;
        foreach (_; 0 .. 8)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
    }
    return t;
}();

/// CRC-32C (Castagnoli, reflected 0x82F63B78, init and final xor 0xFFFFFFFF), continuing `crc` (0 to start).
uint crc32c(const(ubyte)[] data, uint crc = 0) @safe pure nothrow @nogc
{
    uint c = ~crc;
    foreach (b; data)
        c = table[(c ^ b) & 0xFF] ^ (c >> 8);
    return ~c;
}

private void put16(ubyte[] p, ushort v) @safe pure nothrow @nogc
{
    p[0] = cast(ubyte) v;
    p[1] = cast(ubyte)(v >> 8);
}

private void put32(ubyte[] p, uint v) @safe pure nothrow @nogc
{
    put16(p[0 .. 2], cast(ushort) v);
    put16(p[2 .. 4], cast(ushort)(v >> 16));
}

private uint get32(const(ubyte)[] p) @safe pure nothrow @nogc
{
    return p[0] | (p[1] << 8) | (p[2] << 16) | (cast(uint) p[3] << 24);
}

private ushort get16(const(ubyte)[] p) @safe pure nothrow @nogc
{
    return cast(ushort)(p[0] | (p[1] << 8));
}

/// Appends one frame (24-byte little-endian header, then the payload) to `output`.
void appendFrame(ref ubyte[] output, ushort flags, uint route, uint frame, const(ubyte)[] payload) @safe pure
{
    ubyte[24] head;
    head[0 .. 4] = cast(const(ubyte)[]) "RTT1";
    put16(head[4 .. 6], flags);
    put32(head[8 .. 12], route);
    put32(head[12 .. 16], frame);
    put32(head[16 .. 20], cast(uint) payload.length);
    uint crc = crc32c(head[0 .. 20]);
    if (!(flags & flagNoPayloadCrc))
        crc = crc32c(payload, crc);
    put32(head[20 .. 24], crc);
    output ~= head[];
    output ~= payload;
}

alias Handler = const(ubyte)[] delegate(const(ubyte)[] payload);

private void answer(ref ubyte[] output, Handler handler, ushort flags, uint route, uint frame, const(ubyte)[] payload)
{
    if (flags & flagProbe)
        return appendFrame(output, flagResponse | flagProbe, route, frame, payload);
    string text;
    try
    {
        auto result = handler(payload);
        if (result.length <= maxPayload)
            return appendFrame(output, flagResponse, route, frame, result);
        text = "RTT-CALL-004 the answer is " ~ result.length.to!string ~ " bytes, more than max_payload";
    }
    catch (RttFailure f)
        text = f.code ~ " " ~ f.msg;
    catch (Exception e)
        text = "RTT-CALL-004 the service failed: " ~ typeid(e).name ~ ": " ~ e.msg;
    auto bytes = cast(const(ubyte)[]) text;
    appendFrame(output, flagResponse | flagError, route, frame, bytes[0 .. min(bytes.length, maxPayload)]);
}

/// Answers every whole frame of `input[0 .. length]`; returns the index of the first byte not used.
private size_t parse(const(ubyte)[] input, ref ubyte[] output, Handler handler)
{
    static immutable magic = cast(immutable(ubyte)[]) "RTT1";
    size_t resync(size_t pos)
    {
        foreach (i; pos + 1 .. input.length >= 4 ? input.length - 3 : 0)
            if (input[i .. i + 4] == magic)
                return i;
        return input.length - 3 > pos + 1 ? input.length - 3 : pos + 1;
    }

    size_t pos = 0;
    while (input.length - pos >= 24)
    {
        auto f = input[pos .. $];
        uint length = get32(f[16 .. 20]);
        if (f[0 .. 4] != magic || length > maxPayload)
        {
            pos = resync(pos);
            continue;
        }
        if (f.length < 24 + length)
            break;
        ushort flags = get16(f[4 .. 6]);
        uint crc = crc32c(f[0 .. 20]);
        if (!(flags & flagNoPayloadCrc))
            crc = crc32c(f[24 .. 24 + length], crc);
        if (crc != get32(f[20 .. 24]))
        {
            pos = resync(pos);
            continue;
        }
        if (!(flags & flagResponse))
            answer(output, handler, flags, get32(f[8 .. 12]), get32(f[12 .. 16]), f[24 .. 24 + length]);
        pos += 24 + length;
    }
    return pos;
}

private Socket attach(string path)
{
    auto s = new Socket(AddressFamily.UNIX, SocketType.STREAM);
    s.connect(new UnixAddress(path));
    enum name = "rtt-service";
    ubyte[8 + name.length] request;
    request[0 .. 4] = cast(const(ubyte)[]) "RTTQ";
    request[4] = 2; // attach version
    request[5] = kindUds;
    put16(request[6 .. 8], cast(ushort) name.length);
    request[8 .. $] = cast(const(ubyte)[]) name;
    sendAll(s, request[]);
    ubyte[16] reply;
    size_t got = 0;
    while (got < reply.length)
    {
        auto r = s.receive(reply[got .. $]);
        if (r <= 0)
            throw new Exception("the host closed the control socket during attach");
        got += r;
    }
    if (reply[0 .. 4] != cast(const(ubyte)[]) "RTTR" || get32(reply[4 .. 8]) != 0 || get32(reply[12 .. 16]) != kindUds)
        throw new Exception("attach refused: status " ~ (cast(int) get32(reply[4 .. 8])).to!string
                ~ ", kind " ~ (cast(int) get32(reply[12 .. 16])).to!string);
    return s;
}

private bool sendAll(Socket s, const(ubyte)[] data)
{
    while (data.length > 0)
    {
        auto w = s.send(data);
        if (w <= 0 || w == Socket.ERROR)
            return false;
        data = data[w .. $];
    }
    return true;
}

/// Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane; returns the exit status.
int serve(Handler handler)
{
    import core.sys.posix.signal : signal, SIGPIPE, SIG_IGN;

    auto path = environment.get("RTT_SERVICE_SOCKET", "");
    if (path.length == 0)
    {
        stderr.writeln("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    Socket s;
    try
        s = attach(path);
    catch (Exception e)
    {
        stderr.writeln("RTT-LANE-001: cannot attach on ", path, ": ", e.msg);
        return 1;
    }
    auto input = new ubyte[4 * (24 + maxPayload)];
    size_t have = 0;
    ubyte[] output;
    for (;;)
    {
        auto r = s.receive(input[have .. $]);
        if (r == 0 || r == Socket.ERROR)
            break; // end of file: the host closed the lane (graceful shutdown or host death)
        have += r;
        output.length = 0;
        output.assumeSafeAppend();
        auto used = parse(input[0 .. have], output, handler);
        input[0 .. have - used] = input[used .. have].dup;
        have -= used;
        if (output.length > 0 && !sendAll(s, output))
            break; // the host is gone: the lane is over
    }
    s.close();
    return 0;
}
