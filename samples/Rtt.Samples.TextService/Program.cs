using System.Text;
using Rtt.Fabric.Services;

// A `process` service for RTT (docs/calls.md): each request's payload is UTF-8 text; the answer is "<tag>:" and the
// text in upper case. `--tag v2` makes a second version to hot-swap to; `--fail-at-start` exits at once (tests);
// `--touch PATH` creates PATH at start and `--attach-after PATH` attaches only once PATH exists (at most 60 s), so two
// services can each wait for the other to have started (tests of endpoints started side by side).
var tag = "v1";
var probes = false;
string? attachAfter = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--allow-probes":
            probes = true; // tests of the driver sandbox (docs/security.md): "probe:tcp:PORT", "probe:write:PATH", "probe:read:PATH", "probe:ptrace"
            break;
        case "--tag" when i + 1 < args.Length:
            tag = args[++i];
            break;
        case "--fail-at-start":
            Console.Error.WriteLine("text-service: failing at start as asked");
            return 3;
        case "--never-attach":
            Thread.Sleep(Timeout.Infinite);
            return 0;
        case "--touch" when i + 1 < args.Length:
            File.WriteAllText(args[++i], "started\n");
            break;
        case "--attach-after" when i + 1 < args.Length:
            attachAfter = args[++i];
            break;
    }
}

for (var waited = 0; attachAfter is not null && !File.Exists(attachAfter); waited += 20)
{
    if (waited >= 60_000)
    {
        Console.Error.WriteLine($"text-service: {attachAfter} did not appear in 60 s");
        return 4;
    }

    Thread.Sleep(20);
}

var prefix = Encoding.UTF8.GetBytes(tag + ":");
Console.Error.WriteLine($"text-service {tag} attaching");
return ServiceHost.Run((request, response) =>
{
    if (probes && request.StartsWith("probe:"u8))
    {
        var text = Encoding.UTF8.GetBytes(Probe(Encoding.UTF8.GetString(request)));
        text.CopyTo(response);
        return text.Length;
    }

    prefix.CopyTo(response);
    var written = prefix.Length;
    foreach (var b in request)
    {
        response[written++] = b is >= (byte)'a' and <= (byte)'z' ? (byte)(b - 32) : b; // ASCII upper case, other bytes as they are
    }

    return written;
});

// What the sandbox should forbid, tried for real; the answer says what happened ("ok …" or "denied …").
static string Probe(string what)
{
    var parts = what.Split(':', 3);
    try
    {
        switch (parts[1])
        {
            case "tcp":
                using (var client = new System.Net.Sockets.TcpClient())
                {
                    client.Connect(System.Net.IPAddress.Loopback, int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture));
                }

                return "ok connected";
            case "write":
                File.WriteAllText(parts[2], "written by text-service");
                return "ok written";
            case "read":
                return "ok read " + File.ReadAllText(parts[2]).Length + " chars";
            case "ptrace":
                // PTRACE_PEEKDATA on the parent, which this process does not trace: ESRCH (3) normally, EPERM (1) under the filter.
                var r = PtraceNative.Ptrace(2, PtraceNative.GetParentPid(), IntPtr.Zero, IntPtr.Zero);
                return r == -1 ? $"denied errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}" : "ok traced";
            default:
                return "denied unknown probe";
        }
    }
    catch (Exception ex)
    {
        return $"denied {ex.GetType().Name}: {ex.Message}";
    }
}

internal static class PtraceNative
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "ptrace", SetLastError = true)]
    internal static extern long Ptrace(long request, int pid, IntPtr addr, IntPtr data);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "getppid")]
    internal static extern int GetParentPid();
}
