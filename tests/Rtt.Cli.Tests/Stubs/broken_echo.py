"""A deliberately broken stub for the conformance kit's own test: it answers every header it finds without checking the
CRC or the Response flag, answers `!fail` with an echo instead of an error frame, ignores probes' flag, and does not
exit when the host closes the lane."""
import os
import socket
import struct
import sys
import time

path = os.environ.get("RTT_SERVICE_SOCKET")
if not path:
    sys.exit(2)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(b"RTTQ" + bytes([2, 1]) + struct.pack("<H", 11) + b"rtt-service")
s.recv(16)


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


buf = b""
while True:
    chunk = s.recv(1 << 20)
    if not chunk:
        time.sleep(30)  # broken: should exit when the lane closes
        sys.exit(0)
    buf += chunk
    out = b""
    while len(buf) >= 24:
        i = buf.find(b"RTT1")
        if i < 0:
            buf = b""
            break
        buf = buf[i:]
        if len(buf) < 24:
            break
        flags, _, route, fid, n, _crc = struct.unpack_from("<HHIIII", buf, 4)
        if n > 65536:
            buf = buf[4:]  # drops an oversized header (so only the rules named in the test fail, each quickly)
            continue
        if len(buf) < 24 + n:
            break
        payload = buf[24:24 + n]
        buf = buf[24 + n:]
        head = struct.pack("<4sHHIII", b"RTT1", 2, 0, route, fid, len(payload))
        out += head + struct.pack("<I", crc32c(payload, crc32c(head))) + payload
    if out:
        s.sendall(out)
