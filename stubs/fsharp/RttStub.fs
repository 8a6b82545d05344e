// RTT stub for F# (the .NET base library and FSharp.Core only): serves a `process` endpoint over a UDS lane.
//
// Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
// frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
// the same route_id and frame_id. A handler takes the payload and returns the answer; raising RttFailure (or any
// exception) answers with an error frame. Written in F# for RTT; it does not use RTT's C# libraries.
module RttStub

open System
open System.Buffers.Binary
open System.Net.Sockets
open System.Text

let MaxPayload = 65536
let NoPayloadCrc = 0x1us
let Response = 0x2us
let Error = 0x4us
let Probe = 0x8us

/// Raise from a handler to answer with an error frame carrying `Code`.
exception RttFailure of Code: string * Text: string

// CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
let private table =
    Array.init 256 (fun i ->
        let mutable c = uint32 i
        for _ in 1..8 do
            c <- if c &&& 1u = 1u then (c >>> 1) ^^^ 0x82F63B78u else c >>> 1
        c)

/// CRC-32C of `data`, continuing `crc` (0 to start).
let crc32c (data: ReadOnlySpan<byte>) (crc: uint32) =
    let mutable c = ~~~crc
    for i in 0 .. data.Length - 1 do
        c <- table.[int ((c ^^^ uint32 data.[i]) &&& 0xFFu)] ^^^ (c >>> 8)
    ~~~c

/// Appends one frame (24-byte little-endian header, then the payload) to `out`.
let writeFrame (out: IO.MemoryStream) (flags: uint16) (route: uint32) (id: uint32) (payload: ReadOnlySpan<byte>) =
    let head = Array.zeroCreate<byte> 24
    "RTT1"B.CopyTo(head, 0)
    BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(4), flags)
    BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(8), route)
    BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(12), id)
    BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(16), uint32 payload.Length)
    let crc = crc32c (ReadOnlySpan(head, 0, 20)) 0u
    let crc = if flags &&& NoPayloadCrc = 0us then crc32c payload crc else crc
    BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(20), crc)
    out.Write(head, 0, 24)
    out.Write(payload)

let private writeError (out: IO.MemoryStream) route id (text: string) =
    let bytes = Encoding.UTF8.GetBytes text
    writeFrame out (Response ||| Error) route id (ReadOnlySpan(bytes, 0, min bytes.Length MaxPayload))

let private answer (handler: byte[] -> byte[]) (out: IO.MemoryStream) flags route id (payload: byte[]) =
    if flags &&& Probe <> 0us then
        writeFrame out (Response ||| Probe) route id (ReadOnlySpan payload) // a heartbeat: the payload echoed
    else
        match (try Ok(handler payload) with e -> Result.Error e) with
        | Ok answer when answer.Length <= MaxPayload -> writeFrame out Response route id (ReadOnlySpan answer)
        | Ok answer -> writeError out route id $"RTT-CALL-004 the answer is {answer.Length} bytes, more than {MaxPayload}"
        | Result.Error(RttFailure(code, text)) -> writeError out route id $"{code} {text}"
        | Result.Error e -> writeError out route id $"RTT-CALL-004 the service failed: {e.GetType().Name}: {e.Message}"

let private isMagic (b: byte[]) i = b.[i] = 82uy && b.[i + 1] = 84uy && b.[i + 2] = 84uy && b.[i + 3] = 49uy

/// After a bad frame at pos: the next RTT1 after it, or end - 3 (a magic may be split).
let private resync (b: byte[]) pos fin =
    let mutable i = pos + 1
    while i + 4 <= fin && not (isMagic b i) do
        i <- i + 1
    if i + 4 <= fin then i else max (pos + 1) (fin - 3)

/// Answers every whole frame of b[0, fin) into `out`; returns the index of the first byte not used.
let private parse handler (out: IO.MemoryStream) (b: byte[]) fin =
    let mutable pos = 0
    let mutable waiting = false
    while not waiting && fin - pos >= 24 do
        let len = BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(b, pos + 16, 4))
        if not (isMagic b pos) || len > uint32 MaxPayload then
            pos <- resync b pos fin
        elif fin - pos < 24 + int len then
            waiting <- true
        else
            let n = int len
            let flags = BinaryPrimitives.ReadUInt16LittleEndian(ReadOnlySpan(b, pos + 4, 2))
            let crc = crc32c (ReadOnlySpan(b, pos, 20)) 0u
            let crc = if flags &&& NoPayloadCrc = 0us then crc32c (ReadOnlySpan(b, pos + 24, n)) crc else crc
            if crc <> BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(b, pos + 20, 4)) then
                pos <- resync b pos fin
            else
                if flags &&& Response = 0us then // a response is not a request: ignored
                    answer handler out flags
                        (BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(b, pos + 8, 4)))
                        (BinaryPrimitives.ReadUInt32LittleEndian(ReadOnlySpan(b, pos + 12, 4)))
                        (b.[pos + 24 .. pos + 23 + n])
                pos <- pos + 24 + n
    pos

let private attach (path: string) =
    let s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
    s.Connect(UnixDomainSocketEndPoint path)
    let name = "rtt-service"B
    let request = Array.zeroCreate<byte> (8 + name.Length)
    "RTTQ"B.CopyTo(request, 0)
    request.[4] <- 2uy // attach version
    request.[5] <- 1uy // kind: UDS
    BinaryPrimitives.WriteUInt16LittleEndian(request.AsSpan(6), uint16 name.Length)
    name.CopyTo(request, 8)
    s.Send request |> ignore
    let reply = Array.zeroCreate<byte> 16
    let mutable got = 0
    while got < 16 do
        let n = s.Receive(reply, got, 16 - got, SocketFlags.None)
        if n = 0 then failwith "the host closed the control socket during attach"
        got <- got + n
    let status = BinaryPrimitives.ReadInt32LittleEndian(ReadOnlySpan(reply, 4, 4))
    let kind = BinaryPrimitives.ReadInt32LittleEndian(ReadOnlySpan(reply, 12, 4))
    if Encoding.ASCII.GetString(reply, 0, 4) <> "RTTR" || status <> 0 || kind <> 1 then
        failwith $"attach refused: status {status}, kind {kind}"
    s

/// Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane; returns the exit status.
let serve (handler: byte[] -> byte[]) =
    match Environment.GetEnvironmentVariable "RTT_SERVICE_SOCKET" with
    | null | "" ->
        eprintfn "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service"
        2
    | path ->
        match (try Ok(attach path) with e -> Result.Error e.Message) with
        | Result.Error why ->
            eprintfn "RTT-LANE-001: cannot attach on %s: %s" path why
            1
        | Ok s ->
            let buffer = Array.zeroCreate<byte> (4 * (24 + MaxPayload))
            let out = new IO.MemoryStream()
            let mutable have = 0
            let mutable running = true
            while running do
                let n = try s.Receive(buffer, have, buffer.Length - have, SocketFlags.None) with :? SocketException -> 0
                if n = 0 then
                    running <- false // end of file: the host closed the lane (graceful shutdown or host death)
                else
                    have <- have + n
                    out.SetLength 0L
                    let used = parse handler out buffer have
                    Buffer.BlockCopy(buffer, used, buffer, 0, have - used)
                    have <- have - used
                    if out.Length > 0L then
                        try
                            s.Send(ReadOnlySpan(out.GetBuffer(), 0, int out.Length)) |> ignore
                        with :? SocketException ->
                            running <- false // the host is gone: the lane is over
            s.Dispose()
            0
