;;;; Sample echo service on the Common Lisp stub: answers each request with its payload; "!fail" answers with an
;;;; RTT-CALL-004 error frame signalled from the handler. Run: sbcl --script echo_service.lisp RTT-STUB.FASL
(require :sb-bsd-sockets)
(load (second sb-ext:*posix-argv*))

(defun handle (payload)
  (if (equalp payload (sb-ext:string-to-octets "!fail" :external-format :utf-8))
      (error 'rtt-stub:rtt-failure :code "RTT-CALL-004" :text "the sample service was asked to fail")
      payload))

(sb-ext:exit :code (rtt-stub:serve #'handle) :abort t)
