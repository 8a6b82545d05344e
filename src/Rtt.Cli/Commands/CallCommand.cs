using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Client.Calls;
using Rtt.Client.Lanes;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Rtt.Fabric.Frames;
using Rtt.Planning;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt call SYMBOL</c>: one call through the applied plan's route to the endpoint serving the symbol (docs/calls.md).</summary>
public static class CallCommand
{
    /// <summary>Exit code when the call was made and failed: the endpoint answered with an error, or the tool reported one.</summary>
    public const int CallFailed = 5;

    public static Command Create()
    {
        var symbol = new Argument<string>("SYMBOL") { Description = "The symbol to call (rtt://…), as a route of the applied plan goes to it" };
        var args = new Option<string?>("--args") { Description = "The input: for an MCP tool its arguments as a JSON object, else the payload text (UTF-8)" };
        var argsFile = new Option<string?>("--args-file") { Description = "Read the input from a file (bytes as they are)" };
        var stdin = new Option<bool>("--stdin") { Description = "Read the input from standard input" };
        var from = new Option<string?>("--from") { Description = "Call as this symbol (the route from it); default: the first route to SYMBOL" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for the answer", DefaultValueFactory = _ => 30 };
        var raw = new Option<bool>("--raw") { Description = "Write the answer's bytes exactly as they came" };
        var json = RttCommands.JsonOption();
        var traceparent = new Option<string?>("--traceparent") { Description = "A W3C traceparent (00-<trace id>-<parent id>-<flags>) the call's span at the silo is a child of; default: the TRACEPARENT environment variable" };
        json.Description = "Write the route, the latency and the answer as JSON";
        var command = new Command("call", "Call a symbol through RTT and print its answer (exit 5 when the call failed)") { symbol, args, argsFile, stdin, from, timeout, raw, json, traceparent };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var seconds = parse.GetValue(timeout);
            if (!(seconds > 0) || seconds > 86_400)
            {
                throw new RttException(ErrorCodes.CallInputInvalid, $"--timeout {seconds.ToString(CultureInfo.InvariantCulture)} is not a number of seconds from above 0 to 86400", "--timeout", "for example --timeout 5");
            }

            var given = new[] { parse.GetValue(args) is not null, parse.GetValue(argsFile) is not null, parse.GetValue(stdin) }.Count(g => g);
            if (given > 1)
            {
                throw new RttException(ErrorCodes.CallInputInvalid, "give the input once: --args, --args-file or --stdin", "rtt call", "pick one of them");
            }

            if ((parse.GetValue(traceparent) ?? Environment.GetEnvironmentVariable("TRACEPARENT")) is { Length: > 0 } tp)
            {
                TraceParent.Outgoing = TraceParent.TryParse(tp, out var parent) ? parent
                    : throw new RttException(ErrorCodes.CallInputInvalid, $"traceparent \"{tp}\" is not a W3C traceparent", parse.GetValue(traceparent) is not null ? "--traceparent" : "TRACEPARENT",
                        "give 00-<32 lowercase hex>-<16 lowercase hex>-<2 hex>, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
            }

            var store = new PlanStore(ws);
            var plan = File.Exists(store.AppliedPath) ? RttWorkspace.ReadObject(store.AppliedPath) : null;
            var routes = CallRoutes.Of(plan);
            var planId = (string?)plan?["plan_id"];
            if (plan is null && File.Exists(ws.SiloInfoPath))
            {
                // In a cluster the plan may have been applied from another silo's workspace: ask the reconciler.
                await using var client = await ApplyCommands.Connect(ws, cancellationToken);
                var applied = await client.Cluster.GetGrain<Rtt.Grains.Reconciling.IReconcilerGrain>(Rtt.Grains.Reconciling.IReconcilerGrain.ClusterKey).AppliedRoutes();
                routes = [.. applied.Routes.Select(r => new CallRoute(r.From, r.To, r.RouteId, r.Node, r.Lane, r.Endpoint, r.EndpointKind, r.Tool))];
                planId = applied.PlanId;
            }

            var route = CallRoutes.Resolve(routes, parse.GetValue(symbol)!, parse.GetValue(from), planId);
            var input = ReadInput(parse.GetValue(args), parse.GetValue(argsFile), parse.GetValue(stdin));
            if (route.IsMcp)
            {
                input = McpArguments(input, parse.GetValue(args) is not null ? "--args" : parse.GetValue(argsFile) ?? "stdin");
            }

            using var caller = new LaneCaller(LaneClient.ControlSocketOf(ws), Rtt.Fabric.Lanes.LaneKind.Shm, LaneTokens(ws));
            var started = Stopwatch.GetTimestamp();
            byte[] answer;
            try
            {
                answer = await caller.CallAsync(route, input, TimeSpan.FromSeconds(seconds), cancellationToken);
            }
            catch (RttException ex) when (IsCallFailure(ex.Code))
            {
                var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (parse.GetValue(json))
                {
                    Console.Out.Write(PrettyJson.ToText(Envelope(route, ms, new JsonObject { ["code"] = ex.Code, ["message"] = ex.Message })));
                }

                Console.Error.WriteLine($"error {ex.Code}: {ex.Message}");
                return CallFailed;
            }

            var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (parse.GetValue(raw))
            {
                using var stdout = Console.OpenStandardOutput();
                stdout.Write(answer);
                return route.IsMcp && LaneCaller.ParseToolResult(answer, route.To).IsError ? CallFailed : RttCommands.Ok;
            }

            if (route.IsMcp)
            {
                var result = LaneCaller.ParseToolResult(answer, route.To);
                if (parse.GetValue(json))
                {
                    var env = Envelope(route, elapsed, null);
                    env["result"] = result.Result.DeepClone();
                    Console.Out.Write(PrettyJson.ToText(env));
                }
                else
                {
                    Console.Out.WriteLine(result.Text.Length > 0 ? result.Text : result.Result.ToJsonString());
                }

                if (result.IsError)
                {
                    Console.Error.WriteLine($"error {ErrorCodes.CallToolError}: the tool {route.Tool ?? route.To} reported an error");
                    return CallFailed;
                }

                return RttCommands.Ok;
            }

            if (parse.GetValue(json))
            {
                var env = Envelope(route, elapsed, null);
                env["answer_base64"] = Convert.ToBase64String(answer);
                if (Utf8(answer) is { } text)
                {
                    env["answer_text"] = text;
                }

                Console.Out.Write(PrettyJson.ToText(env));
            }
            else
            {
                Console.Out.WriteLine(Utf8(answer) ?? Convert.ToBase64String(answer));
            }

            return RttCommands.Ok;
        }));
        return command;
    }

    /// <summary>
    /// The <c>rtt up --once</c> step: every route of the applied plan whose endpoint is real (not echo) is called
    /// through its lane with a sample input (text for services and plugins; for an MCP tool, its pinned schema's
    /// required strings set to the same text), and the answers are printed with their latency (first call, then the
    /// median of 20 more).
    /// </summary>
    public static async Task<JsonObject> Step(RttWorkspace ws)
    {
        var plan = new PlanStore(ws).Applied();
        var routes = CallRoutes.Of(plan).Where(r => r.EndpointKind != ServeSpec.Echo).GroupBy(r => r.To).Select(g => g.First()).ToList();
        if (routes.Count == 0)
        {
            return new JsonObject { ["step"] = "calls", ["status"] = "skip", ["detail"] = "no route ends at a real endpoint (no serve blocks)" };
        }

        using var caller = new LaneCaller(LaneClient.ControlSocketOf(ws), Rtt.Fabric.Lanes.LaneKind.Shm, LaneTokens(ws));
        var results = new JsonArray();
        var details = new List<string>();
        var failed = false;
        foreach (var route in routes)
        {
            var input = route.IsMcp ? Encoding.UTF8.GetBytes(SampleArguments(ws, plan!, route).ToJsonString()) : "hello from rtt"u8.ToArray();
            try
            {
                var t0 = Stopwatch.GetTimestamp();
                var answer = await caller.CallAsync(route, input, TimeSpan.FromSeconds(30));
                var first = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                var times = new double[20];
                for (var i = 0; i < times.Length; i++)
                {
                    var t = Stopwatch.GetTimestamp();
                    await caller.CallAsync(route, input, TimeSpan.FromSeconds(30));
                    times[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                }

                Array.Sort(times);
                var text = route.IsMcp ? LaneCaller.ParseToolResult(answer, route.To).Text : Utf8(answer) ?? Convert.ToBase64String(answer);
                details.Add(string.Create(CultureInfo.InvariantCulture, $"{route.To} ({route.EndpointKind}) answered \"{Shorten(text)}\" in {first:0.00} ms, then p50 {times[10]:0.000} ms"));
                results.Add(new JsonObject
                {
                    ["symbol"] = route.To,
                    ["endpoint"] = route.EndpointKind,
                    ["answer"] = text,
                    ["first_ms"] = Math.Round(first, 3),
                    ["p50_ms"] = Math.Round(times[10], 3),
                });
            }
            catch (RttException ex)
            {
                failed = true;
                details.Add($"{route.To} ({route.EndpointKind}) failed: {ex.Code} {ex.Message}");
                results.Add(new JsonObject { ["symbol"] = route.To, ["endpoint"] = route.EndpointKind, ["error"] = $"{ex.Code} {ex.Message}" });
            }
        }

        return new JsonObject { ["step"] = "calls", ["status"] = failed ? "fail" : "ok", ["detail"] = string.Join("; ", details), ["calls"] = results };
    }

    /// <summary>Sample arguments for an MCP tool: every required string of its pinned input schema set to a greeting, numbers to 2.</summary>
    private static JsonObject SampleArguments(RttWorkspace ws, JsonObject plan, CallRoute route)
    {
        var args = new JsonObject();
        var objectHash = (string?)plan["endpoints"]?[route.Endpoint!]?["tool"]?["object"];
        if (objectHash is null)
        {
            return args;
        }

        using var store = Rtt.Registry.RegistryStore.Open(ws);
        var tool = store.ReadObject(objectHash, route.To);
        var schema = tool["input_schema"] as JsonObject;
        foreach (var name in (schema?["required"] as JsonArray ?? []).Select(n => (string?)n).OfType<string>())
        {
            var type = (string?)schema?["properties"]?[name]?["type"];
            args[name] = type is "number" or "integer" ? 2 : type is "boolean" ? true : "hello from rtt";
        }

        return args;
    }

    private static string Shorten(string text) => text.Length <= 60 ? text.ReplaceLineEndings(" ") : text[..57].ReplaceLineEndings(" ") + "...";

    private static bool IsCallFailure(string code) => code.StartsWith("RTT-CALL-", StringComparison.Ordinal) && code is not (ErrorCodes.CallNoRoute or ErrorCodes.CallInputInvalid)
        || code is ErrorCodes.LaneUpstreamGone or ErrorCodes.LaneRequestTimeout or ErrorCodes.McpDrift;

    private static JsonObject Envelope(CallRoute route, double ms, JsonObject? error)
    {
        var o = new JsonObject
        {
            ["symbol"] = route.To,
            ["route"] = new JsonObject { ["from"] = route.From, ["to"] = route.To, ["id"] = route.RouteId, ["node"] = route.Node, ["lane"] = route.Lane },
            ["endpoint"] = new JsonObject { ["kind"] = route.EndpointKind, ["hash"] = route.Endpoint, ["tool"] = route.Tool },
            ["latency_ms"] = Math.Round(ms, 3),
        };
        if (error is not null)
        {
            o["error"] = error;
        }

        return o;
    }

    private static byte[] ReadInput(string? args, string? file, bool stdin)
    {
        if (args is not null)
        {
            return Encoding.UTF8.GetBytes(args);
        }

        if (file is not null)
        {
            var path = Path.GetFullPath(file);
            if (!File.Exists(path))
            {
                throw new RttException(ErrorCodes.CallInputInvalid, "the args file does not exist", path, "name an existing file");
            }

            return File.ReadAllBytes(path);
        }

        if (stdin)
        {
            using var input = Console.OpenStandardInput();
            using var buffer = new MemoryStream();
            input.CopyTo(buffer);
            return buffer.ToArray();
        }

        return [];
    }

    /// <summary>An MCP tool's input must be a JSON object (empty input: no arguments).</summary>
    private static byte[] McpArguments(byte[] input, string where)
    {
        if (input.Length == 0)
        {
            return "{}"u8.ToArray();
        }

        JsonNode? node;
        try
        {
            using var doc = CanonicalJson.Parse(input, where);
            node = JsonNode.Parse(doc.RootElement.GetRawText());
        }
        catch (RttException ex)
        {
            throw new RttException(ErrorCodes.CallInputInvalid, $"the tool arguments are not valid JSON: {ex.Message}", where, "pass a JSON object, e.g. --args '{\"message\":\"hi\"}'");
        }

        if (node is not JsonObject o)
        {
            throw new RttException(ErrorCodes.CallInputInvalid, "the tool arguments must be a JSON object", where, "pass a JSON object, e.g. --args '{\"message\":\"hi\"}'");
        }

        return Encoding.UTF8.GetBytes(o.ToJsonString());
    }

    private static string? Utf8(byte[] bytes)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>
    /// A fresh lane token per attach, issued with the workspace's signing key for that route's symbol (docs/tokens.md): a
    /// strict-mode silo requires one, a dev-mode silo checks it. None when this user cannot read the key.
    /// </summary>
    internal static Func<CallRoute, string?> LaneTokens(RttWorkspace ws) =>
        new Rtt.Client.RttClientOptions().WithWorkspaceTokens(ws).LaneToken is { } mint ? route => mint(route.To) : _ => null;
}
