// Package rttstub serves a `process` endpoint of RTT over a UDS lane (docs/stub-protocol.md). Standard library only.
package rttstub

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
)

const (
	MaxPayload   = 65536
	NoPayloadCrc = 1
	Response     = 2
	Error        = 4
	Probe        = 8
)

var table [256]uint32

func init() {
	for i := range table {
		c := uint32(i)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = (c >> 1) ^ 0x82F63B78
			} else {
				c >>= 1
			}
		}
		table[i] = c
	}
}

// Crc32c is CRC-32C (Castagnoli); pass the previous result to continue.
func Crc32c(crc uint32, data []byte) uint32 {
	c := ^crc
	for _, b := range data {
		c = table[byte(c)^b] ^ (c >> 8)
	}
	return ^c
}

// Failure is returned by a handler to answer with an error frame "Code Message".
type Failure struct {
	Code    string
	Message string
}

func (f *Failure) Error() string { return f.Code + " " + f.Message }

// Handler answers one request.
type Handler func(request []byte) ([]byte, error)

// AppendFrame appends a sealed frame to out.
func AppendFrame(out []byte, flags uint16, route, id uint32, payload []byte) []byte {
	start := len(out)
	out = append(out, 'R', 'T', 'T', '1')
	out = binary.LittleEndian.AppendUint16(out, flags)
	out = binary.LittleEndian.AppendUint16(out, 0)
	out = binary.LittleEndian.AppendUint32(out, route)
	out = binary.LittleEndian.AppendUint32(out, id)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(payload)))
	c := Crc32c(0, out[start:start+20])
	if flags&NoPayloadCrc == 0 {
		c = Crc32c(c, payload)
	}
	out = binary.LittleEndian.AppendUint32(out, c)
	return append(out, payload...)
}

func answer(h Handler, flags uint16, route, id uint32, payload []byte, out []byte) (res []byte) {
	if flags&Probe != 0 {
		return AppendFrame(out, Response|Probe, route, id, payload)
	}
	defer func() {
		if r := recover(); r != nil {
			res = AppendFrame(out, Response|Error, route, id, clip([]byte(fmt.Sprintf("RTT-CALL-004 the service failed: %v", r))))
		}
	}()
	a, err := h(payload)
	if err == nil && len(a) > MaxPayload {
		err = &Failure{"RTT-CALL-004", "the answer is longer than 65536 bytes"}
	}
	if err != nil {
		text := "RTT-CALL-004 the service failed: " + err.Error()
		if f, ok := err.(*Failure); ok {
			text = f.Error()
		}
		return AppendFrame(out, Response|Error, route, id, clip([]byte(text)))
	}
	return AppendFrame(out, Response, route, id, a)
}

func clip(b []byte) []byte {
	if len(b) > MaxPayload {
		return b[:MaxPayload]
	}
	return b
}

// Serve attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
func Serve(h Handler) int {
	path := os.Getenv("RTT_SERVICE_SOCKET")
	if path == "" {
		fmt.Fprintln(os.Stderr, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service")
		return 2
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "RTT-LANE-002:", err)
		return 1
	}
	defer conn.Close()
	name := []byte("rtt-service")
	req := append([]byte("RTTQ"), 2, 1)
	req = binary.LittleEndian.AppendUint16(req, uint16(len(name)))
	req = append(req, name...)
	reply := make([]byte, 16)
	if _, err = conn.Write(req); err == nil {
		_, err = readFull(conn, reply)
	}
	if err != nil || string(reply[:4]) != "RTTR" || binary.LittleEndian.Uint32(reply[4:]) != 0 || binary.LittleEndian.Uint32(reply[12:]) != 1 {
		fmt.Fprintln(os.Stderr, "RTT-LANE-002: attach refused", err)
		return 1
	}
	buf := make([]byte, 4*(24+MaxPayload))
	start, end := 0, 0
	out := make([]byte, 0, 1<<20)
	magic := []byte("RTT1")
	for {
		if start == end {
			start, end = 0, 0
		} else if start > 0 && len(buf)-end < 24+MaxPayload {
			copy(buf, buf[start:end])
			end -= start
			start = 0
		}
		n, err := conn.Read(buf[end:])
		if n <= 0 || err != nil {
			return 0 // the host closed the lane
		}
		end += n
		for end-start >= 24 {
			f := buf[start:end]
			length := binary.LittleEndian.Uint32(f[16:])
			bad := !bytes.Equal(f[:4], magic) || length > MaxPayload
			if !bad {
				if len(f) < 24+int(length) {
					break
				}
				flags := binary.LittleEndian.Uint16(f[4:])
				c := Crc32c(0, f[:20])
				if flags&NoPayloadCrc == 0 {
					c = Crc32c(c, f[24:24+length])
				}
				bad = c != binary.LittleEndian.Uint32(f[20:])
			}
			if bad {
				if i := bytes.Index(buf[start+1:end], magic); i >= 0 {
					start += 1 + i
				} else if end-3 > start+1 {
					start = end - 3
				} else {
					start++
				}
				continue
			}
			flags := binary.LittleEndian.Uint16(f[4:])
			if flags&Response == 0 {
				payload := append([]byte(nil), f[24:24+length]...)
				out = answer(h, flags, binary.LittleEndian.Uint32(f[8:]), binary.LittleEndian.Uint32(f[12:]), payload, out)
			}
			start += 24 + int(length)
		}
		if len(out) > 0 {
			if _, err := conn.Write(out); err != nil {
				return 0
			}
			out = out[:0]
		}
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		r, err := c.Read(b[n:])
		if err != nil {
			return n, err
		}
		n += r
	}
	return n, nil
}
