;; Sample echo service on the newLISP stub: answers each request with its payload; "!fail" answers with an
;; RTT-CALL-004 error frame raised from the handler.
(load (append (join (chop (parse (real-path (last (main-args))) "/")) "/") "/rtt-stub.lsp"))

(define (echo payload)
  (if (= payload "!fail")
      (throw-error "RTT-CALL-004 the sample service was asked to fail")
      payload))

(exit (rtt:serve echo))
