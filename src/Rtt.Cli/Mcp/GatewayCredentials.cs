using System.Collections.Concurrent;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Rtt.Core.Errors;
using Rtt.Core.Tokens;

namespace Rtt.Cli.Mcp;

/// <summary>
/// What an HTTP client of <c>rtt mcp serve</c> may do (docs/gateway.md): the workspace's gateway credential reaches every
/// tool the gateway serves; a capability token (<c>rtt1.…</c>, docs/tokens.md) reaches the tools whose target symbol it
/// allows <c>open</c>, <c>tx</c> and <c>rx</c> on, the rights an attach of that route's lane would need, so a gateway never
/// widens a token.
/// </summary>
public sealed record GatewayAccess(string Principal, TokenRights? Rights)
{
    public const string AuthenticationType = "rtt-bearer";

    /// <summary>The workspace credential's access: everything the gateway serves.</summary>
    public static readonly GatewayAccess Workspace = new("workspace", null);

    public bool Allows(string symbol) =>
        Rights is null || (Rights.Covers(symbol) && Rtt.Fabric.Routing.LaneAdmission.AttachVerbs.All(v => Rights.Verbs.Contains(v)));

    private const string SaddrClaim = "rtt:saddr";
    private const string VerbClaim = "rtt:verb";

    /// <summary>
    /// The principal the SDK carries with every message of the request (its NameIdentifier binds a session to it), with a
    /// token's pattern and verbs as claims.
    /// </summary>
    public ClaimsPrincipal ToPrincipal()
    {
        List<Claim> claims = [new(ClaimTypes.NameIdentifier, Principal)];
        if (Rights is not null)
        {
            claims.Add(new(SaddrClaim, Rights.Saddr));
            claims.AddRange(Rights.Verbs.Select(v => new Claim(VerbClaim, v)));
        }

        return new(new ClaimsIdentity(claims, AuthenticationType));
    }

    /// <summary>The access a request's principal carries (null when the message came by another way, e.g. stdio).</summary>
    public static GatewayAccess? FromPrincipal(ClaimsPrincipal? user)
    {
        if (user?.Identity?.AuthenticationType != AuthenticationType || user.FindFirst(ClaimTypes.NameIdentifier)?.Value is not { } name)
        {
            return null;
        }

        return user.FindFirst(SaddrClaim)?.Value is { } saddr
            ? new GatewayAccess(name, new TokenRights(saddr, [.. user.FindAll(VerbClaim).Select(c => c.Value)], [], default, default))
            : new GatewayAccess(name, null);
    }
}

/// <summary>
/// Checks the bearer credential of every HTTP request. A capability token is verified on every request (chain, issuer
/// trusted, not revoked, not expired: a revocation takes effect at once); its nonce is spent on the first request that
/// presents it, and the same token is then this client's bearer credential until it expires (an MCP session sends it
/// with each request). Thread-safe.
/// </summary>
public sealed class GatewayCredentials(byte[] workspaceToken, TokenVerifier? verifier, TimeProvider? time = null, int capacity = 10_000)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, (GatewayAccess Access, DateTimeOffset Expires)> _admitted = new(StringComparer.Ordinal);
    private readonly object _spend = new();

    /// <summary>The access the bearer value gives, or null with the reason (never echoing the value).</summary>
    public GatewayAccess? Check(string bearer, out string refusal)
    {
        refusal = "";
        if (bearer.StartsWith(CapabilityToken.Prefix, StringComparison.Ordinal) && verifier is not null)
        {
            return CheckToken(bearer, out refusal);
        }

        if (CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(bearer), workspaceToken))
        {
            return GatewayAccess.Workspace;
        }

        refusal = "the bearer credential is not valid";
        return null;
    }

    private GatewayAccess? CheckToken(string text, out string refusal)
    {
        refusal = "";
        CapabilityToken token;
        try
        {
            token = verifier!.Verify(text);
        }
        catch (TokenException ex)
        {
            refusal = $"the capability token is refused ({ex.Code})";
            return null;
        }

        var key = Key(text);
        if (_admitted.TryGetValue(key, out var known))
        {
            return known.Access;
        }

        lock (_spend)
        {
            if (_admitted.TryGetValue(key, out known))
            {
                return known.Access;
            }

            try
            {
                verifier!.Consume(token);
            }
            catch (TokenException ex)
            {
                refusal = $"the capability token is refused ({ex.Code})";
                return null;
            }

            Forget();
            if (_admitted.Count >= capacity)
            {
                refusal = $"the capability token is refused ({ErrorCodes.TokenReplayCacheFull}: {capacity} tokens are in use)";
                return null;
            }

            var access = new GatewayAccess("token:" + token.TokenId, token.Rights);
            _admitted[key] = (access, token.Rights.Expires);
            return access;
        }
    }

    private void Forget()
    {
        var now = _time.GetUtcNow();
        foreach (var (key, entry) in _admitted)
        {
            if (entry.Expires <= now)
            {
                _admitted.TryRemove(key, out _);
            }
        }
    }

    private static string Key(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
