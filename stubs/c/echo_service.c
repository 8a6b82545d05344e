/* Sample echo service (docs/stub-protocol.md section 7). */
#include <stdio.h>
#include <string.h>

#include "rtt_stub.h"

static int echo(void *ctx, const uint8_t *req, uint32_t len, uint8_t *resp, uint32_t max, char *err, size_t errmax) {
    (void)ctx;
    if (len == 5 && memcmp(req, "!fail", 5) == 0) {
        snprintf(err, errmax, "RTT-CALL-004 the sample service was asked to fail");
        return -1;
    }
    if (len > max) return -1;
    memcpy(resp, req, len);
    return (int)len;
}

int main(void) { return rtt_serve(echo, NULL); }
