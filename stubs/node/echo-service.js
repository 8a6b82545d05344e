// Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
'use strict';
const { serve, Failure } = require('./rtt-stub');

serve((payload) => {
  if (payload.length === 5 && payload.toString('latin1') === '!fail') throw new Failure('RTT-CALL-004', 'the sample service was asked to fail');
  return payload;
});
