using System.Text;
using System.Text.Json;
using Rtt.Drivers;

namespace Rtt.Samples.Plugin;

/// <summary>
/// A `dotnet` endpoint for RTT (docs/calls.md): answers "&lt;tag&gt;:" and the request's UTF-8 text reversed. The tag comes
/// from the serve block's config (<c>{"tag": "v2"}</c>); a request "throw" makes the call fail (tests).
/// </summary>
public sealed class ReversePlugin : IRttPlugin
{
    private string _tag = "v1";

    public ValueTask InitializeAsync(RttPluginContext context, CancellationToken cancellationToken)
    {
        using var config = JsonDocument.Parse(context.Config);
        if (config.RootElement.TryGetProperty("tag", out var tag))
        {
            _tag = tag.GetString() ?? _tag;
        }

        if (config.RootElement.TryGetProperty("fail", out var fail) && fail.GetBoolean())
        {
            throw new InvalidOperationException("the plugin was configured to fail at start");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        var text = Encoding.UTF8.GetString(request.Span);
        if (text == "throw")
        {
            throw new InvalidOperationException("asked to throw");
        }

        var chars = text.ToCharArray();
        Array.Reverse(chars);
        return ValueTask.FromResult<ReadOnlyMemory<byte>>(Encoding.UTF8.GetBytes(_tag + ":" + new string(chars)));
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
