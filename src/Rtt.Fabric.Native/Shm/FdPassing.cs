using System.Net.Sockets;
using System.Runtime.InteropServices;
using Rtt.Core.Errors;
using Rtt.Fabric.Interop;

namespace Rtt.Fabric.Shm;

/// <summary>Sends and receives one file descriptor with a small message over a connected Unix socket (SCM_RIGHTS).</summary>
public static unsafe class FdPassing
{
    public static void Send(Socket socket, ReadOnlySpan<byte> message, int fd)
    {
        fixed (byte* p = message)
        {
            var iov = new Libc.IoVec { Base = p, Length = (nuint)message.Length };
            var control = new Libc.CmsgFd { Length = 20, Level = Libc.SolSocket, Type = Libc.ScmRights, Fd = fd };
            var header = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Libc.CmsgFd) };
            var sent = Libc.SendMsg((int)socket.Handle, &header, 0);
            if (sent != message.Length)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, $"sendmsg with a file descriptor failed (errno {Marshal.GetLastPInvokeError()})", "control socket",
                    "the peer closed the control socket during the handshake");
            }
        }
    }

    /// <summary>Receives exactly <paramref name="message"/>.Length bytes and the fd sent with them (-1 if none came).</summary>
    public static int Receive(Socket socket, Span<byte> message)
    {
        fixed (byte* p = message)
        {
            var iov = new Libc.IoVec { Base = p, Length = (nuint)message.Length };
            var control = default(Libc.CmsgFd);
            var header = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Libc.CmsgFd) };
            var received = Libc.RecvMsg((int)socket.Handle, &header, Libc.MsgCmsgCloexec);
            if (received <= 0)
            {
                throw new RttException(ErrorCodes.LaneAttachFailed, received == 0 ? "the peer closed the control socket" : $"recvmsg failed (errno {Marshal.GetLastPInvokeError()})",
                    "control socket", "start the peer again; check it speaks the same protocol version");
            }

            var fd = header.ControlLength >= 20 && control.Level == Libc.SolSocket && control.Type == Libc.ScmRights ? control.Fd : -1;
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
