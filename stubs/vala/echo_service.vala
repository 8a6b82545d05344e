/* Sample echo service on the Vala stub: answers each request with its payload; "!fail" answers with an
 * RTT-CALL-004 error frame thrown from the handler. */
uint8[] echo (uint8[] payload) throws GLib.Error {
    if (payload.length == 5 && Memory.cmp (payload, "!fail".data, 5) == 0) {
        throw new Rtt.RttFailure.FAILED ("RTT-CALL-004 the sample service was asked to fail");
    }
    return payload;
}

int main () {
    return Rtt.serve (echo);
}
