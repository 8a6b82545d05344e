// Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
#include <cstring>

#include "rtt_stub.hpp"

int main() {
    return rtt::serve([](const std::uint8_t* data, std::size_t size) {
        if (size == 5 && std::memcmp(data, "!fail", 5) == 0) throw rtt::Failure("RTT-CALL-004", "the sample service was asked to fail");
        return rtt::Bytes(data, data + size);
    });
}
