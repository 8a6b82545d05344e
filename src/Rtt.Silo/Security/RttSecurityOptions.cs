using Rtt.Core.Errors;

namespace Rtt.Silo.Security;

/// <summary>The <c>Security</c> configuration section (docs/security.md).</summary>
public sealed class RttSecurityOptions
{
    /// <summary>
    /// <c>dev</c> (default): a lane attach over the Unix socket from the silo's own user needs no token (the quickstart
    /// works as it is); TCP attaches and management calls always need one. <c>strict</c>: every attach needs a token too.
    /// </summary>
    public string Mode { get; set; } = "dev";

    /// <summary>Spent nonces the replay cache holds at most (tokens still unexpired).</summary>
    public int ReplayCacheSize { get; set; } = 100_000;

    /// <summary>
    /// On a kernel that cannot load seccomp filters, run sandboxed drivers in their bubblewrap namespaces without the filter
    /// (said at start) instead of refusing them (RTT-SEC-002, the default).
    /// </summary>
    public bool SandboxWithoutSeccomp { get; set; }

    public bool Strict => Mode == "strict";

    public void Validate()
    {
        if (Mode is not ("dev" or "strict") || ReplayCacheSize is < 16 or > 10_000_000)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"Security:Mode \"{Mode}\" / ReplayCacheSize {ReplayCacheSize} are not usable", "Security:Mode",
                "use Security:Mode dev or strict (RTT_Security__Mode=strict), and a ReplayCacheSize from 16 to 10,000,000");
        }
    }
}
