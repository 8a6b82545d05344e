;; Sample echo service on the Clojure stub: answers each request with its payload; "!fail" answers with an
;; RTT-CALL-004 error frame thrown from the handler. Compiled ahead of time (stubs.json) so it starts without
;; compiling Clojure: java -cp clojure.jar:CLASSES echo_service
(ns echo-service
  (:require [rtt-stub])
  (:gen-class))

(defn echo [^bytes payload]
  (if (= "!fail" (String. payload java.nio.charset.StandardCharsets/UTF_8))
    (throw (rtt-stub/failure "RTT-CALL-004" "the sample service was asked to fail"))
    payload))

(defn -main [& _]
  (System/exit (rtt-stub/serve echo)))
