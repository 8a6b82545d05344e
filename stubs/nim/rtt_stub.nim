## RTT stub for Nim (standard library only): serves a `process` endpoint over a UDS lane.
##
## Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
## frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
## the same route_id and frame_id. A handler takes the payload and returns the answer; raising RttFailure (or any
## CatchableError) answers with an error frame.
import std/[net, os, posix]

const
  MaxPayload* = 65536
  FlagNoPayloadCrc* = 0x1'u16
  FlagResponse* = 0x2'u16
  FlagError* = 0x4'u16
  FlagProbe* = 0x8'u16
  KindUds = 1'u8

type
  RttFailure* = object of CatchableError ## raise from a handler to answer with an error frame carrying `code`
    code*: string
  Handler* = proc (payload: string): string

proc newRttFailure*(code, message: string): ref RttFailure =
  result = newException(RttFailure, message)
  result.code = code

# CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (table built at compile time).
const crcTable = block:
  var t: array[256, uint32]
  for i in 0 ..< 256:
    var c = uint32(i)
    for _ in 0 ..< 8:
      c = if (c and 1) == 1: (c shr 1) xor 0x82F63B78'u32 else: c shr 1
    t[i] = c
  t

proc crc32c*(data: openArray[char], crc = 0'u32): uint32 =
  ## CRC-32C of `data`, continuing `crc` (0 to start).
  var c = not crc
  for ch in data:
    c = crcTable[(c xor uint32(ord(ch))) and 0xFF] xor (c shr 8)
  not c

proc get16(s: string, i: int): uint16 = uint16(ord(s[i])) or (uint16(ord(s[i + 1])) shl 8)
proc get32(s: string, i: int): uint32 = uint32(get16(s, i)) or (uint32(get16(s, i + 2)) shl 16)
proc put16(s: var string, i: int, v: uint16) =
  s[i] = char(v and 0xFF)
  s[i + 1] = char(v shr 8)
proc put32(s: var string, i: int, v: uint32) =
  put16(s, i, uint16(v and 0xFFFF))
  put16(s, i + 2, uint16(v shr 16))

proc addFrame*(output: var string, flags: uint16, route, id: uint32, payload: openArray[char]) =
  ## Appends one frame (24-byte little-endian header, then the payload) to `output`.
  var head = newString(24)
  head[0 .. 3] = "RTT1"
  put16(head, 4, flags)
  put32(head, 8, route)
  put32(head, 12, id)
  put32(head, 16, uint32(payload.len))
  var crc = crc32c(head.toOpenArray(0, 19))
  if (flags and FlagNoPayloadCrc) == 0:
    crc = crc32c(payload, crc)
  put32(head, 20, crc)
  output.add head
  for ch in payload: output.add ch

proc addError(output: var string, route, id: uint32, text: string) =
  addFrame(output, FlagResponse or FlagError, route, id, text.toOpenArray(0, min(text.len, MaxPayload) - 1))

proc answer(output: var string, handler: Handler, flags: uint16, route, id: uint32, payload: string) =
  if (flags and FlagProbe) != 0:
    addFrame(output, FlagResponse or FlagProbe, route, id, payload) # a heartbeat: the payload echoed
    return
  try:
    let res = handler(payload)
    if res.len > MaxPayload:
      addError(output, route, id, "RTT-CALL-004 the answer is " & $res.len & " bytes, more than " & $MaxPayload)
    else:
      addFrame(output, FlagResponse, route, id, res)
  except RttFailure as f:
    addError(output, route, id, f.code & " " & f.msg)
  except CatchableError as e:
    addError(output, route, id, "RTT-CALL-004 the service failed: " & $e.name & ": " & e.msg)

proc resync(buf: string, pos: int): int =
  ## After a bad frame at `pos`: the next RTT1 after it, or the last 3 bytes (a magic may be split).
  for i in pos + 1 .. buf.len - 4:
    if buf[i] == 'R' and buf[i + 1] == 'T' and buf[i + 2] == 'T' and buf[i + 3] == '1':
      return i
  max(pos + 1, buf.len - 3)

proc parse(buf: string, output: var string, handler: Handler): int =
  ## Answers every whole frame of `buf` into `output`; returns the index of the first byte not used.
  var pos = 0
  while buf.len - pos >= 24:
    let length = int(get32(buf, pos + 16))
    if buf[pos .. pos + 3] != "RTT1" or length > MaxPayload:
      pos = resync(buf, pos)
      continue
    if buf.len - pos < 24 + length:
      break
    let flags = get16(buf, pos + 4)
    var crc = crc32c(buf.toOpenArray(pos, pos + 19))
    if (flags and FlagNoPayloadCrc) == 0:
      crc = crc32c(buf.toOpenArray(pos + 24, pos + 23 + length), crc)
    if crc != get32(buf, pos + 20):
      pos = resync(buf, pos)
      continue
    if (flags and FlagResponse) == 0: # a response is not a request: ignored
      answer(output, handler, flags, get32(buf, pos + 8), get32(buf, pos + 12), buf[pos + 24 ..< pos + 24 + length])
    pos += 24 + length
  pos

proc attach(path: string): Socket =
  result = newSocket(Domain.AF_UNIX, SockType.SOCK_STREAM, Protocol.IPPROTO_IP, buffered = false)
  result.connectUnix(path)
  var request = "RTTQ" & char(2) & char(KindUds) & "\0\0" & "rtt-service"
  put16(request, 6, uint16(len("rtt-service")))
  result.send(request)
  let reply = result.recv(16)
  if reply.len < 16:
    raise newException(IOError, "the host closed the control socket during attach")
  if reply[0 .. 3] != "RTTR" or get32(reply, 4) != 0 or get32(reply, 12) != KindUds:
    raise newException(IOError, "attach refused: status " & $int32(get32(reply, 4)) & ", kind " & $int32(get32(reply, 12)))

proc serve*(handler: Handler): int =
  ## Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane; returns the exit status.
  let path = getEnv("RTT_SERVICE_SOCKET")
  if path.len == 0:
    stderr.writeLine "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service"
    return 2
  signal(SIGPIPE, SIG_IGN)
  var s: Socket
  try:
    s = attach(path)
  except CatchableError as e:
    stderr.writeLine "RTT-LANE-001: cannot attach on " & path & ": " & e.msg
    return 1
  var buf = ""
  var chunk = newString(262144)
  var output = ""
  while true:
    let n = try: s.recv(addr chunk[0], chunk.len) except CatchableError: 0
    if n <= 0:
      break # end of file: the host closed the lane (graceful shutdown or host death)
    buf.add chunk[0 ..< n]
    output.setLen 0
    let used = parse(buf, output, handler)
    buf = buf[used .. ^1]
    if output.len > 0:
      try:
        s.send(output)
      except CatchableError:
        break # the host is gone: the lane is over
  s.close()
  0
