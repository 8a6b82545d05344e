      *> RTT stub for COBOL (GnuCOBOL; libc's socket calls through CALL, byte XOR through CBL_XOR): serves a
      *> `process` endpoint over a UDS lane.
      *>
      *> Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte
      *> RTT1 frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response
      *> frame of the same route_id and frame_id.
      *>
      *> CALL "RTT-SERVE" USING handler-name exit-status. The handler is a program called with
      *>   payload PIC X(65536), payload-length BINARY-LONG, answer PIC X(65536), answer-length BINARY-LONG,
      *>   failed BINARY-LONG: it sets the answer, or sets failed to 1 and the answer to "RTT-XXX-NNN text".
       IDENTIFICATION DIVISION.
       PROGRAM-ID. RTT-SERVE.
       DATA DIVISION.
       WORKING-STORAGE SECTION.
       01 MAX-PAYLOAD          BINARY-LONG VALUE 65536.
       01 SOCKET-PATH          PIC X(108).
       01 SOCK-FD                   BINARY-LONG.
       01 RC                   BINARY-LONG.
       01 N                    BINARY-DOUBLE.
       01 SOCKADDR.
          05 SA-FAMILY         PIC X(2) VALUE X"0100".
          05 SA-PATH           PIC X(108).
       01 ATTACH-REQUEST.
          05 FILLER            PIC X(4) VALUE "RTTQ".
          05 FILLER            PIC X(1) VALUE X"02".
          05 FILLER            PIC X(1) VALUE X"01".
          05 FILLER            PIC X(2) VALUE X"0B00".
          05 FILLER            PIC X(11) VALUE "rtt-service".
       01 REPLY                PIC X(16).
       01 GOT                  BINARY-LONG.
      *> the read buffer: up to 4 maximal frames
       01 BUF                  PIC X(262240).
       01 BUF-SIZE             BINARY-LONG VALUE 262240.
       01 HAVE                 BINARY-LONG VALUE 0.
       01 CUR                  BINARY-LONG.
       01 I                    BINARY-LONG.
       01 K                    BINARY-LONG.
       01 WAITING              BINARY-LONG.
      *> answers of one batch, written with one send
       01 OUT-BUF              PIC X(1048576).
       01 OUT-LEN              BINARY-LONG VALUE 0.
       01 OUT-MAX              BINARY-LONG VALUE 1048576.
      *> the frame being read
       01 F-FLAGS              BINARY-LONG.
       01 F-ROUTE              BINARY-DOUBLE.
       01 F-ID                 BINARY-DOUBLE.
       01 F-LEN                BINARY-DOUBLE.
       01 F-CRC                BINARY-DOUBLE.
       01 BIT-VALUE            BINARY-LONG.
      *> the handler's interface
       01 PAYLOAD              PIC X(65536).
       01 PAYLOAD-LEN          BINARY-LONG.
       01 ANSWER               PIC X(65536).
       01 ANSWER-LEN           BINARY-LONG.
       01 FAILED               BINARY-LONG.
      *> a frame being written
       01 W-FLAGS              BINARY-LONG.
       01 W-HEAD               PIC X(24).
      *> CRC-32C: a table of 256 entries, each 4 bytes little-endian; the CRC itself as 4 little-endian bytes
       01 CRC-TABLE.
          05 CRC-ENTRY         PIC X(4) OCCURS 256 TIMES.
       01 CRC                  PIC X(4).
       01 CRC-SHIFTED          PIC X(4).
       01 CRC-BYTE             PIC X(1).
       01 CRC-INDEX            BINARY-LONG.
       01 CRC-START            BINARY-LONG.
       01 CRC-END              BINARY-LONG.
       01 CRC-FROM-OUT         BINARY-LONG.
       01 T-VALUE              BINARY-DOUBLE.
       01 T-BYTES.
          05 T-NUM             BINARY-DOUBLE.
       01 T-POLY.
          05 T-POLY-NUM        BINARY-DOUBLE VALUE 2197175160.
       01 ALL-ONES             PIC X(4) VALUE X"FFFFFFFF".
      *> little-endian helpers
       01 LE-VALUE             BINARY-DOUBLE.
       01 LE-BYTES             PIC X(4).
       01 LE-AT                BINARY-LONG.
       01 LE-SIZE              BINARY-LONG.
       01 MAGIC-AT             BINARY-LONG.
       01 IS-MAGIC             BINARY-LONG.
       LINKAGE SECTION.
       01 HANDLER-NAME         PIC X(30).
       01 EXIT-STATUS          BINARY-LONG.
       PROCEDURE DIVISION USING HANDLER-NAME EXIT-STATUS.
       MAIN-PARA.
           MOVE SPACES TO SOCKET-PATH
           ACCEPT SOCKET-PATH FROM ENVIRONMENT "RTT_SERVICE_SOCKET"
           IF SOCKET-PATH = SPACES
               DISPLAY "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service"
                   UPON SYSERR
               MOVE 2 TO EXIT-STATUS
               GOBACK
           END-IF
           PERFORM BUILD-TABLE
           PERFORM ATTACH
           IF EXIT-STATUS NOT = 0
               GOBACK
           END-IF
           PERFORM UNTIL EXIT
               COMPUTE K = BUF-SIZE - HAVE
               CALL "recv" USING BY VALUE SOCK-FD BY REFERENCE BUF(HAVE + 1:) BY VALUE K BY VALUE 0
                   RETURNING N
               IF N <= 0
      *>           end of file: the host closed the lane (graceful shutdown or host death)
                   EXIT PERFORM
               END-IF
               ADD N TO HAVE
               MOVE 0 TO OUT-LEN
               PERFORM PARSE-FRAMES
               IF OUT-LEN > 0
                   PERFORM FLUSH-OUT
                   IF RC NOT = 0
      *>               the host is gone: the lane is over
                       EXIT PERFORM
                   END-IF
               END-IF
           END-PERFORM
           CALL "close" USING BY VALUE SOCK-FD
           MOVE 0 TO EXIT-STATUS
           GOBACK.

       BUILD-TABLE.
           PERFORM VARYING I FROM 0 BY 1 UNTIL I > 255
               MOVE I TO T-NUM
               PERFORM 8 TIMES
                   IF FUNCTION MOD(T-NUM, 2) = 1
                       DIVIDE T-NUM BY 2 GIVING T-NUM
                       CALL "CBL_XOR" USING T-POLY T-BYTES BY VALUE 8
                   ELSE
                       DIVIDE T-NUM BY 2 GIVING T-NUM
                   END-IF
               END-PERFORM
               MOVE T-NUM TO LE-VALUE
               PERFORM TO-LE32
               MOVE LE-BYTES TO CRC-ENTRY(I + 1)
           END-PERFORM.

      *> LE-VALUE -> LE-BYTES (4 bytes, little-endian)
       TO-LE32.
           PERFORM VARYING K FROM 1 BY 1 UNTIL K > 4
               MOVE FUNCTION CHAR(FUNCTION MOD(LE-VALUE, 256) + 1) TO LE-BYTES(K:1)
               DIVIDE LE-VALUE BY 256 GIVING LE-VALUE
           END-PERFORM.

      *> BUF(LE-AT:LE-SIZE) little-endian -> LE-VALUE
       FROM-LE.
           MOVE 0 TO LE-VALUE
           PERFORM VARYING K FROM LE-SIZE BY -1 UNTIL K < 1
               COMPUTE LE-VALUE = LE-VALUE * 256 + FUNCTION ORD(BUF(LE-AT + K - 1:1)) - 1
           END-PERFORM.

      *> the CRC-32C of BUF (or OUT-BUF when CRC-FROM-OUT is 1) bytes CRC-START..CRC-END-1, continuing CRC
      *> (the caller sets CRC to X"00000000" to start)
       CRC-RUN.
           CALL "CBL_XOR" USING ALL-ONES CRC BY VALUE 4
           PERFORM VARYING I FROM CRC-START BY 1 UNTIL I >= CRC-END
               MOVE CRC(1:1) TO CRC-BYTE
               IF CRC-FROM-OUT = 1
                   CALL "CBL_XOR" USING OUT-BUF(I:1) CRC-BYTE BY VALUE 1
               ELSE
                   CALL "CBL_XOR" USING BUF(I:1) CRC-BYTE BY VALUE 1
               END-IF
               COMPUTE CRC-INDEX = FUNCTION ORD(CRC-BYTE)
               MOVE CRC(2:3) TO CRC-SHIFTED(1:3)
               MOVE X"00" TO CRC-SHIFTED(4:1)
               CALL "CBL_XOR" USING CRC-ENTRY(CRC-INDEX) CRC-SHIFTED BY VALUE 4
               MOVE CRC-SHIFTED TO CRC
           END-PERFORM
           CALL "CBL_XOR" USING ALL-ONES CRC BY VALUE 4.

       ATTACH.
           MOVE 0 TO EXIT-STATUS
           CALL "socket" USING BY VALUE 1 BY VALUE 1 BY VALUE 0 RETURNING SOCK-FD
           MOVE LOW-VALUES TO SA-PATH
           MOVE FUNCTION TRIM(SOCKET-PATH) TO SA-PATH
           INSPECT SA-PATH REPLACING TRAILING SPACES BY LOW-VALUES
           CALL "connect" USING BY VALUE SOCK-FD BY REFERENCE SOCKADDR BY VALUE 110 RETURNING RC
           IF SOCK-FD < 0 OR RC NOT = 0
               DISPLAY "RTT-LANE-001: cannot connect to " FUNCTION TRIM(SOCKET-PATH) UPON SYSERR
               MOVE 1 TO EXIT-STATUS
               EXIT PARAGRAPH
           END-IF
           CALL "send" USING BY VALUE SOCK-FD BY REFERENCE ATTACH-REQUEST BY VALUE 19 BY VALUE 16384
               RETURNING N
           MOVE 0 TO GOT
           PERFORM UNTIL GOT >= 16
               COMPUTE K = 16 - GOT
               CALL "recv" USING BY VALUE SOCK-FD BY REFERENCE REPLY(GOT + 1:) BY VALUE K BY VALUE 0
                   RETURNING N
               IF N <= 0
                   DISPLAY "RTT-LANE-001: the host closed the control socket during attach" UPON SYSERR
                   MOVE 1 TO EXIT-STATUS
                   EXIT PARAGRAPH
               END-IF
               ADD N TO GOT
           END-PERFORM
           IF REPLY(1:4) NOT = "RTTR" OR REPLY(5:4) NOT = X"00000000" OR REPLY(13:4) NOT = X"01000000"
               DISPLAY "RTT-LANE-001: attach refused" UPON SYSERR
               MOVE 1 TO EXIT-STATUS
           END-IF.

      *> answers every whole frame of BUF(1:HAVE); keeps the bytes left at the start of BUF
       PARSE-FRAMES.
           MOVE 1 TO CUR
           MOVE 0 TO WAITING
           PERFORM UNTIL WAITING = 1 OR HAVE - CUR + 1 < 24
               MOVE CUR TO LE-AT
               ADD 16 TO LE-AT
               MOVE 4 TO LE-SIZE
               PERFORM FROM-LE
               MOVE LE-VALUE TO F-LEN
               IF BUF(CUR:4) NOT = "RTT1" OR F-LEN > MAX-PAYLOAD
                   PERFORM RESYNC
               ELSE
                   IF HAVE - CUR + 1 < 24 + F-LEN
                       MOVE 1 TO WAITING
                   ELSE
                       PERFORM CHECK-FRAME
                   END-IF
               END-IF
           END-PERFORM
           IF CUR > 1
               COMPUTE K = HAVE - CUR + 1
               IF K > 0
                   MOVE BUF(CUR:K) TO BUF(1:K)
               END-IF
               MOVE K TO HAVE
           END-IF.

       CHECK-FRAME.
           COMPUTE LE-AT = CUR + 4
           MOVE 2 TO LE-SIZE
           PERFORM FROM-LE
           MOVE LE-VALUE TO F-FLAGS
           COMPUTE LE-AT = CUR + 20
           MOVE 4 TO LE-SIZE
           PERFORM FROM-LE
           MOVE LE-VALUE TO F-CRC
           MOVE X"00000000" TO CRC
           MOVE 0 TO CRC-FROM-OUT
           MOVE CUR TO CRC-START
           COMPUTE CRC-END = CUR + 20
           PERFORM CRC-RUN
           IF FUNCTION MOD(F-FLAGS, 2) = 0
               COMPUTE CRC-START = CUR + 24
               COMPUTE CRC-END = CUR + 24 + F-LEN
               PERFORM CRC-RUN
           END-IF
           IF CRC NOT = BUF(CUR + 20:4)
               PERFORM RESYNC
               EXIT PARAGRAPH
           END-IF
           COMPUTE LE-AT = CUR + 8
           PERFORM FROM-LE
           MOVE LE-VALUE TO F-ROUTE
           COMPUTE LE-AT = CUR + 12
           PERFORM FROM-LE
           MOVE LE-VALUE TO F-ID
           DIVIDE F-FLAGS BY 2 GIVING BIT-VALUE
      *>   a response (flag 0x2) is not a request: ignored
           IF FUNCTION MOD(BIT-VALUE, 2) = 0
               MOVE F-LEN TO PAYLOAD-LEN
               IF F-LEN > 0
                   MOVE BUF(CUR + 24:F-LEN) TO PAYLOAD(1:F-LEN)
               END-IF
               PERFORM ANSWER-FRAME
           END-IF
           COMPUTE CUR = CUR + 24 + F-LEN.

      *> after a bad frame at CUR: the next RTT1 after it, or the last 3 bytes (a magic may be split)
       RESYNC.
           MOVE 0 TO IS-MAGIC
           PERFORM VARYING MAGIC-AT FROM CUR BY 1 UNTIL IS-MAGIC = 1 OR MAGIC-AT + 4 > HAVE
               IF BUF(MAGIC-AT + 1:4) = "RTT1"
                   MOVE 1 TO IS-MAGIC
               END-IF
           END-PERFORM
           IF IS-MAGIC = 1
               MOVE MAGIC-AT TO CUR
           ELSE
               COMPUTE CUR = FUNCTION MAX(CUR + 1, HAVE - 2)
           END-IF.

       ANSWER-FRAME.
           IF OUT-LEN + 24 + MAX-PAYLOAD > OUT-MAX
               PERFORM FLUSH-OUT
           END-IF
           DIVIDE F-FLAGS BY 8 GIVING BIT-VALUE
           IF FUNCTION MOD(BIT-VALUE, 2) = 1
      *>       a heartbeat: Response | Probe, the payload echoed
               MOVE PAYLOAD-LEN TO ANSWER-LEN
               IF PAYLOAD-LEN > 0
                   MOVE PAYLOAD(1:PAYLOAD-LEN) TO ANSWER(1:PAYLOAD-LEN)
               END-IF
               MOVE 10 TO W-FLAGS
           ELSE
               MOVE 0 TO FAILED
               MOVE 0 TO ANSWER-LEN
               CALL HANDLER-NAME USING PAYLOAD PAYLOAD-LEN ANSWER ANSWER-LEN FAILED
                   ON EXCEPTION
                       MOVE "RTT-CALL-004 the handler program cannot be called" TO ANSWER
                       MOVE 49 TO ANSWER-LEN
                       MOVE 1 TO FAILED
               END-CALL
               IF FAILED = 0
                   MOVE 2 TO W-FLAGS
               ELSE
                   MOVE 6 TO W-FLAGS
               END-IF
           END-IF
           PERFORM WRITE-FRAME.

      *> appends a frame (W-FLAGS, F-ROUTE, F-ID, ANSWER(1:ANSWER-LEN)) to OUT-BUF
       WRITE-FRAME.
           MOVE "RTT1" TO W-HEAD(1:4)
           MOVE W-FLAGS TO LE-VALUE
           PERFORM TO-LE32
           MOVE LE-BYTES(1:2) TO W-HEAD(5:2)
           MOVE X"0000" TO W-HEAD(7:2)
           MOVE F-ROUTE TO LE-VALUE
           PERFORM TO-LE32
           MOVE LE-BYTES TO W-HEAD(9:4)
           MOVE F-ID TO LE-VALUE
           PERFORM TO-LE32
           MOVE LE-BYTES TO W-HEAD(13:4)
           MOVE ANSWER-LEN TO LE-VALUE
           PERFORM TO-LE32
           MOVE LE-BYTES TO W-HEAD(17:4)
           MOVE W-HEAD TO OUT-BUF(OUT-LEN + 1:24)
           IF ANSWER-LEN > 0
               MOVE ANSWER(1:ANSWER-LEN) TO OUT-BUF(OUT-LEN + 25:ANSWER-LEN)
           END-IF
           MOVE X"00000000" TO CRC
           MOVE 1 TO CRC-FROM-OUT
           COMPUTE CRC-START = OUT-LEN + 1
           COMPUTE CRC-END = OUT-LEN + 21
           PERFORM CRC-RUN
           COMPUTE CRC-START = OUT-LEN + 25
           COMPUTE CRC-END = OUT-LEN + 25 + ANSWER-LEN
           PERFORM CRC-RUN
           MOVE CRC TO OUT-BUF(OUT-LEN + 21:4)
           COMPUTE OUT-LEN = OUT-LEN + 24 + ANSWER-LEN.

       FLUSH-OUT.
           MOVE 0 TO RC
           MOVE 1 TO K
           PERFORM UNTIL K > OUT-LEN
               COMPUTE I = OUT-LEN - K + 1
               CALL "send" USING BY VALUE SOCK-FD BY REFERENCE OUT-BUF(K:) BY VALUE I BY VALUE 16384
                   RETURNING N
               IF N <= 0
                   MOVE 1 TO RC
                   EXIT PERFORM
               END-IF
               ADD N TO K
           END-PERFORM
           MOVE 0 TO OUT-LEN.
       END PROGRAM RTT-SERVE.
