// RTT stub for Node.js (no dependencies): serves a `process` endpoint over a UDS lane (docs/stub-protocol.md).
'use strict';
const net = require('net');

const MAX_PAYLOAD = 65536;
const F_NO_PAYLOAD_CRC = 1, F_RESPONSE = 2, F_ERROR = 4, F_PROBE = 8;
const MAGIC = Buffer.from('RTT1');

const TABLE = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  TABLE[i] = c >>> 0;
}

/** CRC-32C (Castagnoli); pass the previous result to continue. */
function crc32c(buf, crc = 0) {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < buf.length; i++) c = TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function frame(flags, route, id, payload) {
  const f = Buffer.alloc(24 + payload.length);
  MAGIC.copy(f, 0);
  f.writeUInt16LE(flags, 4);
  f.writeUInt32LE(route, 8);
  f.writeUInt32LE(id, 12);
  f.writeUInt32LE(payload.length, 16);
  payload.copy(f, 24);
  let c = crc32c(f.subarray(0, 20));
  if (!(flags & F_NO_PAYLOAD_CRC)) c = crc32c(payload, c);
  f.writeUInt32LE(c, 20);
  return f;
}

/** Thrown by a handler to answer with an error frame carrying `code`. */
class Failure extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

function answer(handler, flags, route, id, payload) {
  if (flags & F_PROBE) return frame(F_RESPONSE | F_PROBE, route, id, payload);
  try {
    const out = Buffer.from(handler(payload));
    if (out.length > MAX_PAYLOAD) throw new Failure('RTT-CALL-004', `the answer is longer than ${MAX_PAYLOAD} bytes`);
    return frame(F_RESPONSE, route, id, out);
  } catch (e) {
    const code = e instanceof Failure ? e.code : 'RTT-CALL-004';
    const text = Buffer.from(`${code} ${e instanceof Failure ? '' : 'the service failed: '}${e && e.message}`).subarray(0, MAX_PAYLOAD);
    return frame(F_RESPONSE | F_ERROR, route, id, text);
  }
}

/** Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane; then exits the process with 0. */
function serve(handler) {
  const path = process.env.RTT_SERVICE_SOCKET;
  if (!path) {
    process.stderr.write('RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n');
    process.exit(2);
  }
  const sock = net.createConnection(path);
  let attached = false;
  let buf = Buffer.alloc(0);
  sock.on('connect', () => {
    const name = Buffer.from('rtt-service');
    const req = Buffer.alloc(8 + name.length);
    Buffer.from('RTTQ').copy(req, 0);
    req[4] = 2; // attach version
    req[5] = 1; // UDS
    req.writeUInt16LE(name.length, 6);
    name.copy(req, 8);
    sock.write(req);
  });
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!attached) {
      if (buf.length < 16) return;
      if (buf.toString('latin1', 0, 4) !== 'RTTR' || buf.readInt32LE(4) !== 0 || buf.readInt32LE(12) !== 1) {
        process.stderr.write(`RTT-LANE-002: attach refused (status ${buf.readInt32LE(4)})\n`);
        process.exit(1);
      }
      attached = true;
      buf = buf.subarray(16);
    }
    const out = [];
    let pos = 0;
    while (buf.length - pos >= 24) {
      if (buf[pos] !== 0x52 || buf[pos + 1] !== 0x54 || buf[pos + 2] !== 0x54 || buf[pos + 3] !== 0x31) { pos = resync(buf, pos); continue; }
      const flags = buf.readUInt16LE(pos + 4), route = buf.readUInt32LE(pos + 8), id = buf.readUInt32LE(pos + 12);
      const len = buf.readUInt32LE(pos + 16), crc = buf.readUInt32LE(pos + 20);
      if (len > MAX_PAYLOAD) { pos = resync(buf, pos); continue; }
      if (buf.length - pos < 24 + len) break;
      const payload = buf.subarray(pos + 24, pos + 24 + len);
      let c = crc32c(buf.subarray(pos, pos + 20));
      if (!(flags & F_NO_PAYLOAD_CRC)) c = crc32c(payload, c);
      if (c !== crc) { pos = resync(buf, pos); continue; }
      pos += 24 + len;
      if (!(flags & F_RESPONSE)) out.push(answer(handler, flags, route, id, Buffer.from(payload)));
    }
    buf = buf.subarray(pos);
    if (out.length) sock.write(Buffer.concat(out));
  });
  sock.on('end', () => process.exit(0));
  sock.on('close', () => process.exit(0));
  sock.on('error', (e) => {
    if (!attached) { process.stderr.write(`RTT-LANE-002: ${e.message}\n`); process.exit(1); }
    process.exit(0);
  });
}

function resync(buf, pos) {
  const next = buf.indexOf(MAGIC, pos + 1);
  return next >= 0 ? next : Math.max(pos + 1, buf.length - 3);
}

module.exports = { serve, crc32c, frame, Failure, MAX_PAYLOAD };
