with Ada.Environment_Variables;
with Ada.Exceptions;
with Ada.Text_IO;
with GNAT.Sockets; use GNAT.Sockets;

package body Rtt_Stub is
   F_No_Payload_Crc : constant Unsigned_16 := 1;
   F_Response       : constant Unsigned_16 := 2;
   F_Error          : constant Unsigned_16 := 4;
   F_Probe          : constant Unsigned_16 := 8;

   type Table_Type is array (Unsigned_32 range 0 .. 255) of Unsigned_32;

   function Make_Table return Table_Type is
      T : Table_Type;
      C : Unsigned_32;
   begin
      for I in T'Range loop
         C := I;
         for K in 1 .. 8 loop
            if (C and 1) /= 0 then
               C := Shift_Right (C, 1) xor 16#82F6_3B78#;
            else
               C := Shift_Right (C, 1);
            end if;
         end loop;
         T (I) := C;
      end loop;
      return T;
   end Make_Table;

   Table : constant Table_Type := Make_Table;

   function Crc32c (Crc : Unsigned_32; Data : Stream_Element_Array) return Unsigned_32 is
      C : Unsigned_32 := not Crc;
   begin
      for B of Data loop
         C := Table ((C xor Unsigned_32 (B)) and 16#FF#) xor Shift_Right (C, 8);
      end loop;
      return not C;
   end Crc32c;

   function Rd32 (B : Stream_Element_Array; At_Index : Stream_Element_Offset) return Unsigned_32 is
     (Unsigned_32 (B (At_Index)) or Shift_Left (Unsigned_32 (B (At_Index + 1)), 8)
      or Shift_Left (Unsigned_32 (B (At_Index + 2)), 16) or Shift_Left (Unsigned_32 (B (At_Index + 3)), 24));

   function Le32 (V : Unsigned_32) return Stream_Element_Array is
     (Stream_Element (V and 16#FF#), Stream_Element (Shift_Right (V, 8) and 16#FF#),
      Stream_Element (Shift_Right (V, 16) and 16#FF#), Stream_Element (Shift_Right (V, 24)));

   function Frame (Flags : Unsigned_16; Route, Id : Unsigned_32; Payload : Stream_Element_Array) return Stream_Element_Array is
      Head : constant Stream_Element_Array :=
        (82, 84, 84, 49, Stream_Element (Flags and 16#FF#), Stream_Element (Shift_Right (Flags, 8)), 0, 0)
        & Le32 (Route) & Le32 (Id) & Le32 (Unsigned_32 (Payload'Length));
      C : Unsigned_32 := Crc32c (0, Head);
   begin
      if (Flags and F_No_Payload_Crc) = 0 then
         C := Crc32c (C, Payload);
      end if;
      return Head & Le32 (C) & Payload;
   end Frame;

   function To_Bytes (S : String) return Stream_Element_Array is
      R : Stream_Element_Array (1 .. Stream_Element_Offset (Integer'Min (S'Length, Max_Payload)));
   begin
      for I in R'Range loop
         R (I) := Character'Pos (S (S'First + Integer (I) - 1));
      end loop;
      return R;
   end To_Bytes;

   function Answer (H : Handler; Flags : Unsigned_16; Route, Id : Unsigned_32; Payload : Stream_Element_Array)
     return Stream_Element_Array is
   begin
      if (Flags and F_Probe) /= 0 then
         return Frame (F_Response or F_Probe, Route, Id, Payload);
      end if;
      declare
         Result : constant Stream_Element_Array := H (Payload);
      begin
         if Result'Length > Max_Payload then
            return Frame (F_Response or F_Error, Route, Id, To_Bytes ("RTT-CALL-004 the answer is longer than 65536 bytes"));
         end if;
         return Frame (F_Response, Route, Id, Result);
      end;
   exception
      when E : Rtt_Failure =>
         return Frame (F_Response or F_Error, Route, Id, To_Bytes (Ada.Exceptions.Exception_Message (E)));
      when E : others =>
         return Frame (F_Response or F_Error, Route, Id,
           To_Bytes ("RTT-CALL-004 the service failed: " & Ada.Exceptions.Exception_Name (E) & ": " & Ada.Exceptions.Exception_Message (E)));
   end Answer;

   procedure Send_All (S : Socket_Type; Data : Stream_Element_Array) is
      First : Stream_Element_Offset := Data'First;
      Last  : Stream_Element_Offset;
   begin
      while First <= Data'Last loop
         Send_Socket (S, Data (First .. Data'Last), Last);
         First := Last + 1;
      end loop;
   end Send_All;

   function Serve (H : Handler) return Integer is
      S       : Socket_Type;
      Buf     : Stream_Element_Array (1 .. 4 * (24 + Max_Payload)) := (others => 0);
      Start   : Stream_Element_Offset := 1;
      Fin     : Stream_Element_Offset := 0;   --  Buf (Start .. Fin) holds unread bytes
      Last    : Stream_Element_Offset;
      Reply   : Stream_Element_Array (1 .. 16);
      Got     : Stream_Element_Offset := 0;
      Magic   : constant Stream_Element_Array := (82, 84, 84, 49);
   begin
      if not Ada.Environment_Variables.Exists ("RTT_SERVICE_SOCKET") or else Ada.Environment_Variables.Value ("RTT_SERVICE_SOCKET") = "" then
         Ada.Text_IO.Put_Line (Ada.Text_IO.Standard_Error, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service");
         return 2;
      end if;
      begin
         Create_Socket (S, Family_Unix, Socket_Stream);
         Connect_Socket (S, Unix_Socket_Address (Ada.Environment_Variables.Value ("RTT_SERVICE_SOCKET")));
         Send_All (S, (82, 84, 84, 81, 2, 1, 11, 0) & To_Bytes ("rtt-service"));
         while Got < 16 loop
            Receive_Socket (S, Reply (Got + 1 .. 16), Last);
            exit when Last < Got + 1;
            Got := Last;
         end loop;
         if Got < 16 or else Reply (1 .. 4) /= (82, 84, 84, 82) or else Rd32 (Reply, 5) /= 0 or else Rd32 (Reply, 13) /= 1 then
            Ada.Text_IO.Put_Line (Ada.Text_IO.Standard_Error, "RTT-LANE-002: attach refused");
            return 1;
         end if;
      exception
         when E : Socket_Error =>
            Ada.Text_IO.Put_Line (Ada.Text_IO.Standard_Error, "RTT-LANE-002: " & Ada.Exceptions.Exception_Message (E));
            return 1;
      end;
      loop
         if Start > Fin then
            Start := 1;
            Fin := 0;
         elsif Start > 1 and then Buf'Last - Fin < 24 + Max_Payload then
            Buf (1 .. Fin - Start + 1) := Buf (Start .. Fin);
            Fin := Fin - Start + 1;
            Start := 1;
         end if;
         Receive_Socket (S, Buf (Fin + 1 .. Buf'Last), Last);
         exit when Last <= Fin;   --  the host closed the lane
         Fin := Last;
         declare
            Out_Buf : Stream_Element_Array (1 .. 4 * (24 + Max_Payload) + 1024) := (others => 0);
            Out_Len : Stream_Element_Offset := 0;
         begin
            while Fin - Start + 1 >= 24 loop
               declare
                  Len   : constant Unsigned_32 := Rd32 (Buf, Start + 16);
                  Flags : constant Unsigned_16 := Unsigned_16 (Buf (Start + 4)) or Shift_Left (Unsigned_16 (Buf (Start + 5)), 8);
                  Bad   : Boolean := Buf (Start .. Start + 3) /= Magic or else Len > Max_Payload;
                  N     : constant Stream_Element_Offset := Stream_Element_Offset (Len);
                  C     : Unsigned_32;
               begin
                  if not Bad then
                     exit when Fin - Start + 1 < 24 + N;
                     C := Crc32c (0, Buf (Start .. Start + 19));
                     if (Flags and F_No_Payload_Crc) = 0 then
                        C := Crc32c (C, Buf (Start + 24 .. Start + 23 + N));
                     end if;
                     Bad := C /= Rd32 (Buf, Start + 20);
                  end if;
                  if Bad then
                     declare
                        Next : Stream_Element_Offset := Start + 1;
                     begin
                        while Next + 3 <= Fin and then Buf (Next .. Next + 3) /= Magic loop
                           Next := Next + 1;
                        end loop;
                        Start := (if Next + 3 <= Fin then Next else Stream_Element_Offset'Max (Start + 1, Fin - 2));
                     end;
                  else
                     if (Flags and F_Response) = 0 then
                        declare
                           A : constant Stream_Element_Array :=
                             Answer (H, Flags, Rd32 (Buf, Start + 8), Rd32 (Buf, Start + 12), Buf (Start + 24 .. Start + 23 + N));
                        begin
                           if Out_Len + A'Length > Out_Buf'Length then
                              Send_All (S, Out_Buf (1 .. Out_Len));
                              Out_Len := 0;
                           end if;
                           Out_Buf (Out_Len + 1 .. Out_Len + A'Length) := A;
                           Out_Len := Out_Len + A'Length;
                        end;
                     end if;
                     Start := Start + 24 + N;
                  end if;
               end;
            end loop;
            if Out_Len > 0 then
               Send_All (S, Out_Buf (1 .. Out_Len));
            end if;
         end;
      end loop;
      Close_Socket (S);
      return 0;
   exception
      when Socket_Error =>
         return 0;   --  the host went away
   end Serve;
end Rtt_Stub;
