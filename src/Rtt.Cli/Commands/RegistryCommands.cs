using System.CommandLine;
using Rtt.Core.Json;
using Rtt.Registry;
using Spectre.Console;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt scan</c>, <c>rtt pack</c>, <c>rtt cat</c>, <c>rtt verify</c>.</summary>
public static class RegistryCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Scan();
        yield return Pack();
        yield return Cat();
        yield return Verify();
    }

    private static Command Scan()
    {
        var paths = new Argument<string[]>("PATH") { Description = "Folders or files to scan (default: the whole workspace)", Arity = ArgumentArity.ZeroOrMore };
        var json = RttCommands.JsonOption();
        var command = new Command("scan", "Discover agents, subagents and manifests, ingest them into the CAS, index their symbols") { paths, json };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            using var store = RegistryStore.Open(ws);
            var scanner = new Scanner(ws, store);
            var roots = (parse.GetValue(paths) ?? []).Select(p => Path.GetFullPath(p)).ToList(); // relative to the current folder, as a user means it
            ScanReport report;
            if (!parse.GetValue(json) && !Console.IsOutputRedirected)
            {
                report = null!;
                AnsiConsole.Progress().AutoClear(true).Start(ctx =>
                {
                    var task = ctx.AddTask("scanning", maxValue: 1);
                    report = scanner.Run(roots, new Progress<(int Done, int Total)>(p =>
                    {
                        task.MaxValue = Math.Max(1, p.Total);
                        task.Value = p.Done;
                    }));
                });
            }
            else
            {
                report = scanner.Run(roots);
            }

            Print(report, parse.GetValue(json));
            return Task.FromResult(report.Errors.Count == 0 ? RttCommands.Ok : RttCommands.UserError);
        }));
        return command;
    }

    internal static void Print(ScanReport report, bool json)
    {
        if (json)
        {
            Console.Out.Write(PrettyJson.ToText(report.ToJson()));
            return;
        }

        foreach (var p in report.Added)
        {
            Console.WriteLine($"added      {p}");
        }

        foreach (var p in report.Changed)
        {
            Console.WriteLine($"changed    {p}");
        }

        foreach (var p in report.Removed)
        {
            Console.WriteLine($"removed    {p}");
        }

        foreach (var w in report.Warnings)
        {
            Console.Error.WriteLine($"warning: {w}");
        }

        foreach (var e in report.Errors)
        {
            Console.Error.WriteLine($"error {e.Error.Headline}");
            if (e.Error.Remedy is not null)
            {
                Console.Error.WriteLine($"  hint: {e.Error.Remedy}");
            }
        }

        Console.WriteLine(report.Summary);
    }

    private static Command Pack()
    {
        var command = new Command("pack", "Write the packfile (pack/agents.pack + pack/index.lut) from every loose object");
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            using var store = RegistryStore.Open(ws);
            var count = store.WritePack();
            var size = new FileInfo(Path.Combine(ws.Pack, Packfile.PackName)).Length;
            Console.WriteLine($"packed {count} object(s) into {Path.Combine(ws.Pack, Packfile.PackName)} ({size} bytes) with index {Packfile.IndexName}");
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    private static Command Cat()
    {
        var referenceArgument = new Argument<string>("OBJECT") { Description = "sha256:<hex> or ID@version" };
        var pretty = new Option<bool>("--pretty") { Description = "Indent (default: the exact canonical bytes the hash covers)" };
        var command = new Command("cat", "Print an object from the registry, after checking its hash and signature") { referenceArgument, pretty };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            using var store = RegistryStore.Open(ws);
            var reference = parse.GetValue(referenceArgument)!;
            var hash = store.Resolve(reference);
            var obj = reference.StartsWith(Rtt.Core.Hashing.ContentHash.Prefix, StringComparison.Ordinal) ? store.ReadObject(hash) : store.ReadEntry(reference);
            if (parse.GetValue(pretty))
            {
                Console.Out.Write(PrettyJson.ToText(obj));
            }
            else
            {
                using var stdout = Console.OpenStandardOutput();
                stdout.Write(store.ReadBytes(hash)); // exactly the bytes the hash covers: `rtt cat X | sha256sum` gives X
            }

            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    private static Command Verify()
    {
        var json = RttCommands.JsonOption();
        var command = new Command("verify", "Check every object, the index, the pack and every signature; exit 1 naming each fault") { json };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var report = RegistryVerifier.Run(RttCommands.FindWorkspace(parse));
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(report.ToJson()));
            }
            else
            {
                foreach (var fault in report.Faults)
                {
                    Console.Error.WriteLine($"fault: {fault}");
                }

                Console.WriteLine(report.Ok ? $"ok: {report.Objects} object(s) verified" : $"{report.Faults.Count} fault(s) in {report.Objects} object(s)");
            }

            return Task.FromResult(report.Ok ? RttCommands.Ok : RttCommands.UserError);
        }));
        return command;
    }
}
