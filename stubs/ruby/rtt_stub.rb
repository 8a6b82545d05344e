# RTT stub for Ruby (standard library only): serves a `process` endpoint over a UDS lane (docs/stub-protocol.md).
require 'socket'

module RttStub
  MAX_PAYLOAD = 65_536
  F_NO_PAYLOAD_CRC = 1
  F_RESPONSE = 2
  F_ERROR = 4
  F_PROBE = 8

  TABLE = (0..255).map do |i|
    c = i
    8.times { c = c.odd? ? (c >> 1) ^ 0x82F63B78 : c >> 1 }
    c
  end.freeze

  # Raised by a handler to answer with an error frame "code message".
  class Failure < StandardError
    attr_reader :code

    def initialize(code, message)
      super(message)
      @code = code
    end
  end

  # CRC-32C (Castagnoli); pass the previous result to continue.
  def self.crc32c(data, crc = 0)
    c = crc ^ 0xFFFFFFFF
    data.each_byte { |b| c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8) }
    c ^ 0xFFFFFFFF
  end

  def self.frame(flags, route, id, payload)
    head = ['RTT1', flags, 0, route, id, payload.bytesize].pack('a4vvVVV')
    crc = crc32c(head)
    crc = crc32c(payload, crc) if (flags & F_NO_PAYLOAD_CRC).zero?
    head + [crc].pack('V') + payload
  end

  def self.answer(handler, flags, route, id, payload)
    return frame(F_RESPONSE | F_PROBE, route, id, payload) if (flags & F_PROBE) != 0

    out = handler.call(payload).b
    raise Failure.new('RTT-CALL-004', "the answer is longer than #{MAX_PAYLOAD} bytes") if out.bytesize > MAX_PAYLOAD

    frame(F_RESPONSE, route, id, out)
  rescue Failure => e
    frame(F_RESPONSE | F_ERROR, route, id, "#{e.code} #{e.message}".b.byteslice(0, MAX_PAYLOAD))
  rescue StandardError => e
    frame(F_RESPONSE | F_ERROR, route, id, "RTT-CALL-004 the service failed: #{e.class}: #{e.message}".b.byteslice(0, MAX_PAYLOAD))
  end

  # Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code.
  def self.serve(&handler)
    path = ENV['RTT_SERVICE_SOCKET']
    if path.nil? || path.empty?
      warn 'RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service'
      return 2
    end
    begin
      s = UNIXSocket.new(path)
      name = 'rtt-service'
      s.write(['RTTQ', 2, 1, name.bytesize].pack('a4CCv') + name)
      reply = s.read(16)
      magic, status, _route, kind = reply&.unpack('a4lVl')
      raise "attach refused (status #{status.inspect})" if magic != 'RTTR' || status != 0 || kind != 1
    rescue StandardError => e
      warn "RTT-LANE-002: #{e.message}"
      return 1
    end
    buf = ''.b
    loop do
      chunk = begin
        s.readpartial(1 << 20)
      rescue EOFError, SystemCallError
        return 0 # the host closed the lane
      end
      buf << chunk
      pos = 0
      out = ''.b
      while buf.bytesize - pos >= 24
        magic, flags, _r, route, id, len, crc = buf.byteslice(pos, 24).unpack('a4vvVVVV')
        bad = magic != 'RTT1' || len > MAX_PAYLOAD
        unless bad
          break if buf.bytesize - pos < 24 + len

          c = crc32c(buf.byteslice(pos, 20))
          c = crc32c(buf.byteslice(pos + 24, len), c) if (flags & F_NO_PAYLOAD_CRC).zero?
          bad = c != crc
        end
        if bad
          nxt = buf.index('RTT1', pos + 1)
          pos = nxt || [pos + 1, buf.bytesize - 3].max
          next
        end
        payload = buf.byteslice(pos + 24, len)
        pos += 24 + len
        out << answer(handler, flags, route, id, payload) if (flags & F_RESPONSE).zero?
      end
      buf = buf.byteslice(pos, buf.bytesize - pos)
      begin
        s.write(out) unless out.empty?
      rescue SystemCallError
        return 0
      end
    end
  end
end
