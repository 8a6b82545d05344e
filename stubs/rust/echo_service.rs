//! Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
mod rtt_stub;
mod shm;

fn main() {
    std::process::exit(rtt_stub::serve(|request: &[u8]| {
        if request == b"!fail" {
            return Err(rtt_stub::Failure { code: "RTT-CALL-004".into(), message: "the sample service was asked to fail".into() });
        }
        Ok(request.to_vec())
    }));
}
