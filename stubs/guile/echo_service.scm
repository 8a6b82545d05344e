;;; Sample echo service on the Guile stub: answers each request with its payload; the payload "!fail" answers
;;; with an RTT-CALL-004 error frame raised from the handler.
(use-modules (rtt-stub) (rnrs bytevectors))

(define (handle payload)
  (if (equal? payload (string->utf8 "!fail"))
      (rtt-fail "RTT-CALL-004" "the sample service was asked to fail")
      payload))

(exit (serve handle))
