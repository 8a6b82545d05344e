// RTT stub for Java 17 (JDK only): serves a `process` endpoint over a UDS lane (docs/stub-protocol.md).
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;

public final class RttStub {
    public static final int MAX_PAYLOAD = 65536;
    public static final int F_NO_PAYLOAD_CRC = 1, F_RESPONSE = 2, F_ERROR = 4, F_PROBE = 8;
    private static final int[] TABLE = new int[256];

    static {
        for (int i = 0; i < 256; i++) {
            int c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1;
            TABLE[i] = c;
        }
    }

    /** Answers one request; throw {@link Failure} (or anything) to answer with an error frame. */
    public interface Handler {
        byte[] handle(byte[] request) throws Exception;
    }

    /** Thrown by a handler to answer with an error frame carrying its code. */
    public static final class Failure extends Exception {
        public final String code;

        public Failure(String code, String message) {
            super(message);
            this.code = code;
        }
    }

    /** CRC-32C (Castagnoli); pass the previous result to continue. */
    public static int crc32c(int crc, byte[] b, int off, int len) {
        int c = ~crc;
        for (int i = off; i < off + len; i++) c = TABLE[(c ^ b[i]) & 0xFF] ^ (c >>> 8);
        return ~c;
    }

    static void frame(ByteBuffer out, int flags, int route, int id, byte[] payload) {
        byte[] f = new byte[24 + payload.length];
        ByteBuffer h = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN);
        h.put((byte) 'R').put((byte) 'T').put((byte) 'T').put((byte) '1');
        h.putShort((short) flags).putShort((short) 0).putInt(route).putInt(id).putInt(payload.length);
        System.arraycopy(payload, 0, f, 24, payload.length);
        int c = crc32c(0, f, 0, 20);
        if ((flags & F_NO_PAYLOAD_CRC) == 0) c = crc32c(c, f, 24, payload.length);
        h.putInt(20, c);
        out.put(f);
    }

    /** Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code. */
    public static int serve(Handler handler) {
        String path = System.getenv("RTT_SERVICE_SOCKET");
        if (path == null || path.isEmpty()) {
            System.err.println("RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service");
            return 2;
        }
        SocketChannel ch;
        try {
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            ch.connect(UnixDomainSocketAddress.of(path));
            byte[] name = "rtt-service".getBytes(StandardCharsets.UTF_8);
            ByteBuffer req = ByteBuffer.allocate(8 + name.length).order(ByteOrder.LITTLE_ENDIAN);
            req.put("RTTQ".getBytes(StandardCharsets.US_ASCII)).put((byte) 2).put((byte) 1).putShort((short) name.length).put(name).flip();
            while (req.hasRemaining()) ch.write(req);
            ByteBuffer reply = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
            while (reply.hasRemaining()) {
                if (ch.read(reply) < 0) throw new IOException("the host closed the socket during attach");
            }
            if (reply.getInt(0) != 0x52545452 || reply.getInt(4) != 0 || reply.getInt(12) != 1) {
                throw new IOException("attach refused (status " + reply.getInt(4) + ")");
            }
        } catch (IOException e) {
            System.err.println("RTT-LANE-002: " + e.getMessage());
            return 1;
        }
        ByteBuffer in = ByteBuffer.allocate(4 * (24 + MAX_PAYLOAD)).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer out = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        byte[] a = in.array();
        try (ch) {
            while (true) {
                if (ch.read(in) < 0) return 0; // the host closed the lane
                int end = in.position(), pos = 0;
                while (end - pos >= 24) {
                    if (a[pos] != 'R' || a[pos + 1] != 'T' || a[pos + 2] != 'T' || a[pos + 3] != '1') {
                        pos = resync(a, pos, end);
                        continue;
                    }
                    int flags = in.getShort(pos + 4) & 0xFFFF, route = in.getInt(pos + 8), id = in.getInt(pos + 12);
                    long len = in.getInt(pos + 16) & 0xFFFFFFFFL;
                    if (len > MAX_PAYLOAD) {
                        pos = resync(a, pos, end);
                        continue;
                    }
                    if (end - pos < 24 + len) break;
                    int c = crc32c(0, a, pos, 20);
                    if ((flags & F_NO_PAYLOAD_CRC) == 0) c = crc32c(c, a, pos + 24, (int) len);
                    if (c != in.getInt(pos + 20)) {
                        pos = resync(a, pos, end);
                        continue;
                    }
                    byte[] payload = new byte[(int) len];
                    System.arraycopy(a, pos + 24, payload, 0, (int) len);
                    pos += 24 + (int) len;
                    if ((flags & F_RESPONSE) != 0) continue;
                    if (out.remaining() < 24 + MAX_PAYLOAD) flush(ch, out);
                    answer(out, handler, flags, route, id, payload);
                }
                System.arraycopy(a, pos, a, 0, end - pos);
                in.position(end - pos);
                flush(ch, out);
            }
        } catch (IOException e) {
            return 0; // the host went away
        }
    }

    private static void answer(ByteBuffer out, Handler handler, int flags, int route, int id, byte[] payload) {
        if ((flags & F_PROBE) != 0) {
            frame(out, F_RESPONSE | F_PROBE, route, id, payload);
            return;
        }
        try {
            byte[] answer = handler.handle(payload);
            if (answer.length > MAX_PAYLOAD) throw new Failure("RTT-CALL-004", "the answer is longer than " + MAX_PAYLOAD + " bytes");
            frame(out, F_RESPONSE, route, id, answer);
        } catch (Failure f) {
            frame(out, F_RESPONSE | F_ERROR, route, id, clip((f.code + " " + f.getMessage()).getBytes(StandardCharsets.UTF_8)));
        } catch (Exception e) {
            frame(out, F_RESPONSE | F_ERROR, route, id, clip(("RTT-CALL-004 the service failed: " + e).getBytes(StandardCharsets.UTF_8)));
        }
    }

    private static byte[] clip(byte[] b) {
        return b.length <= MAX_PAYLOAD ? b : java.util.Arrays.copyOf(b, MAX_PAYLOAD);
    }

    private static void flush(SocketChannel ch, ByteBuffer out) throws IOException {
        out.flip();
        while (out.hasRemaining()) ch.write(out);
        out.clear();
    }

    private static int resync(byte[] a, int pos, int end) {
        for (int i = pos + 1; i + 4 <= end; i++) {
            if (a[i] == 'R' && a[i + 1] == 'T' && a[i + 2] == 'T' && a[i + 3] == '1') return i;
        }
        return Math.max(pos + 1, end - 3);
    }
}
