#!/usr/bin/env perl
# Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use RttStub;

exit RttStub::serve(sub {
    my ($payload) = @_;
    die RttStub::Failure->new('RTT-CALL-004', 'the sample service was asked to fail') if $payload eq '!fail';
    return $payload;
});
