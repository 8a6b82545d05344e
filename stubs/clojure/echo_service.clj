;; Sample echo service on the Clojure stub: answers each request with its payload; "!fail" answers with an
;; RTT-CALL-004 error frame thrown from the handler.
(load-file (str (.getParent (java.io.File. ^String *file*)) "/rtt_stub.clj"))

(defn echo [^bytes payload]
  (if (= "!fail" (String. payload java.nio.charset.StandardCharsets/UTF_8))
    (throw (rtt-stub/failure "RTT-CALL-004" "the sample service was asked to fail"))
    payload))

(System/exit (rtt-stub/serve echo))
