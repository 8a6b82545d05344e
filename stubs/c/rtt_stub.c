/* RTT stub for C: see rtt_stub.h and docs/stub-protocol.md. Written for RTT; no code from elsewhere. */
#define _GNU_SOURCE
#include "rtt_stub.h"

#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t rtt_crc32c(uint32_t crc, const void *data, size_t n) {
    if (crc_table[1] == 0) crc_init();
    const uint8_t *p = data;
    uint32_t c = crc ^ 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Writes header + CRC in front of a payload already at f + 24. */
static void seal(uint8_t *f, uint16_t flags, uint32_t route, uint32_t id, uint32_t len) {
    memcpy(f, "RTT1", 4);
    wr16(f + 4, flags);
    wr16(f + 6, 0);
    wr32(f + 8, route);
    wr32(f + 12, id);
    wr32(f + 16, len);
    uint32_t c = rtt_crc32c(0, f, 20);
    if (!(flags & RTT_F_NO_PAYLOAD_CRC)) c = rtt_crc32c(c, f + 24, len);
    wr32(f + 20, c);
}

/* Checks the frame at f with `avail` bytes: 0 good, 1 need more bytes, -1 bad. */
static int check(const uint8_t *f, size_t avail, uint32_t maxp) {
    if (avail < 24) return 1;
    if (memcmp(f, "RTT1", 4) != 0) return -1;
    uint32_t len = rd32(f + 16);
    if (len > maxp) return -1;
    if (avail < 24 + (size_t)len) return 1;
    uint32_t c = rtt_crc32c(0, f, 20);
    if (!(rd16(f + 4) & RTT_F_NO_PAYLOAD_CRC)) c = rtt_crc32c(c, f + 24, len);
    return c == rd32(f + 20) ? 0 : -1;
}

/* Builds the answer to the good request frame `req` at `out` (room for 24 + maxp); returns the frame's length, 0 for none. */
static size_t answer(rtt_handler h, void *ctx, const uint8_t *req, uint8_t *out, uint32_t maxp) {
    uint16_t flags = rd16(req + 4);
    uint32_t route = rd32(req + 8), id = rd32(req + 12), len = rd32(req + 16);
    if (flags & RTT_F_RESPONSE) return 0;
    if (flags & RTT_F_PROBE) {
        memmove(out + 24, req + 24, len);
        seal(out, RTT_F_RESPONSE | RTT_F_PROBE, route, id, len);
        return 24 + len;
    }
    char err[1024];
    err[0] = 0;
    int n = h(ctx, req + 24, len, out + 24, maxp, err, sizeof err);
    if (n < 0 || (uint32_t)n > maxp) {
        if (n >= 0) snprintf(err, sizeof err, "RTT-CALL-004 the handler answered more than %u bytes", maxp);
        if (!err[0]) snprintf(err, sizeof err, "RTT-CALL-004 the service failed");
        size_t el = strnlen(err, sizeof err);
        memcpy(out + 24, err, el);
        seal(out, RTT_F_RESPONSE | RTT_F_ERROR, route, id, (uint32_t)el);
        return 24 + el;
    }
    seal(out, RTT_F_RESPONSE, route, id, (uint32_t)n);
    return 24 + (size_t)n;
}

static int send_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_exact(int fd, uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r == 0) return -1;
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* ---- UDS lane ---- */

static int serve_uds(int fd, rtt_handler h, void *ctx) {
    size_t cap = 4 * (24 + RTT_MAX_PAYLOAD);
    uint8_t *in = malloc(cap);
    size_t ocap = 1 << 20;
    uint8_t *out = malloc(ocap);
    size_t start = 0, end = 0;
    if (!in || !out) return 1;
    for (;;) {
        if (start == end) start = end = 0;
        else if (start > 0 && cap - end < 24 + RTT_MAX_PAYLOAD) {
            memmove(in, in + start, end - start);
            end -= start;
            start = 0;
        }
        ssize_t r = recv(fd, in + end, cap - end, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* the host closed the lane (or died) */
        end += (size_t)r;
        size_t olen = 0;
        while (end - start >= 24) {
            int c = check(in + start, end - start, RTT_MAX_PAYLOAD);
            if (c == 1) break;
            if (c < 0) { /* resync on the next "RTT1" after the bad frame's first byte */
                uint8_t *next = memmem(in + start + 1, end - start - 1, "RTT1", 4);
                if (next) start = (size_t)(next - in);
                else start = end - start - 1 > 3 ? end - 3 : start + 1;
                continue;
            }
            uint32_t len = rd32(in + start + 16);
            if (ocap - olen < 24 + RTT_MAX_PAYLOAD) {
                if (send_all(fd, out, olen) < 0) goto done;
                olen = 0;
            }
            olen += answer(h, ctx, in + start, out + olen, RTT_MAX_PAYLOAD);
            start += 24 + len;
        }
        if (olen > 0 && send_all(fd, out, olen) < 0) break;
    }
done:
    free(in);
    free(out);
    close(fd);
    return 0;
}

/* ---- SHM lane ---- */

#define CTRL_A 4096
#define CTRL_B 4608
#define DATA 8192
#define TAIL 0
#define HEAD 128
#define DATA_SEQ 256
#define DATA_WAITERS 260
#define SPACE_SEQ 384
#define SPACE_WAITERS 388

typedef struct {
    uint8_t *ctrl, *data;
    int64_t *tail, *head;
    int32_t *data_seq, *data_waiters, *space_seq, *space_waiters;
} ring;

static void ring_at(ring *r, uint8_t *base, size_t ctrl, size_t data) {
    r->ctrl = base + ctrl;
    r->data = base + data;
    r->tail = (int64_t *)(r->ctrl + TAIL);
    r->head = (int64_t *)(r->ctrl + HEAD);
    r->data_seq = (int32_t *)(r->ctrl + DATA_SEQ);
    r->data_waiters = (int32_t *)(r->ctrl + DATA_WAITERS);
    r->space_seq = (int32_t *)(r->ctrl + SPACE_SEQ);
    r->space_waiters = (int32_t *)(r->ctrl + SPACE_WAITERS);
}

static void futex_wake(int32_t *word) {
    __atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

/* After a position store with a full fence: wake the other side if it sleeps (2: on its doorbell). */
static void wake_waiter(int32_t *waiters, int32_t *seq, int doorbell) {
    int32_t w = __atomic_load_n(waiters, __ATOMIC_SEQ_CST);
    if (w == 2 && doorbell >= 0) {
        int32_t two = 2;
        if (__atomic_compare_exchange_n(waiters, &two, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            uint64_t one = 1;
            ssize_t ignored = write(doorbell, &one, 8);
            (void)ignored;
        }
    } else if (w != 0) {
        futex_wake(seq);
    }
}

/* True when the control socket reports end-of-file or an error. */
static int peer_gone(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLHUP | POLLERR)) return 1;
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int membarrier_ok = -1;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void sleep_for_data(ring *a, int64_t head, int fd) {
    int32_t seq = __atomic_load_n(a->data_seq, __ATOMIC_SEQ_CST);
    __atomic_store_n(a->data_waiters, 1, __ATOMIC_SEQ_CST);
    if (membarrier_ok != 0) membarrier_ok = syscall(SYS_membarrier, 2 /* MEMBARRIER_CMD_GLOBAL_EXPEDITED */, 0, 0) == 0;
    if (__atomic_load_n(a->tail, __ATOMIC_ACQUIRE) == head) {
        struct timespec t = {0, membarrier_ok ? 100000000L : 1000000L};
        syscall(SYS_futex, a->data_seq, FUTEX_WAIT, seq, &t, NULL, 0);
    }
    __atomic_store_n(a->data_waiters, 0, __ATOMIC_SEQ_CST);
    (void)fd;
}

static int recv_hello(int fd, uint8_t hello[20], int fds[2]) {
    struct iovec iov = {hello, 20};
    union { char buf[CMSG_SPACE(2 * sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof u.buf;
    fds[0] = fds[1] = -1;
    ssize_t r;
    do r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
    if (r <= 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(c), (n > 2 ? 2 : n) * sizeof(int));
        }
    }
    if (r < 20 && read_exact(fd, hello + r, (size_t)(20 - r)) < 0) return -1;
    return 0;
}

static int serve_shm(int fd, rtt_handler h, void *ctx) {
    uint8_t hello[20];
    int fds[2];
    if (recv_hello(fd, hello, fds) < 0 || memcmp(hello, "RTTC", 4) != 0 || fds[0] < 0) {
        fprintf(stderr, "RTT-LANE-002: no SHM hello from the host\n");
        return 1;
    }
    int32_t version = (int32_t)rd32(hello + 4), capacity = (int32_t)rd32(hello + 8);
    uint32_t maxp = rd32(hello + 12);
    if ((version != 1 && version != 2) || capacity <= 0 || (capacity & (capacity - 1)) != 0) {
        fprintf(stderr, "RTT-LANE-002: SHM hello version %d capacity %d not understood\n", version, capacity);
        return 1;
    }
    int doorbell = version == 2 ? fds[1] : -1;
    size_t size = DATA + 2 * (size_t)capacity;
    uint8_t *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    close(fds[0]);
    if (base == MAP_FAILED) {
        perror("RTT-LANE-001: mmap");
        return 1;
    }
    uint8_t ack[8];
    memcpy(ack, "RTTA", 4);
    wr32(ack + 4, (uint32_t)getpid());
    if (send_all(fd, ack, 8) < 0) return 1;
    ring a, b;
    ring_at(&a, base, CTRL_A, DATA);
    ring_at(&b, base, CTRL_B, DATA + (size_t)capacity);
    int64_t mask = capacity - 1;
    int64_t head = __atomic_load_n(a.head, __ATOMIC_ACQUIRE);
    int64_t tail_b = __atomic_load_n(b.tail, __ATOMIC_ACQUIRE);
    uint8_t *scratch = malloc(24 + maxp);
    int idle = 0, code = 0;
    for (;;) {
        int64_t tail = __atomic_load_n(a.tail, __ATOMIC_ACQUIRE);
        if (tail == head) {
            if (++idle < 2000) { cpu_relax(); continue; }
            if (idle < 2020) { sched_yield(); continue; } /* few yields: on a loaded machine each can cost a time slice */
            if (peer_gone(fd)) break;
            sleep_for_data(&a, head, fd);
            continue;
        }
        idle = 0;
        if (tail < head || tail - head > capacity) { fprintf(stderr, "RTT-LANE-002: impossible ring state\n"); code = 1; break; }
        int answered = 0;
        while (head < tail) {
            int64_t i = head & mask;
            int32_t rec = *(int32_t *)(a.data + i), kind = *(int32_t *)(a.data + i + 4);
            if (rec < 8 || (rec & 7) || rec > capacity - i || rec > tail - head) { fprintf(stderr, "RTT-LANE-002: corrupt ring record\n"); code = 1; goto out; }
            const uint8_t *f = a.data + i + 8;
            if (kind == 1 && check(f, (size_t)rec - 8, maxp) == 0 && !(rd16(f + 4) & RTT_F_RESPONSE)) {
                size_t n = answer(h, ctx, f, scratch, maxp); /* into scratch: the request stays valid while we answer */
                int64_t need = (8 + (int64_t)n + 7) & ~7; /* align8(record header + frame) */
                for (;;) {
                    int64_t j = tail_b & mask, pad = need > capacity - j ? capacity - j : 0;
                    int64_t hb = __atomic_load_n(b.head, __ATOMIC_ACQUIRE);
                    if (tail_b + pad + need - hb <= capacity) {
                        if (pad) {
                            *(int32_t *)(b.data + j) = (int32_t)pad;
                            *(int32_t *)(b.data + j + 4) = 2;
                            tail_b += pad;
                            j = 0;
                        }
                        memcpy(b.data + j + 8, scratch, n);
                        *(int32_t *)(b.data + j) = (int32_t)need;
                        *(int32_t *)(b.data + j + 4) = 1;
                        tail_b += need;
                        answered++;
                        break;
                    }
                    if (answered) { /* publish what we have so the host can make room */
                        __atomic_store_n(b.tail, tail_b, __ATOMIC_SEQ_CST);
                        wake_waiter(b.data_waiters, b.data_seq, doorbell);
                        answered = 0;
                    }
                    if (peer_gone(fd)) goto out;
                    usleep(50);
                }
            }
            head += rec;
        }
        __atomic_store_n(a.head, head, __ATOMIC_SEQ_CST);
        wake_waiter(a.space_waiters, a.space_seq, -1);
        if (answered) {
            __atomic_store_n(b.tail, tail_b, __ATOMIC_SEQ_CST);
            wake_waiter(b.data_waiters, b.data_seq, doorbell);
        }
    }
out:
    free(scratch);
    munmap(base, size);
    if (doorbell >= 0) close(doorbell);
    close(fd);
    return code;
}

int rtt_serve(rtt_handler handler, void *ctx) {
    const char *path = getenv("RTT_SERVICE_SOCKET");
    if (!path || !*path) {
        fprintf(stderr, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const char *lane = getenv("RTT_SERVICE_LANE");
    int shm = lane && strcmp(lane, "shm") == 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {0};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("RTT-LANE-002: connect");
        return 1;
    }
    const char *name = "rtt-service";
    uint8_t req[8 + 11];
    memcpy(req, "RTTQ", 4);
    req[4] = 2;
    req[5] = shm ? 0 : 1;
    wr16(req + 6, (uint16_t)strlen(name));
    memcpy(req + 8, name, strlen(name));
    uint8_t reply[16];
    if (send_all(fd, req, sizeof req) < 0 || read_exact(fd, reply, 16) < 0) {
        fprintf(stderr, "RTT-LANE-002: the host closed the socket during attach\n");
        return 1;
    }
    if (memcmp(reply, "RTTR", 4) != 0 || rd32(reply + 4) != 0 || rd32(reply + 12) != (uint32_t)(shm ? 0 : 1)) {
        fprintf(stderr, "RTT-LANE-002: attach refused (status %u)\n", rd32(reply + 4));
        return 1;
    }
    return shm ? serve_shm(fd, handler, ctx) : serve_uds(fd, handler, ctx);
}
