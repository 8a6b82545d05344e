using Rtt.Core.Signing;

namespace Rtt.Core.Tokens;

/// <summary>
/// Tokens for the silo's management operations (docs/security.md): a client call that changes state (apply, rollback, and
/// every other write: "admin") carries a token allowing <c>tx</c> on <c>rtt://rtt/manage/&lt;operation&gt;</c> in the Orleans
/// request context under <see cref="ContextKey"/>; an incoming grain call filter verifies and spends it.
/// </summary>
public static class ManagementTokens
{
    public const string ContextKey = "rtt.token";
    public const string Apply = "apply";
    public const string Rollback = "rollback";
    public const string Admin = "admin";
    public static readonly string[] Verbs = ["tx"];

    private const string SymbolPrefix = "rtt://rtt/manage/";
    private const string ApplySymbol = SymbolPrefix + Apply;
    private const string RollbackSymbol = SymbolPrefix + Rollback;
    private const string AdminSymbol = SymbolPrefix + Admin;

    /// <summary>The symbol a token for <paramref name="operation"/> names (the three operations' are constants: every management call asks).</summary>
    public static string Symbol(string operation) => operation switch
    {
        Apply => ApplySymbol,
        Rollback => RollbackSymbol,
        Admin => AdminSymbol,
        _ => SymbolPrefix + operation,
    };

    /// <summary>A short-lived, sealed token for one management call, issued by <paramref name="key"/>.</summary>
    public static string Mint(SigningKey key, string operation, TimeProvider? time = null) =>
        CapabilityToken.IssueSealed(key, Symbol(operation), Verbs, [], TimeSpan.FromMinutes(2), (time ?? TimeProvider.System).GetUtcNow());

    /// <summary>
    /// The same as a MAC token (docs/tokens.md): for a caller holding the private key the silo signs with, checked by two
    /// hashes instead of two Ed25519 verifications.
    /// </summary>
    /// <param name="ttl">How long it lives (2 minutes unless given): its nonce is kept as spent that long (the silo keeps at
    /// most 100,000), so a caller making thousands of calls a second (a benchmark) gives its tokens a few seconds.</param>
    public static string MintMac(SigningKey key, string operation, TimeProvider? time = null, TimeSpan? ttl = null) =>
        CapabilityToken.IssueMac(key, Symbol(operation), Verbs, [], ttl ?? TimeSpan.FromMinutes(2), (time ?? TimeProvider.System).GetUtcNow());

    /// <summary>
    /// <see cref="MintMac"/> in the compact form (<c>rttm2</c>, docs/tokens.md): 212 characters instead of 537 (an apply's), written and read
    /// without JSON. Only for a silo whose silo.json says it reads it (<c>mac_format</c> 2).
    /// </summary>
    public static string MintCompactMac(SigningKey key, string operation, TimeProvider? time = null, TimeSpan? ttl = null) =>
        CapabilityToken.IssueMac2(key, Symbol(operation), Verbs, [], ttl ?? TimeSpan.FromMinutes(2), (time ?? TimeProvider.System).GetUtcNow());

    /// <summary>
    /// The token a caller holding <paramref name="key"/> presents for <paramref name="operation"/> to the silo <paramref name="silo"/>
    /// (its silo.json): a MAC token when that silo signs with the same key (compact when its <c>mac_format</c> is 2 or more, the
    /// JSON form for a silo from before), a sealed token otherwise (another key the silo trusts, no silo.json).
    /// </summary>
    /// <param name="macTtl">How long a MAC token lives (2 minutes unless given; see <see cref="MintMac"/>).</param>
    public static string MintFor(SigningKey key, string operation, Workspace.SiloInfo? silo, TimeSpan? macTtl = null) =>
        silo?.SigningKeyId != key.KeyId ? Mint(key, operation)
        : silo.MacFormat >= 2 ? MintCompactMac(key, operation, ttl: macTtl)
        : MintMac(key, operation, ttl: macTtl);

    /// <summary>A short-lived, sealed lane token for one attach to <paramref name="saddr"/> (what rtt call and probes present).</summary>
    public static string MintLane(SigningKey key, string saddr, TimeSpan ttl, TimeProvider? time = null) =>
        CapabilityToken.IssueSealed(key, saddr, ["open", "rx", "tx"], [], ttl, (time ?? TimeProvider.System).GetUtcNow());
}
