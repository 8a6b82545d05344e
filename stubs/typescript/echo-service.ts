// Sample echo service on the TypeScript stub: answers each request with its payload; "!fail" answers with an
// RTT-CALL-004 error frame thrown from the handler.
import { RttFailure, serve } from "./rtt-stub";

serve((payload) => {
    if (payload.toString("utf8") === "!fail") throw new RttFailure("RTT-CALL-004", "the sample service was asked to fail");
    return payload;
});
