%% RTT stub for Erlang/OTP (standard library only): serves a `process` endpoint over a UDS lane.
%%
%% Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), then read
%% 24-byte RTT1 frames (CRC-32C checked, re-synchronising on bad frames) and answer each request with one
%% response frame carrying its route_id and frame_id. A handler is fun(Payload) -> {ok, Answer} |
%% {error, Code, Message}; anything it throws becomes an RTT-CALL-004 error frame.
-module(rtt_stub).
-export([serve/1, crc32c/1, crc32c/2, frame/4]).

-define(MAX_PAYLOAD, 65536).
-define(F_NO_PAYLOAD_CRC, 16#1).
-define(F_RESPONSE, 16#2).
-define(F_ERROR, 16#4).
-define(F_PROBE, 16#8).
-define(KIND_UDS, 1).

%% CRC-32C (Castagnoli, reflected polynomial 16#82F63B78, init and final xor 16#FFFFFFFF).
table() ->
    case persistent_term:get(rtt_stub_crc_table, undefined) of
        undefined ->
            T = list_to_tuple([entry(I, 8) || I <- lists:seq(0, 255)]),
            persistent_term:put(rtt_stub_crc_table, T),
            T;
        T -> T
    end.

entry(C, 0) -> C;
entry(C, N) when C band 1 =:= 1 -> entry((C bsr 1) bxor 16#82F63B78, N - 1);
entry(C, N) -> entry(C bsr 1, N - 1).

crc32c(Data) -> crc32c(Data, 0).

%% Continues an earlier CRC (0 to start).
crc32c(Data, Crc) -> run(table(), Crc bxor 16#FFFFFFFF, Data) bxor 16#FFFFFFFF.

run(T, C, <<B, Rest/binary>>) -> run(T, element(((C bxor B) band 255) + 1, T) bxor (C bsr 8), Rest);
run(_, C, <<>>) -> C.

%% One frame: the 24-byte header (little-endian) and the payload.
frame(Flags, Route, Id, Payload) ->
    Head = <<"RTT1", Flags:16/little, 0:16, Route:32/little, Id:32/little, (byte_size(Payload)):32/little>>,
    Crc = case Flags band ?F_NO_PAYLOAD_CRC of
              0 -> crc32c(Payload, crc32c(Head));
              _ -> crc32c(Head)
          end,
    [Head, <<Crc:32/little>>, Payload].

serve(Handler) ->
    case os:getenv("RTT_SERVICE_SOCKET") of
        Path when Path =:= false; Path =:= "" ->
            io:format(standard_error, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service~n", []),
            2;
        Path ->
            case attach(Path) of
                {ok, S} -> loop(S, Handler, <<>>);
                {error, Why} ->
                    io:format(standard_error, "RTT-LANE-001: cannot attach on ~s: ~p~n", [Path, Why]),
                    1
            end
    end.

attach(Path) ->
    case gen_tcp:connect({local, Path}, 0, [binary, {active, false}, {packet, raw}]) of
        {ok, S} ->
            Name = <<"rtt-service">>,
            ok = gen_tcp:send(S, <<"RTTQ", 2, ?KIND_UDS, (byte_size(Name)):16/little, Name/binary>>),
            case gen_tcp:recv(S, 16) of
                {ok, <<"RTTR", 0:32/little, _Route:32/little, ?KIND_UDS:32/little>>} -> {ok, S};
                {ok, <<Magic:4/binary, Status:32/little-signed, _:32, Kind:32/little-signed>>} ->
                    {error, {refused, Magic, {status, Status}, {kind, Kind}}};
                {error, Why} -> {error, Why}
            end;
        Error -> Error
    end.

loop(S, Handler, Buf) ->
    case gen_tcp:recv(S, 0) of
        {ok, Data} ->
            {Answers, Rest} = parse(<<Buf/binary, Data/binary>>, Handler, []),
            case Answers =:= [] orelse gen_tcp:send(S, Answers) =:= ok of
                true -> loop(S, Handler, Rest);
                false -> 0 % the host is gone (peer death): the lane is over
            end;
        {error, _} -> 0 % end of file: the host closed the lane (graceful shutdown or host death)
    end.

%% Parses every whole frame of Buf; returns the answers (an iolist) and the bytes left for the next read.
parse(<<"RTT1", Flags:16/little, _:16, Route:32/little, Id:32/little, Len:32/little, Crc:32/little, Rest/binary>> = Buf,
      Handler, Acc) when Len =< ?MAX_PAYLOAD ->
    case Rest of
        <<Payload:Len/binary, Tail/binary>> ->
            Head = binary:part(Buf, 0, 20),
            Expected = case Flags band ?F_NO_PAYLOAD_CRC of
                           0 -> crc32c(Payload, crc32c(Head));
                           _ -> crc32c(Head)
                       end,
            if
                Expected =/= Crc -> parse(resync(Buf), Handler, Acc);
                Flags band ?F_RESPONSE =/= 0 -> parse(Tail, Handler, Acc); % not a request: ignored
                true -> parse(Tail, Handler, [answer(Handler, Flags, Route, Id, Payload) | Acc])
            end;
        _ -> {lists:reverse(Acc), Buf} % wait for the rest of the frame
    end;
parse(Buf, Handler, Acc) when byte_size(Buf) >= 24 -> parse(resync(Buf), Handler, Acc); % bad magic or oversized
parse(Buf, _, Acc) -> {lists:reverse(Acc), Buf}.

%% Drops the first byte and skips to the next "RTT1" (keeping the last 3 bytes: a magic may be split).
resync(<<_, Rest/binary>>) ->
    case binary:match(Rest, <<"RTT1">>) of
        {Pos, _} -> binary:part(Rest, Pos, byte_size(Rest) - Pos);
        nomatch when byte_size(Rest) > 3 -> binary:part(Rest, byte_size(Rest) - 3, 3);
        nomatch -> Rest
    end.

answer(_, Flags, Route, Id, Payload) when Flags band ?F_PROBE =/= 0 ->
    frame(?F_RESPONSE bor ?F_PROBE, Route, Id, Payload);
answer(Handler, _, Route, Id, Payload) ->
    try Handler(Payload) of
        {ok, Out} when is_binary(Out), byte_size(Out) =< ?MAX_PAYLOAD -> frame(?F_RESPONSE, Route, Id, Out);
        {ok, Out} when is_binary(Out) ->
            failure(Route, Id, <<"RTT-CALL-004">>, io_lib:format("the answer is ~b bytes, more than ~b", [byte_size(Out), ?MAX_PAYLOAD]));
        {error, Code, Message} -> failure(Route, Id, Code, Message);
        Other -> failure(Route, Id, <<"RTT-CALL-004">>, io_lib:format("the handler returned ~0p", [Other]))
    catch
        Class:Reason -> failure(Route, Id, <<"RTT-CALL-004">>, io_lib:format("the service failed: ~p:~0p", [Class, Reason]))
    end.

failure(Route, Id, Code, Message) ->
    Text = unicode:characters_to_binary([Code, " ", Message]),
    Cut = binary:part(Text, 0, min(byte_size(Text), ?MAX_PAYLOAD)),
    frame(?F_RESPONSE bor ?F_ERROR, Route, Id, Cut).
