// Sample echo service: answers each request with its payload; the payload `!fail` answers with an error frame.
package main

import (
	"os"

	"rtt.local/stubs/go/rttstub"
)

func main() {
	os.Exit(rttstub.Serve(func(request []byte) ([]byte, error) {
		if string(request) == "!fail" {
			return nil, &rttstub.Failure{Code: "RTT-CALL-004", Message: "the sample service was asked to fail"}
		}
		return request, nil
	}))
}
