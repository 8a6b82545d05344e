# Sample echo service on the Tcl stub: answers each request with its payload; "!fail" answers with an
# RTT-CALL-004 error frame raised from the handler.
source [file join [file dirname [info script]] rtt_stub.tcl]

proc echo {payload} {
    if {$payload eq "!fail"} {
        error "RTT-CALL-004 the sample service was asked to fail"
    }
    return $payload
}

exit [rtt::serve echo]
