using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Grains;

/// <summary>
/// Presents a capability token with the next management call of this async flow (docs/security.md): the silo's
/// incoming grain call filter verifies and spends it, so each state-changing call needs its own.
/// </summary>
public static class ManagementCalls
{
    /// <summary>A fresh token for <paramref name="operation"/> (apply, rollback, admin) issued with the workspace's signing key.</summary>
    public static void Present(RttWorkspace workspace, string operation)
    {
        using var key = workspace.LoadSigningKey();
        Present(ManagementTokens.Mint(key, operation));
    }

    /// <summary>A token the caller has (e.g. from `rtt token issue --saddr rtt://rtt/manage/apply --verb tx`).</summary>
    public static void Present(string token) => RequestContext.Set(ManagementTokens.ContextKey, token);
}
