%% Sample echo service on the Erlang stub: answers each request with its payload; `!fail` answers with an
%% RTT-CALL-004 error frame (raised from the handler, turned into the frame by the stub).
-module(echo_service).
-export([main/0]).

handle(<<"!fail">>) -> error(asked_to_fail);
handle(Payload) -> {ok, Payload}.

main() ->
    erlang:halt(rtt_stub:serve(fun handle/1)).
