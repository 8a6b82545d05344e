using Rtt.Cli.Commands;
using Rtt.Core.Errors;
using Rtt.Grains.Reconciling;

namespace Rtt.Cli.Tests;

/// <summary>
/// `rtt apply` / `rtt rollback` whose call times out while the host is busy (issue 15, item 5): an RTT error that says
/// the transaction may still complete and how to check, not "internal error … this is a bug in rtt".
/// </summary>
public sealed class ApplyTimeoutTests
{
    [Theory]
    [InlineData("rolling back")]
    [InlineData("applying sha256:00")]
    public async Task A_call_that_times_out_says_what_happened_and_how_to_check(string what)
    {
        var ex = await Assert.ThrowsAsync<RttException>(() => ApplyCommands.Run(json: true, what,
            () => Task.FromException<ApplyReport>(new TimeoutException("Response did not arrive on time in 00:00:30"))));

        Assert.Equal(ErrorCodes.ApplyUnanswered, ex.Code);
        Assert.Contains(what, ex.Message, StringComparison.Ordinal);
        Assert.Contains("may still complete", ex.Message, StringComparison.Ordinal);
        Assert.Contains("rtt history", ex.Remedy, StringComparison.Ordinal);
        Assert.Contains("rtt wal root", ex.Remedy, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cli_prints_it_as_a_user_error_without_a_bug_report_hint()
    {
        var stderr = new StringWriter();
        var old = Console.Error;
        Console.SetError(stderr);
        int exit;
        try
        {
            var action = RttCommands.Guard(async (_, _) =>
            {
                await ApplyCommands.Run(json: true, "rolling back", () => Task.FromException<ApplyReport>(new TimeoutException("Response did not arrive on time")));
                return RttCommands.Ok;
            });
            exit = await action(RttCommands.Build().Parse(["history"]), CancellationToken.None);
        }
        finally
        {
            Console.SetError(old);
        }

        Assert.Equal(RttCommands.UserError, exit);
        Assert.Contains(ErrorCodes.ApplyUnanswered, stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("bug in rtt", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("internal error", stderr.ToString(), StringComparison.Ordinal);
    }
}
