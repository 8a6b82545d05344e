using Rtt.Core.Tokens;
using Rtt.Grains.Diagnostics;
using Rtt.Grains.Reconciling;
using Rtt.Silo.Security;

namespace Rtt.Silo.Tests;

/// <summary>Which client calls need a management token (ManagementTokenFilter.Operation), for the diagnostics grain's methods in particular.</summary>
public sealed class ManagementTokenFilterTests
{
    private static readonly GrainId Client = GrainId.Create(GrainTypePrefix.ClientPrefix, "bench"); // a client app, as the gateway names one

    private static string? Operation(Type iface, string method, GrainId? source = null) =>
        ManagementTokenFilter.Operation(source ?? Client, iface.GetMethod(method) ?? throw new ArgumentException(method));

    [Fact]
    public void The_ping_grain_is_read_freely_but_its_guarded_method_needs_an_admin_token_like_any_write()
    {
        Assert.Null(Operation(typeof(IPingGrain), nameof(IPingGrain.Ping)));
        Assert.Null(Operation(typeof(IPingGrain), nameof(IPingGrain.Echo)));
        Assert.Null(Operation(typeof(IPingGrain), nameof(IPingGrain.Runtime)));
        Assert.Equal(ManagementTokens.Admin, Operation(typeof(IPingGrain), nameof(IPingGrain.Guarded)));
        Assert.Equal(ManagementTokens.Apply, Operation(typeof(IReconcilerGrain), nameof(IReconcilerGrain.ApplyUtf8)));
        Assert.Null(Operation(typeof(IPingGrain), nameof(IPingGrain.Guarded), GrainId.Create("rtt-test", "0"))); // grain to grain: not checked
    }
}
