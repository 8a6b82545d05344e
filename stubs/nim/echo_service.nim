## Sample echo service on the Nim stub: answers each request with its payload; "!fail" answers with an
## RTT-CALL-004 error frame raised from the handler.
import rtt_stub

proc echo(payload: string): string =
  if payload == "!fail":
    raise newRttFailure("RTT-CALL-004", "the sample service was asked to fail")
  payload

quit serve(echo)
