#import "RttStub.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static uint32_t crcTable[256];

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) | ((uint32_t)get16(p + 2) << 16); }

@interface RttStub ()
- (int)attach:(const char *)path;
- (void)answerFlags:(uint16_t)flags route:(uint32_t)route frame:(uint32_t)frame
            payload:(const uint8_t *)payload length:(uint32_t)length;
- (void)parse;
- (size_t)resyncFrom:(size_t)pos;
- (int)flush;
@end

@implementation RttObject
+ (id)alloc { return class_createInstance(self, 0); }
- (id)init { return self; }
- (void)free { object_dispose(self); }
@end

@implementation RttFailure
+ (id)failureWithCode:(const char *)aCode message:(const char *)aMessage
{
    RttFailure *f = [[self alloc] init];
    f->code = aCode;
    snprintf(f->message, sizeof f->message, "%s", aMessage);
    return f;
}
- (const char *)code { return code; }
- (const char *)message { return message; }
@end

@implementation RttStub

+ (void)initialize
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crcTable[i] = c;
    }
}

+ (uint32_t)crc32c:(const uint8_t *)bytes length:(size_t)length crc:(uint32_t)crc
{
    uint32_t c = crc ^ 0xFFFFFFFFu;
    for (size_t i = 0; i < length; i++) c = crcTable[(c ^ bytes[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

+ (size_t)frameWithFlags:(uint16_t)flags route:(uint32_t)route frame:(uint32_t)frame
                 payload:(const uint8_t *)payload length:(uint32_t)length into:(uint8_t *)into
{
    memcpy(into, "RTT1", 4);
    put16(into + 4, flags);
    put16(into + 6, 0);
    put32(into + 8, route);
    put32(into + 12, frame);
    put32(into + 16, length);
    if (length > 0) memmove(into + 24, payload, length);
    uint32_t crc = [self crc32c:into length:20 crc:0];
    if (!(flags & RttFlagNoPayloadCrc)) crc = [self crc32c:into + 24 length:length crc:crc];
    put32(into + 20, crc);
    return 24 + (size_t)length;
}

- (id)initWithHandler:(id<RttHandler>)aHandler
{
    handler = aHandler;
    fd = -1;
    input = malloc(4 * (24 + RttMaxPayload));
    output = malloc(64 * (24 + RttMaxPayload));
    answer = malloc(RttMaxPayload);
    return self;
}

static int writeAll(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

- (int)attach:(const char *)path
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "RTT-LANE-001: the socket path is too long: %s\n", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "RTT-LANE-001: cannot connect to %s: %s\n", path, strerror(errno));
        return -1;
    }
    static const char name[] = "rtt-service";
    uint8_t request[8 + sizeof name - 1];
    memcpy(request, "RTTQ", 4);
    request[4] = 2; /* attach version */
    request[5] = 1; /* kind: UDS */
    put16(request + 6, (uint16_t)(sizeof name - 1));
    memcpy(request + 8, name, sizeof name - 1);
    if (writeAll(fd, request, sizeof request) != 0) {
        fprintf(stderr, "RTT-LANE-001: cannot send the attach request: %s\n", strerror(errno));
        return -1;
    }
    uint8_t reply[16];
    size_t got = 0;
    while (got < sizeof reply) {
        ssize_t r = recv(fd, reply + got, sizeof reply - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "RTT-LANE-001: the host closed the control socket during attach\n");
            return -1;
        }
        got += (size_t)r;
    }
    if (memcmp(reply, "RTTR", 4) != 0 || get32(reply + 4) != 0 || get32(reply + 12) != 1) {
        fprintf(stderr, "RTT-LANE-001: attach refused (status %d, kind %d)\n", (int)get32(reply + 4), (int)get32(reply + 12));
        return -1;
    }
    return 0;
}

- (void)answerFlags:(uint16_t)flags route:(uint32_t)route frame:(uint32_t)frame
            payload:(const uint8_t *)payload length:(uint32_t)length
{
    uint8_t *at = output + outputLength;
    if (flags & RttFlagProbe) {
        outputLength += [RttStub frameWithFlags:RttFlagResponse | RttFlagProbe route:route frame:frame
                                        payload:payload length:length into:at];
        return;
    }
    char text[512];
    text[0] = 0;
    @try {
        uint32_t n = [handler handle:payload length:length answer:answer];
        if (n <= RttMaxPayload) {
            outputLength += [RttStub frameWithFlags:RttFlagResponse route:route frame:frame payload:answer length:n into:at];
            return;
        }
        snprintf(text, sizeof text, "RTT-CALL-004 the answer is %u bytes, more than %d", n, RttMaxPayload);
    }
    @catch (RttFailure *failure) {
        snprintf(text, sizeof text, "%s %s", [failure code], [failure message]);
        [failure free];
    }
    @catch (id other) {
        snprintf(text, sizeof text, "RTT-CALL-004 the service failed: %s", class_getName(object_getClass(other)));
    }
    outputLength += [RttStub frameWithFlags:RttFlagResponse | RttFlagError route:route frame:frame
                                    payload:(const uint8_t *)text length:(uint32_t)strlen(text) into:at];
}

/* Answers every whole frame of the input; keeps what is left for the next read. */
- (void)parse
{
    size_t pos = 0;
    while (inputLength - pos >= 24) {
        const uint8_t *f = input + pos;
        uint32_t length = get32(f + 16);
        if (memcmp(f, "RTT1", 4) != 0 || length > RttMaxPayload) {
            pos = [self resyncFrom:pos];
            continue;
        }
        if (inputLength - pos < 24 + (size_t)length) break;
        uint16_t flags = get16(f + 4);
        uint32_t crc = [RttStub crc32c:f length:20 crc:0];
        if (!(flags & RttFlagNoPayloadCrc)) crc = [RttStub crc32c:f + 24 length:length crc:crc];
        if (crc != get32(f + 20)) {
            pos = [self resyncFrom:pos];
            continue;
        }
        if (!(flags & RttFlagResponse)) {
            if (outputLength + 24 + RttMaxPayload > 64 * (24 + RttMaxPayload)) [self flush];
            [self answerFlags:flags route:get32(f + 8) frame:get32(f + 12) payload:f + 24 length:length];
        }
        pos += 24 + (size_t)length;
    }
    memmove(input, input + pos, inputLength - pos);
    inputLength -= pos;
}

/* After a bad frame at pos: the next "RTT1" after it, or the last 3 bytes (a magic may be split). */
- (size_t)resyncFrom:(size_t)pos
{
    for (size_t i = pos + 1; i + 4 <= inputLength; i++)
        if (memcmp(input + i, "RTT1", 4) == 0) return i;
    size_t keep = inputLength - 3;
    return keep > pos + 1 ? keep : pos + 1;
}

- (int)flush
{
    int rc = outputLength > 0 ? writeAll(fd, output, outputLength) : 0;
    outputLength = 0;
    return rc;
}

- (int)serve
{
    const char *path = getenv("RTT_SERVICE_SOCKET");
    if (path == NULL || *path == 0) {
        fprintf(stderr, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if ([self attach:path] != 0) return 1;
    for (;;) {
        ssize_t r = recv(fd, input + inputLength, 4 * (24 + RttMaxPayload) - inputLength, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* end of file: the host closed the lane (graceful shutdown or host death) */
        inputLength += (size_t)r;
        [self parse];
        if ([self flush] != 0) break; /* the host is gone: the lane is over */
    }
    close(fd);
    return 0;
}
@end
