using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Silo.Hosting;

/// <summary>
/// One silo per workspace: an exclusive lock on <c>.rtt/state/silo.lock</c> (flock, released by the kernel when the
/// process ends, even by kill -9), taken before anything else is touched and held for the silo's life. A second
/// `rtt up` on the same workspace is refused naming the running one, instead of starting beside it on other ports and
/// removing its silo.json and lane socket when it exits.
/// </summary>
public sealed class SiloLock : IDisposable
{
    private readonly FileStream _file;

    private SiloLock(FileStream file) => _file = file;

    public static SiloLock Acquire(RttWorkspace workspace)
    {
        Directory.CreateDirectory(workspace.State);
        var path = Path.Combine(workspace.State, "silo.lock");
        try
        {
            // FileShare.None is an exclusive flock on Linux: a second process (or a second open here) fails at once.
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            file.SetLength(0);
            file.Write(System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            file.Flush();
            return new SiloLock(file);
        }
        catch (IOException)
        {
            var running = SiloInfo.ReadLive(workspace.SiloInfoPath);
            var who = running is null
                ? "another silo is starting or running on this workspace"
                : $"a silo already runs on this workspace (pid {running.ProcessId}, node {running.NodeId}, gateway port {running.GatewayPort}, since {running.Started:u})";
            throw new HostingException(ErrorCodes.SiloAlreadyRunning, who, path,
                "use that silo (rtt status, rtt apply …), or stop it first; one workspace has one silo");
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new HostingException(ErrorCodes.StateUnwritable, $"cannot open the silo lock: {ex.Message}", path, "make the state folder writable");
        }
    }

    public void Dispose() => _file.Dispose();
}
