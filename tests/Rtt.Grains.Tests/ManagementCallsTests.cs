using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Grains.Tests;

/// <summary>
/// How a client sends a management call's token (docs/security.md): as the call's argument to a silo whose silo.json
/// says it takes one (this version) or to a silo without a silo.json here, in the request context to an older silo.
/// </summary>
public sealed class ManagementCallsTests : IDisposable
{
    private readonly RttWorkspace _workspace = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-mgmt-calls-").FullName).Workspace;

    public void Dispose() => Directory.Delete(_workspace.Root, recursive: true);

    [Fact]
    public async Task The_token_goes_as_the_argument_to_a_silo_that_takes_one_and_in_the_request_context_to_an_older_silo()
    {
        using var key = _workspace.LoadSigningKey();

        // No silo.json here (a silo on another machine): the argument, a sealed token (no MAC key in common is known).
        Assert.Equal(("argument", "rtt1."), await Sent());

        // A silo of this version on this workspace: the argument, a compact MAC token.
        var info = new SiloInfo(Environment.ProcessId, "node0", 1, 2, "c", "s", DateTimeOffset.UnixEpoch, key.KeyId, SiloInfo.NewestMacFormat, TokenArgument: true);
        info.Write(_workspace.SiloInfoPath);
        Assert.True((bool)info.ToJson()["token_argument"]!);
        Assert.True(SiloInfo.ReadLive(_workspace.SiloInfoPath)!.TokenArgument);
        Assert.Equal(("argument", "rttm2."), await Sent());

        // A silo started before the argument form (its silo.json has no token_argument): the request context.
        (info with { TokenArgument = false }).Write(_workspace.SiloInfoPath);
        Assert.Null((info with { TokenArgument = false }).ToJson()["token_argument"]);
        Assert.False(SiloInfo.ReadLive(_workspace.SiloInfoPath)!.TokenArgument);
        Assert.Equal(("context", "rttm2."), await Sent());
        RequestContext.Clear();
    }

    /// <summary>Which way the token went, and its prefix.</summary>
    private async Task<(string, string)> Sent()
    {
        RequestContext.Clear();
        var (how, token) = await ManagementCalls.Call(_workspace, ManagementTokens.Apply,
            token => Task.FromResult(("argument", RequestContext.Get(ManagementTokens.ContextKey) is null ? token.Text : "and in the context too")),
            () => Task.FromResult(("context", (string)RequestContext.Get(ManagementTokens.ContextKey)!)));
        return (how, token[..(token.IndexOf('.', StringComparison.Ordinal) + 1)]);
    }
}
