defmodule RttStub do
  @moduledoc """
  RTT stub for Elixir (standard library and OTP's :gen_tcp on a local socket): serves a `process` endpoint over a
  UDS lane.

  Implements docs/stub-protocol.md: attach on RTT_SERVICE_SOCKET (attach version 2, kind UDS), read 24-byte RTT1
  frames (CRC-32C checked, re-synchronising after a bad frame) and answer each request with one response frame of
  the same route_id and frame_id. A handler takes the payload (a binary) and returns the answer; raising
  `RttStub.Failure` (or anything else) answers with an error frame.
  """
  import Bitwise

  @max_payload 65_536
  @no_payload_crc 0x1
  @response 0x2
  @error 0x4
  @probe 0x8
  @kind_uds 1

  defmodule Failure do
    @moduledoc "Raise from a handler to answer with an error frame carrying `code`."
    defexception [:code, :message]
  end

  # CRC-32C: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (table built at compile time).
  @table (for i <- 0..255 do
            Enum.reduce(1..8, i, fn _, c -> if (c &&& 1) == 1, do: bxor(c >>> 1, 0x82F63B78), else: c >>> 1 end)
          end)
         |> List.to_tuple()

  @doc "CRC-32C of `data`, continuing `crc` (0 to start)."
  def crc32c(data, crc \\ 0), do: bxor(run(bxor(crc, 0xFFFFFFFF), data), 0xFFFFFFFF)

  defp run(c, <<b, rest::binary>>), do: run(bxor(elem(@table, bxor(c, b) &&& 0xFF), c >>> 8), rest)
  defp run(c, <<>>), do: c

  @doc "A frame: the 24-byte little-endian header, then the payload (an iolist)."
  def frame(flags, route, id, payload) do
    head = <<"RTT1", flags::little-16, 0::16, route::little-32, id::little-32, byte_size(payload)::little-32>>
    crc = if (flags &&& @no_payload_crc) == 0, do: crc32c(payload, crc32c(head)), else: crc32c(head)
    [head, <<crc::little-32>>, payload]
  end

  @doc "Attaches on RTT_SERVICE_SOCKET and serves `handler` until the host closes the lane; returns the exit status."
  def serve(handler) do
    case System.get_env("RTT_SERVICE_SOCKET", "") do
      "" ->
        IO.puts(:stderr, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service")
        2

      path ->
        case attach(path) do
          {:ok, socket} ->
            loop(socket, handler, <<>>)

          {:error, why} ->
            IO.puts(:stderr, "RTT-LANE-001: cannot attach on #{path}: #{inspect(why)}")
            1
        end
    end
  end

  defp attach(path) do
    with {:ok, s} <- :gen_tcp.connect({:local, path}, 0, [:binary, active: false, packet: :raw]),
         :ok <- :gen_tcp.send(s, <<"RTTQ", 2, @kind_uds, 11::little-16, "rtt-service">>),
         {:ok, reply} <- :gen_tcp.recv(s, 16) do
      case reply do
        <<"RTTR", 0::little-32, _route::little-32, @kind_uds::little-32>> -> {:ok, s}
        <<_::binary-4, status::little-signed-32, _::32, kind::little-signed-32>> -> {:error, {:refused, status, kind}}
      end
    end
  end

  defp loop(socket, handler, buffer) do
    case :gen_tcp.recv(socket, 0) do
      {:ok, data} ->
        {answers, rest} = parse(buffer <> data, handler, [])

        if answers == [] or :gen_tcp.send(socket, answers) == :ok do
          loop(socket, handler, rest)
        else
          0 # the host is gone: the lane is over
        end

      {:error, _} ->
        0 # end of file: the host closed the lane (graceful shutdown or host death)
    end
  end

  defp parse(
         <<"RTT1", flags::little-16, _::16, route::little-32, id::little-32, len::little-32, crc::little-32,
           rest::binary>> = buffer,
         handler,
         acc
       )
       when len <= @max_payload do
    case rest do
      <<payload::binary-size(len), tail::binary>> ->
        head = binary_part(buffer, 0, 20)
        expected = if (flags &&& @no_payload_crc) == 0, do: crc32c(payload, crc32c(head)), else: crc32c(head)

        cond do
          expected != crc -> parse(resync(buffer), handler, acc)
          (flags &&& @response) != 0 -> parse(tail, handler, acc) # not a request: ignored
          true -> parse(tail, handler, [answer(handler, flags, route, id, payload) | acc])
        end

      _ ->
        {Enum.reverse(acc), buffer} # wait for the rest of the frame
    end
  end

  defp parse(buffer, handler, acc) when byte_size(buffer) >= 24, do: parse(resync(buffer), handler, acc)
  defp parse(buffer, _, acc), do: {Enum.reverse(acc), buffer}

  # Drops the first byte and skips to the next "RTT1" (keeping the last 3 bytes: a magic may be split).
  defp resync(<<_, rest::binary>>) do
    case :binary.match(rest, "RTT1") do
      {pos, _} -> binary_part(rest, pos, byte_size(rest) - pos)
      :nomatch when byte_size(rest) > 3 -> binary_part(rest, byte_size(rest) - 3, 3)
      :nomatch -> rest
    end
  end

  defp answer(_, flags, route, id, payload) when (flags &&& @probe) != 0,
    do: frame(@response ||| @probe, route, id, payload)

  defp answer(handler, _, route, id, payload) do
    case handler.(payload) do
      out when is_binary(out) and byte_size(out) <= @max_payload -> frame(@response, route, id, out)
      out when is_binary(out) -> failure(route, id, "RTT-CALL-004 the answer is #{byte_size(out)} bytes, more than #{@max_payload}")
      other -> failure(route, id, "RTT-CALL-004 the handler returned #{inspect(other)}")
    end
  rescue
    e in Failure -> failure(route, id, "#{e.code} #{e.message}")
    e -> failure(route, id, "RTT-CALL-004 the service failed: #{Exception.message(e)}")
  catch
    kind, reason -> failure(route, id, "RTT-CALL-004 the service failed: #{inspect(kind)} #{inspect(reason)}")
  end

  defp failure(route, id, text),
    do: frame(@response ||| @error, route, id, binary_part(text, 0, min(byte_size(text), @max_payload)))
end
