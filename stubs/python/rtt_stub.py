"""RTT stub for Python 3 (stdlib only): serves a `process` endpoint over a UDS lane.

Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET, read 24-byte RTT1 frames (CRC-32C checked),
answer each request with a response frame of the same route_id and frame_id.
"""
import os
import socket
import struct
import sys

MAGIC = b"RTT1"
F_NO_PAYLOAD_CRC, F_RESPONSE, F_ERROR, F_PROBE = 1, 2, 4, 8
MAX_PAYLOAD = 65536
ATTACH_VERSION = 2
KIND_SHM, KIND_UDS = 0, 1


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF); `crc` continues an earlier result."""
    c = crc ^ 0xFFFFFFFF
    t = _T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def frame(flags, route_id, frame_id, payload):
    head = struct.pack("<4sHHIII", MAGIC, flags, 0, route_id, frame_id, len(payload))
    crc = crc32c(head)
    if not flags & F_NO_PAYLOAD_CRC:
        crc = crc32c(payload, crc)
    return head + struct.pack("<I", crc) + payload


class Failure(Exception):
    """Raise from a handler to answer with an error frame carrying `code`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def attach(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    name = b"rtt-service"
    s.sendall(struct.pack("<4sBBH", b"RTTQ", ATTACH_VERSION, KIND_UDS, len(name)) + name)
    reply = b""
    while len(reply) < 16:
        chunk = s.recv(16 - len(reply))
        if not chunk:
            raise ConnectionError("the host closed the control socket during attach")
        reply += chunk
    magic, status, route_id, kind = struct.unpack("<4siIi", reply)
    if magic != b"RTTR" or status != 0 or kind != KIND_UDS:
        raise ConnectionError("attach refused: magic %r status %d kind %d" % (magic, status, kind))
    return s


def _answer(handler, flags, route_id, frame_id, payload):
    if flags & F_PROBE:
        return frame(F_RESPONSE | F_PROBE, route_id, frame_id, payload)
    try:
        out = handler(payload)
        if len(out) > MAX_PAYLOAD:
            raise Failure("RTT-CALL-004", "the answer is longer than %d bytes" % MAX_PAYLOAD)
        return frame(F_RESPONSE, route_id, frame_id, out)
    except Failure as e:
        return frame(F_RESPONSE | F_ERROR, route_id, frame_id, ("%s %s" % (e.code, e)).encode()[:MAX_PAYLOAD])
    except Exception as e:  # noqa: BLE001 - any handler fault is the caller's error frame, the loop goes on
        text = "RTT-CALL-004 the service failed: %s: %s" % (type(e).__name__, e)
        return frame(F_RESPONSE | F_ERROR, route_id, frame_id, text.encode()[:MAX_PAYLOAD])


def serve(handler):
    """Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns an exit code."""
    path = os.environ.get("RTT_SERVICE_SOCKET")
    if not path:
        print("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service", file=sys.stderr)
        return 2
    try:
        s = attach(path)
    except OSError as e:
        print("RTT-LANE-001: %s" % e, file=sys.stderr)
        return 1
    buf = bytearray()
    while True:
        try:
            chunk = s.recv(1 << 20)
        except OSError:
            return 0
        if not chunk:
            return 0  # the host closed the lane: graceful shutdown (or the host died)
        buf += chunk
        out = []
        pos = 0
        while len(buf) - pos >= 24:
            if buf[pos:pos + 4] != MAGIC:
                pos = _resync(buf, pos)
                continue
            flags, _, route_id, frame_id, length, crc = struct.unpack_from("<HHIIII", buf, pos + 4)
            if length > MAX_PAYLOAD:
                pos = _resync(buf, pos)
                continue
            if len(buf) - pos < 24 + length:
                break
            c = crc32c(memoryview(buf)[pos:pos + 20])
            if not flags & F_NO_PAYLOAD_CRC:
                c = crc32c(memoryview(buf)[pos + 24:pos + 24 + length], c)
            if c != crc:
                pos = _resync(buf, pos)
                continue
            payload = bytes(buf[pos + 24:pos + 24 + length])
            pos += 24 + length
            if not flags & F_RESPONSE:
                out.append(_answer(handler, flags, route_id, frame_id, payload))
        del buf[:pos]
        if out:
            try:
                s.sendall(b"".join(out))
            except OSError:
                return 0


def _resync(buf, pos):
    """Skips to the next b'RTT1' after pos (keeping a possible partial magic at the end)."""
    nxt = buf.find(MAGIC, pos + 1)
    return nxt if nxt >= 0 else max(pos + 1, len(buf) - 3)
