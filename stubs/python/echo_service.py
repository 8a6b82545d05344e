"""Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame."""
import sys

import rtt_stub


def handle(payload):
    if payload == b"!fail":
        raise rtt_stub.Failure("RTT-CALL-004", "the sample service was asked to fail")
    return payload


if __name__ == "__main__":
    sys.exit(rtt_stub.serve(handle))
