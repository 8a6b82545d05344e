# Sample echo service on the Elixir stub: answers each request with its payload; "!fail" answers with an
# RTT-CALL-004 error frame raised from the handler.
handler = fn
  "!fail" -> raise RttStub.Failure, code: "RTT-CALL-004", message: "the sample service was asked to fail"
  payload -> payload
end

System.halt(RttStub.serve(handler))
