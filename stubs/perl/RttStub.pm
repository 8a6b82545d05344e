# RTT stub for Perl 5 (core modules only): serves a `process` endpoint over a UDS lane (docs/stub-protocol.md).
package RttStub;
use strict;
use warnings;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

our $MAX_PAYLOAD = 65536;
use constant { F_NO_PAYLOAD_CRC => 1, F_RESPONSE => 2, F_ERROR => 4, F_PROBE => 8 };

my @TABLE;
for my $i (0 .. 255) {
    my $c = $i;
    for (1 .. 8) { $c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1); }
    $TABLE[$i] = $c;
}

# CRC-32C (Castagnoli) of $data; $crc continues an earlier result.
sub crc32c {
    my ($data, $crc) = @_;
    my $c = ($crc // 0) ^ 0xFFFFFFFF;
    $c = $TABLE[($c ^ $_) & 0xFF] ^ ($c >> 8) for unpack('C*', $data);
    return $c ^ 0xFFFFFFFF;
}

sub frame {
    my ($flags, $route, $id, $payload) = @_;
    my $head = pack('a4 v v V V V', 'RTT1', $flags, 0, $route, $id, length $payload);
    my $crc = crc32c($head);
    $crc = crc32c($payload, $crc) unless $flags & F_NO_PAYLOAD_CRC;
    return $head . pack('V', $crc) . $payload;
}

# A handler dies with RttStub::Failure->new(code, message) (or anything) to answer with an error frame.
package RttStub::Failure {
    sub new { my ($class, $code, $message) = @_; return bless { code => $code, message => $message }, $class; }
}

sub answer {
    my ($handler, $flags, $route, $id, $payload) = @_;
    return frame(F_RESPONSE | F_PROBE, $route, $id, $payload) if $flags & F_PROBE;
    my $out = eval { $handler->($payload) };
    my $err = $@;
    if (!$err && length($out) > $MAX_PAYLOAD) { $err = RttStub::Failure->new('RTT-CALL-004', "the answer is longer than $MAX_PAYLOAD bytes"); }
    if ($err) {
        my $text = ref $err eq 'RttStub::Failure' ? "$err->{code} $err->{message}" : "RTT-CALL-004 the service failed: $err";
        $text =~ s/\s+$//;
        return frame(F_RESPONSE | F_ERROR, $route, $id, substr($text, 0, $MAX_PAYLOAD));
    }
    return frame(F_RESPONSE, $route, $id, $out);
}

# Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
sub serve {
    my ($handler) = @_;
    my $path = $ENV{RTT_SERVICE_SOCKET};
    if (!defined $path || $path eq '') {
        print STDERR "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n";
        return 2;
    }
    $SIG{PIPE} = 'IGNORE';
    my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path);
    if (!$s) { print STDERR "RTT-LANE-002: cannot connect to $path: $!\n"; return 1; }
    binmode $s;
    my $name = 'rtt-service';
    syswrite($s, pack('a4 C C v', 'RTTQ', 2, 1, length $name) . $name);
    my $reply = '';
    while (length $reply < 16) {
        my $n = sysread($s, $reply, 16 - length $reply, length $reply);
        if (!$n) { print STDERR "RTT-LANE-002: the host closed the socket during attach\n"; return 1; }
    }
    my ($magic, $status, $route_id, $kind) = unpack('a4 l V l', $reply);
    if ($magic ne 'RTTR' || $status != 0 || $kind != 1) { print STDERR "RTT-LANE-002: attach refused (status $status)\n"; return 1; }
    my $buf = '';
    while (1) {
        my $n = sysread($s, $buf, 1 << 20, length $buf);
        return 0 if !$n;    # the host closed the lane
        my $pos = 0;
        my $out = '';
        while (length($buf) - $pos >= 24) {
            my ($m, $flags, undef, $route, $id, $len, $crc) = unpack('a4 v v V V V V', substr($buf, $pos, 24));
            my $bad = $m ne 'RTT1' || $len > $MAX_PAYLOAD;
            if (!$bad) {
                last if length($buf) - $pos < 24 + $len;
                my $c = crc32c(substr($buf, $pos, 20));
                $c = crc32c(substr($buf, $pos + 24, $len), $c) unless $flags & F_NO_PAYLOAD_CRC;
                $bad = $c != $crc;
            }
            if ($bad) {
                my $next = index($buf, 'RTT1', $pos + 1);
                my $keep = length($buf) - 3;
                $pos = $next >= 0 ? $next : ($keep > $pos + 1 ? $keep : $pos + 1);
                next;
            }
            my $payload = substr($buf, $pos + 24, $len);
            $pos += 24 + $len;
            $out .= answer($handler, $flags, $route, $id, $payload) unless $flags & F_RESPONSE;
        }
        substr($buf, 0, $pos, '');
        while (length $out) {
            my $w = syswrite($s, $out);
            return 0 if !defined $w;
            substr($out, 0, $w, '');
        }
    }
}

1;
