using System.Net.Sockets;
using Rtt.Fabric.Frames;
using Rtt.Fabric.Lanes;

namespace Rtt.Fabric.Streams;

/// <summary>
/// The same frames over a stream socket: a Unix domain socket (same host) or TCP with NoDelay (across
/// hosts). The socket is non-blocking; frames are written into one preallocated buffer and go out in a
/// single send on <see cref="Flush"/> (several queued frames = one syscall); received bytes land in another
/// preallocated buffer and the handler gets spans over it. Nothing is allocated per frame. A bad frame is
/// dropped and counted, and the reader re-synchronises on the next "RTT1" magic.
/// </summary>
public sealed class StreamLane : IFrameLane
{
    private static ReadOnlySpan<byte> MagicBytes => "RTT1"u8;

    private readonly Socket _socket;
    private readonly byte[] _out; // batch of outgoing frames, allocated once
    private readonly byte[] _in;  // received bytes, allocated once, at least two maximal frames
    private readonly FrameCodec _txCodec;
    private readonly FrameCodec _rxCodec;
    private int _outStart;
    private int _outEnd;
    private int _inStart;
    private int _inEnd;
    private int _loanOffset = -1;
    private int _loanMax;
    private volatile bool _peerGone;

    public StreamLane(Socket socket, LaneKind kind, LaneOptions options)
    {
        _socket = socket;
        Kind = kind;
        Options = options;
        if (socket.ProtocolType == ProtocolType.Tcp)
        {
            socket.NoDelay = true;
        }

        socket.Blocking = false;
        var frameMax = FrameHeader.Size + options.MaxPayload;
        _out = new byte[Math.Max(256 * 1024, 2 * frameMax)];
        _in = new byte[Math.Max(256 * 1024, 2 * frameMax)];
        _txCodec = new FrameCodec(options.MaxPayload);
        _rxCodec = new FrameCodec(options.MaxPayload);
    }

    public LaneKind Kind { get; }

    public LaneOptions Options { get; }

    public LaneCounters Counters { get; } = new();

    public bool PeerGone => _peerGone;

    public Socket Socket => _socket;

    public bool TrySend(uint routeId, uint frameId, ReadOnlySpan<byte> payload, FrameFlags flags = FrameFlags.None)
    {
        if (!Reserve(payload.Length, wait: false))
        {
            return false;
        }

        payload.CopyTo(_out.AsSpan(_outEnd + FrameHeader.Size));
        Seal(_outEnd, payload.Length, routeId, frameId, flags);
        return true;
    }

    public bool Send(uint routeId, uint frameId, ReadOnlySpan<byte> payload, FrameFlags flags = FrameFlags.None)
    {
        if (!Reserve(payload.Length, wait: Options.Backpressure == BackpressurePolicy.Block))
        {
            return false;
        }

        payload.CopyTo(_out.AsSpan(_outEnd + FrameHeader.Size));
        Seal(_outEnd, payload.Length, routeId, frameId, flags);
        return true;
    }

    public bool CanWrite(int maxLength)
    {
        if (_peerGone)
        {
            return false;
        }

        var need = FrameHeader.Size + maxLength;
        if (_outEnd + need <= _out.Length)
        {
            return true;
        }

        TrySendSome();
        Compact();
        return _outEnd + need <= _out.Length;
    }

    public int Unsent => _outEnd - _outStart;

    public bool TryLoan(int maxLength, out Span<byte> payload)
    {
        if (!Reserve(maxLength, wait: Options.Backpressure == BackpressurePolicy.Block))
        {
            payload = default;
            return false;
        }

        _loanOffset = _outEnd;
        _loanMax = maxLength;
        payload = _out.AsSpan(_outEnd + FrameHeader.Size, maxLength);
        return true;
    }

    public void Commit(int length, uint routeId, uint frameId, FrameFlags flags = FrameFlags.None)
    {
        if (_loanOffset < 0 || (uint)length > (uint)_loanMax)
        {
            throw new InvalidOperationException("commit without a loan, or longer than the loan");
        }

        _loanOffset = -1;
        Seal(_outEnd, length, routeId, frameId, flags);
    }

    private void Seal(int offset, int length, uint routeId, uint frameId, FrameFlags flags)
    {
        _txCodec.Seal(_out.AsSpan(offset, FrameHeader.Size), _out.AsSpan(offset + FrameHeader.Size, length), flags, routeId, frameId);
        _outEnd += FrameHeader.Size + length;
        Counters.OnSent();
    }

    /// <summary>Makes room for one frame at the end of the batch, sending what is queued if needed.</summary>
    private bool Reserve(int payloadLength, bool wait)
    {
        if ((uint)payloadLength > (uint)Options.MaxPayload)
        {
            throw new ArgumentOutOfRangeException(nameof(payloadLength), $"at most {Options.MaxPayload} bytes");
        }

        if (_peerGone)
        {
            return false;
        }

        var need = FrameHeader.Size + payloadLength;
        if (_outEnd + need <= _out.Length)
        {
            return true;
        }

        Counters.OnFull();
        if (!wait)
        {
            TrySendSome();
            Compact();
            return !_peerGone && _outEnd + need <= _out.Length;
        }

        return Flush() && _outEnd + need <= _out.Length;
    }

    /// <summary>One non-blocking send of what is queued.</summary>
    private void TrySendSome()
    {
        if (_outStart == _outEnd)
        {
            return;
        }

        var n = _socket.Send(_out.AsSpan(_outStart, _outEnd - _outStart), SocketFlags.None, out var error);
        if (n > 0)
        {
            _outStart += n;
        }
        else if (error is not SocketError.WouldBlock and not SocketError.Success)
        {
            _peerGone = true;
        }
    }

    private void Compact()
    {
        if (_outStart == _outEnd)
        {
            _outStart = _outEnd = 0;
        }
        else if (_outStart > 0 && _loanOffset < 0)
        {
            _out.AsSpan(_outStart, _outEnd - _outStart).CopyTo(_out);
            _outEnd -= _outStart;
            _outStart = 0;
        }
    }

    /// <summary>
    /// Sends every queued frame, waiting while the socket buffer is full (<see cref="BackpressurePolicy.Fail"/>: sends
    /// what the socket takes now and keeps the rest; see <see cref="Unsent"/>). False when the peer is gone.
    /// </summary>
    public bool Flush()
    {
        if (Options.Backpressure == BackpressurePolicy.Fail)
        {
            TrySendSome();
            Compact();
            return !_peerGone;
        }

        while (_outStart < _outEnd && !_peerGone)
        {
            TrySendSome();
            if (_outStart < _outEnd && !_peerGone)
            {
                _socket.Poll(50_000, SelectMode.SelectWrite); // wait for room in the socket buffer
            }
        }

        Compact();
        return !_peerGone;
    }

    public int Poll(FrameHandler handler, int limit = 256)
    {
        var handled = 0;
        while (handled < limit)
        {
            var available = _inEnd - _inStart;
            if (available >= FrameHeader.Size)
            {
                var span = _in.AsSpan(_inStart, available);
                if (FrameHeader.ReadMagic(span) != FrameHeader.Magic)
                {
                    Counters.OnDrop(DropReason.BadMagic);
                    Resync();
                    continue;
                }

                var length = FrameHeader.Read(span).Length;
                if (length > (uint)Options.MaxPayload)
                {
                    Counters.OnDrop(DropReason.TooLong);
                    Resync();
                    continue;
                }

                var frameLength = FrameHeader.Size + (int)length;
                if (available >= frameLength)
                {
                    var reason = _rxCodec.Check(span[..frameLength], out var header);
                    if (reason != DropReason.None)
                    {
                        // A length or payload that does not match its CRC: trust nothing after the magic.
                        Counters.OnDrop(reason);
                        Resync();
                        continue;
                    }

                    _inStart += frameLength;
                    Counters.OnReceived();
                    handler(in header, span.Slice(FrameHeader.Size, (int)length)); // a span over the receive buffer: no copy
                    handled++;
                    continue;
                }
            }

            if (!Receive())
            {
                break;
            }
        }

        return handled;
    }

    /// <summary>Skips to the next "RTT1" after the current position (a bad frame's bytes are discarded).</summary>
    private void Resync()
    {
        var rest = _in.AsSpan(_inStart + 1, _inEnd - _inStart - 1);
        var next = rest.IndexOf(MagicBytes);
        _inStart = next >= 0 ? _inStart + 1 + next : Math.Max(_inStart + 1, _inEnd - 3); // keep a possible partial magic at the end
    }

    /// <summary>One non-blocking receive into the buffer; false when nothing came.</summary>
    private bool Receive()
    {
        if (_inStart == _inEnd)
        {
            _inStart = _inEnd = 0;
        }
        else if (_inStart > 0 && _in.Length - _inEnd < FrameHeader.Size + Options.MaxPayload)
        {
            _in.AsSpan(_inStart, _inEnd - _inStart).CopyTo(_in);
            _inEnd -= _inStart;
            _inStart = 0;
        }

        if (_peerGone)
        {
            return false;
        }

        var n = _socket.Receive(_in.AsSpan(_inEnd), SocketFlags.None, out var error);
        if (n > 0)
        {
            _inEnd += n;
            return true;
        }

        if (error != SocketError.WouldBlock)
        {
            _peerGone = true; // 0 bytes with no error is end-of-stream: the peer closed or died
        }

        return false;
    }

    public void WaitForData(TimeSpan timeout)
    {
        if (_peerGone || _inEnd - _inStart >= FrameHeader.Size)
        {
            return;
        }

        try
        {
            _socket.Poll((int)Math.Min(int.MaxValue, timeout.TotalMicroseconds), SelectMode.SelectRead);
        }
        catch (ObjectDisposedException)
        {
            _peerGone = true;
        }
    }

    /// <summary>Closes the lane for a protocol violation by the peer: the peer sees the socket close; the owner disposes it later.</summary>
    public void Break(string reason)
    {
        BrokenReason ??= reason;
        _peerGone = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Why the lane was closed for a protocol violation by the peer (null: it was not).</summary>
    public string? BrokenReason { get; private set; }

    /// <summary>Queues raw bytes (tests forge bad frames with it).</summary>
    internal void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(_out.AsSpan(_outEnd));
        _outEnd += bytes.Length;
    }

    public void Dispose()
    {
        _peerGone = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }

        _socket.Dispose();
    }
}
