using Rtt.Core.Errors;
using Rtt.Core.Tokens;
using Rtt.Grains;
using Rtt.Grains.Reconciling;

namespace Rtt.Silo.Security;

/// <summary>
/// Checks a capability token on every state-changing call that comes from a client (the gateway, or the silo's own
/// hosted client): apply needs <c>rtt://rtt/manage/apply</c>, rollback <c>…/rollback</c>, any other write to an RTT grain
/// or Orleans' management grain <c>…/admin</c>, each with verb <c>tx</c>; the token's nonce is spent (one token, one call).
/// Reads (status, history, registry look-ups, WAL root) need none; grain-to-grain calls are not checked. Refusals reach
/// the caller as RttGrainException with the RTT-TOKEN code (docs/security.md). The token is the call's
/// <see cref="ManagementToken"/> argument where the method has one (apply, apply as a change, rollback), else the one in
/// the call's request context. A client's token goes no further than this filter: not to the grain, not to the calls the
/// grain makes, not back with the response.
/// </summary>
public sealed class ManagementTokenFilter(TokenVerifier verifier) : IIncomingGrainCallFilter
{
    private static readonly System.Reflection.Assembly Contracts = typeof(IReconcilerGrain).Assembly;

    private static readonly HashSet<string> Reads = new(StringComparer.Ordinal)
    {
        "GetByHash", "GetById", "ResolveSymbol", "GetInfo", "Ledger", "Root", "Read", "History", "AppliedRoutes", "Get", "List", "Records", "View", "Placement", "Ping", "Echo", "Runtime", "Status", "Snapshot",
    };

    // Per interface method: the operation a client's call of it is (null: a read) and which argument is its token (-1: none).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<System.Reflection.MethodInfo, (string? Operation, int TokenArgument)> Guards = new();

    public Task Invoke(IIncomingGrainCallContext context)
    {
        // A call between grains needs no token and is left as it is (its client's token was taken at the door).
        if (context.SourceId is { } source && !GrainTypePrefix.IsClient(source))
        {
            return context.Invoke();
        }

        // A client's token is taken at this door, whether the call needs one or not (a read, or a token presented for a
        // later call): out of the request context, and out of the call's arguments (the argument is cleared, so the grain
        // gets null). A token argument is the one checked; the request context's is for methods without one.
        var token = Take();
        var (operation, tokenArgument) = context.InterfaceMethod is { } method ? Guards.GetOrAdd(method, Guard) : (null, -1);
        if (tokenArgument >= 0)
        {
            var request = context.Request;
            token = (request.GetArgument(tokenArgument) as ManagementToken)?.Text ?? token;
            request.SetArgument(tokenArgument, null!);
        }

        if (operation is null)
        {
            return context.Invoke();
        }

        Rtt.Core.Signing.TrustStore trust;
        try
        {
            verifier.Admit(token, ManagementTokens.Symbol(operation), ManagementTokens.Verbs, null, out trust);
        }
        catch (RttException ex)
        {
            throw new RttGrainException(ex.Code, $"{operation} refused: {ex.Message}", ex.Location, ex.Remedy);
        }

        // The call checks what it carries (an apply: the plan's signature) against the trust its token was admitted with.
        return TokenVerifier.RunAdmitted(trust, context.Invoke);
    }

    private static (string?, int) Guard(System.Reflection.MethodInfo method) =>
        (Operation(null, method), Array.FindIndex(method.GetParameters(), p => p.ParameterType == typeof(ManagementToken)));

    /// <summary>
    /// The token a client's call carries, taken out of the call's request context: neither the grain's own calls (an apply's
    /// participants, the WAL) nor the response carry it on. Orleans sends back with a response the request context as the
    /// call's own invocation holds it (not as a filter or the grain changed it: their changes are theirs, async-local),
    /// so the entry is removed from the dictionary the invocation imported from this call's message (a copy made for
    /// this call), not by <see cref="RequestContext.Remove"/>, which copies it for the filter's own flow only.
    /// </summary>
    private static string? Take()
    {
        var token = RequestContext.Get(ManagementTokens.ContextKey) as string;
        if (token is null)
        {
            return null;
        }

        if (RequestContext.Entries is IDictionary<string, object> values)
        {
            values.Remove(ManagementTokens.ContextKey);
        }
        else
        {
            RequestContext.Remove(ManagementTokens.ContextKey);
        }

        return token;
    }

    /// <summary>The management operation a call is, or null when it needs no token.</summary>
    public static string? Operation(GrainId? source, System.Reflection.MethodInfo? method)
    {
        if (source is { } s && !GrainTypePrefix.IsClient(s))
        {
            return null; // grain to grain: the grains themselves are trusted code
        }

        var iface = method?.DeclaringType;
        if (method is null || iface is null)
        {
            return null;
        }

        if (iface == typeof(IManagementGrain))
        {
            return method.Name is nameof(IManagementGrain.GetHosts) or nameof(IManagementGrain.GetDetailedHosts) ? null : ManagementTokens.Admin;
        }

        if (iface.Assembly != Contracts)
        {
            return null;
        }

        if (iface == typeof(IReconcilerGrain))
        {
            if (method.Name is nameof(IReconcilerGrain.Apply) or nameof(IReconcilerGrain.ApplyUtf8) or nameof(IReconcilerGrain.ApplyChange))
            {
                return ManagementTokens.Apply;
            }

            if (method.Name == nameof(IReconcilerGrain.Rollback))
            {
                return ManagementTokens.Rollback;
            }
        }

        return Reads.Contains(method.Name) ? null : ManagementTokens.Admin;
    }
}
