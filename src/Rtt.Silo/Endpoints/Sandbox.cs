using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Silo.Endpoints;

/// <summary>
/// Runs a driver process (<c>process</c>, <c>mcp-stdio</c>) under bubblewrap when its serve block has a <c>sandbox</c>
/// (docs/security.md): new network namespace unless <c>network</c> is true, the system folders read-only, a private /tmp,
/// nothing of the workspace or home but what <c>read</c> (read-only) and <c>write</c> (read-write) name, no new privileges,
/// and a seccomp filter (made here as classic BPF) that refuses with EPERM what a service never needs: ptrace, mount,
/// kernel modules, kexec, reboot, bpf, perf, keyrings, namespace changes, raw and packet sockets.
/// </summary>
public static class Sandbox
{
    public const string Bwrap = "/usr/bin/bwrap";

    /// <summary>Read-only system folders every sandbox gets (those that exist).</summary>
    private static readonly string[] SystemPaths = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf",
        "/etc/ld.so.conf.d", "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf"];

    private static string? _unavailable;
    private static bool _probed;
    private static string? _noSeccomp;
    private static bool _seccompProbed;

    /// <summary>
    /// Run the namespace sandbox without the seccomp filter when the kernel cannot load one (<c>Security:SandboxWithoutSeccomp</c>);
    /// false (default): such a driver is refused (RTT-SEC-002). Set by the silo at start.
    /// </summary>
    public static bool AllowWithoutSeccomp { get; set; }

    /// <summary>Null when the kernel loads seccomp filters (tried with bwrap and an allow-all program); else why not.</summary>
    public static string? SeccompUnavailable()
    {
        if (_seccompProbed)
        {
            return _noSeccomp;
        }

        _seccompProbed = true;
        if (Unavailable() is { } why)
        {
            return _noSeccomp = why;
        }

        var allow = Path.Combine(Path.GetTempPath(), $"rtt-seccomp-probe-{Environment.ProcessId}.bpf");
        try
        {
            File.WriteAllBytes(allow, [0x06, 0, 0, 0, 0x00, 0x00, 0xFF, 0x7F]); // RET SECCOMP_RET_ALLOW
            var (code, err) = RunBwrap(["-c", $"exec {Bwrap} --ro-bind / / --seccomp 10 /bin/true 10<'{allow}'"], "/bin/sh");
            return _noSeccomp = code == 0 ? null : $"the kernel does not load seccomp filters ({err})";
        }
        finally
        {
            File.Delete(allow);
        }
    }

    private static (int Code, string Error) RunBwrap(IEnumerable<string> args, string file = Bwrap)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(10_000))
        {
            p.Kill();
            return (-1, "no answer in 10 s");
        }

        return (p.ExitCode, err.Result.Trim());
    }

    /// <summary>Null when bubblewrap can make namespaces here; else why not (said at start-up, never run unconfined).</summary>
    public static string? Unavailable()
    {
        if (_probed)
        {
            return _unavailable;
        }

        _probed = true;
        if (!File.Exists(Bwrap))
        {
            return _unavailable = $"{Bwrap} is not installed (Debian package bubblewrap)";
        }

        try
        {
            var info = new ProcessStartInfo(Bwrap) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { "--ro-bind", "/", "/", "--unshare-net", "--unshare-ipc", "--die-with-parent", "/bin/true" })
            {
                info.ArgumentList.Add(a);
            }

            using var p = Process.Start(info)!;
            var err = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(10_000))
            {
                p.Kill();
                return _unavailable = "bubblewrap did not finish a trial run in 10 s";
            }

            return _unavailable = p.ExitCode == 0 ? null : $"bubblewrap cannot create namespaces here: {err.Result.Trim()}";
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return _unavailable = $"bubblewrap cannot start: {ex.Message}";
        }
    }

    /// <summary>
    /// The normalized sandbox of a serve block, or null: <c>{"network": bool, "read": [paths], "write": [paths]}</c>
    /// (paths relative to the workspace root, or absolute).
    /// </summary>
    public static (bool Network, List<string> Read, List<string> Write)? Of(JsonObject serve, string root)
    {
        if (serve["sandbox"] is not JsonObject s)
        {
            return null;
        }

        List<string> Paths(string name) => [.. (s[name] as JsonArray ?? []).Select(p => Core.Calls.ServeSpec.ResolvePath(root, (string)p!))];
        return ((bool?)s["network"] ?? false, Paths("read"), Paths("write"));
    }

    /// <summary>
    /// Wraps a start: returns the ProcessStartInfo that runs <paramref name="inner"/> inside bubblewrap, with the seccomp
    /// program on descriptor 10 (opened by /bin/sh from a 0600 file in .rtt/state, then exec'd into bwrap).
    /// </summary>
    public static ProcessStartInfo Wrap(ProcessStartInfo inner, (bool Network, List<string> Read, List<string> Write) profile, RttWorkspace workspace, IEnumerable<string> sockets)
    {
        if (Unavailable() is { } why)
        {
            throw new RttException(ErrorCodes.SandboxUnavailable, $"the serve block asks for a sandbox, and {why}", "serve.sandbox",
                "install bubblewrap (apt-get install bubblewrap) and allow user namespaces, or remove serve.sandbox (the driver then runs unconfined)");
        }

        var seccomp = SeccompUnavailable() is null;
        if (!seccomp && !AllowWithoutSeccomp)
        {
            throw new RttException(ErrorCodes.SandboxUnavailable, $"the serve block asks for a sandbox, and {SeccompUnavailable()}", "serve.sandbox",
                "run on a kernel with CONFIG_SECCOMP_FILTER, or set Security:SandboxWithoutSeccomp=true to run the namespace sandbox without the filter");
        }

        var filter = Path.Combine(workspace.State, "seccomp.bpf");
        if (seccomp)
        {
            Core.Json.AtomicFile.WriteAllBytes(filter, Filter());
        }

        var args = new List<string> { "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try" };
        if (!profile.Network)
        {
            args.Add("--unshare-net");
        }

        foreach (var dir in SystemPaths.Where(Path.Exists))
        {
            args.AddRange(["--ro-bind", dir, dir]);
        }

        // The private /tmp, /proc and /dev first: a program, runtime or path under /tmp (a checkout in /tmp, say) is bound
        // over the fresh tmpfs below, not hidden by it.
        args.AddRange(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        foreach (var dir in new[] { Path.GetDirectoryName(inner.FileName), AppContext.BaseDirectory, Path.GetDirectoryName(Environment.ProcessPath) }
            .Where(d => !string.IsNullOrEmpty(d) && Directory.Exists(d)).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--ro-bind", dir!, dir!]); // the program, the runtime and the bundled samples
        }

        foreach (var dir in DotnetRoots())
        {
            args.AddRange(["--ro-bind", dir, dir]);
        }

        foreach (var path in profile.Read.Where(Path.Exists))
        {
            args.AddRange(["--ro-bind", path, path]);
        }

        foreach (var path in profile.Write)
        {
            Directory.CreateDirectory(path);
            args.AddRange(["--bind", path, path]);
        }

        foreach (var socket in sockets)
        {
            args.AddRange(["--bind", socket, socket]); // the endpoint's own socket to the silo
        }

        if (!string.IsNullOrEmpty(inner.WorkingDirectory) && Directory.Exists(inner.WorkingDirectory))
        {
            args.AddRange(["--chdir", inner.WorkingDirectory]);
        }

        if (seccomp)
        {
            args.AddRange(["--seccomp", "10"]);
        }

        args.AddRange(["--", inner.FileName]);
        args.AddRange(inner.ArgumentList);

        var wrapped = new ProcessStartInfo("/bin/sh")
        {
            WorkingDirectory = inner.WorkingDirectory,
            RedirectStandardOutput = inner.RedirectStandardOutput,
            RedirectStandardError = inner.RedirectStandardError,
            RedirectStandardInput = inner.RedirectStandardInput,
            UseShellExecute = false,
        };
        wrapped.ArgumentList.Add("-c");
        wrapped.ArgumentList.Add(seccomp ? $"exec {Bwrap} \"$@\" 10<'{filter.Replace("'", "'\\''", StringComparison.Ordinal)}'" : $"exec {Bwrap} \"$@\"");
        wrapped.ArgumentList.Add("rtt-sandbox");
        foreach (var a in args)
        {
            wrapped.ArgumentList.Add(a);
        }

        foreach (var (k, v) in inner.Environment)
        {
            wrapped.Environment[k] = v;
        }

        return wrapped;
    }

    private static IEnumerable<string> DotnetRoots()
    {
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } r && Directory.Exists(r))
        {
            roots.Add(r);
        }

        var runtime = Path.GetDirectoryName(typeof(object).Assembly.Location); // …/shared/Microsoft.NETCore.App/<v>
        if (runtime is not null && Directory.GetParent(runtime)?.Parent?.Parent?.FullName is { } dotnet && Directory.Exists(dotnet))
        {
            roots.Add(dotnet);
        }

        return roots.Distinct(StringComparer.Ordinal);
    }

    // ---- seccomp: classic BPF, struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } little-endian, 8 bytes each ----

    private const ushort LdW = 0x20;    // BPF_LD | BPF_W | BPF_ABS
    private const ushort JeqK = 0x15;   // BPF_JMP | BPF_JEQ | BPF_K
    private const ushort JsetK = 0x45;  // BPF_JMP | BPF_JSET | BPF_K
    private const ushort JgeK = 0x35;   // BPF_JMP | BPF_JGE | BPF_K
    private const ushort AndK = 0x54;   // BPF_ALU | BPF_AND | BPF_K
    private const ushort Ret = 0x06;    // BPF_RET | BPF_K
    private const uint AuditArchX8664 = 0xC000003E;
    private const uint AuditArchAarch64 = 0xC00000B7;
    private const uint Allow = 0x7FFF0000;
    private const uint KillProcess = 0x80000000;
    private const uint ErrnoEperm = 0x00050000 | 1;

    /// <summary>Syscalls refused with EPERM (x86_64 numbers; aarch64 below).</summary>
    public static readonly IReadOnlyDictionary<string, (uint X64, uint Arm64)> Denied = new Dictionary<string, (uint, uint)>
    {
        ["ptrace"] = (101, 117), ["process_vm_readv"] = (310, 270), ["process_vm_writev"] = (311, 271),
        ["mount"] = (165, 40), ["umount2"] = (166, 39), ["pivot_root"] = (155, 41), ["chroot"] = (161, 51),
        ["init_module"] = (175, 105), ["finit_module"] = (313, 273), ["delete_module"] = (176, 106),
        ["kexec_load"] = (246, 104), ["kexec_file_load"] = (320, 294), ["reboot"] = (169, 142),
        ["swapon"] = (167, 224), ["swapoff"] = (168, 225), ["acct"] = (163, 89),
        ["bpf"] = (321, 280), ["perf_event_open"] = (298, 241), ["userfaultfd"] = (323, 282),
        ["keyctl"] = (250, 219), ["add_key"] = (248, 217), ["request_key"] = (249, 218),
        ["unshare"] = (272, 97), ["setns"] = (308, 268), ["open_by_handle_at"] = (304, 265),
        ["settimeofday"] = (164, 170), ["clock_settime"] = (227, 112), ["iopl"] = (172, uint.MaxValue), ["ioperm"] = (173, uint.MaxValue),
    };

    private const uint SocketX64 = 41;
    private const uint SocketArm64 = 198;

    /// <summary>The seccomp program: arch check (other arches killed), x32 killed, the denied calls EPERM, raw/packet sockets EPERM, the rest allowed.</summary>
    public static byte[] Filter()
    {
        var arm = RuntimeInformation.ProcessArchitecture == Architecture.Arm64;
        var denied = Denied.Values.Select(v => arm ? v.Arm64 : v.X64).Where(n => n != uint.MaxValue).Order().ToList();
        var socketNr = arm ? SocketArm64 : SocketX64;
        var p = new List<(ushort Code, byte Jt, byte Jf, uint K)>
        {
            (LdW, 0, 0, 4),                                        // A = seccomp_data.arch
            (JeqK, 1, 0, arm ? AuditArchAarch64 : AuditArchX8664),
            (Ret, 0, 0, KillProcess),                              // another architecture: kill
            (LdW, 0, 0, 0),                                        // A = seccomp_data.nr
        };
        if (!arm)
        {
            p.Add((JgeK, 0, 1, 0x40000000));                        // the x32 ABI: kill
            p.Add((Ret, 0, 0, KillProcess));
        }

        // One compare per denied call: jump to the shared EPERM at the end when equal.
        var compares = denied.Count;
        var socketBlock = 6; // instructions of the socket check after its first compare
        for (var i = 0; i < compares; i++)
        {
            var toDeny = (compares - i - 1) + 1 + socketBlock + 1; // past the remaining compares, the socket check and the allow
            p.Add((JeqK, (byte)toDeny, 0, denied[i]));
        }

        // socket(domain, type, …): AF_PACKET (17) or SOCK_RAW (3) refused.
        p.Add((JeqK, 0, (byte)socketBlock, socketNr));             // not socket(): skip to allow
        p.Add((LdW, 0, 0, 16));                                    // A = args[0] (low 32 bits): domain
        p.Add((JeqK, 5, 0, 17));                                   // AF_PACKET -> deny
        p.Add((LdW, 0, 0, 24));                                    // A = args[1]: type
        p.Add((AndK, 0, 0, 0xF));                                  // without SOCK_NONBLOCK / SOCK_CLOEXEC
        p.Add((JeqK, 2, 0, 3));                                    // SOCK_RAW -> deny
        p.Add((Ret, 0, 0, Allow));                                 // another socket: allowed
        p.Add((Ret, 0, 0, Allow));                                 // not denied: allowed
        p.Add((Ret, 0, 0, ErrnoEperm));                            // denied

        var bytes = new byte[p.Count * 8];
        for (var i = 0; i < p.Count; i++)
        {
            var span = bytes.AsSpan(i * 8, 8);
            BinaryPrimitives.WriteUInt16LittleEndian(span, p[i].Code);
            span[2] = p[i].Jt;
            span[3] = p[i].Jf;
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], p[i].K);
        }

        return bytes;
    }
}
