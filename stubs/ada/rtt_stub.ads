--  RTT stub for Ada 2012 (GNAT.Sockets for the Unix socket): serves a `process` endpoint over a UDS lane
--  (docs/stub-protocol.md).
with Ada.Streams; use Ada.Streams;
with Interfaces;  use Interfaces;

package Rtt_Stub is
   Max_Payload : constant := 65_536;

   --  Raise with a message "CODE text" (e.g. "RTT-CALL-004 bad input") to answer with an error frame; any other
   --  exception answers with RTT-CALL-004.
   Rtt_Failure : exception;

   type Handler is access function (Request : Stream_Element_Array) return Stream_Element_Array;

   --  CRC-32C (Castagnoli); pass 0 to start, the previous result to continue.
   function Crc32c (Crc : Unsigned_32; Data : Stream_Element_Array) return Unsigned_32;

   --  Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
   function Serve (H : Handler) return Integer;
end Rtt_Stub;
