// Sample echo service on the F# stub: answers each request with its payload; "!fail" answers with an RTT-CALL-004
// error frame raised from the handler.
module EchoService

open RttStub

let echo (payload: byte[]) =
    if payload = "!fail"B then raise (RttFailure("RTT-CALL-004", "the sample service was asked to fail"))
    payload

[<EntryPoint>]
let main _ = serve echo
