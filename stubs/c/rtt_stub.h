/* RTT stub for C (C11, Linux): serves a `process` endpoint over a UDS or SHM lane (docs/stub-protocol.md). */
#ifndef RTT_STUB_H
#define RTT_STUB_H
#include <stddef.h>
#include <stdint.h>

#define RTT_MAX_PAYLOAD 65536u
#define RTT_F_NO_PAYLOAD_CRC 0x0001u
#define RTT_F_RESPONSE 0x0002u
#define RTT_F_ERROR 0x0004u
#define RTT_F_PROBE 0x0008u

/* Answers one request: writes at most `max` bytes to `resp` and returns their count, or returns -1 after writing
 * "CODE message" (e.g. "RTT-CALL-004 bad input") to `err` (at most `errmax` bytes, NUL-terminated) to answer with an
 * error frame. */
typedef int (*rtt_handler)(void *ctx, const uint8_t *req, uint32_t len, uint8_t *resp, uint32_t max, char *err, size_t errmax);

/* Attaches on RTT_SERVICE_SOCKET (SHM when RTT_SERVICE_LANE is "shm", else UDS) and serves until the host closes
 * the lane. Returns the process exit code: 0 after the lane closed, 1 on an attach failure, 2 without a socket. */
int rtt_serve(rtt_handler handler, void *ctx);

/* CRC-32C (Castagnoli); pass 0 to start, the previous result to continue. */
uint32_t rtt_crc32c(uint32_t crc, const void *data, size_t n);

#endif
