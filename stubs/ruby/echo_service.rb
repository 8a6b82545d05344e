# Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
require_relative 'rtt_stub'

exit(RttStub.serve do |payload|
  raise RttStub::Failure.new('RTT-CALL-004', 'the sample service was asked to fail') if payload == '!fail'

  payload
end)
