// RTT stub for C++17 (standard library + POSIX sockets): serves a `process` endpoint over a UDS lane
// (docs/stub-protocol.md). Header-only.
#pragma once
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace rtt {

constexpr std::size_t kMaxPayload = 65536;
constexpr std::uint16_t kNoPayloadCrc = 1, kResponse = 2, kError = 4, kProbe = 8;

/// Thrown by a handler to answer with an error frame "code message".
struct Failure : std::runtime_error {
    std::string code;
    Failure(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
};

using Bytes = std::vector<std::uint8_t>;
using Handler = std::function<Bytes(const std::uint8_t* data, std::size_t size)>;

inline const std::array<std::uint32_t, 256>& crc_table() {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    return table;
}

/// CRC-32C (Castagnoli); pass the previous result to continue.
inline std::uint32_t crc32c(std::uint32_t crc, const std::uint8_t* p, std::size_t n) {
    const auto& t = crc_table();
    std::uint32_t c = ~crc;
    for (std::size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return ~c;
}

inline std::uint32_t rd32(const std::uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | std::uint32_t(p[3]) << 24; }
inline std::uint16_t rd16(const std::uint8_t* p) { return std::uint16_t(p[0] | p[1] << 8); }
inline void put32(Bytes& b, std::uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(v >> (8 * i))); }
inline void put16(Bytes& b, std::uint16_t v) { b.push_back(std::uint8_t(v)); b.push_back(std::uint8_t(v >> 8)); }

/// Appends a sealed frame to out.
inline void frame(Bytes& out, std::uint16_t flags, std::uint32_t route, std::uint32_t id, const std::uint8_t* payload, std::size_t n) {
    const auto start = out.size();
    out.insert(out.end(), {'R', 'T', 'T', '1'});
    put16(out, flags);
    put16(out, 0);
    put32(out, route);
    put32(out, id);
    put32(out, std::uint32_t(n));
    auto c = crc32c(0, out.data() + start, 20);
    if (!(flags & kNoPayloadCrc)) c = crc32c(c, payload, n);
    put32(out, c);
    out.insert(out.end(), payload, payload + n);
}

inline void answer(const Handler& handler, const std::uint8_t* f, Bytes& out) {
    const auto flags = rd16(f + 4);
    const auto route = rd32(f + 8), id = rd32(f + 12), len = rd32(f + 16);
    const std::uint8_t* payload = f + 24;
    if (flags & kResponse) return;
    if (flags & kProbe) return frame(out, kResponse | kProbe, route, id, payload, len);
    std::string error;
    try {
        Bytes a = handler(payload, len);
        if (a.size() <= kMaxPayload) return frame(out, kResponse, route, id, a.data(), a.size());
        error = "RTT-CALL-004 the answer is longer than 65536 bytes";
    } catch (const Failure& e) {
        error = e.code + " " + e.what();
    } catch (const std::exception& e) {
        error = std::string("RTT-CALL-004 the service failed: ") + e.what();
    } catch (...) {
        error = "RTT-CALL-004 the service failed";
    }
    if (error.size() > kMaxPayload) error.resize(kMaxPayload);
    frame(out, kResponse | kError, route, id, reinterpret_cast<const std::uint8_t*>(error.data()), error.size());
}

inline bool send_all(int fd, const std::uint8_t* p, std::size_t n) {
    while (n > 0) {
        auto w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= std::size_t(w);
    }
    return true;
}

/// Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
inline int serve(const Handler& handler) {
    const char* path = std::getenv("RTT_SERVICE_SOCKET");
    if (!path || !*path) {
        std::cerr << "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n";
        return 2;
    }
    std::signal(SIGPIPE, SIG_IGN);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
        std::cerr << "RTT-LANE-002: cannot connect to " << path << ": " << std::strerror(errno) << "\n";
        return 1;
    }
    const std::string name = "rtt-service";
    Bytes req{'R', 'T', 'T', 'Q', 2, 1};
    put16(req, std::uint16_t(name.size()));
    req.insert(req.end(), name.begin(), name.end());
    std::uint8_t reply[16];
    std::size_t got = 0;
    bool ok = send_all(fd, req.data(), req.size());
    while (ok && got < 16) {
        auto r = ::recv(fd, reply + got, 16 - got, 0);
        if (r <= 0) ok = false; else got += std::size_t(r);
    }
    if (!ok || std::memcmp(reply, "RTTR", 4) != 0 || rd32(reply + 4) != 0 || rd32(reply + 12) != 1) {
        std::cerr << "RTT-LANE-002: attach refused\n";
        return 1;
    }
    Bytes in(4 * (24 + kMaxPayload));
    Bytes out;
    out.reserve(1 << 20);
    std::size_t start = 0, end = 0;
    for (;;) {
        if (start == end) start = end = 0;
        else if (start > 0 && in.size() - end < 24 + kMaxPayload) {
            std::memmove(in.data(), in.data() + start, end - start);
            end -= start;
            start = 0;
        }
        auto r = ::recv(fd, in.data() + end, in.size() - end, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;  // the host closed the lane
        end += std::size_t(r);
        while (end - start >= 24) {
            const std::uint8_t* f = in.data() + start;
            const auto len = rd32(f + 16);
            bool bad = std::memcmp(f, "RTT1", 4) != 0 || len > kMaxPayload;
            if (!bad) {
                if (end - start < 24 + std::size_t(len)) break;
                auto c = crc32c(0, f, 20);
                if (!(rd16(f + 4) & kNoPayloadCrc)) c = crc32c(c, f + 24, len);
                bad = c != rd32(f + 20);
            }
            if (bad) {  // resync on the next "RTT1" after the bad frame's first byte
                auto* next = static_cast<std::uint8_t*>(::memmem(in.data() + start + 1, end - start - 1, "RTT1", 4));
                start = next ? std::size_t(next - in.data()) : std::max(start + 1, end - 3);
                continue;
            }
            answer(handler, f, out);
            start += 24 + len;
        }
        if (!out.empty()) {
            if (!send_all(fd, out.data(), out.size())) break;
            out.clear();
        }
    }
    ::close(fd);
    return 0;
}

}  // namespace rtt
