/*  RTT stub for Prolog (SWI-Prolog and its library(socket)): serves a `process` endpoint over a UDS lane.

    Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
    frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
    the same route_id and frame_id. A handler is called as call(Handler, Payload, Answer) on lists of bytes;
    throw(rtt_failure(Code, Message)), an exception or a failure answers with an error frame.
*/
:- module(rtt_stub, [serve/2, crc32c/3, frame/5]).
:- use_module(library(socket)).
:- use_module(library(apply)).
:- use_module(library(lists)).

max_payload(65536).

% CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (a table of 256 facts).
:- dynamic crc_entry/2.
crc_init :-
    forall(between(0, 255, I),
           ( foldl([_, C0, C]>>(C0 /\ 1 =:= 1 -> C is (C0 >> 1) xor 0x82F63B78 ; C is C0 >> 1),
                   [1,2,3,4,5,6,7,8], I, V),
             assertz(crc_entry(I, V)) )).
:- initialization(crc_init).

%!  crc32c(+Bytes, +Crc0, -Crc) is det.  CRC-32C of Bytes continuing Crc0 (0 to start).
crc32c(Bytes, Crc0, Crc) :-
    C0 is Crc0 xor 0xFFFFFFFF,
    foldl(crc_step, Bytes, C0, C1),
    Crc is C1 xor 0xFFFFFFFF.

crc_step(B, C0, C) :-
    I is (C0 xor B) /\ 0xFF,
    crc_entry(I, V),
    C is V xor (C0 >> 8).

u16([A,B|T], V, T) :- V is A \/ (B << 8).
u32([A,B,C,D|T], V, T) :- V is A \/ (B << 8) \/ (C << 16) \/ (D << 24).
le16(V, [A,B]) :- A is V /\ 0xFF, B is (V >> 8) /\ 0xFF.
le32(V, [A,B,C,D]) :- A is V /\ 0xFF, B is (V >> 8) /\ 0xFF, C is (V >> 16) /\ 0xFF, D is (V >> 24) /\ 0xFF.

%!  frame(+Flags, +Route, +Id, +Payload, -Frame) is det.  The 24-byte little-endian header, then Payload.
frame(Flags, Route, Id, Payload, Frame) :-
    length(Payload, Len),
    le16(Flags, F), le32(Route, R), le32(Id, I), le32(Len, L),
    append([`RTT1`, F, [0,0], R, I, L], Head),
    crc32c(Head, 0, C0),
    ( Flags /\ 1 =:= 0 -> crc32c(Payload, C0, Crc) ; Crc = C0 ),
    le32(Crc, C),
    append([Head, C, Payload], Frame).

error_frame(Route, Id, Text, Frame) :-
    string_codes(Text, Codes0),
    phrase(utf8_codes(Codes0), Bytes0),
    max_payload(Max),
    ( length(Bytes0, N), N > Max -> length(Bytes, Max), append(Bytes, _, Bytes0) ; Bytes = Bytes0 ),
    frame(6, Route, Id, Bytes, Frame).

answer(_, Flags, Route, Id, Payload, Frame) :-
    Flags /\ 8 =\= 0, !,
    frame(10, Route, Id, Payload, Frame).           % a heartbeat: Response | Probe, the payload echoed
answer(Handler, _, Route, Id, Payload, Frame) :-
    max_payload(Max),
    catch(( call(Handler, Payload, Out) -> Result = ok(Out) ; Result = failed ), E, Result = error(E)),
    (   Result = ok(Out), length(Out, N), N =< Max -> frame(2, Route, Id, Out, Frame)
    ;   Result = ok(Out) -> length(Out, N), format(string(T), "RTT-CALL-004 the answer is ~d bytes, more than ~d", [N, Max]),
        error_frame(Route, Id, T, Frame)
    ;   Result = error(rtt_failure(Code, Message)) -> format(string(T), "~w ~w", [Code, Message]), error_frame(Route, Id, T, Frame)
    ;   Result = error(E) -> format(string(T), "RTT-CALL-004 the service failed: ~q", [E]), error_frame(Route, Id, T, Frame)
    ;   error_frame(Route, Id, "RTT-CALL-004 the service failed: the handler failed", Frame)
    ).

%   parse(+Buf, +N, +Handler, -Answers, -Rest): answers every whole frame of Buf (N bytes), Rest the bytes left.
parse(Buf, N, _, [], Buf) :- N < 24, !.
parse(Buf, N, H, Out, Rest) :-
    max_payload(Max),
    (   Buf = [0'R,0'T,0'T,0'1|T0], u16(T0, Flags, T1), u16(T1, _, T2), u32(T2, Route, T3), u32(T3, Id, T4),
        u32(T4, Len, T5), u32(T5, Crc, Body), Len =< Max
    ->  (   N - 24 < Len
        ->  Out = [], Rest = Buf                                  % wait for the rest of the frame
        ;   length(Payload, Len), append(Payload, After, Body),
            length(Head, 20), append(Head, _, Buf),
            crc32c(Head, 0, C0),
            ( Flags /\ 1 =:= 0 -> crc32c(Payload, C0, C) ; C = C0 ),
            N1 is N - 24 - Len,
            (   C =\= Crc -> resync(Buf, N, B2, N2), parse(B2, N2, H, Out, Rest)
            ;   Flags /\ 2 =\= 0 -> parse(After, N1, H, Out, Rest)  % a response is not a request: ignored
            ;   answer(H, Flags, Route, Id, Payload, A), Out = [A|Out1], parse(After, N1, H, Out1, Rest)
            )
        )
    ;   resync(Buf, N, B2, N2), parse(B2, N2, H, Out, Rest)      % bad magic or oversized
    ).

%   resync: drops the first byte and skips to the next RTT1, keeping the last 3 bytes (a magic may be split).
resync([_|T], N, B, M) :- N1 is N - 1, scan(T, N1, B, M).
scan(L, N, L, N) :- L = [0'R,0'T,0'T,0'1|_], !.
scan(L, N, L, N) :- N =< 3, !.
scan([_|T], N, B, M) :- N1 is N - 1, scan(T, N1, B, M).

attach(Path, In, Out) :-
    unix_domain_socket(S),
    tcp_connect(S, Path),
    tcp_open_socket(S, Pair),
    stream_pair(Pair, In, Out),
    set_stream(In, type(binary)), set_stream(Out, type(binary)),
    le16(11, L),
    append([`RTTQ`, [2, 1], L, `rtt-service`], Request),
    maplist(put_byte(Out), Request),
    flush_output(Out),
    read_n(In, 16, Reply),
    (   Reply = [0'R,0'T,0'T,0'R|R0], u32(R0, 0, R1), u32(R1, _, R2), u32(R2, 1, _)
    ->  true
    ;   throw(error(attach_refused(Reply), _))
    ).

read_n(_, 0, []) :- !.
read_n(In, N, [B|Bs]) :-
    get_byte(In, B),
    ( B < 0 -> throw(error(closed_during_attach, _)) ; true ),
    N1 is N - 1,
    read_n(In, N1, Bs).

%!  serve(+Handler, -Status) is det.  Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane.
serve(_, 2) :-
    ( \+ getenv('RTT_SERVICE_SOCKET', _) ; getenv('RTT_SERVICE_SOCKET', '') ), !,
    format(user_error, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service~n", []).
serve(Handler, Status) :-
    getenv('RTT_SERVICE_SOCKET', Path),
    (   catch(attach(Path, In, Out), E, (print_message(error, E), fail))
    ->  loop(In, Out, Handler, [], 0), Status = 0
    ;   format(user_error, "RTT-LANE-001: cannot attach on ~w~n", [Path]), Status = 1
    ).

%   read_chunk: the bytes already buffered (the attach reply may arrive with the first requests), else the
%   next bytes from the socket (blocking); [] at end of file.
read_chunk(In, Chunk) :-
    read_pending_codes(In, Pending, []),
    (   Pending \== [] -> Chunk = Pending
    ;   fill_buffer(In), read_pending_codes(In, Chunk, [])
    ).

loop(In, Out, H, Buf, N) :-
    catch(read_chunk(In, Chunk), _, Chunk = []),
    (   Chunk == []
    ->  true                                                      % end of file: the host closed the lane
    ;   append(Buf, Chunk, All), length(Chunk, K), N1 is N + K,
        parse(All, N1, H, Answers, Rest),
        length(Rest, NR),
        (   catch(( forall(member(A, Answers), maplist(put_byte(Out), A)), flush_output(Out) ), _, fail)
        ->  loop(In, Out, H, Rest, NR)
        ;   true                                                  % the host is gone: the lane is over
        )
    ).
