using System.Net;
using System.Net.Sockets;
using Rtt.Core.Errors;

namespace Rtt.Fabric.Streams;

/// <summary>Opening the sockets lanes run on: Unix domain sockets by path, TCP on an address.</summary>
public static class LaneSockets
{
    public static Socket ListenUnix(string path, int backlog = 16)
    {
        if (Directory.Exists(path))
        {
            throw new RttException(ErrorCodes.LaneSetupFailed, "a folder is where the lane socket goes", path,
                "remove or move the folder away (rtt creates the socket there and never deletes a folder)");
        }

        if (File.Exists(path))
        {
            if (!Rtt.Core.Json.WorkspaceFiles.IsSocket(path))
            {
                throw new RttException(ErrorCodes.LaneSetupFailed, "a file that is not a socket is where the lane socket goes", path,
                    "move the file away: rtt replaces only a socket left by a process that died, never another file");
            }

            File.Delete(path); // a socket file left by a process that died
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            // 0600 before listen: bind gives the socket 0777 less the umask, and a connect before listen is refused,
            // so no other user can attach in between (docs/security.md).
            Rtt.Core.Workspace.WorkspaceModes.RestrictFile(path);
            socket.Listen(backlog);
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RttException(ErrorCodes.LaneSetupFailed, $"cannot listen on {path}: {ex.Message}", path, $"check the folder exists and is writable, and the path is at most {Rtt.Core.Lanes.LaneDefaults.MaxSocketPath} characters");
        }
    }

    public static Socket ConnectUnix(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RttException(ErrorCodes.LaneAttachFailed, $"nothing answers on {path}: {ex.Message}", path, "start the silo (rtt up) or the peer first");
        }
    }

    public static Socket ListenTcp(IPAddress address, int port, int backlog = 16)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(backlog);
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RttException(ErrorCodes.LaneSetupFailed, $"cannot listen on {address}:{port}: {ex.Message}", $"{address}:{port}", "choose a free port");
        }
    }

    public static Socket ConnectTcp(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.Connect(endPoint);
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RttException(ErrorCodes.LaneAttachFailed, $"nothing answers on {endPoint}: {ex.Message}", endPoint.ToString(), "start the silo (rtt up) or the peer first");
        }
    }
}
