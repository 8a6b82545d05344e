;; RTT stub for newLISP (its core only: net-connect opens a Unix socket given a path): serves a `process`
;; endpoint over a UDS lane.
;;
;; Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
;; frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame
;; of the same route_id and frame_id. A handler takes the payload (a string of bytes) and returns the answer;
;; (throw-error "RTT-CALL-004 why") or any error answers with an error frame (an RTT code at the start of the
;; message is kept, any other message gets RTT-CALL-004).

(context 'rtt)

(constant 'MAX-PAYLOAD 65536)

;; CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
(set 'TABLE
  (array 256
    (map (fn (i)
           (dotimes (k 8) (setq i (if (= 1 (& i 1)) (^ (>> i 1) 0x82F63B78) (>> i 1))))
           i)
         (sequence 0 255))))

(define (crc32c data (crc 0))
  (let (c (^ crc 0xFFFFFFFF))
    (dolist (b (unpack (dup "b" (length data)) data))
      (setq c (^ (TABLE (& (^ c b) 0xFF)) (>> c 8))))
    (^ c 0xFFFFFFFF)))

;; A frame: the 24-byte little-endian header, then the payload.
(define (frame flags route id payload)
  (let (head (pack "<s4 u u lu lu lu" "RTT1" flags 0 route id (length payload)))
    (let (crc (crc32c head))
      (unless (= 1 (& flags 1)) (setq crc (crc32c payload crc)))
      (append head (pack "<lu" crc) payload))))

(define (answer handler flags route id payload , out)
  (cond
    ((!= 0 (& flags 8)) (frame 10 route id payload)) ; a heartbeat: Response | Probe, the payload echoed
    ((catch (handler payload) 'out)
     (if (> (length out) MAX-PAYLOAD)
         (frame 6 route id (string "RTT-CALL-004 the answer is longer than " MAX-PAYLOAD " bytes"))
         (frame 2 route id out)))
    (true
     (let (text (if (regex {RTT-[A-Z]+-[0-9]+ .*} out) $0 (string "RTT-CALL-004 the service failed: " out)))
       (frame 6 route id (slice text 0 MAX-PAYLOAD))))))

;; After a bad frame at pos: the next RTT1 after it, or the last 3 bytes (a magic may be split).
(define (resync buf pos , next keep)
  (setq next (find "RTT1" (slice buf (+ pos 1))))
  (if next (+ pos 1 next)
      (begin (setq keep (- (length buf) 3)) (max keep (+ pos 1)))))

;; Answers every whole frame of buf; returns (answers rest).
(define (parse-frames handler buf , out pos end len flags crc payload fields)
  (setq out "" pos 0 end (length buf))
  (while (>= (- end pos) 24)
    (setq fields (unpack "<s4 u u lu lu lu lu" (slice buf pos 24)))
    (setq flags (fields 1) len (fields 5))
    (cond
      ((or (!= (fields 0) "RTT1") (> len MAX-PAYLOAD)) (setq pos (resync buf pos)))
      ((< (- end pos) (+ 24 len)) (setq end -1))
      (true
       (setq payload (slice buf (+ pos 24) len))
       (setq crc (crc32c (slice buf pos 20)))
       (unless (= 1 (& flags 1)) (setq crc (crc32c payload crc)))
       (if (!= crc (fields 6))
           (setq pos (resync buf pos))
           (begin
             (when (= 0 (& flags 2)) ; a response is not a request: ignored
               (extend out (answer handler flags (fields 3) (fields 4) payload)))
             (setq pos (+ pos 24 len)))))))
  (list out (slice buf pos)))

(define (send-all sock data , n)
  (while (and data (> (length data) 0))
    (setq n (net-send sock data))
    (if (and n (> n 0)) (setq data (slice data n)) (setq data nil)))
  (= data ""))

(define (attach path , sock reply chunk fields)
  (setq sock (net-connect path))
  (unless sock (throw-error (string "cannot connect: " (net-error))))
  (send-all sock (append (pack "<s4 b b u" "RTTQ" 2 1 11) "rtt-service"))
  (setq reply "")
  (while (< (length reply) 16)
    (unless (net-receive sock chunk (- 16 (length reply)))
      (throw-error "the host closed the control socket during attach"))
    (extend reply chunk))
  (setq fields (unpack "<s4 ld lu ld" reply))
  (unless (and (= (fields 0) "RTTR") (= (fields 1) 0) (= (fields 3) 1))
    (throw-error (string "attach refused: status " (fields 1) ", kind " (fields 3))))
  sock)

;; Attaches on RTT_SERVICE_SOCKET and serves handler until the host closes the lane; returns the exit status.
(define (serve handler , path sock buf chunk result)
  (setq path (env "RTT_SERVICE_SOCKET"))
  (if (or (not path) (= path ""))
      (begin (write-line 2 "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service") 2)
      (if (not (catch (attach path) 'sock))
          (begin (write-line 2 (string "RTT-LANE-001: cannot attach on " path ": " sock)) 1)
          (begin
            (signal 13 "ignore") ; SIGPIPE ignored: a write to a closed lane fails instead
            (setq buf "")
            (while (net-receive sock chunk 262144)
              (setq result (parse-frames handler (append buf chunk)))
              (setq buf (result 1))
              (unless (or (= (result 0) "") (send-all sock (result 0)))
                (net-close sock true)))
            0)))) ; end of file: the host closed the lane (graceful shutdown or host death)

(context MAIN)
