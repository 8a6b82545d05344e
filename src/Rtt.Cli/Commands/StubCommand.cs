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
        return new Command("stub", "The universal stub protocol: check a service in any language against it") { check };
    }

    internal static LaneKind ParseLane(string text) => text switch
    {
        "uds" => LaneKind.Uds,
        "shm" => LaneKind.Shm,
        _ => throw new RttException(ErrorCodes.StubCheckUsage, $"--lane {text} is not a service lane", "--lane", "give uds or shm"),
    };
}
