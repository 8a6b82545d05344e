;; RTT stub for Clojure (clojure.core and the JDK's Unix-domain SocketChannel, Java 16+): serves a `process`
;; endpoint over a UDS lane.
;;
;; Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
;; frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
;; the same route_id and frame_id. A handler takes the payload (a byte array) and returns the answer; throwing
;; (rtt-stub/failure code message) or any exception answers with an error frame.
(ns rtt-stub
  (:import (java.net StandardProtocolFamily UnixDomainSocketAddress)
           (java.nio ByteBuffer ByteOrder)
           (java.nio.channels SocketChannel)
           (java.nio.charset StandardCharsets)))

(set! *warn-on-reflection* true)

(def ^:const max-payload 65536)
(def ^:const magic 0x31545452) ; "RTT1" read as a little-endian u32

(def ^"[J" table
  (long-array (for [i (range 256)]
                (reduce (fn [^long c _] (if (odd? c) (bit-xor (unsigned-bit-shift-right c 1) 0x82F63B78)
                                            (unsigned-bit-shift-right c 1)))
                        i (range 8)))))

(defn crc32c
  "CRC-32C (Castagnoli, reflected 0x82F63B78, init and final xor 0xFFFFFFFF) of bytes [from, to) of `bytes`,
  continuing `crc` (0 to start)."
  (^long [^bytes bytes] (crc32c bytes 0 (alength bytes) 0))
  (^long [^bytes bytes ^long from ^long to ^long crc]
   (let [^"[J" t table]
     (loop [i from c (bit-xor crc 0xFFFFFFFF)]
       (if (< i to)
         (recur (inc i) (bit-xor (aget t (bit-and (bit-xor c (long (aget bytes i))) 0xFF))
                                 (unsigned-bit-shift-right c 8)))
         (bit-xor c 0xFFFFFFFF))))))

(defn failure
  "An exception for a handler to throw: the caller gets an error frame carrying `code`."
  [code message]
  (ex-info message {::code code}))

(defn frame
  "A frame: the 24-byte little-endian header, then the payload (a byte array)."
  ^bytes [^long flags ^long route ^long id ^bytes payload]
  (let [n (alength payload)
        f (byte-array (+ 24 n))
        b (.order (ByteBuffer/wrap f) ByteOrder/LITTLE_ENDIAN)]
    (.putInt b 0 (unchecked-int magic))
    (.putShort b 4 (unchecked-short flags))
    (.putInt b 8 (unchecked-int route))
    (.putInt b 12 (unchecked-int id))
    (.putInt b 16 n)
    (System/arraycopy payload 0 f 24 n)
    (let [crc (crc32c f 0 20 0)
          crc (if (zero? (bit-and flags 1)) (crc32c f 24 (+ 24 n) crc) crc)]
      (.putInt b 20 (unchecked-int crc)))
    f))

(defn- error-frame ^bytes [route id ^String text]
  (let [bytes (.getBytes text StandardCharsets/UTF_8)]
    (frame 6 route id (java.util.Arrays/copyOf bytes (int (min (alength bytes) max-payload))))))

(defn- answer ^bytes [handler flags route id ^bytes payload]
  (if (pos? (bit-and (long flags) 8))
    (frame 10 route id payload) ; a heartbeat: Response | Probe, the payload echoed
    (try
      (let [out (handler payload)]
        (cond (not (bytes? out)) (error-frame route id "RTT-CALL-004 the handler did not return a byte array")
              (> (alength ^bytes out) max-payload)
              (error-frame route id (str "RTT-CALL-004 the answer is longer than " max-payload " bytes"))
              :else (frame 2 route id out)))
      (catch Exception e
        (if-let [code (::code (ex-data e))]
          (error-frame route id (str code " " (ex-message e)))
          (error-frame route id (str "RTT-CALL-004 the service failed: " e)))))))

(defn- resync
  "After a bad frame at pos: the next RTT1 after it, or end - 3 (a magic may be split)."
  ^long [^ByteBuffer b ^long pos ^long end]
  (or (first (filter #(= magic (.getInt b (int %))) (range (inc pos) (- end 3))))
      (max (inc pos) (- end 3))))

(defn- parse
  "Answers every whole frame of b[0, end); returns [answers first-unused-index]."
  [handler ^ByteBuffer b ^long end]
  (let [^bytes a (.array b)]
    (loop [pos 0 out (transient [])]
      (if (< (- end pos) 24)
        [(persistent! out) pos]
        (let [len (Integer/toUnsignedLong (.getInt b (int (+ pos 16))))
              flags (long (.getShort b (int (+ pos 4))))]
          (cond
            (or (not= magic (.getInt b (int pos))) (> len max-payload)) (recur (resync b pos end) out)
            (< (- end pos) (+ 24 len)) [(persistent! out) pos]
            :else
            (let [crc (crc32c a pos (+ pos 20) 0)
                  crc (if (zero? (bit-and flags 1)) (crc32c a (+ pos 24) (+ pos 24 len) crc) crc)]
              (cond
                (not= crc (Integer/toUnsignedLong (.getInt b (int (+ pos 20))))) (recur (resync b pos end) out)
                (pos? (bit-and flags 2)) (recur (+ pos 24 len) out) ; a response is not a request: ignored
                :else
                (recur (+ pos 24 len)
                       (conj! out (answer handler flags
                                          (Integer/toUnsignedLong (.getInt b (int (+ pos 8))))
                                          (Integer/toUnsignedLong (.getInt b (int (+ pos 12))))
                                          (java.util.Arrays/copyOfRange a (int (+ pos 24)) (int (+ pos 24 len))))))))))))))

(defn- write-all [^SocketChannel ch ^ByteBuffer b]
  (while (.hasRemaining b) (.write ch b)))

(defn- attach ^SocketChannel [^String path]
  (let [ch (SocketChannel/open StandardProtocolFamily/UNIX)
        name (.getBytes "rtt-service" StandardCharsets/US_ASCII)
        req (.order (ByteBuffer/allocate (+ 8 (alength name))) ByteOrder/LITTLE_ENDIAN)
        reply (.order (ByteBuffer/allocate 16) ByteOrder/LITTLE_ENDIAN)]
    (.connect ch (UnixDomainSocketAddress/of path))
    (.put req (.getBytes "RTTQ" StandardCharsets/US_ASCII))
    (.put req (byte 2))
    (.put req (byte 1))
    (.putShort req (short (alength name)))
    (.put req name)
    (write-all ch (.flip req))
    (while (.hasRemaining reply)
      (when (neg? (.read ch reply)) (throw (ex-info "the host closed the control socket during attach" {}))))
    (when-not (and (= 0x52545452 (.getInt reply 0)) (zero? (.getInt reply 4)) (= 1 (.getInt reply 12)))
      (throw (ex-info (str "attach refused: status " (.getInt reply 4) ", kind " (.getInt reply 12)) {})))
    ch))

(defn serve
  "Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane; returns the exit status."
  [handler]
  (let [path (System/getenv "RTT_SERVICE_SOCKET")]
    (if (or (nil? path) (= "" path))
      (do (binding [*out* *err*] (println "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service"))
          2)
      (if-let [ch (try (attach path)
                       (catch Exception e
                         (binding [*out* *err*] (println (str "RTT-LANE-001: cannot attach on " path ": " (ex-message e))))
                         nil))]
        (let [b (.order (ByteBuffer/allocate (* 4 (+ 24 max-payload))) ByteOrder/LITTLE_ENDIAN)]
          (loop []
            (if (neg? (try (.read ^SocketChannel ch b) (catch java.io.IOException _ -1)))
              0 ; end of file: the host closed the lane (graceful shutdown or host death)
              (let [[answers used] (parse handler b (.position b))
                    end (.position b)]
                (System/arraycopy (.array b) (int used) (.array b) 0 (int (- end used)))
                (.position b (int (- end used)))
                (if (try (when (seq answers)
                           (let [n (reduce + (map #(alength ^bytes %) answers))
                                 out (ByteBuffer/allocate n)]
                             (doseq [^bytes a answers] (.put out a))
                             (write-all ch (.flip out))))
                         true
                         (catch java.io.IOException _ false))
                  (recur)
                  0))))) ; the host is gone: the lane is over
        1))))
