using System.CommandLine;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Commands;

public static class InitCommand
{
    public static Command Create()
    {
        var dir = new Argument<string?>("DIR") { Description = "Folder to create the workspace in (default: the current folder)", Arity = ArgumentArity.ZeroOrOne };
        var example = new Option<string?>("--example") { Description = "Start from a bundled example (e.g. quickstart)" };
        var command = new Command("init", "Create a workspace (.rtt/) with a fresh signing key that it trusts") { dir, example };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var root = Path.GetFullPath(parse.GetValue(dir) ?? Directory.GetCurrentDirectory());
            var exampleName = parse.GetValue(example);
            var result = WorkspaceInitializer.Create(root, exampleName is null ? null : Examples.Find(exampleName));
            Print(result, exampleName);
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    internal static void Print(InitResult result, string? exampleName, TextWriter? output = null)
    {
        output ??= Console.Out;
        output.WriteLine($"Created workspace {result.Workspace.Root}{(exampleName is null ? "" : $" from example \"{exampleName}\"")}");
        output.WriteLine($"  signing key  default  {result.KeyId}");
        output.WriteLine($"  private key  {result.Workspace.PrivateKeyPath("default")} (mode 0600, not for version control)");
    }
}
