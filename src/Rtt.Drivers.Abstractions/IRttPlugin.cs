namespace Rtt.Drivers;

/// <summary>
/// An in-process endpoint (serve kind <c>dotnet</c>, docs/calls.md): a public class with a public parameterless
/// constructor, in an assembly the silo loads into its own collectible load context, so a new version replaces the
/// old one without restarting the silo. Calls run beside the lane worker, never on it; several may run at once.
/// </summary>
public interface IRttPlugin : IAsyncDisposable
{
    /// <summary>Called once after loading, before any call. Throwing fails the endpoint's start (the plan's verify names it).</summary>
    ValueTask InitializeAsync(RttPluginContext context, CancellationToken cancellationToken);

    /// <summary>Answers one request: the payload bytes of the call frame in, the answer's bytes out (untouched by RTT).</summary>
    ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken);
}

/// <summary>What a plugin is told when it starts.</summary>
/// <param name="Endpoint">The endpoint's hash in the plan (<c>sha256:…</c>).</param>
/// <param name="WorkspaceRoot">The workspace folder.</param>
/// <param name="Config">The serve block's <c>config</c> member as JSON text (<c>{}</c> when absent).</param>
public sealed record RttPluginContext(string Endpoint, string WorkspaceRoot, string Config);
