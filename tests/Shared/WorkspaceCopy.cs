namespace Rtt.Tests.Shared;

/// <summary>
/// A copy of a workspace folder for another silo of a cluster (same keys, routes, policy, topology), keeping the
/// modes: <c>.rtt/</c> folders stay 0700 and private keys 0600 (a silo refuses more open ones, RTT-SEC-001). Linked
/// source, one copy: the cluster process tests and bench/Rtt.Cluster.Bench.
/// </summary>
public static class WorkspaceCopy
{
    public static void CopyTree(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
        {
            var target = Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, d))).FullName;
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(target, File.GetUnixFileMode(d));
            }
        }

        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(target, File.GetUnixFileMode(f));
            }
        }
    }
}
