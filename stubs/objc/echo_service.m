/* Sample echo service on the Objective-C stub: answers each request with its payload; "!fail" answers with an
 * RTT-CALL-004 error frame thrown from the handler. */
#import "RttStub.h"

#include <string.h>

@interface EchoHandler : RttObject <RttHandler>
@end

@implementation EchoHandler
- (uint32_t)handle:(const uint8_t *)request length:(uint32_t)length answer:(uint8_t *)answer
{
    if (length == 5 && memcmp(request, "!fail", 5) == 0)
        @throw [RttFailure failureWithCode:"RTT-CALL-004" message:"the sample service was asked to fail"];
    memcpy(answer, request, length);
    return length;
}
@end

int main(void)
{
    RttStub *stub = [[RttStub alloc] initWithHandler:[[EchoHandler alloc] init]];
    return [stub serve];
}
