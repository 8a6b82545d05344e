/// Sample echo service on the D stub: answers each request with its payload; "!fail" answers with an
/// RTT-CALL-004 error frame thrown from the handler.
import rttstub;

int main()
{
    return serve((const(ubyte)[] payload) {
        if (payload == cast(const(ubyte)[]) "!fail")
            throw new RttFailure("RTT-CALL-004", "the sample service was asked to fail");
        return payload;
    });
}
