using System.Text;
using Rtt.Fabric.Services;

// A `process` service for RTT (docs/calls.md): each request's payload is UTF-8 text; the answer is "<tag>:" and the
// text in upper case. `--tag v2` makes a second version to hot-swap to; `--fail-at-start` exits at once (tests).
var tag = "v1";
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--tag" when i + 1 < args.Length:
            tag = args[++i];
            break;
        case "--fail-at-start":
            Console.Error.WriteLine("text-service: failing at start as asked");
            return 3;
        case "--never-attach":
            Thread.Sleep(Timeout.Infinite);
            return 0;
    }
}

var prefix = Encoding.UTF8.GetBytes(tag + ":");
Console.Error.WriteLine($"text-service {tag} attaching");
return ServiceHost.Run((request, response) =>
{
    prefix.CopyTo(response);
    var written = prefix.Length;
    foreach (var b in request)
    {
        response[written++] = b is >= (byte)'a' and <= (byte)'z' ? (byte)(b - 32) : b; // ASCII upper case, other bytes as they are
    }

    return written;
});
