using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Grains;

/// <summary>
/// A capability token carried as an argument of the management call it is for (apply, apply as a change, rollback; the
/// ping grain's guarded method): the silo's incoming grain call filter verifies and spends it, then clears the argument,
/// so the grain never sees it (docs/security.md). Cheaper than the request context (<see cref="ManagementCalls.Present(string)"/>),
/// which every other management call still takes. Its text is never shown by <see cref="ToString"/>, which logs and
/// exception messages use.
/// </summary>
[GenerateSerializer, Immutable, Alias("rtt.ManagementToken")]
public sealed record ManagementToken([property: Id(0)] string Text)
{
    public override string ToString() => "ManagementToken { (not shown) }";
}

/// <summary>
/// Makes the capability token a management call needs (docs/security.md): as an argument of the call
/// (<see cref="Token(RttWorkspace, string)"/>: apply, apply as a change, rollback) or presented with the next management
/// call of this async flow (<see cref="Present(RttWorkspace, string)"/>: every other one). The silo's incoming grain call
/// filter verifies and spends it, so each state-changing call needs its own.
/// </summary>
public static class ManagementCalls
{
    /// <summary>
    /// A fresh token for <paramref name="operation"/> (apply, rollback, admin) issued with the workspace's signing key: a MAC
    /// token when the silo running on this workspace signs with the same key (its silo.json says so), else a sealed one.
    /// </summary>
    public static ManagementToken Token(RttWorkspace workspace, string operation) => Mint(workspace, operation).Token;

    /// <summary>
    /// The same with a key the caller keeps (a client app making many calls): a MAC token when <paramref name="silo"/> (its
    /// silo.json, read once) signs with <paramref name="key"/> (compact when it reads those), a sealed token otherwise
    /// (docs/tokens.md, MAC tokens).
    /// </summary>
    public static ManagementToken Token(Rtt.Core.Signing.SigningKey key, string operation, SiloInfo? silo) => new(ManagementTokens.MintFor(key, operation, silo));

    /// <summary>
    /// Makes a management call from a client of the silo running on <paramref name="workspace"/> with a fresh token for
    /// <paramref name="operation"/>: <paramref name="withToken"/> with the token as its argument, or, when the silo's
    /// silo.json does not say it takes one (a silo of an earlier version still running), <paramref name="inContext"/>
    /// with the token in the request context. A silo without a silo.json here (another machine's) is taken to be of this version.
    /// </summary>
    public static Task<T> Call<T>(RttWorkspace workspace, string operation, Func<ManagementToken, Task<T>> withToken, Func<Task<T>> inContext)
    {
        var (token, silo) = Mint(workspace, operation);
        if (silo is null || silo.TokenArgument)
        {
            return withToken(token);
        }

        Present(token.Text);
        return inContext();
    }

    // A token from the workspace's key for the silo running on it, with that silo's silo.json (null: none here).
    private static (ManagementToken Token, SiloInfo? Silo) Mint(RttWorkspace workspace, string operation)
    {
        var silo = SiloInfo.ReadLive(workspace.SiloInfoPath);
        using var key = workspace.LoadSigningKey();
        return (Token(key, operation, silo), silo);
    }

    /// <summary><see cref="Token(RttWorkspace, string)"/> presented with the next management call of this async flow, in its request context.</summary>
    public static void Present(RttWorkspace workspace, string operation) => Present(Token(workspace, operation).Text);

    /// <summary><see cref="Token(Rtt.Core.Signing.SigningKey, string, SiloInfo?)"/> presented with the next management call of this async flow.</summary>
    public static void Present(Rtt.Core.Signing.SigningKey key, string operation, SiloInfo? silo) => Present(Token(key, operation, silo).Text);

    /// <summary>A token the caller has (e.g. from `rtt token issue --saddr rtt://rtt/manage/admin --verb tx`), presented with the next management call of this async flow.</summary>
    public static void Present(string token) => RequestContext.Set(ManagementTokens.ContextKey, token);
}
