using System.CommandLine;
using Rtt.Cli;

// Exit codes: 0 ok, 1 user error (bad input, bad state, nothing answering), 2 internal error.
// Ctrl-C/SIGTERM are left to the silo host's own lifetime so a running silo shuts down cleanly.
var root = RttCommands.Build();
var parsed = root.Parse(args);
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
