--  Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
with Ada.Command_Line;
with Ada.Streams; use Ada.Streams;
with Rtt_Stub;

procedure Echo_Service is
   function Echo (Request : Stream_Element_Array) return Stream_Element_Array is
      Fail : constant Stream_Element_Array := (33, 102, 97, 105, 108);   --  "!fail"
   begin
      if Request = Fail then
         raise Rtt_Stub.Rtt_Failure with "RTT-CALL-004 the sample service was asked to fail";
      end if;
      return Request;
   end Echo;
begin
   Ada.Command_Line.Set_Exit_Status (Ada.Command_Line.Exit_Status (Rtt_Stub.Serve (Echo'Unrestricted_Access)));
end Echo_Service;
