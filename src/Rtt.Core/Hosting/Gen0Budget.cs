using System.Runtime.InteropServices;
using System.Text;

namespace Rtt.Core.Hosting;

/// <summary>
/// The garbage collector's generation-0 budget for rtt's long-running processes (the silo host, the benchmarks): 16 MiB
/// where the runtime cannot see the processor's caches. The runtime sizes generation 0 from the last-level cache it reads
/// from <c>/sys/devices/system/cpu/cpu0/cache</c>; a virtual machine that does not expose that folder (the Firecracker
/// VMs measured) leaves it at its fallback, about 2.5 MiB here, and a silo then collects every few hundred
/// management calls, each collection stopping every thread for about a millisecond on two busy cores (docs/operations.md,
/// "Control-path latency"). The setting has no runtimeconfig.json form, only the environment variable
/// <c>DOTNET_GCgen0size</c>, read when the runtime starts: such a process replaces itself once (execve: same process id,
/// arguments, descriptors) with the variable set. A variable already set (to any value; 0 is the runtime's own choice)
/// is left alone, and so is a host whose caches are visible.
/// </summary>
public static partial class Gen0Budget
{
    public const string Variable = "DOTNET_GCgen0size";
    public const string Value = "0x1000000"; // 16 MiB: a collection per ~2,000 management calls in a silo instead of per ~300
    public const string CacheFolder = "/sys/devices/system/cpu/cpu0/cache";

    /// <summary>Whether a process in this environment should start again with <see cref="Variable"/> set.</summary>
    public static bool Wanted(Func<string, string?> environment, bool cachesVisible, bool linux) =>
        linux && !cachesVisible && environment(Variable) is null && environment("COMPlus_GCgen0size") is null;

    /// <summary>
    /// Starts this process again with the budget set, when <see cref="Wanted"/>; returns only when it is not wanted or the
    /// system call failed (the process then runs with the runtime's budget, as before).
    /// </summary>
    public static void Apply()
    {
        if (!Wanted(Environment.GetEnvironmentVariable, Directory.Exists(CacheFolder), OperatingSystem.IsLinux()) || Environment.ProcessPath is not { } self)
        {
            return;
        }

        List<byte[]> argv, environment;
        try
        {
            // The arguments and the environment exactly as this process got them, byte for byte (`dotnet rtt.dll up …` or
            // the apphost's `rtt up …`; an empty argument, or bytes that are not UTF-8, stay what they were).
            argv = Entries(File.ReadAllBytes("/proc/self/cmdline"));
            environment = Entries(File.ReadAllBytes("/proc/self/environ"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }

        environment.Add(Encoding.ASCII.GetBytes($"{Variable}={Value}"));
        Console.Out.Flush();
        Console.Error.Flush();
        var args = Pointers(argv);
        var env = Pointers(environment);
        try
        {
            _ = Execve(self, args, env); // returns only on failure
        }
        finally
        {
            Free(args);
            Free(env);
        }
    }

    /// <summary>The NUL-terminated entries of a /proc list (each without its NUL).</summary>
    internal static List<byte[]> Entries(ReadOnlySpan<byte> list)
    {
        var entries = new List<byte[]>();
        while (!list.IsEmpty)
        {
            var end = list.IndexOf((byte)0);
            if (end < 0)
            {
                end = list.Length; // a last entry without its NUL (not written so by the kernel)
            }

            entries.Add(list[..end].ToArray());
            list = list[Math.Min(end + 1, list.Length)..];
        }

        return entries;
    }

    private static nint[] Pointers(List<byte[]> values)
    {
        var pointers = new nint[values.Count + 1]; // null-terminated
        for (var i = 0; i < values.Count; i++)
        {
            var p = Marshal.AllocHGlobal(values[i].Length + 1);
            Marshal.Copy(values[i], 0, p, values[i].Length);
            Marshal.WriteByte(p, values[i].Length, 0);
            pointers[i] = p;
        }

        return pointers;
    }

    private static void Free(nint[] pointers)
    {
        foreach (var p in pointers)
        {
            Marshal.FreeHGlobal(p);
        }
    }

    [LibraryImport("libc", EntryPoint = "execve", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Execve(string path, nint[] argv, nint[] envp);
}
