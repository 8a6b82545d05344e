// RTT stub for TypeScript (compiled by tsc, run by Node.js; Node's `net` module only): serves a `process`
// endpoint over a UDS lane.
//
// Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
// frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
// the same route_id and frame_id. A handler takes the payload and returns the answer (or a promise of it);
// throwing RttFailure (or anything else) answers with an error frame.

export const MAX_PAYLOAD = 65536;
export const enum Flags {
    NoPayloadCrc = 0x1,
    Response = 0x2,
    Error = 0x4,
    Probe = 0x8,
}
const KIND_UDS = 1;
const MAGIC = Buffer.from("RTT1", "latin1");

/** Throw from a handler to answer with an error frame carrying `code`. */
export class RttFailure extends Error {
    constructor(readonly code: string, message: string) {
        super(message);
    }
}

export type Handler = (payload: Buffer) => Uint8Array | Promise<Uint8Array>;

// CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
const TABLE = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    TABLE[i] = c >>> 0;
}

/** CRC-32C of `data`, continuing `crc` (0 to start). */
export function crc32c(data: Uint8Array, crc = 0): number {
    let c = ~crc >>> 0;
    for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    return ~c >>> 0;
}

/** A frame: the 24-byte little-endian header, then the payload. */
export function frame(flags: number, routeId: number, frameId: number, payload: Uint8Array): Buffer {
    const f = Buffer.alloc(24 + payload.length);
    f.set(MAGIC, 0);
    f.writeUInt16LE(flags, 4);
    f.writeUInt32LE(routeId >>> 0, 8);
    f.writeUInt32LE(frameId >>> 0, 12);
    f.writeUInt32LE(payload.length, 16);
    f.set(payload, 24);
    let crc = crc32c(f.subarray(0, 20));
    if (!(flags & Flags.NoPayloadCrc)) crc = crc32c(payload, crc);
    f.writeUInt32LE(crc, 20);
    return f;
}

function errorFrame(routeId: number, frameId: number, text: string): Buffer {
    return frame(Flags.Response | Flags.Error, routeId, frameId, Buffer.from(text, "utf8").subarray(0, MAX_PAYLOAD));
}

async function answer(handler: Handler, flags: number, routeId: number, frameId: number, payload: Buffer): Promise<Buffer> {
    if (flags & Flags.Probe) return frame(Flags.Response | Flags.Probe, routeId, frameId, payload);
    try {
        const out = await handler(payload);
        if (out.length > MAX_PAYLOAD) {
            return errorFrame(routeId, frameId, `RTT-CALL-004 the answer is ${out.length} bytes, more than ${MAX_PAYLOAD}`);
        }
        return frame(Flags.Response, routeId, frameId, out);
    } catch (e) {
        if (e instanceof RttFailure) return errorFrame(routeId, frameId, `${e.code} ${e.message}`);
        return errorFrame(routeId, frameId, `RTT-CALL-004 the service failed: ${e instanceof Error ? e.message : String(e)}`);
    }
}

/** After a bad frame at `pos`: the next RTT1 after it, or the last 3 bytes (a magic may be split). */
function resync(buf: Buffer, pos: number): number {
    const next = buf.indexOf(MAGIC, pos + 1);
    return next >= 0 ? next : Math.max(pos + 1, buf.length - 3);
}

/** Answers every whole frame of `buf`; returns the answers (in order) and the bytes left for the next read. */
function parse(handler: Handler, buf: Buffer): [Promise<Buffer>[], Buffer] {
    const answers: Promise<Buffer>[] = [];
    let pos = 0;
    while (buf.length - pos >= 24) {
        const len = buf.readUInt32LE(pos + 16);
        if (!buf.subarray(pos, pos + 4).equals(MAGIC) || len > MAX_PAYLOAD) {
            pos = resync(buf, pos);
            continue;
        }
        if (buf.length - pos < 24 + len) break;
        const flags = buf.readUInt16LE(pos + 4);
        let crc = crc32c(buf.subarray(pos, pos + 20));
        if (!(flags & Flags.NoPayloadCrc)) crc = crc32c(buf.subarray(pos + 24, pos + 24 + len), crc);
        if (crc !== buf.readUInt32LE(pos + 20)) {
            pos = resync(buf, pos);
            continue;
        }
        if (!(flags & Flags.Response)) {
            const payload = Buffer.from(buf.subarray(pos + 24, pos + 24 + len)); // a copy: buf is reused
            answers.push(answer(handler, flags, buf.readUInt32LE(pos + 8), buf.readUInt32LE(pos + 12), payload));
        }
        pos += 24 + len;
    }
    return [answers, buf.subarray(pos)];
}

/** Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane, then exits the process. */
export function serve(handler: Handler): void {
    const path = process.env["RTT_SERVICE_SOCKET"];
    if (!path) {
        process.stderr.write("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n");
        process.exit(2);
    }
    const net = require("net");
    const socket = net.createConnection(path);
    let attached = false;
    let buf = Buffer.alloc(0);
    socket.on("connect", () => {
        const name = Buffer.from("rtt-service", "utf8");
        const request = Buffer.alloc(8 + name.length);
        request.set(Buffer.from("RTTQ", "latin1"), 0);
        request[4] = 2; // attach version
        request[5] = KIND_UDS;
        request.writeUInt16LE(name.length, 6);
        request.set(name, 8);
        socket.write(request);
    });
    socket.on("data", (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        if (!attached) {
            if (buf.length < 16) return;
            const status = buf.readInt32LE(4);
            const kind = buf.readInt32LE(12);
            if (buf.toString("latin1", 0, 4) !== "RTTR" || status !== 0 || kind !== KIND_UDS) {
                process.stderr.write(`RTT-LANE-001: attach refused: status ${status}, kind ${kind}\n`);
                process.exit(1);
            }
            attached = true;
            buf = buf.subarray(16);
        }
        const [answers, rest] = parse(handler, buf);
        buf = Buffer.from(rest);
        if (answers.length > 0) {
            // Answers leave in request order, one write per batch.
            void Promise.all(answers).then((frames) => socket.write(Buffer.concat(frames)));
        }
    });
    socket.on("error", (err: Error) => {
        if (!attached) {
            process.stderr.write(`RTT-LANE-001: cannot attach on ${path}: ${err.message}\n`);
            process.exit(1);
        }
        process.exit(0); // the host is gone: the lane is over
    });
    socket.on("end", () => process.exit(attached ? 0 : 1)); // the host closed the lane (graceful shutdown or host death)
}
