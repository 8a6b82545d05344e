using System.CommandLine;
using Rtt.Cli.Commands;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;

namespace Rtt.Cli;

/// <summary>The <c>rtt</c> command tree and what every command shares.</summary>
public static class RttCommands
{
    public const int Ok = 0;
    public const int UserError = 1;
    public const int InternalError = 2;

    /// <summary>Recursive: every command takes it.</summary>
    public static readonly Option<string?> Workspace = new("--workspace", "-w")
    {
        Description = "The workspace folder (holding .rtt/); default: the nearest .rtt/ from here upwards",
        Recursive = true,
    };

    public static Option<bool> JsonOption() => new("--json") { Description = "Write JSON instead of a table" };

    public static RootCommand Build()
    {
        var root = new RootCommand("RTT: a local, deterministic connection fabric for multi-agent, multi-provider AI stacks");
        root.Options.Add(Workspace);
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(KeysCommand.Create());
        root.Subcommands.Add(TokenCommand.Create());
        root.Subcommands.Add(UpCommand.Create());
        root.Subcommands.Add(PanelCommand.Create());
        root.Subcommands.Add(StatusCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        foreach (var command in RegistryCommands.Create())
        {
            root.Subcommands.Add(command);
        }

        root.Subcommands.Add(McpCommand.Create());
        root.Subcommands.Add(PlanCommand.Create());
        root.Subcommands.Add(TopologyCommand.Create());
        root.Subcommands.Add(ViewCommand.Create());
        foreach (var command in ApplyCommands.Create())
        {
            root.Subcommands.Add(command);
        }

        root.Subcommands.Add(WalCommand.Create());
        root.Subcommands.Add(DbCommand.Create());
        root.Subcommands.Add(CallCommand.Create());
        root.Subcommands.Add(StubCommand.Create());
        root.Subcommands.Add(AutotuneCommand.Create());
        foreach (var command in TelemetryCommands.Create())
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    /// <summary>Finds the workspace from --workspace or the current folder.</summary>
    public static RttWorkspace FindWorkspace(ParseResult parse) =>
        RttWorkspace.Find(parse.GetValue(Workspace), Directory.GetCurrentDirectory());

    /// <summary>Wraps an action: user errors become one or two lines on stderr and exit 1, never a stack trace.</summary>
    public static Func<ParseResult, CancellationToken, Task<int>> Guard(Func<ParseResult, CancellationToken, Task<int>> action) =>
        async (parse, cancellationToken) =>
        {
            try
            {
                return await action(parse, cancellationToken);
            }
            catch (RttException ex)
            {
                Console.Error.WriteLine($"error {ex.Headline}");
                if (ex.Remedy is not null)
                {
                    Console.Error.WriteLine($"  hint: {ex.Remedy}");
                }

                return UserError;
            }
            catch (Rtt.Grains.RttGrainException ex)
            {
                // The same error raised in a silo and carried back over the wire.
                Console.Error.WriteLine(ex.Location is null ? $"error {ex.Code}: {ex.Message}" : $"error {ex.Code}: {ex.Message} ({ex.Location})");
                if (ex.Remedy is not null)
                {
                    Console.Error.WriteLine($"  hint: {ex.Remedy}");
                }

                return UserError;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                Console.Error.WriteLine("cancelled");
                return UserError;
            }
            catch (Exception ex)
            {
                Console.Error.WriteLine($"internal error: {ex.GetType().Name}: {ex.Message}");
                if (Environment.GetEnvironmentVariable("RTT_DEBUG") is "1" or "true")
                {
                    Console.Error.WriteLine(ex);
                }
                else
                {
                    Console.Error.WriteLine("  hint: this is a bug in rtt; run again with RTT_DEBUG=1 and report the stack trace");
                }

                return InternalError;
            }
        };
}
