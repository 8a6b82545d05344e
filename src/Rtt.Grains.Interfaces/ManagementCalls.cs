using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Grains;

/// <summary>
/// Presents a capability token with the next management call of this async flow (docs/security.md): the silo's
/// incoming grain call filter verifies and spends it, so each state-changing call needs its own.
/// </summary>
public static class ManagementCalls
{
    /// <summary>
    /// A fresh token for <paramref name="operation"/> (apply, rollback, admin) issued with the workspace's signing key: a MAC
    /// token when the silo running on this workspace signs with the same key (its silo.json says so), else a sealed one.
    /// </summary>
    public static void Present(RttWorkspace workspace, string operation)
    {
        using var key = workspace.LoadSigningKey();
        Present(key, operation, SiloInfo.ReadLive(workspace.SiloInfoPath));
    }

    /// <summary>
    /// The same with a key the caller keeps (a client app making many calls): a MAC token when <paramref name="silo"/> (its
    /// silo.json, read once) signs with <paramref name="key"/> (compact when it reads those), a sealed token otherwise
    /// (docs/tokens.md, MAC tokens).
    /// </summary>
    public static void Present(Rtt.Core.Signing.SigningKey key, string operation, SiloInfo? silo) => Present(ManagementTokens.MintFor(key, operation, silo));

    /// <summary>A token the caller has (e.g. from `rtt token issue --saddr rtt://rtt/manage/apply --verb tx`).</summary>
    public static void Present(string token) => RequestContext.Set(ManagementTokens.ContextKey, token);
}
