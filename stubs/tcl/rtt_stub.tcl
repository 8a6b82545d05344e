# RTT stub for Tcl (Jim Tcl, jimsh: its core has Unix sockets and pack/unpack; Tcl 8.6's core has no Unix
# sockets): serves a `process` endpoint over a UDS lane.
#
# Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
# frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
# the same route_id and frame_id. A handler is a command taking the payload and returning the answer; an error
# whose message starts with an RTT code ("RTT-CALL-004 why") answers with that error frame, any other error with
# RTT-CALL-004.

set rtt::max_payload 65536

# CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
set rtt::table {}
for {set i 0} {$i < 256} {incr i} {
    set c $i
    for {set k 0} {$k < 8} {incr k} {
        set c [expr {($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1)}]
    }
    lappend rtt::table $c
    set rtt::ord([format %c $i]) $i
}

# CRC-32C of the bytes of $data, continuing $crc (0 to start).
proc rtt::crc32c {data {crc 0}} {
    set t $::rtt::table
    set c [expr {$crc ^ 0xFFFFFFFF}]
    foreach ch [split $data ""] {
        set c [expr {[lindex $t [expr {($c ^ $::rtt::ord($ch)) & 0xFF}]] ^ ($c >> 8)}]
    }
    return [expr {$c ^ 0xFFFFFFFF}]
}

# A frame: the 24-byte little-endian header, then the payload.
proc rtt::frame {flags route id payload} {
    set h RTT1
    pack h $flags -intle 16 32
    pack h 0 -intle 16 48
    pack h $route -intle 32 64
    pack h $id -intle 32 96
    pack h [string length $payload] -intle 32 128
    set crc [rtt::crc32c $h]
    if {!($flags & 1)} {
        set crc [rtt::crc32c $payload $crc]
    }
    pack h $crc -intle 32 160
    return $h$payload
}

proc rtt::answer {handler flags route id payload} {
    if {$flags & 8} {
        return [rtt::frame 10 $route $id $payload] ;# a heartbeat: Response | Probe, the payload echoed
    }
    if {[catch {$handler $payload} out]} {
        if {![regexp {^RTT-[A-Z]+-[0-9]+ } $out]} {
            set out "RTT-CALL-004 the service failed: $out"
        }
        return [rtt::frame 6 $route $id [string range $out 0 [expr {$::rtt::max_payload - 1}]]]
    }
    if {[string length $out] > $::rtt::max_payload} {
        return [rtt::frame 6 $route $id "RTT-CALL-004 the answer is longer than $::rtt::max_payload bytes"]
    }
    return [rtt::frame 2 $route $id $out]
}

# After a bad frame at $pos: the next RTT1 after it, or the last 3 bytes (a magic may be split).
proc rtt::resync {buf pos} {
    set next [string first RTT1 $buf [expr {$pos + 1}]]
    if {$next >= 0} {
        return $next
    }
    set keep [expr {[string length $buf] - 3}]
    return [expr {$keep > $pos + 1 ? $keep : $pos + 1}]
}

# Answers every whole frame of $buf; returns {answers rest}.
proc rtt::parse {handler buf} {
    set out ""
    set pos 0
    set end [string length $buf]
    while {$end - $pos >= 24} {
        set len [unpack $buf -uintle [expr {($pos + 16) * 8}] 32]
        if {[string range $buf $pos [expr {$pos + 3}]] ne "RTT1" || $len > $::rtt::max_payload} {
            set pos [rtt::resync $buf $pos]
            continue
        }
        if {$end - $pos < 24 + $len} {
            break
        }
        set flags [unpack $buf -uintle [expr {($pos + 4) * 8}] 16]
        set payload [string range $buf [expr {$pos + 24}] [expr {$pos + 23 + $len}]]
        set crc [rtt::crc32c [string range $buf $pos [expr {$pos + 19}]]]
        if {!($flags & 1)} {
            set crc [rtt::crc32c $payload $crc]
        }
        if {$crc != [unpack $buf -uintle [expr {($pos + 20) * 8}] 32]} {
            set pos [rtt::resync $buf $pos]
            continue
        }
        if {!($flags & 2)} {
            append out [rtt::answer $handler $flags [unpack $buf -uintle [expr {($pos + 8) * 8}] 32] \
                [unpack $buf -uintle [expr {($pos + 12) * 8}] 32] $payload]
        }
        incr pos [expr {24 + $len}]
    }
    return [list $out [string range $buf $pos end]]
}

proc rtt::attach {path} {
    set s [socket unix $path]
    $s buffering full
    set name rtt-service
    set request RTTQ
    pack request 2 -intle 8 32
    pack request 1 -intle 8 40
    pack request [string length $name] -intle 16 48
    $s puts -nonewline $request$name
    $s flush
    set reply ""
    while {[string length $reply] < 16} {
        set chunk [$s recvfrom [expr {16 - [string length $reply]}]]
        if {$chunk eq ""} {
            error "the host closed the control socket during attach"
        }
        append reply $chunk
    }
    set status [unpack $reply -intle 32 32]
    set kind [unpack $reply -intle 96 32]
    if {[string range $reply 0 3] ne "RTTR" || $status != 0 || $kind != 1} {
        error "attach refused: status $status, kind $kind"
    }
    return $s
}

# Attaches on RTT_SERVICE_SOCKET and serves $handler until the host closes the lane; returns the exit status.
proc rtt::serve {handler} {
    if {![info exists ::env(RTT_SERVICE_SOCKET)] || $::env(RTT_SERVICE_SOCKET) eq ""} {
        stderr puts "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service"
        return 2
    }
    signal ignore SIGPIPE
    if {[catch {rtt::attach $::env(RTT_SERVICE_SOCKET)} s]} {
        stderr puts "RTT-LANE-001: cannot attach on $::env(RTT_SERVICE_SOCKET): $s"
        return 1
    }
    set buf ""
    while 1 {
        if {[catch {$s recvfrom 262144} chunk] || $chunk eq ""} {
            return 0 ;# end of file: the host closed the lane (graceful shutdown or host death)
        }
        lassign [rtt::parse $handler $buf$chunk] out buf
        if {$out ne "" && [catch {$s puts -nonewline $out; $s flush}]} {
            return 0 ;# the host is gone: the lane is over
        }
    }
}
