// Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
public final class EchoService {
    public static void main(String[] args) {
        System.exit(RttStub.serve(request -> {
            if (request.length == 5 && new String(request, java.nio.charset.StandardCharsets.US_ASCII).equals("!fail")) {
                throw new RttStub.Failure("RTT-CALL-004", "the sample service was asked to fail");
            }
            return request;
        }));
    }
}
