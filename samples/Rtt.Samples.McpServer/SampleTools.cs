using System.ComponentModel;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Rtt.Samples.McpServer;

/// <summary>The sample's tools: small, deterministic answers, one tool error and one slow tool (for timeouts).</summary>
[McpServerToolType]
public sealed class SampleTools
{
    [McpServerTool(Name = "echo"), Description("Echoes the message back.")]
    public static string Echo([Description("The text to echo")] string message) => message;

    [McpServerTool(Name = "add"), Description("Adds two integers.")]
    public static long Add([Description("First addend")] long a, [Description("Second addend")] long b) => a + b;

    [McpServerTool(Name = "upper"), Description("Returns the text in upper case (invariant culture).")]
    public static string Upper([Description("The text")] string text) => text.ToUpperInvariant();

    [McpServerTool(Name = "fail"), Description("Always reports a tool error (isError: true) with the given reason.")]
    public static CallToolResult Fail([Description("Why it fails")] string reason) => new()
    {
        IsError = true,
        Content = [new TextContentBlock { Text = $"failed: {reason}" }],
    };

    [McpServerTool(Name = "sleep"), Description("Waits the given number of milliseconds (at most 10 minutes), then answers \"slept N ms\".")]
    public static async Task<string> Sleep([Description("Milliseconds to wait")] int ms, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Math.Clamp(ms, 0, 600_000), cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"sleep {ms} ms cancelled"); // tests see a cancellation arrive (stderr goes to the silo log)
            throw;
        }

        return $"slept {ms} ms";
    }
}
