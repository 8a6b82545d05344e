;;;; RTT stub for Common Lisp (SBCL, with its contrib sb-bsd-sockets): serves a `process` endpoint over a UDS lane.
;;;;
;;;; Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte
;;;; RTT1 frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response
;;;; frame of the same route_id and frame_id. A handler takes the payload (an octet vector) and returns the answer;
;;;; signalling RTT-FAILURE (or any error) answers with an error frame.
(require :sb-bsd-sockets)

(defpackage :rtt-stub
  (:use :common-lisp)
  (:export #:serve #:crc32c #:make-frame #:rtt-failure #:+max-payload+))

(in-package :rtt-stub)

(defconstant +max-payload+ 65536)
(defconstant +no-payload-crc+ 1)
(defconstant +response+ 2)
(defconstant +error+ 4)
(defconstant +probe+ 8)
(defconstant +kind-uds+ 1)

(deftype octets () '(simple-array (unsigned-byte 8) (*)))

(define-condition rtt-failure (error)
  ((code :initarg :code :reader failure-code)
   (text :initarg :text :reader failure-text))
  (:documentation "Signal from a handler to answer with an error frame carrying CODE.")
  (:report (lambda (c s) (format s "~a ~a" (failure-code c) (failure-text c)))))

(declaim (type (simple-array (unsigned-byte 32) (256)) *table*))
(defparameter *table*
  (let ((table (make-array 256 :element-type '(unsigned-byte 32))))
    (dotimes (i 256 table)
      (let ((c i))
        (dotimes (k 8) (setf c (if (logbitp 0 c) (logxor (ash c -1) #x82F63B78) (ash c -1))))
        (setf (aref table i) c)))))

(defun crc32c (bytes &key (start 0) (end (length bytes)) (crc 0))
  "CRC-32C (Castagnoli, reflected #x82F63B78, init and final xor #xFFFFFFFF) of BYTES[START, END), continuing CRC."
  (declare (type octets bytes) (type fixnum start end) (type (unsigned-byte 32) crc) (optimize (speed 3) (safety 0)))
  (let ((c (logxor crc #xFFFFFFFF))
        (table *table*))
    (declare (type (unsigned-byte 32) c))
    (loop for i of-type fixnum from start below end
          do (setf c (logxor (aref table (logand (logxor c (aref bytes i)) #xFF)) (ash c -8))))
    (logxor c #xFFFFFFFF)))

(defun u16 (b i) (declare (type octets b) (type fixnum i)) (logior (aref b i) (ash (aref b (+ i 1)) 8)))
(defun u32 (b i) (declare (type octets b) (type fixnum i)) (logior (u16 b i) (ash (u16 b (+ i 2)) 16)))
(defun put-u32 (b i v)
  (declare (type octets b) (type fixnum i) (type (unsigned-byte 32) v))
  (dotimes (k 4) (setf (aref b (+ i k)) (ldb (byte 8 (* 8 k)) v))))

(defun octets (string) (sb-ext:string-to-octets string :external-format :utf-8))

(defun make-frame (flags route-id frame-id payload)
  "A frame: the 24-byte little-endian header, then PAYLOAD."
  (declare (type octets payload))
  (let* ((len (length payload))
         (f (make-array (+ 24 len) :element-type '(unsigned-byte 8) :initial-element 0)))
    (replace f (octets "RTT1"))
    (setf (aref f 4) (logand flags #xFF) (aref f 5) (ash flags -8))
    (put-u32 f 8 route-id)
    (put-u32 f 12 frame-id)
    (put-u32 f 16 len)
    (replace f payload :start1 24)
    (let ((crc (crc32c f :end 20)))
      (put-u32 f 20 (if (logtest flags +no-payload-crc+) crc (crc32c f :start 24 :crc crc))))
    f))

(defun error-frame (route-id frame-id text)
  (let ((bytes (octets text)))
    (make-frame (logior +response+ +error+) route-id frame-id
                (subseq bytes 0 (min (length bytes) +max-payload+)))))

(defun answer (handler flags route-id frame-id payload)
  (if (logtest flags +probe+)
      (make-frame (logior +response+ +probe+) route-id frame-id payload)
      (handler-case
          (let ((out (funcall handler payload)))
            (cond ((not (typep out 'octets))
                   (error-frame route-id frame-id "RTT-CALL-004 the handler did not return an octet vector"))
                  ((> (length out) +max-payload+)
                   (error-frame route-id frame-id (format nil "RTT-CALL-004 the answer is ~d bytes, more than ~d"
                                                          (length out) +max-payload+)))
                  (t (make-frame +response+ route-id frame-id out))))
        (rtt-failure (f) (error-frame route-id frame-id (format nil "~a" f)))
        (error (e) (error-frame route-id frame-id (format nil "RTT-CALL-004 the service failed: ~a" e))))))

(defun magic-at-p (b i)
  (and (= (aref b i) 82) (= (aref b (+ i 1)) 84) (= (aref b (+ i 2)) 84) (= (aref b (+ i 3)) 49)))

(defun resync (b pos end)
  "After a bad frame at POS: the next RTT1 after it, or END - 3 (a magic may be split)."
  (loop for i from (1+ pos) to (- end 4)
        when (magic-at-p b i) do (return-from resync i))
  (max (1+ pos) (- end 3)))

(defun parse (handler b end)
  "Answers every whole frame of B[0, END); returns the answers and the index of the first byte not used."
  (let ((pos 0) (answers '()))
    (loop while (>= (- end pos) 24)
          do (let ((len (u32 b (+ pos 16)))
                   (flags (u16 b (+ pos 4))))
               (cond ((or (not (magic-at-p b pos)) (> len +max-payload+)) (setf pos (resync b pos end)))
                     ((< (- end pos) (+ 24 len)) (loop-finish))
                     (t
                      (let* ((crc (crc32c b :start pos :end (+ pos 20)))
                             (crc (if (logtest flags +no-payload-crc+) crc
                                      (crc32c b :start (+ pos 24) :end (+ pos 24 len) :crc crc))))
                        (cond ((/= crc (u32 b (+ pos 20))) (setf pos (resync b pos end)))
                              (t
                               (unless (logtest flags +response+) ; a response is not a request: ignored
                                 (push (answer handler flags (u32 b (+ pos 8)) (u32 b (+ pos 12))
                                               (subseq b (+ pos 24) (+ pos 24 len)))
                                       answers))
                               (incf pos (+ 24 len)))))))))
    (values (nreverse answers) pos)))

(defun send-all (socket bytes)
  (let ((done 0))
    (loop while (< done (length bytes))
          do (let ((n (sb-bsd-sockets:socket-send socket (subseq bytes done) nil :nosignal t)))
               (when (or (null n) (<= n 0)) (return-from send-all nil))
               (incf done n)))
    t))

(defun receive (socket buffer start)
  "Reads into BUFFER from START; the number of bytes read, 0 at end of file."
  (let ((chunk (make-array (- (length buffer) start) :element-type '(unsigned-byte 8))))
    (multiple-value-bind (got n) (sb-bsd-sockets:socket-receive socket chunk nil)
      (declare (ignore got))
      (when (and n (> n 0)) (replace buffer chunk :start1 start :end2 n))
      (or n 0))))

(defun attach (path)
  (let ((s (make-instance 'sb-bsd-sockets:local-socket :type :stream))
        (name (octets "rtt-service"))
        (reply (make-array 16 :element-type '(unsigned-byte 8)))
        (got 0))
    (sb-bsd-sockets:socket-connect s path)
    (let ((request (make-array (+ 8 (length name)) :element-type '(unsigned-byte 8))))
      (replace request (octets "RTTQ"))
      (setf (aref request 4) 2 (aref request 5) +kind-uds+ (aref request 6) (length name) (aref request 7) 0)
      (replace request name :start1 8)
      (send-all s request))
    (loop while (< got 16)
          do (let ((n (receive s reply got)))
               (when (zerop n) (error "the host closed the control socket during attach"))
               (incf got n)))
    (unless (and (equalp (subseq reply 0 4) (octets "RTTR"))
                 (zerop (u32 reply 4)) (= (u32 reply 12) +kind-uds+))
      (error "attach refused: status ~d, kind ~d" (u32 reply 4) (u32 reply 12)))
    s))

(defun serve (handler)
  "Attaches on RTT_SERVICE_SOCKET and serves HANDLER until the host closes the lane; returns an exit status."
  (let ((path (sb-ext:posix-getenv "RTT_SERVICE_SOCKET")))
    (when (or (null path) (string= path ""))
      (format *error-output* "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service~%")
      (return-from serve 2))
    (let ((s (handler-case (attach path)
               (error (e)
                 (format *error-output* "RTT-LANE-001: cannot attach on ~a: ~a~%" path e)
                 (return-from serve 1))))
          (buffer (make-array (* 4 (+ 24 +max-payload+)) :element-type '(unsigned-byte 8)))
          (have 0))
      (loop
        (let ((n (handler-case (receive s buffer have) (error () 0))))
          (when (zerop n) (return 0)) ; end of file: the host closed the lane (graceful shutdown or host death)
          (incf have n)
          (multiple-value-bind (answers used) (parse handler buffer have)
            (replace buffer buffer :start2 used :end2 have)
            (decf have used)
            (when answers
              (unless (handler-case (send-all s (apply #'concatenate 'octets answers)) (error () nil))
                (return 0))))))))) ; the host is gone: the lane is over
