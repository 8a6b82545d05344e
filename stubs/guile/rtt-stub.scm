;;; RTT stub for GNU Guile 3 (Scheme, Guile's own library only): serves a `process` endpoint over a UDS lane.
;;;
;;; Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte
;;; RTT1 frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response
;;; frame of the same route_id and frame_id. A handler takes the payload (a bytevector) and returns the answer
;;; (a bytevector); (rtt-fail code message) or any exception answers with an error frame.
(define-module (rtt-stub)
  #:use-module (rnrs bytevectors)
  #:use-module (ice-9 binary-ports)
  #:use-module (srfi srfi-11)
  #:export (serve crc32c make-frame rtt-fail max-payload))

(define max-payload 65536)
(define f-no-payload-crc 1)
(define f-response 2)
(define f-error 4)
(define f-probe 8)
(define kind-uds 1)
(define le (endianness little))

;; CRC-32C: reflected polynomial #x82F63B78, initial value and final xor #xFFFFFFFF.
(define crc-table
  (let ((t (make-vector 256 0)))
    (do ((i 0 (+ i 1))) ((= i 256) t)
      (let loop ((c i) (k 0))
        (if (= k 8)
            (vector-set! t i c)
            (loop (if (odd? c) (logxor (ash c -1) #x82F63B78) (ash c -1)) (+ k 1)))))))

(define* (crc32c bv #:optional (start 0) (end (bytevector-length bv)) (crc 0))
  "CRC-32C of bytes START..END of BV, continuing CRC (0 to start)."
  (let loop ((i start) (c (logxor crc #xFFFFFFFF)))
    (if (= i end)
        (logxor c #xFFFFFFFF)
        (loop (+ i 1)
              (logxor (vector-ref crc-table (logand (logxor c (bytevector-u8-ref bv i)) #xFF)) (ash c -8))))))

(define (make-frame flags route-id frame-id payload)
  "A frame: the 24-byte little-endian header, then PAYLOAD."
  (let* ((len (bytevector-length payload))
         (f (make-bytevector (+ 24 len) 0)))
    (bytevector-copy! (string->utf8 "RTT1") 0 f 0 4)
    (bytevector-u16-set! f 4 flags le)
    (bytevector-u32-set! f 8 route-id le)
    (bytevector-u32-set! f 12 frame-id le)
    (bytevector-u32-set! f 16 len le)
    (bytevector-copy! payload 0 f 24 len)
    (let ((crc (crc32c f 0 20)))
      (bytevector-u32-set! f 20 (if (zero? (logand flags f-no-payload-crc)) (crc32c f 24 (+ 24 len) crc) crc) le))
    f))

(define (rtt-fail code message)
  "Call from a handler to answer with an error frame carrying CODE."
  (throw 'rtt-failure code message))

(define (error-frame route-id frame-id code message)
  (let* ((text (string->utf8 (string-append code " " message)))
         (n (min (bytevector-length text) max-payload)))
    (make-frame (logior f-response f-error) route-id frame-id
                (if (= n (bytevector-length text)) text (let ((b (make-bytevector n))) (bytevector-copy! text 0 b 0 n) b)))))

(define (answer handler flags route-id frame-id payload)
  (if (not (zero? (logand flags f-probe)))
      (make-frame (logior f-response f-probe) route-id frame-id payload)
      (catch #t
        (lambda ()
          (let ((out (handler payload)))
            (cond ((not (bytevector? out))
                   (error-frame route-id frame-id "RTT-CALL-004" "the handler did not return a bytevector"))
                  ((> (bytevector-length out) max-payload)
                   (error-frame route-id frame-id "RTT-CALL-004" "the answer is longer than max_payload"))
                  (else (make-frame f-response route-id frame-id out)))))
        (lambda (key . args)
          (if (eq? key 'rtt-failure)
              (error-frame route-id frame-id (car args) (cadr args))
              (error-frame route-id frame-id "RTT-CALL-004"
                           (format #f "the service failed: ~a ~s" key args)))))))

(define (magic-at? bv i)
  (and (= (bytevector-u8-ref bv i) 82) (= (bytevector-u8-ref bv (+ i 1)) 84)
       (= (bytevector-u8-ref bv (+ i 2)) 84) (= (bytevector-u8-ref bv (+ i 3)) 49)))

(define (resync bv pos end)
  "After a bad frame at POS: the next \"RTT1\" after POS, or END - 3 (a magic may be split)."
  (let loop ((i (+ pos 1)))
    (cond ((> (+ i 4) end) (max (+ pos 1) (- end 3)))
          ((magic-at? bv i) i)
          (else (loop (+ i 1))))))

(define (parse handler bv end)
  "Answers every whole frame in BV[0, END); returns the answers (a list of bytevectors) and the first unread byte."
  (let loop ((pos 0) (out '()))
    (if (< (- end pos) 24)
        (values (reverse out) pos)
        (let ((len (bytevector-u32-ref bv (+ pos 16) le))
              (flags (bytevector-u16-ref bv (+ pos 4) le)))
          (cond ((or (not (magic-at? bv pos)) (> len max-payload)) (loop (resync bv pos end) out))
                ((< (- end pos) (+ 24 len)) (values (reverse out) pos))
                (else
                 (let* ((crc (crc32c bv pos (+ pos 20)))
                        (crc (if (zero? (logand flags f-no-payload-crc)) (crc32c bv (+ pos 24) (+ pos 24 len) crc) crc)))
                   (cond ((not (= crc (bytevector-u32-ref bv (+ pos 20) le))) (loop (resync bv pos end) out))
                         ((not (zero? (logand flags f-response))) (loop (+ pos 24 len) out))
                         (else
                          (let ((payload (make-bytevector len)))
                            (bytevector-copy! bv (+ pos 24) payload 0 len)
                            (loop (+ pos 24 len)
                                  (cons (answer handler flags (bytevector-u32-ref bv (+ pos 8) le)
                                                (bytevector-u32-ref bv (+ pos 12) le) payload)
                                        out))))))))))))

(define (read-exactly port n)
  (let ((bv (get-bytevector-n port n)))
    (if (and (bytevector? bv) (= (bytevector-length bv) n)) bv #f)))

(define (attach path)
  (let ((s (socket AF_UNIX SOCK_STREAM 0))
        (name (string->utf8 "rtt-service"))
        (req (make-bytevector 19 0)))
    (connect s AF_UNIX path)
    (bytevector-copy! (string->utf8 "RTTQ") 0 req 0 4)
    (bytevector-u8-set! req 4 2)
    (bytevector-u8-set! req 5 kind-uds)
    (bytevector-u16-set! req 6 (bytevector-length name) le)
    (bytevector-copy! name 0 req 8 (bytevector-length name))
    (put-bytevector s req)
    (force-output s)
    (let ((reply (read-exactly s 16)))
      (cond ((not reply) (error "the host closed the control socket during attach"))
            ((not (equal? (utf8->string (bytevector-slice reply 0 4)) "RTTR")) (error "the attach reply has another magic"))
            ((not (zero? (bytevector-s32-ref reply 4 le)))
             (error (format #f "attach refused with status ~a" (bytevector-s32-ref reply 4 le))))
            ((not (= kind-uds (bytevector-s32-ref reply 12 le))) (error "the host attached another lane kind"))
            (else s)))))

(define (bytevector-slice bv start end)
  (let ((b (make-bytevector (- end start))))
    (bytevector-copy! bv start b 0 (- end start))
    b))

(define (serve handler)
  "Attaches on RTT_SERVICE_SOCKET and serves HANDLER until the host closes the lane; returns an exit status."
  (let ((path (getenv "RTT_SERVICE_SOCKET")))
    (if (or (not path) (string-null? path))
        (begin (format (current-error-port) "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service~%") 2)
        (let ((s (catch #t (lambda () (attach path))
                   (lambda (key . args)
                     (format (current-error-port) "RTT-LANE-001: cannot attach on ~a: ~a ~s~%" path key args)
                     #f))))
          (if (not s)
              1
              (begin
                (sigaction SIGPIPE SIG_IGN)
                (setvbuf s 'none)
                (let loop ((buf (make-bytevector (* 4 (+ 24 max-payload)))) (end 0))
                  (let ((chunk (catch 'system-error (lambda () (get-bytevector-some s)) (lambda _ (eof-object)))))
                    (if (eof-object? chunk)
                        0 ; the host closed the lane: graceful shutdown (or the host died)
                        (let* ((n (bytevector-length chunk))
                               (buf (if (<= (+ end n) (bytevector-length buf)) buf
                                        (let ((b (make-bytevector (* 2 (+ end n))))) (bytevector-copy! buf 0 b 0 end) b))))
                          (bytevector-copy! chunk 0 buf end n)
                          (let-values (((answers used) (parse handler buf (+ end n))))
                            (bytevector-copy! buf used buf 0 (- (+ end n) used))
                            (if (catch 'system-error
                                  (lambda () (for-each (lambda (a) (put-bytevector s a)) answers) #t)
                                  (lambda _ #f))
                                (loop buf (- (+ end n) used))
                                0)))))))))))) ; the host is gone: the lane is over
