//! SHM lane for the Rust stub (docs/stub-protocol.md section 5): std plus a few libc calls declared here (no crates;
//! x86_64 and aarch64 Linux).
use std::io::Write;
use std::os::raw::{c_int, c_long, c_void};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering::*};

use crate::rtt_stub::{answer, check, Failure, F_RESPONSE};

pub const SUPPORTED: bool = true;

#[repr(C)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: *mut c_void,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn recvmsg(fd: c_int, msg: *mut MsgHdr, flags: c_int) -> isize;
    fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn write(fd: c_int, buf: *const c_void, len: usize) -> isize;
    fn poll(fds: *mut PollFd, n: u64, timeout: c_int) -> c_int;
    fn syscall(num: c_long, ...) -> c_long;
}

#[cfg(target_arch = "x86_64")]
const SYS_FUTEX: c_long = 202;
#[cfg(target_arch = "x86_64")]
const SYS_MEMBARRIER: c_long = 324;
#[cfg(target_arch = "aarch64")]
const SYS_FUTEX: c_long = 98;
#[cfg(target_arch = "aarch64")]
const SYS_MEMBARRIER: c_long = 283;

const CTRL_A: usize = 4096;
const CTRL_B: usize = 4608;
const DATA: usize = 8192;

/// One ring's control block and data in the mapped segment.
struct Ring {
    ctrl: *mut u8,
    data: *mut u8,
}

impl Ring {
    fn tail(&self) -> &AtomicI64 {
        unsafe { &*(self.ctrl as *const AtomicI64) }
    }
    fn head(&self) -> &AtomicI64 {
        unsafe { &*(self.ctrl.add(128) as *const AtomicI64) }
    }
    fn data_seq(&self) -> &AtomicI32 {
        unsafe { &*(self.ctrl.add(256) as *const AtomicI32) }
    }
    fn data_waiters(&self) -> &AtomicI32 {
        unsafe { &*(self.ctrl.add(260) as *const AtomicI32) }
    }
    fn space_seq(&self) -> &AtomicI32 {
        unsafe { &*(self.ctrl.add(384) as *const AtomicI32) }
    }
    fn space_waiters(&self) -> &AtomicI32 {
        unsafe { &*(self.ctrl.add(388) as *const AtomicI32) }
    }
}

fn futex_wake(word: &AtomicI32) {
    word.fetch_add(1, SeqCst);
    unsafe { syscall(SYS_FUTEX, word as *const AtomicI32, 1 /* FUTEX_WAKE */, i32::MAX, 0usize, 0usize, 0) };
}

/// After a position store with a full fence: wake the other side if it sleeps (2: on its doorbell).
fn wake_waiter(waiters: &AtomicI32, seq: &AtomicI32, doorbell: c_int) {
    let w = waiters.load(SeqCst);
    if w == 2 && doorbell >= 0 {
        if waiters.compare_exchange(2, 0, SeqCst, SeqCst).is_ok() {
            let one: u64 = 1;
            unsafe { write(doorbell, &one as *const u64 as *const c_void, 8) };
        }
    } else if w != 0 {
        futex_wake(seq);
    }
}

fn peer_gone(fd: c_int) -> bool {
    let mut p = PollFd { fd, events: 1, revents: 0 };
    if unsafe { poll(&mut p, 1, 0) } <= 0 {
        return false;
    }
    if p.revents & (8 | 16) != 0 {
        return true;
    }
    let mut b = 0u8;
    let r = unsafe { recv(fd, &mut b as *mut u8 as *mut c_void, 1, 2 | 0x40 /* MSG_PEEK | MSG_DONTWAIT */) };
    r == 0 || (r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
}

fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Receives the 20-byte hello and its one or two fds.
fn recv_hello(fd: c_int) -> Option<([u8; 20], [c_int; 2])> {
    let mut hello = [0u8; 20];
    let mut iov = IoVec { base: hello.as_mut_ptr() as *mut c_void, len: 20 };
    let mut control = [0u64; 8];
    let mut msg = MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr() as *mut c_void,
        controllen: std::mem::size_of_val(&control),
        flags: 0,
    };
    let r = unsafe { recvmsg(fd, &mut msg, 0x4000_0000 /* MSG_CMSG_CLOEXEC */) };
    if r < 20 {
        return None; // the host sends the hello in one message
    }
    let mut fds = [-1 as c_int; 2];
    // One cmsghdr: { usize len, i32 level, i32 type, data } on 64-bit Linux.
    let bytes = unsafe { std::slice::from_raw_parts(control.as_ptr() as *const u8, msg.controllen) };
    if msg.controllen >= 16 {
        let len = usize::from_ne_bytes(bytes[0..8].try_into().ok()?);
        let level = i32::from_ne_bytes(bytes[8..12].try_into().ok()?);
        let kind = i32::from_ne_bytes(bytes[12..16].try_into().ok()?);
        if level == 1 && kind == 1 {
            let n = ((len - 16) / 4).min(2);
            for (i, fd) in fds.iter_mut().enumerate().take(n) {
                *fd = i32::from_ne_bytes(bytes[16 + 4 * i..20 + 4 * i].try_into().ok()?);
            }
        }
    }
    Some((hello, fds))
}

pub fn serve<H: FnMut(&[u8]) -> Result<Vec<u8>, Failure>>(mut s: UnixStream, handler: &mut H) -> i32 {
    let fd = s.as_raw_fd();
    let (hello, fds) = match recv_hello(fd) {
        Some(h) if &h.0[0..4] == b"RTTC" && h.1[0] >= 0 => h,
        _ => {
            eprintln!("RTT-LANE-002: no SHM hello from the host");
            return 1;
        }
    };
    let (version, capacity, maxp) = (rd32(&hello, 4), rd32(&hello, 8) as usize, rd32(&hello, 12) as usize);
    if !(version == 1 || version == 2) || capacity == 0 || !capacity.is_power_of_two() {
        eprintln!("RTT-LANE-002: SHM hello version {} capacity {} not understood", version, capacity);
        return 1;
    }
    let doorbell = if version == 2 { fds[1] } else { -1 };
    let size = DATA + 2 * capacity;
    let base = unsafe { mmap(std::ptr::null_mut(), size, 3, 1, fds[0], 0) };
    unsafe { close(fds[0]) };
    if base as isize == -1 {
        eprintln!("RTT-LANE-001: mmap failed: {}", std::io::Error::last_os_error());
        return 1;
    }
    let mut ack = b"RTTA".to_vec();
    ack.extend_from_slice(&(std::process::id()).to_le_bytes());
    if s.write_all(&ack).is_err() {
        return 1;
    }
    let base = base as *mut u8;
    let a = Ring { ctrl: unsafe { base.add(CTRL_A) }, data: unsafe { base.add(DATA) } };
    let b = Ring { ctrl: unsafe { base.add(CTRL_B) }, data: unsafe { base.add(DATA + capacity) } };
    let cap = capacity as i64;
    let mask = cap - 1;
    let mut head = a.head().load(Acquire);
    let mut tail_b = b.tail().load(Acquire);
    let mut membarrier_ok = true;
    let mut out: Vec<u8> = Vec::with_capacity(24 + maxp);
    let mut idle = 0u32;
    let code = 'serve: loop {
        let tail = a.tail().load(Acquire);
        if tail == head {
            idle += 1;
            if idle < 2000 {
                std::hint::spin_loop();
                continue;
            }
            if idle < 2020 {
                // few yields: on a loaded machine each can cost a time slice
                std::thread::yield_now();
                continue;
            }
            if peer_gone(fd) {
                break 0;
            }
            let seq = a.data_seq().load(SeqCst);
            a.data_waiters().store(1, SeqCst);
            if membarrier_ok {
                membarrier_ok = unsafe { syscall(SYS_MEMBARRIER, 2 /* GLOBAL_EXPEDITED */, 0, 0) } == 0;
            }
            if a.tail().load(Acquire) == head {
                let t = TimeSpec { sec: 0, nsec: if membarrier_ok { 100_000_000 } else { 1_000_000 } };
                unsafe { syscall(SYS_FUTEX, a.data_seq() as *const AtomicI32, 0 /* FUTEX_WAIT */, seq, &t as *const TimeSpec, 0usize, 0) };
            }
            a.data_waiters().store(0, SeqCst);
            continue;
        }
        idle = 0;
        if tail < head || tail - head > cap {
            eprintln!("RTT-LANE-002: impossible ring state");
            break 1;
        }
        let mut answered = false;
        while head < tail {
            let i = (head & mask) as usize;
            let rec = unsafe { (a.data.add(i) as *const i32).read_volatile() } as i64;
            let kind = unsafe { (a.data.add(i + 4) as *const i32).read_volatile() };
            if rec < 8 || rec & 7 != 0 || rec > cap - i as i64 || rec > tail - head {
                eprintln!("RTT-LANE-002: corrupt ring record");
                break 'serve 1;
            }
            let f = unsafe { std::slice::from_raw_parts(a.data.add(i + 8), rec as usize - 8) };
            if kind == 1 && check(f, maxp) == Some(true) && u16::from_le_bytes([f[4], f[5]]) & F_RESPONSE == 0 {
                out.clear();
                answer(handler, f, maxp, &mut out);
                let need = ((8 + out.len() + 7) & !7) as i64;
                loop {
                    let mut j = (tail_b & mask) as usize;
                    let pad = if need > cap - j as i64 { cap - j as i64 } else { 0 };
                    if tail_b + pad + need - b.head().load(Acquire) <= cap {
                        unsafe {
                            if pad > 0 {
                                (b.data.add(j) as *mut i32).write_volatile(pad as i32);
                                (b.data.add(j + 4) as *mut i32).write_volatile(2);
                                tail_b += pad;
                                j = 0;
                            }
                            std::ptr::copy_nonoverlapping(out.as_ptr(), b.data.add(j + 8), out.len());
                            (b.data.add(j) as *mut i32).write_volatile(need as i32);
                            (b.data.add(j + 4) as *mut i32).write_volatile(1);
                        }
                        tail_b += need;
                        answered = true;
                        break;
                    }
                    if answered {
                        b.tail().store(tail_b, SeqCst); // publish what we have so the host can make room
                        wake_waiter(b.data_waiters(), b.data_seq(), doorbell);
                        answered = false;
                    }
                    if peer_gone(fd) {
                        break 'serve 0;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
            }
            head += rec;
        }
        a.head().store(head, SeqCst);
        wake_waiter(a.space_waiters(), a.space_seq(), -1);
        if answered {
            b.tail().store(tail_b, SeqCst);
            wake_waiter(b.data_waiters(), b.data_seq(), doorbell);
        }
    };
    unsafe {
        munmap(base as *mut c_void, size);
        if doorbell >= 0 {
            close(doorbell);
        }
    }
    code
}
