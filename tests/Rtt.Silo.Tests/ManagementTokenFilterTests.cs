using System.Reflection;
using Orleans.Serialization.Invocation;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Grains.Diagnostics;
using Rtt.Grains.Reconciling;
using Rtt.Silo.Security;

namespace Rtt.Silo.Tests;

/// <summary>
/// Which client calls need a management token (ManagementTokenFilter.Operation), for the diagnostics grain's methods in
/// particular; and that the token stops at the filter: neither the grain's own calls nor the response carry it on.
/// </summary>
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

    [Fact]
    public async Task A_token_is_taken_out_of_the_calls_request_context_so_neither_the_grain_nor_the_response_carries_it_on()
    {
        var dir = Directory.CreateTempSubdirectory("rtt-token-filter-").FullName;
        try
        {
            var workspace = WorkspaceInitializer.Create(dir).Workspace;
            using var key = workspace.LoadSigningKey();
            var filter = new ManagementTokenFilter(TokenVerifier.ForWorkspace(workspace, TimeProvider.System, new ReplayCache(100)));
            foreach (var (method, token) in new[] { (nameof(IPingGrain.Guarded), ManagementTokens.Mint(key, ManagementTokens.Admin)), (nameof(IPingGrain.Ping), "a token a read does not need") })
            {
                // As Orleans runs a call: the message's request context imported into the invocation's own flow, the filters
                // run inside an async method of it, and the response takes the request context of that flow when the call
                // is done (MessageFactory.CreateResponseMessage exports it).
                RequestContextExtensions.Import(new Dictionary<string, object> { [ManagementTokens.ContextKey] = token, ["other"] = 7 });
                var call = new Call(typeof(IPingGrain).GetMethod(method)!);
                await Run(filter, call);
                Assert.True(call.Invoked, method);
                Assert.Null(call.TokenSeenByTheGrain); // nor by the calls it makes
                Assert.Equal(7, call.OtherSeenByTheGrain); // the rest of the context is left alone
                Assert.Null(RequestContext.Get(ManagementTokens.ContextKey)); // what the response would carry back
                Assert.Equal(7, RequestContext.Get("other"));
                RequestContext.Clear();
            }

            // A call between grains keeps its context as it is (the token was taken at the door it came through).
            RequestContextExtensions.Import(new Dictionary<string, object> { [ManagementTokens.ContextKey] = "left as it was" });
            var internalCall = new Call(typeof(IPingGrain).GetMethod(nameof(IPingGrain.Guarded))!, GrainId.Create("rtt-test", "0"));
            await Run(filter, internalCall);
            Assert.Equal("left as it was", internalCall.TokenSeenByTheGrain);
            RequestContext.Clear();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        static async Task Run(ManagementTokenFilter filter, Call call) => await filter.Invoke(call); // an async method of its own, as Orleans' invoker is
    }

    /// <summary>An incoming call from a client to a ping grain method, which records what the grain sees of the request context.</summary>
    private sealed class Call(MethodInfo method, GrainId? source = null) : IIncomingGrainCallContext
    {
        public bool Invoked { get; private set; }

        public object? TokenSeenByTheGrain { get; private set; }

        public object? OtherSeenByTheGrain { get; private set; }

        public MethodInfo InterfaceMethod => method;

        public GrainId? SourceId => source ?? Client;

        public Task Invoke()
        {
            Invoked = true;
            TokenSeenByTheGrain = RequestContext.Get(ManagementTokens.ContextKey);
            OtherSeenByTheGrain = RequestContext.Get("other");
            return Task.CompletedTask;
        }

        public IGrainContext TargetContext => throw new NotSupportedException();

        public MethodInfo ImplementationMethod => method;

        public IInvokable Request => throw new NotSupportedException();

        public object Grain => throw new NotSupportedException();

        public GrainId TargetId => GrainId.Create("rtt-ping", "0");

        public GrainInterfaceType InterfaceType => throw new NotSupportedException();

        public string InterfaceName => typeof(IPingGrain).FullName!;

        public string MethodName => method.Name;

        public object? Result { get; set; }

        public Response? Response { get; set; }
    }
}
