<?php
// RTT stub for PHP 8 (no extensions beyond the core): serves a `process` endpoint over a UDS lane
// (docs/stub-protocol.md).

final class RttFailure extends Exception
{
    public function __construct(public readonly string $rttCode, string $message)
    {
        parent::__construct($message);
    }
}

final class RttStub
{
    public const MAX_PAYLOAD = 65536;
    public const F_NO_PAYLOAD_CRC = 1;
    public const F_RESPONSE = 2;
    public const F_ERROR = 4;
    public const F_PROBE = 8;

    private static array $table = [];

    /** CRC-32C (Castagnoli); pass the previous result to continue. */
    public static function crc32c(string $data, int $crc = 0): int
    {
        if (!self::$table) {
            for ($i = 0; $i < 256; $i++) {
                $c = $i;
                for ($k = 0; $k < 8; $k++) {
                    $c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1);
                }
                self::$table[$i] = $c;
            }
        }
        $t = self::$table;
        $c = $crc ^ 0xFFFFFFFF;
        $n = strlen($data);
        for ($i = 0; $i < $n; $i++) {
            $c = $t[($c ^ ord($data[$i])) & 0xFF] ^ ($c >> 8);
        }
        return $c ^ 0xFFFFFFFF;
    }

    public static function frame(int $flags, int $route, int $id, string $payload): string
    {
        $head = pack('a4vvVVV', 'RTT1', $flags, 0, $route, $id, strlen($payload));
        $crc = self::crc32c($head);
        if (!($flags & self::F_NO_PAYLOAD_CRC)) {
            $crc = self::crc32c($payload, $crc);
        }
        return $head . pack('V', $crc) . $payload;
    }

    private static function answer(callable $handler, int $flags, int $route, int $id, string $payload): string
    {
        if ($flags & self::F_PROBE) {
            return self::frame(self::F_RESPONSE | self::F_PROBE, $route, $id, $payload);
        }
        try {
            $out = (string)$handler($payload);
            if (strlen($out) > self::MAX_PAYLOAD) {
                throw new RttFailure('RTT-CALL-004', 'the answer is longer than ' . self::MAX_PAYLOAD . ' bytes');
            }
            return self::frame(self::F_RESPONSE, $route, $id, $out);
        } catch (RttFailure $e) {
            $text = $e->rttCode . ' ' . $e->getMessage();
        } catch (Throwable $e) {
            $text = 'RTT-CALL-004 the service failed: ' . get_class($e) . ': ' . $e->getMessage();
        }
        return self::frame(self::F_RESPONSE | self::F_ERROR, $route, $id, substr($text, 0, self::MAX_PAYLOAD));
    }

    /** Attaches on RTT_SERVICE_SOCKET and serves until the host closes the lane. Returns the exit code. */
    public static function serve(callable $handler): int
    {
        $path = getenv('RTT_SERVICE_SOCKET');
        if ($path === false || $path === '') {
            fwrite(STDERR, "RTT-CALL-003: RTT_SERVICE_SOCKET is not set; the RTT silo starts this service\n");
            return 2;
        }
        $s = @stream_socket_client('unix://' . $path, $errno, $errstr);
        if ($s === false) {
            fwrite(STDERR, "RTT-LANE-002: cannot connect to $path: $errstr\n");
            return 1;
        }
        // No PHP-side read buffer, from the start: bytes PHP had buffered (the first requests arriving with the attach
        // reply) would be invisible to stream_select below, and the service would wait for the next request.
        stream_set_read_buffer($s, 0);
        $name = 'rtt-service';
        fwrite($s, pack('a4CCv', 'RTTQ', 2, 1, strlen($name)) . $name);
        $reply = '';
        while (strlen($reply) < 16) {
            $chunk = fread($s, 16 - strlen($reply));
            if ($chunk === false || $chunk === '') {
                fwrite(STDERR, "RTT-LANE-002: the host closed the socket during attach\n");
                return 1;
            }
            $reply .= $chunk;
        }
        $r = unpack('a4magic/lstatus/Vroute/lkind', $reply);
        if ($r['magic'] !== 'RTTR' || $r['status'] !== 0 || $r['kind'] !== 1) {
            fwrite(STDERR, "RTT-LANE-002: attach refused (status {$r['status']})\n");
            return 1;
        }
        $buf = '';
        while (true) {
            $read = [$s];
            $none = null;
            if (@stream_select($read, $none, $none, null) === false) {
                return 0;
            }
            $chunk = @fread($s, 1 << 20);
            if ($chunk === false || $chunk === '') {
                return 0; // the host closed the lane
            }
            $buf .= $chunk;
            $pos = 0;
            $out = '';
            while (strlen($buf) - $pos >= 24) {
                $h = unpack('a4magic/vflags/vreserved/Vroute/Vid/Vlen/Vcrc', $buf, $pos);
                $bad = $h['magic'] !== 'RTT1' || $h['len'] > self::MAX_PAYLOAD;
                if (!$bad) {
                    if (strlen($buf) - $pos < 24 + $h['len']) {
                        break;
                    }
                    $c = self::crc32c(substr($buf, $pos, 20));
                    if (!($h['flags'] & self::F_NO_PAYLOAD_CRC)) {
                        $c = self::crc32c(substr($buf, $pos + 24, $h['len']), $c);
                    }
                    $bad = $c !== $h['crc'];
                }
                if ($bad) {
                    $next = strpos($buf, 'RTT1', $pos + 1);
                    $pos = $next !== false ? $next : max($pos + 1, strlen($buf) - 3);
                    continue;
                }
                $payload = substr($buf, $pos + 24, $h['len']);
                $pos += 24 + $h['len'];
                if (!($h['flags'] & self::F_RESPONSE)) {
                    $out .= self::answer($handler, $h['flags'], $h['route'], $h['id'], $payload);
                }
            }
            $buf = substr($buf, $pos);
            while ($out !== '') {
                $w = @fwrite($s, $out);
                if ($w === false || $w === 0) {
                    return 0;
                }
                $out = substr($out, $w);
            }
        }
    }
}
