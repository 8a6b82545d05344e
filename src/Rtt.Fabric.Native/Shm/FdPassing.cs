using System.Net.Sockets;
using System.Runtime.InteropServices;
using Rtt.Core.Errors;
using Rtt.Fabric.Interop;

namespace Rtt.Fabric.Shm;

/// <summary>Sends and receives one or two file descriptors with a small message over a connected Unix socket (SCM_RIGHTS).</summary>
public static unsafe class FdPassing
{
    public static void Send(Socket socket, ReadOnlySpan<byte> message, int fd) => Send(socket, message, fd, -1);

    /// <summary>Sends <paramref name="fd"/> and, unless it is -1, <paramref name="second"/> with the message.</summary>
    public static void Send(Socket socket, ReadOnlySpan<byte> message, int fd, int second)
    {
        fixed (byte* p = message)
        {
            var iov = new Libc.IoVec { Base = p, Length = (nuint)message.Length };
            var control = new Libc.CmsgFd2 { Length = second < 0 ? 20u : 24u, Level = Libc.SolSocket, Type = Libc.ScmRights, Fd0 = fd, Fd1 = second };
            var header = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Libc.CmsgFd2) };
            var sent = Libc.SendMsg((int)socket.Handle, &header, 0);
            if (sent != message.Length)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, $"sendmsg with a file descriptor failed (errno {Marshal.GetLastPInvokeError()})", "control socket",
                    "the peer closed the control socket during the handshake");
            }
        }
    }

    /// <summary>Receives exactly <paramref name="message"/>.Length bytes and the fd sent with them (-1 if none came; a second one is closed).</summary>
    public static int Receive(Socket socket, Span<byte> message)
    {
        var fd = Receive(socket, message, out var second);
        if (second >= 0)
        {
            _ = Libc.Close(second);
        }

        return fd;
    }

    /// <summary>Receives exactly <paramref name="message"/>.Length bytes and the one or two fds sent with them (-1 for each that did not come).</summary>
    public static int Receive(Socket socket, Span<byte> message, out int second)
    {
        second = -1;
        fixed (byte* p = message)
        {
            var iov = new Libc.IoVec { Base = p, Length = (nuint)message.Length };
            var control = new Libc.CmsgFd2 { Fd0 = -1, Fd1 = -1 };
            var header = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Libc.CmsgFd2) };
            var received = Libc.RecvMsg((int)socket.Handle, &header, Libc.MsgCmsgCloexec);
            if (received <= 0)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, received == 0 ? "the peer closed the control socket" : $"recvmsg failed (errno {Marshal.GetLastPInvokeError()})",
                    "control socket", "start the peer again; check it speaks the same protocol version");
            }

            var rights = header.ControlLength >= 20 && control.Level == Libc.SolSocket && control.Type == Libc.ScmRights;
            var fd = rights ? control.Fd0 : -1;
            second = rights && control.Length >= 24 ? control.Fd1 : -1;
            if (received < message.Length)
            {
                // The rest of a short message comes as plain bytes (a stream socket may split it).
                ReadExactly(socket, message[(int)received..]);
            }

            return fd;
        }
    }

    public static void ReadExactly(Socket socket, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var n = socket.Receive(buffer);
            if (n == 0)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, "the peer closed the control socket", "control socket", "start the peer again");
            }

            buffer = buffer[n..];
        }
    }
}
