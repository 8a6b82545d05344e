using System.CommandLine;
using Rtt.Cli;

// Exit codes: 0 ok, 1 user error (bad input, bad state, nothing answering), 2 internal error.
// Ctrl-C/SIGTERM are left to the silo host's own lifetime so a running silo shuts down cleanly.
// The silo host and the benchmarks run with a generation-0 budget sized for a server where the host hides its caches
// (Gen0Budget: the process starts again once, same id, with DOTNET_GCgen0size set); every other command as it is.
if (args.Length > 0 && args[0] is "up" or "bench")
{
    Rtt.Core.Hosting.Gen0Budget.Apply();
}

var root = RttCommands.Build();
var parsed = root.Parse(args);
if (parsed.Action is System.CommandLine.Help.HelpAction && parsed.UnmatchedTokens.Count > 0)
{
    // `rtt nosuch --help` must not look like a command that exists: say what is wrong and exit 1.
    Console.Error.WriteLine($"error: unknown command or argument '{parsed.UnmatchedTokens[0]}' for `{parsed.CommandResult.Command.Name}`");

    Console.Error.WriteLine("  hint: `rtt --help` lists the commands");
    return 1;
}

return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
