//! RTT stub for Rust (std only): serves a `process` endpoint over a UDS or SHM lane (docs/stub-protocol.md).
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

pub const MAX_PAYLOAD: usize = 65536;
pub const F_NO_PAYLOAD_CRC: u16 = 1;
pub const F_RESPONSE: u16 = 2;
pub const F_ERROR: u16 = 4;
pub const F_PROBE: u16 = 8;

const fn make_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = make_table();

/// CRC-32C (Castagnoli); pass the previous result to continue.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// A handler's refusal: answered with an error frame "code message".
pub struct Failure {
    pub code: String,
    pub message: String,
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Appends a sealed frame to `out`.
pub fn frame(out: &mut Vec<u8>, flags: u16, route: u32, id: u32, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"RTT1");
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&route.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut c = crc32c(0, &out[start..start + 20]);
    if flags & F_NO_PAYLOAD_CRC == 0 {
        c = crc32c(c, payload);
    }
    out.extend_from_slice(&c.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Checks a frame at the start of `b`: Some(true) good, Some(false) bad, None need more bytes.
pub fn check(b: &[u8], max: usize) -> Option<bool> {
    if b.len() < 24 {
        return None;
    }
    if &b[0..4] != b"RTT1" {
        return Some(false);
    }
    let len = rd32(b, 16) as usize;
    if len > max {
        return Some(false);
    }
    if b.len() < 24 + len {
        return None;
    }
    let mut c = crc32c(0, &b[0..20]);
    if rd16(b, 4) & F_NO_PAYLOAD_CRC == 0 {
        c = crc32c(c, &b[24..24 + len]);
    }
    Some(c == rd32(b, 20))
}

/// Answers the good frame `f` into `out` (nothing for a response).
pub fn answer<H: FnMut(&[u8]) -> Result<Vec<u8>, Failure>>(handler: &mut H, f: &[u8], max: usize, out: &mut Vec<u8>) {
    let flags = rd16(f, 4);
    let (route, id, len) = (rd32(f, 8), rd32(f, 12), rd32(f, 16) as usize);
    let payload = &f[24..24 + len];
    if flags & F_RESPONSE != 0 {
        return;
    }
    if flags & F_PROBE != 0 {
        frame(out, F_RESPONSE | F_PROBE, route, id, payload);
        return;
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(payload)));
    let error = match result {
        Ok(Ok(a)) if a.len() <= max => {
            frame(out, F_RESPONSE, route, id, &a);
            return;
        }
        Ok(Ok(_)) => format!("RTT-CALL-004 the answer is longer than {} bytes", max),
        Ok(Err(f)) => format!("{} {}", f.code, f.message),
        Err(_) => "RTT-CALL-004 the service failed: the handler panicked".to_string(),
    };
    let bytes = error.as_bytes();
    frame(out, F_RESPONSE | F_ERROR, route, id, &bytes[..bytes.len().min(max)]);
}

/// Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
pub fn serve<H: FnMut(&[u8]) -> Result<Vec<u8>, Failure>>(mut handler: H) -> i32 {
    let path = match std::env::var("RTT_SERVICE_SOCKET") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            eprintln!("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service");
            return 2;
        }
    };
    let shm = std::env::var("RTT_SERVICE_LANE").map(|v| v == "shm").unwrap_or(false) && crate::shm::SUPPORTED;
    let mut s = match attach(&path, if shm { 0 } else { 1 }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("RTT-LANE-002: {}", e);
            return 1;
        }
    };
    if shm {
        return crate::shm::serve(s, &mut handler);
    }
    let mut buf = vec![0u8; 4 * (24 + MAX_PAYLOAD)];
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Vec::with_capacity(1 << 20);
    loop {
        if start == end {
            start = 0;
            end = 0;
        } else if start > 0 && buf.len() - end < 24 + MAX_PAYLOAD {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let n = match s.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return 0, // the host closed the lane
            Ok(n) => n,
        };
        end += n;
        while let Some(good) = check(&buf[start..end], MAX_PAYLOAD) {
            if !good {
                start = match buf[start + 1..end].windows(4).position(|w| w == b"RTT1") {
                    Some(p) => start + 1 + p,
                    None => (start + 1).max(end.saturating_sub(3)),
                };
                continue;
            }
            let len = rd32(&buf, start + 16) as usize;
            answer(&mut handler, &buf[start..start + 24 + len], MAX_PAYLOAD, &mut out);
            start += 24 + len;
        }
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return 0;
            }
            out.clear();
        }
    }
}

fn attach(path: &str, kind: u8) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(path)?;
    let name = b"rtt-service";
    let mut req = Vec::new();
    req.extend_from_slice(b"RTTQ");
    req.push(2);
    req.push(kind);
    req.extend_from_slice(&(name.len() as u16).to_le_bytes());
    req.extend_from_slice(name);
    s.write_all(&req)?;
    let mut reply = [0u8; 16];
    s.read_exact(&mut reply)?;
    if &reply[0..4] != b"RTTR" || rd32(&reply, 4) != 0 || rd32(&reply, 12) != kind as u32 {
        return Err(std::io::Error::new(std::io::ErrorKind::Other, format!("attach refused (status {})", rd32(&reply, 4))));
    }
    Ok(s)
}
