/*  Sample echo service on the Prolog stub: answers each request with its payload; "!fail" answers with an
    RTT-CALL-004 error frame thrown from the handler. Run: swipl echo_service.pl
*/
:- use_module(rtt_stub).
:- initialization(main, main).

echo(`!fail`, _) :- !, throw(rtt_failure('RTT-CALL-004', 'the sample service was asked to fail')).
echo(Payload, Payload).

main :-
    serve(echo, Status),
    halt(Status).
