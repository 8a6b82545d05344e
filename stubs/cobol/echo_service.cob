      *> Sample echo service on the COBOL stub: answers each request with its payload; "!fail" answers with an
      *> RTT-CALL-004 error frame set by the handler.
       IDENTIFICATION DIVISION.
       PROGRAM-ID. ECHO-SERVICE.
       DATA DIVISION.
       WORKING-STORAGE SECTION.
       01 HANDLER-NAME         PIC X(30) VALUE "ECHO-HANDLER".
       01 EXIT-STATUS          BINARY-LONG VALUE 0.
       PROCEDURE DIVISION.
           CALL "RTT-SERVE" USING HANDLER-NAME EXIT-STATUS
           MOVE EXIT-STATUS TO RETURN-CODE
           STOP RUN.
       END PROGRAM ECHO-SERVICE.

       IDENTIFICATION DIVISION.
       PROGRAM-ID. ECHO-HANDLER.
       DATA DIVISION.
       LINKAGE SECTION.
       01 PAYLOAD              PIC X(65536).
       01 PAYLOAD-LEN          BINARY-LONG.
       01 ANSWER               PIC X(65536).
       01 ANSWER-LEN           BINARY-LONG.
       01 FAILED               BINARY-LONG.
       PROCEDURE DIVISION USING PAYLOAD PAYLOAD-LEN ANSWER ANSWER-LEN FAILED.
           IF PAYLOAD-LEN = 5 AND PAYLOAD(1:5) = "!fail"
               MOVE "RTT-CALL-004 the sample service was asked to fail" TO ANSWER
               MOVE 49 TO ANSWER-LEN
               MOVE 1 TO FAILED
               GOBACK
           END-IF
           MOVE PAYLOAD-LEN TO ANSWER-LEN
           IF PAYLOAD-LEN > 0
               MOVE PAYLOAD(1:PAYLOAD-LEN) TO ANSWER(1:PAYLOAD-LEN)
           END-IF
           GOBACK.
       END PROGRAM ECHO-HANDLER.
