{ Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame. }
program echo_service;

{$mode objfpc}{$H+}

uses RttStub;

function Echo(const Request: RawByteString): RawByteString;
begin
  if Request = '!fail' then raise ERttFailure.CreateCode('RTT-CALL-004', 'the sample service was asked to fail');
  Result := Request;
end;

begin
  Halt(Serve(@Echo));
end.
