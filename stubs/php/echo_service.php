<?php
// Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
require __DIR__ . '/RttStub.php';

exit(RttStub::serve(function (string $payload): string {
    if ($payload === '!fail') {
        throw new RttFailure('RTT-CALL-004', 'the sample service was asked to fail');
    }
    return $payload;
}));
