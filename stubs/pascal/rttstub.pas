{ RTT stub for Free Pascal (RTL units only): serves a `process` endpoint over a UDS lane (docs/stub-protocol.md). }
unit RttStub;

{$mode objfpc}{$H+}

interface

uses SysUtils;

const
  MaxPayload = 65536;
  FNoPayloadCrc = 1;
  FResponse = 2;
  FError = 4;
  FProbe = 8;

type
  { A handler returns the answer, or raises ERttFailure (or any exception) to answer with an error frame. }
  TRttHandler = function(const Request: RawByteString): RawByteString;
  ERttFailure = class(Exception)
  public
    Code: string;
    constructor CreateCode(const ACode, AMessage: string);
  end;

function Crc32c(Crc: LongWord; P: PByte; N: SizeInt): LongWord;
function Serve(Handler: TRttHandler): Integer;

implementation

uses BaseUnix, Sockets;

var
  Table: array[0..255] of LongWord;

constructor ERttFailure.CreateCode(const ACode, AMessage: string);
begin
  inherited Create(AMessage);
  Code := ACode;
end;

procedure InitTable;
var
  I, K: Integer;
  C: LongWord;
begin
  for I := 0 to 255 do
  begin
    C := I;
    for K := 1 to 8 do
      if (C and 1) <> 0 then C := (C shr 1) xor $82F63B78 else C := C shr 1;
    Table[I] := C;
  end;
end;

function Crc32c(Crc: LongWord; P: PByte; N: SizeInt): LongWord;
var
  C: LongWord;
  I: SizeInt;
begin
  C := not Crc;
  for I := 0 to N - 1 do
    C := Table[(C xor P[I]) and $FF] xor (C shr 8);
  Result := not C;
end;

function Rd32(P: PByte): LongWord; inline;
begin
  Result := P[0] or (LongWord(P[1]) shl 8) or (LongWord(P[2]) shl 16) or (LongWord(P[3]) shl 24);
end;

procedure Wr32(P: PByte; V: LongWord); inline;
begin
  P[0] := V and $FF; P[1] := (V shr 8) and $FF; P[2] := (V shr 16) and $FF; P[3] := V shr 24;
end;

function Frame(Flags: Word; Route, Id: LongWord; const Payload: RawByteString): RawByteString;
var
  P: PByte;
  C: LongWord;
begin
  SetLength(Result, 24 + Length(Payload));
  P := PByte(Result);
  P[0] := Ord('R'); P[1] := Ord('T'); P[2] := Ord('T'); P[3] := Ord('1');
  P[4] := Flags and $FF; P[5] := Flags shr 8; P[6] := 0; P[7] := 0;
  Wr32(P + 8, Route); Wr32(P + 12, Id); Wr32(P + 16, Length(Payload));
  if Length(Payload) > 0 then Move(Payload[1], P[24], Length(Payload));
  C := Crc32c(0, P, 20);
  if (Flags and FNoPayloadCrc) = 0 then C := Crc32c(C, P + 24, Length(Payload));
  Wr32(P + 20, C);
end;

function Answer(Handler: TRttHandler; Flags: Word; Route, Id: LongWord; const Payload: RawByteString): RawByteString;
var
  Text: RawByteString;
begin
  if (Flags and FProbe) <> 0 then Exit(Frame(FResponse or FProbe, Route, Id, Payload));
  try
    Result := Handler(Payload);
    if Length(Result) > MaxPayload then raise ERttFailure.CreateCode('RTT-CALL-004', 'the answer is longer than 65536 bytes');
    Exit(Frame(FResponse, Route, Id, Result));
  except
    on E: ERttFailure do Text := E.Code + ' ' + E.Message;
    on E: Exception do Text := 'RTT-CALL-004 the service failed: ' + E.ClassName + ': ' + E.Message;
  end;
  Result := Frame(FResponse or FError, Route, Id, Copy(Text, 1, MaxPayload));
end;

function SendAll(S: LongInt; const Data: RawByteString): Boolean;
var
  Done, W: SizeInt;
begin
  Done := 0;
  while Done < Length(Data) do
  begin
    W := fpSend(S, @Data[Done + 1], Length(Data) - Done, MSG_NOSIGNAL);
    if W <= 0 then Exit(False);
    Inc(Done, W);
  end;
  Result := True;
end;

function Serve(Handler: TRttHandler): Integer;
var
  Path: string;
  S: LongInt;
  Addr: TUnixSockAddr;
  AddrLen: LongInt;
  Req, Buf, Outp: RawByteString;
  Reply: array[0..15] of Byte;
  Chunk: array of Byte;
  Got, R: SizeInt;
  Pos, Len, C: LongWord;
  P: PByte;
  Flags: Word;
  Bad: Boolean;
  Next: SizeInt;
begin
  Path := GetEnvironmentVariable('RTT_SERVICE_SOCKET');
  if Path = '' then
  begin
    WriteLn(StdErr, 'RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service');
    Exit(2);
  end;
  S := fpSocket(AF_UNIX, SOCK_STREAM, 0);
  FillChar(Addr, SizeOf(Addr), 0);
  Addr.family := AF_UNIX;
  Move(Path[1], Addr.path[0], Length(Path));
  AddrLen := SizeOf(Addr);
  if (S < 0) or (fpConnect(S, @Addr, AddrLen) <> 0) then
  begin
    WriteLn(StdErr, 'RTT-LANE-002: cannot connect to ', Path);
    Exit(1);
  end;
  Req := 'RTTQ' + Chr(2) + Chr(1) + Chr(11) + Chr(0) + 'rtt-service';
  Got := 0;
  if SendAll(S, Req) then
    while Got < 16 do
    begin
      R := fpRecv(S, @Reply[Got], 16 - Got, 0);
      if R <= 0 then Break;
      Inc(Got, R);
    end;
  if (Got < 16) or (Reply[0] <> Ord('R')) or (Reply[3] <> Ord('R')) or (Rd32(@Reply[4]) <> 0) or (Rd32(@Reply[12]) <> 1) then
  begin
    WriteLn(StdErr, 'RTT-LANE-002: attach refused');
    Exit(1);
  end;
  SetLength(Chunk, 1 shl 20);
  Buf := '';
  while True do
  begin
    R := fpRecv(S, @Chunk[0], Length(Chunk), 0);
    if R <= 0 then Break; { the host closed the lane }
    SetLength(Buf, Length(Buf) + R);
    Move(Chunk[0], Buf[Length(Buf) - R + 1], R);
    Outp := '';
    Pos := 0; { 0-based offset into Buf }
    while Length(Buf) - Pos >= 24 do
    begin
      P := PByte(Buf) + Pos;
      Len := Rd32(P + 16);
      Flags := P[4] or (P[5] shl 8);
      Bad := (P[0] <> Ord('R')) or (P[1] <> Ord('T')) or (P[2] <> Ord('T')) or (P[3] <> Ord('1')) or (Len > MaxPayload);
      if not Bad then
      begin
        if Length(Buf) - Pos < 24 + Len then Break;
        C := Crc32c(0, P, 20);
        if (Flags and FNoPayloadCrc) = 0 then C := Crc32c(C, P + 24, Len);
        Bad := C <> Rd32(P + 20);
      end;
      if Bad then
      begin
        Next := System.Pos('RTT1', Copy(Buf, Pos + 2, MaxInt));
        if Next > 0 then Pos := Pos + 1 + LongWord(Next - 1)
        else if Length(Buf) - 3 > Pos + 1 then Pos := Length(Buf) - 3
        else Inc(Pos);
        Continue;
      end;
      if (Flags and FResponse) = 0 then
        Outp := Outp + Answer(Handler, Flags, Rd32(P + 8), Rd32(P + 12), Copy(Buf, Pos + 25, Len));
      Pos := Pos + 24 + Len;
    end;
    Delete(Buf, 1, Pos);
    if (Length(Outp) > 0) and not SendAll(S, Outp) then Break;
  end;
  fpClose(S);
  Result := 0;
end;

initialization
  InitTable;
end.
