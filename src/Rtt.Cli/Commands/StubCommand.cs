using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Fabric.Lanes;
using Rtt.Fabric.Stubs;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt stub check</c>: the conformance kit of the universal stub protocol (docs/stub-protocol.md).</summary>
public static class StubCommand
{
    public static Command Create()
    {
        var lane = new Option<string>("--lane") { Description = "The lane the service is asked for and must attach with: uds or shm", DefaultValueFactory = _ => "uds" };
        var json = RttCommands.JsonOption();
        var command = new Argument<string[]>("COMMAND") { Description = "After --: the command that starts the stub's sample echo service", Arity = ArgumentArity.ZeroOrMore };
        var check = new Command("check", "Start a stub's sample service and drive it through every rule of the stub protocol; pass/fail per rule, exit 1 on any failure")
        {
            lane, json, command,
        };
        check.SetAction(RttCommands.Guard((parse, _) =>
        {
            var argv = parse.GetValue(command) ?? [];
            if (argv.Length == 0)
            {
                throw new RttException(ErrorCodes.StubCheckUsage, "no service command given", "COMMAND",
                    "give the service's command line after --, e.g. rtt stub check -- python3 stubs/python/echo_service.py");
            }

            var kind = ParseLane(parse.GetValue(lane)!);
            var asJson = parse.GetValue(json);
            var results = StubConformance.Run(new StubCheckOptions
            {
                Command = argv,
                Lane = kind,
                OnResult = asJson ? null : r => Console.Out.WriteLine($"{(r.Passed ? r.Applicable ? "pass" : "n/a " : "FAIL"),-4}  {r.Rule,-18} {r.Detail}"),
            });
            var failed = results.Where(r => !r.Passed).Select(r => r.Rule).ToList();
            if (asJson)
            {
                var array = new JsonArray();
                foreach (var r in results)
                {
                    array.Add(new JsonObject { ["rule"] = r.Rule, ["passed"] = r.Passed, ["applicable"] = r.Applicable, ["detail"] = r.Detail });
                }

                Console.Out.Write(PrettyJson.ToText(new JsonObject { ["command"] = new JsonArray([.. argv.Select(a => (JsonNode)a)]), ["lane"] = kind.ToString().ToLowerInvariant(), ["passed"] = failed.Count == 0, ["rules"] = array }));
            }

            if (failed.Count > 0)
            {
                throw new RttException(ErrorCodes.StubCheckFailed, $"{failed.Count} of {results.Count} rules failed: {string.Join(", ", failed)}", argv[0],
                    "docs/stub-protocol.md describes each rule; fix the stub and run rtt stub check again");
            }

            if (!asJson)
            {
                Console.Out.WriteLine($"all {results.Count} rules passed");
            }

            return Task.FromResult(RttCommands.Ok);
        }));
        return new Command("stub", "The universal stub protocol: check a service in any language against it, benchmark the stubs") { check, Bench() };
    }

    /// <summary><c>rtt stub bench</c>: every stub's echo against the C# stub's echo, same lane, same run.</summary>
    private static Command Bench()
    {
        var catalog = new Option<string>("--catalog") { Description = "The stub catalog", DefaultValueFactory = _ => "stubs/stubs.json" };
        var languages = new Option<string[]>("--lang") { Description = "Only these stubs (repeatable; default all)", AllowMultipleArgumentsPerToken = true };
        var sizes = new Option<int[]>("--size") { Description = "Payload sizes in bytes (repeatable; default 64 4096)", AllowMultipleArgumentsPerToken = true };
        var seconds = new Option<double>("--seconds") { Description = "Measured time per stub, lane and size (shared with the C# baseline in alternating slices)", DefaultValueFactory = _ => 1 };
        var json = RttCommands.JsonOption();
        var bench = new Command("bench", "Each stub's echo service over UDS (and SHM where it has it) against the C# stub's echo over the same lane: p50/p99 round trips")
        {
            catalog, languages, sizes, seconds, json,
        };
        bench.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var path = Path.GetFullPath(parse.GetValue(catalog)!);
            if (!File.Exists(path))
            {
                throw new RttException(ErrorCodes.StubCheckUsage, $"no stub catalog at {path}", "--catalog", "run from the repository root or give --catalog stubs/stubs.json");
            }

            var s = parse.GetValue(seconds);
            var sizeList = parse.GetValue(sizes) ?? [];
            if (s is <= 0 or > 600 || sizeList.Any(n => n is < 0 or > 65536))
            {
                throw new RttException(ErrorCodes.StubCheckUsage, "--seconds must be in (0, 600] and --size in [0, 65536]", "--seconds/--size", "give smaller values");
            }

            var output = Directory.CreateTempSubdirectory("rtt-stub-build-").FullName;
            try
            {
                var all = Stubs.StubCatalog.Load(path, output, AppContext.BaseDirectory);
                var only = parse.GetValue(languages) ?? [];
                if (only.FirstOrDefault(l => all.All(x => x.Language != l)) is { } unknown)
                {
                    throw new RttException(ErrorCodes.StubCheckUsage, $"--lang {unknown} is not in the catalog", "--lang", $"give one of {string.Join(", ", all.Select(x => x.Language))}");
                }

                var chosen = all.Where(x => only.Length == 0 || only.Contains(x.Language) || x.Language == Stubs.StubBench.Baseline).ToList();
                Console.Error.WriteLine($"bench: building {chosen.Count} stubs into {output}");
                var failures = await Stubs.StubCatalog.BuildAllAsync(chosen, cancellationToken);
                if (failures.Count > 0)
                {
                    throw new RttException(ErrorCodes.StubCheckUsage, string.Join("; ", failures.Select(f => $"{f.Key}: {f.Value}")), path, "install the missing toolchains (.ci/run lists them)");
                }

                var before = Stubs.StubBench.Load();
                var cases = Stubs.StubBench.Run(chosen, sizeList.Length > 0 ? sizeList : [64, 4096], s, m => Console.Error.WriteLine($"bench: {m}"));
                var after = Stubs.StubBench.Load();
                if (parse.GetValue(json))
                {
                    Console.Out.Write(PrettyJson.ToText(Stubs.StubBench.ToJson(cases, before, after)));
                }
                else
                {
                    Stubs.StubBench.Print(cases, before, after, Console.Out);
                }

                return RttCommands.Ok;
            }
            finally
            {
                try
                {
                    Directory.Delete(output, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }));
        return bench;
    }

    internal static LaneKind ParseLane(string text) => text switch
    {
        "uds" => LaneKind.Uds,
        "shm" => LaneKind.Shm,
        _ => throw new RttException(ErrorCodes.StubCheckUsage, $"--lane {text} is not a service lane", "--lane", "give uds or shm"),
    };
}
