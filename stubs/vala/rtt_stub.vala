/* RTT stub for Vala (GLib/GIO only: GLib.Socket on a Unix socket address): serves a `process` endpoint over a
 * UDS lane.
 *
 * Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
 * frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
 * the same route_id and frame_id. A handler takes the payload and returns the answer; throwing RttFailure.FAILED
 * (message "CODE text") or any other error answers with an error frame.
 */
namespace Rtt {
    public const int MAX_PAYLOAD = 65536;
    public const uint16 NO_PAYLOAD_CRC = 0x1;
    public const uint16 RESPONSE = 0x2;
    public const uint16 ERROR = 0x4;
    public const uint16 PROBE = 0x8;

    /* Throw FAILED from a handler with the message "RTT-XXX-NNN text" to answer with that error frame. */
    public errordomain RttFailure {
        FAILED
    }

    public delegate uint8[] Handler (uint8[] payload) throws GLib.Error;

    /* CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF. */
    private uint32[] table = null;

    public uint32 crc32c (uint8[] data, uint32 crc = 0) {
        if (table == null) {
            table = new uint32[256];
            for (uint32 i = 0; i < 256; i++) {
                uint32 c = i;
                for (int k = 0; k < 8; k++) {
                    c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78 : c >> 1;
                }
                table[i] = c;
            }
        }
        uint32 c = ~crc;
        foreach (uint8 b in data) {
            c = table[(c ^ b) & 0xFF] ^ (c >> 8);
        }
        return ~c;
    }

    private void put16 (uint8[] p, int at, uint16 v) {
        p[at] = (uint8) (v & 0xFF);
        p[at + 1] = (uint8) (v >> 8);
    }

    private void put32 (uint8[] p, int at, uint32 v) {
        put16 (p, at, (uint16) (v & 0xFFFF));
        put16 (p, at + 2, (uint16) (v >> 16));
    }

    private uint16 get16 (uint8[] p, int at) {
        return (uint16) (p[at] | (p[at + 1] << 8));
    }

    private uint32 get32 (uint8[] p, int at) {
        return get16 (p, at) | ((uint32) get16 (p, at + 2) << 16);
    }

    /* Appends one frame (24-byte little-endian header, then the payload) to `output`. */
    public void append_frame (ByteArray output, uint16 flags, uint32 route, uint32 id, uint8[] payload) {
        var head = new uint8[24];
        head[0] = 'R'; head[1] = 'T'; head[2] = 'T'; head[3] = '1';
        put16 (head, 4, flags);
        put32 (head, 8, route);
        put32 (head, 12, id);
        put32 (head, 16, payload.length);
        uint32 crc = crc32c (head[0:20]);
        if ((flags & NO_PAYLOAD_CRC) == 0) {
            crc = crc32c (payload, crc);
        }
        put32 (head, 20, crc);
        output.append (head);
        output.append (payload);
    }

    private void append_error (ByteArray output, uint32 route, uint32 id, string text) {
        uint8[] bytes = text.data;
        append_frame (output, RESPONSE | ERROR, route, id, bytes[0:int.min (bytes.length, MAX_PAYLOAD)]);
    }

    private void answer (ByteArray output, Handler handler, uint16 flags, uint32 route, uint32 id, uint8[] payload) {
        if ((flags & PROBE) != 0) {
            append_frame (output, RESPONSE | PROBE, route, id, payload); /* a heartbeat: the payload echoed */
            return;
        }
        try {
            var result = handler (payload);
            if (result.length > MAX_PAYLOAD) {
                append_error (output, route, id, "RTT-CALL-004 the answer is %d bytes, more than %d".printf (result.length, MAX_PAYLOAD));
            } else {
                append_frame (output, RESPONSE, route, id, result);
            }
        } catch (RttFailure f) {
            append_error (output, route, id, f.message);
        } catch (GLib.Error e) {
            append_error (output, route, id, "RTT-CALL-004 the service failed: " + e.message);
        }
    }

    private bool magic_at (uint8[] b, int i) {
        return b[i] == 'R' && b[i + 1] == 'T' && b[i + 2] == 'T' && b[i + 3] == '1';
    }

    /* After a bad frame at pos: the next RTT1 after it, or end - 3 (a magic may be split). */
    private int resync (uint8[] b, int pos, int end) {
        for (int i = pos + 1; i + 4 <= end; i++) {
            if (magic_at (b, i)) {
                return i;
            }
        }
        return int.max (pos + 1, end - 3);
    }

    /* Answers every whole frame of b[0, end) into `output`; returns the index of the first byte not used. */
    private int parse (uint8[] b, int end, ByteArray output, Handler handler) {
        int pos = 0;
        while (end - pos >= 24) {
            uint32 len = get32 (b, pos + 16);
            if (!magic_at (b, pos) || len > MAX_PAYLOAD) {
                pos = resync (b, pos, end);
                continue;
            }
            int n = (int) len;
            if (end - pos < 24 + n) {
                break;
            }
            uint16 flags = get16 (b, pos + 4);
            uint32 crc = crc32c (b[pos:pos + 20]);
            if ((flags & NO_PAYLOAD_CRC) == 0) {
                crc = crc32c (b[pos + 24:pos + 24 + n], crc);
            }
            if (crc != get32 (b, pos + 20)) {
                pos = resync (b, pos, end);
                continue;
            }
            if ((flags & RESPONSE) == 0) { /* a response is not a request: ignored */
                answer (output, handler, flags, get32 (b, pos + 8), get32 (b, pos + 12), b[pos + 24:pos + 24 + n]);
            }
            pos += 24 + n;
        }
        return pos;
    }

    private bool send_all (Socket s, uint8[] data) {
        int done = 0;
        while (done < data.length) {
            try {
                var w = s.send (data[done:data.length]);
                if (w <= 0) {
                    return false;
                }
                done += (int) w;
            } catch (GLib.Error e) {
                return false;
            }
        }
        return true;
    }

    private Socket attach (string path) throws GLib.Error {
        var s = new Socket (SocketFamily.UNIX, SocketType.STREAM, SocketProtocol.DEFAULT);
        s.connect (new UnixSocketAddress (path));
        uint8[] name = "rtt-service".data;
        var request = new uint8[8 + name.length];
        request[0] = 'R'; request[1] = 'T'; request[2] = 'T'; request[3] = 'Q';
        request[4] = 2; /* attach version */
        request[5] = 1; /* kind: UDS */
        put16 (request, 6, (uint16) name.length);
        Memory.copy (&request[8], name, name.length);
        if (!send_all (s, request)) {
            throw new IOError.FAILED ("cannot send the attach request");
        }
        var reply = new uint8[16];
        int got = 0;
        while (got < 16) {
            var r = s.receive (reply[got:16]);
            if (r <= 0) {
                throw new IOError.CLOSED ("the host closed the control socket during attach");
            }
            got += (int) r;
        }
        if (!(reply[0] == 'R' && reply[1] == 'T' && reply[2] == 'T' && reply[3] == 'R') || get32 (reply, 4) != 0 || get32 (reply, 12) != 1) {
            throw new IOError.FAILED ("attach refused: status %d, kind %d".printf ((int) get32 (reply, 4), (int) get32 (reply, 12)));
        }
        return s;
    }

    /* Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane; returns the exit status. */
    public int serve (Handler handler) {
        var path = Environment.get_variable ("RTT_SERVICE_SOCKET");
        if (path == null || path == "") {
            stderr.printf ("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n");
            return 2;
        }
        Socket s;
        try {
            s = attach (path);
        } catch (GLib.Error e) {
            stderr.printf ("RTT-LANE-001: cannot attach on %s: %s\n", path, e.message);
            return 1;
        }
        var buffer = new uint8[4 * (24 + MAX_PAYLOAD)];
        int have = 0;
        var output = new ByteArray ();
        while (true) {
            ssize_t n;
            try {
                n = s.receive (buffer[have:buffer.length]);
            } catch (GLib.Error e) {
                n = 0;
            }
            if (n <= 0) {
                break; /* end of file: the host closed the lane (graceful shutdown or host death) */
            }
            have += (int) n;
            output.set_size (0);
            int used = parse (buffer, have, output, handler);
            Memory.move (&buffer[0], &buffer[used], have - used);
            have -= used;
            if (output.len > 0 && !send_all (s, output.data)) {
                break; /* the host is gone: the lane is over */
            }
        }
        try {
            s.close ();
        } catch (GLib.Error e) {
        }
        return 0;
    }
}
