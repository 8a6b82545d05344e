using System.Reflection;
using Orleans.Serialization.Invocation;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Grains;
using Rtt.Grains.Diagnostics;
using Rtt.Grains.Reconciling;
using Rtt.Silo.Security;

namespace Rtt.Silo.Tests;

/// <summary>
/// Which client calls need a management token (ManagementTokenFilter.Operation), for the diagnostics grain's methods in
/// particular; and that the token stops at the filter: neither the grain's own calls nor the response carry it on.
/// </summary>
public sealed class ManagementTokenFilterTests : IDisposable
{
    private static readonly GrainId Client = GrainId.Create(GrainTypePrefix.ClientPrefix, "bench"); // a client app, as the gateway names one

    private readonly RttWorkspace _workspace = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-token-filter-").FullName).Workspace;
    private readonly Rtt.Core.Signing.SigningKey _key;

    public ManagementTokenFilterTests() => _key = _workspace.LoadSigningKey();

    public void Dispose()
    {
        _key.Dispose();
        Directory.Delete(_workspace.Root, recursive: true);
    }

    private ManagementTokenFilter NewFilter() => new(TokenVerifier.ForWorkspace(_workspace, TimeProvider.System, new ReplayCache(100)));

    private static string? Operation(Type iface, string method, GrainId? source = null) => ManagementTokenFilter.Operation(source ?? Client, Method(iface, method));

    /// <summary>The method's form without a token argument.</summary>
    private static MethodInfo Method(Type iface, string name) =>
        iface.GetMethods().Single(m => m.Name == name && !m.GetParameters().Any(p => p.ParameterType == typeof(ManagementToken)));

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
        var (key, filter) = (_key, NewFilter());
        try
        {
            foreach (var (method, token) in new[] { (nameof(IPingGrain.Guarded), ManagementTokens.Mint(key, ManagementTokens.Admin)), (nameof(IPingGrain.Ping), "a token a read does not need") })
            {
                // As Orleans runs a call: the message's request context imported into the invocation's own flow, the filters
                // run inside an async method of it, and the response takes the request context of that flow when the call
                // is done (MessageFactory.CreateResponseMessage exports it).
                RequestContextExtensions.Import(new Dictionary<string, object> { [ManagementTokens.ContextKey] = token, ["other"] = 7 });
                var call = new Call(Method(typeof(IPingGrain), method));
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
            var internalCall = new Call(Method(typeof(IPingGrain), nameof(IPingGrain.Guarded)), GrainId.Create("rtt-test", "0"));
            await Run(filter, internalCall);
            Assert.Equal("left as it was", internalCall.TokenSeenByTheGrain);
            RequestContext.Clear();
        }
        finally
        {
            RequestContext.Clear();
        }

        static async Task Run(ManagementTokenFilter filter, Call call) => await filter.Invoke(call); // an async method of its own, as Orleans' invoker is
    }

    [Fact]
    public async Task A_token_argument_is_the_one_checked_and_is_cleared_before_the_grain_runs()
    {
        var (key, filter) = (_key, NewFilter());
        try
        {
            var guarded = typeof(IPingGrain).GetMethod(nameof(IPingGrain.Guarded), [typeof(int), typeof(ManagementToken)])!;
            Assert.Equal(ManagementTokens.Admin, ManagementTokenFilter.Operation(Client, guarded));

            // Admitted: the grain runs with the argument cleared and the request context's token (a stale one) taken too.
            RequestContextExtensions.Import(new Dictionary<string, object> { [ManagementTokens.ContextKey] = "a stale token in the context" });
            var token = new ManagementToken(ManagementTokens.MintFor(key, ManagementTokens.Admin, SiloInfoFor(key)));
            var call = new Call(guarded, arguments: [7, token]);
            await filter.Invoke(call);
            Assert.True(call.Invoked);
            Assert.Null(call.ArgumentsSeenByTheGrain![1]);
            Assert.Equal(7, call.ArgumentsSeenByTheGrain[0]);
            Assert.Null(call.TokenSeenByTheGrain);
            Assert.Null(RequestContext.Get(ManagementTokens.ContextKey));
            RequestContext.Clear();

            // The same token again (its nonce is spent), no token, another route's token, a token in the context only.
            var replay = new Call(guarded, arguments: [7, token]);
            Assert.Equal(Rtt.Core.Errors.ErrorCodes.TokenReplayed, (await Assert.ThrowsAsync<Rtt.Grains.RttGrainException>(() => filter.Invoke(replay))).Code);
            Assert.False(replay.Invoked);
            var none = new Call(guarded, arguments: [7, null]);
            Assert.Equal(Rtt.Core.Errors.ErrorCodes.TokenMissing, (await Assert.ThrowsAsync<Rtt.Grains.RttGrainException>(() => filter.Invoke(none))).Code);
            var apply = new Call(guarded, arguments: [7, new ManagementToken(ManagementTokens.MintFor(key, ManagementTokens.Apply, SiloInfoFor(key)))]);
            Assert.Equal(Rtt.Core.Errors.ErrorCodes.TokenRouteDenied, (await Assert.ThrowsAsync<Rtt.Grains.RttGrainException>(() => filter.Invoke(apply))).Code); // an apply token is no admin token
            Assert.False(apply.Invoked);
            RequestContextExtensions.Import(new Dictionary<string, object> { [ManagementTokens.ContextKey] = ManagementTokens.MintFor(key, ManagementTokens.Admin, SiloInfoFor(key)) });
            var inContext = new Call(guarded, arguments: [7, null]);
            await filter.Invoke(inContext); // a method with a token argument still takes one from the context when none is given
            Assert.True(inContext.Invoked);
            RequestContext.Clear();

            // A read with a token argument: nothing checked, the argument cleared all the same.
            var ping = new Call(typeof(IPingGrain).GetMethod(nameof(IPingGrain.Ping), [typeof(int), typeof(ManagementToken)])!, arguments: [1, new ManagementToken("not even a token")]);
            await filter.Invoke(ping);
            Assert.True(ping.Invoked);
            Assert.Null(ping.ArgumentsSeenByTheGrain![1]);

            // A call between grains: the argument is left as it was.
            var inner = new Call(guarded, GrainId.Create("rtt-test", "0"), arguments: [7, new ManagementToken("left as it was")]);
            await filter.Invoke(inner);
            Assert.Equal("left as it was", ((ManagementToken)inner.ArgumentsSeenByTheGrain![1]!).Text);
            Assert.DoesNotContain("left as it was", new ManagementToken("left as it was").ToString(), StringComparison.Ordinal); // never in a log line
        }
        finally
        {
            RequestContext.Clear();
        }

        static SiloInfo SiloInfoFor(Rtt.Core.Signing.SigningKey key) =>
            new(Environment.ProcessId, "node0", 1, 2, "c", "s", DateTimeOffset.UnixEpoch, key.KeyId, SiloInfo.NewestMacFormat, TokenArgument: true);
    }

    /// <summary>An incoming call from a client to a ping grain method, which records what the grain sees of the request context and of its arguments.</summary>
    private sealed class Call(MethodInfo method, GrainId? source = null, object?[]? arguments = null) : IIncomingGrainCallContext
    {
        private readonly Invokable _request = new(method, arguments ?? []);

        public object?[]? ArgumentsSeenByTheGrain { get; private set; }

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
            ArgumentsSeenByTheGrain = [.. Enumerable.Range(0, _request.GetArgumentCount()).Select(_request.GetArgument)];
            return Task.CompletedTask;
        }

        public IGrainContext TargetContext => throw new NotSupportedException();

        public MethodInfo ImplementationMethod => method;

        public IInvokable Request => _request;

        public object Grain => throw new NotSupportedException();

        public GrainId TargetId => GrainId.Create("rtt-ping", "0");

        public GrainInterfaceType InterfaceType => throw new NotSupportedException();

        public string InterfaceName => typeof(IPingGrain).FullName!;

        public string MethodName => method.Name;

        public object? Result { get; set; }

        public Response? Response { get; set; }
    }

    /// <summary>The call's request as Orleans' generated invokables hold one: its arguments by index.</summary>
    private sealed class Invokable(MethodInfo method, object?[] arguments) : IInvokable
    {
        public int GetArgumentCount() => arguments.Length;

        public object? GetArgument(int index) => arguments[index];

        public void SetArgument(int index, object value) => arguments[index] = value;

        public MethodInfo GetMethod() => method;

        public string GetMethodName() => method.Name;

        public string GetInterfaceName() => method.DeclaringType!.FullName!;

        public string GetActivityName() => method.Name;

        public Type GetInterfaceType() => method.DeclaringType!;

        public object? GetTarget() => throw new NotSupportedException();

        public void SetTarget(ITargetHolder holder) => throw new NotSupportedException();

        public ValueTask<Response> Invoke() => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }
}
