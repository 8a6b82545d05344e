-- Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
package.path = (arg[0]:match("(.*/)") or "./") .. "?.lua;" .. package.path
local rtt = require("rtt_stub")

os.exit(rtt.serve(function(payload)
  if payload == "!fail" then error(rtt.failure("RTT-CALL-004", "the sample service was asked to fail")) end
  return payload
end))
