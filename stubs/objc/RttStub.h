/* RTT stub for Objective-C (GNU runtime, libobjc only; no Foundation): serves a `process` endpoint over a UDS lane.
 * Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
 * frames (CRC-32C checked, re-synchronising after a bad frame), answer each request with one response frame of the
 * same route_id and frame_id. */
#import <objc/runtime.h>
#include <stddef.h>
#include <stdint.h>

enum {
    RttMaxPayload = 65536,
    RttFlagNoPayloadCrc = 0x1,
    RttFlagResponse = 0x2,
    RttFlagError = 0x4,
    RttFlagProbe = 0x8,
};

/* The root class of the stub's objects (the GNU runtime ships none with alloc/init). */
__attribute__((objc_root_class))
@interface RttObject
{
    Class isa;
}
+ (id)alloc;
- (id)init;
- (void)free;
@end

/* Thrown (@throw) by a handler to answer with an error frame carrying `code`. */
@interface RttFailure : RttObject
{
    const char *code;
    char message[256];
}
+ (id)failureWithCode:(const char *)aCode message:(const char *)aMessage;
- (const char *)code;
- (const char *)message;
@end

/* A service's handler: writes the answer for `request` into `answer` (room for RttMaxPayload bytes) and returns
 * its length; @throw an RttFailure (or anything else) to answer with an error frame. */
@protocol RttHandler
- (uint32_t)handle:(const uint8_t *)request length:(uint32_t)length answer:(uint8_t *)answer;
@end

@interface RttStub : RttObject
{
    id<RttHandler> handler;
    int fd;
    uint8_t *input;
    size_t inputLength;
    uint8_t *output;
    size_t outputLength;
    uint8_t *answer;
}
/* CRC-32C (Castagnoli, reflected 0x82F63B78, init and final xor 0xFFFFFFFF), continuing `crc` (0 to start). */
+ (uint32_t)crc32c:(const uint8_t *)bytes length:(size_t)length crc:(uint32_t)crc;
/* Writes a frame (24-byte header + payload) at `into`, which has room for 24 + length bytes. */
+ (size_t)frameWithFlags:(uint16_t)flags route:(uint32_t)route frame:(uint32_t)frame
                 payload:(const uint8_t *)payload length:(uint32_t)length into:(uint8_t *)into;
- (id)initWithHandler:(id<RttHandler>)aHandler;
/* Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane; returns the process exit status. */
- (int)serve;
@end
