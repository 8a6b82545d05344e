namespace Rtt.Views;

/// <summary>
/// The view computation as pure functions of the sources: (agent, provider, env) -> the bytes of that agent's
/// native file, and (provider, env) -> the provider's whole folder. <c>rtt view build</c> writes these bytes;
/// a later virtual file system can serve the very same bytes without writing anything.
/// </summary>
public static class ViewEngine
{
    /// <summary>Every agent's view for a provider and environment, in ordinal order of agent name.</summary>
    public static IReadOnlyList<ComposedView> ComposeAll(ViewSources sources, string provider, string? env) =>
        [.. sources.Bases.Keys.Select(agent => ViewComposer.Compose(sources, agent, provider, env))];

    /// <summary>One agent's file in the provider's native format.</summary>
    public static byte[] RenderAgent(ViewSources sources, string agent, string provider, string? env) =>
        ProviderFormats.RenderAgent(ViewComposer.Compose(sources, agent, provider, env));

    /// <summary>The provider's folder: path relative to <c>providers/&lt;provider&gt;/</c> -> bytes.</summary>
    public static SortedDictionary<string, byte[]> RenderTree(ViewSources sources, string provider, string? env) =>
        ProviderFormats.Render(provider, ComposeAll(sources, provider, env));
}
