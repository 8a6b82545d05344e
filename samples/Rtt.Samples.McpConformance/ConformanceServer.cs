using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Rtt.Samples.McpConformance;

/// <summary>
/// The tools, resources and prompts the conformance suite's server scenarios call (names and answers as its scenario
/// texts describe them). Definitions and answers are written as MCP JSON and read into the SDK's types, so what goes on
/// the wire is exactly what is written here.
/// </summary>
public static class ConformanceServer
{
    /// <summary>A 1x1 red PNG.</summary>
    public const string Png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

    /// <summary>A WAV file with a header and 8 silent 8-bit samples at 8 kHz.</summary>
    public static readonly string Wav = Convert.ToBase64String(MakeWav());

    private static readonly JsonSerializerOptions Json = McpJsonUtilities.DefaultOptions;

    public static bool IsLoopback(string host) =>
        host is "localhost" or "127.0.0.1" or "[::1]" or "::1" || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    public static IMcpServerBuilder Configure(ILoggingBuilder logging, IServiceCollection services)
    {
        logging.ClearProviders();
        logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.SetMinimumLevel(LogLevel.Warning);
        var subscriptions = new HashSet<string>(StringComparer.Ordinal);
        return services.AddMcpServer(o =>
            {
                o.ServerInfo = new Implementation { Name = "rtt-conformance-mcp", Version = "1.0.0" };
                o.Capabilities = new ServerCapabilities
                {
                    Logging = new LoggingCapability(),
                    Completions = new CompletionsCapability(),
                    Resources = new ResourcesCapability { Subscribe = true, ListChanged = false },
                    Prompts = new PromptsCapability { ListChanged = false },
                    Tools = new ToolsCapability { ListChanged = false },
                };
                o.ToolCollection = [.. Tools()];
            })
            .WithSetLoggingLevelHandler((_, _) => ValueTask.FromResult(new EmptyResult()))
            .WithCompleteHandler((request, _) => ValueTask.FromResult(Read<CompleteResult>(
                request.Params?.Argument.Name == "arg1"
                    ? new JsonObject { ["completion"] = new JsonObject { ["values"] = new JsonArray("paris", "park", "party"), ["total"] = 3, ["hasMore"] = false } }
                    : new JsonObject { ["completion"] = new JsonObject { ["values"] = new JsonArray(), ["total"] = 0, ["hasMore"] = false } })))
            .WithSubscribeToResourcesHandler((request, _) =>
            {
                lock (subscriptions)
                {
                    subscriptions.Add(request.Params?.Uri ?? "");
                }

                return ValueTask.FromResult(new EmptyResult());
            })
            .WithUnsubscribeFromResourcesHandler((request, _) =>
            {
                lock (subscriptions)
                {
                    subscriptions.Remove(request.Params?.Uri ?? "");
                }

                return ValueTask.FromResult(new EmptyResult());
            })
            .WithListResourcesHandler((_, _) => ValueTask.FromResult(Read<ListResourcesResult>(new JsonObject
            {
                ["resources"] = new JsonArray(
                    Resource("test://static-text", "static-text", "A static text resource", "text/plain"),
                    Resource("test://static-binary", "static-binary", "A static binary resource (a PNG)", "image/png"),
                    Resource("test://watched-resource", "watched-resource", "A resource clients may subscribe to", "text/plain")),
            })))
            .WithListResourceTemplatesHandler((_, _) => ValueTask.FromResult(Read<ListResourceTemplatesResult>(new JsonObject
            {
                ["resourceTemplates"] = new JsonArray(new JsonObject
                {
                    ["uriTemplate"] = "test://template/{id}/data",
                    ["name"] = "template-data",
                    ["description"] = "Data for an id",
                    ["mimeType"] = "application/json",
                }),
            })))
            .WithReadResourceHandler((request, _) => ValueTask.FromResult(Read<ReadResourceResult>(ReadResource(request.Params?.Uri ?? ""))))
            .WithListPromptsHandler((_, _) => ValueTask.FromResult(Read<ListPromptsResult>(new JsonObject
            {
                ["prompts"] = new JsonArray(
                    new JsonObject { ["name"] = "test_simple_prompt", ["description"] = "A prompt without arguments" },
                    new JsonObject
                    {
                        ["name"] = "test_prompt_with_arguments",
                        ["description"] = "A prompt with two arguments",
                        ["arguments"] = new JsonArray(
                            new JsonObject { ["name"] = "arg1", ["description"] = "First test argument", ["required"] = true },
                            new JsonObject { ["name"] = "arg2", ["description"] = "Second test argument", ["required"] = true }),
                    },
                    new JsonObject
                    {
                        ["name"] = "test_prompt_with_embedded_resource",
                        ["description"] = "A prompt embedding a resource",
                        ["arguments"] = new JsonArray(new JsonObject { ["name"] = "resourceUri", ["description"] = "URI of the resource to embed", ["required"] = true }),
                    },
                    new JsonObject { ["name"] = "test_prompt_with_image", ["description"] = "A prompt with an image" }),
            })))
            .WithGetPromptHandler((request, _) => ValueTask.FromResult(Read<GetPromptResult>(GetPrompt(request.Params?.Name ?? "", request.Params?.Arguments))));
    }

    private static JsonObject Resource(string uri, string name, string description, string mime) =>
        new() { ["uri"] = uri, ["name"] = name, ["description"] = description, ["mimeType"] = mime };

    private static JsonObject ReadResource(string uri)
    {
        JsonObject content;
        if (uri == "test://static-text")
        {
            content = new JsonObject { ["uri"] = uri, ["mimeType"] = "text/plain", ["text"] = "This is the content of the static text resource." };
        }
        else if (uri == "test://static-binary")
        {
            content = new JsonObject { ["uri"] = uri, ["mimeType"] = "image/png", ["blob"] = Png };
        }
        else if (uri == "test://watched-resource")
        {
            content = new JsonObject { ["uri"] = uri, ["mimeType"] = "text/plain", ["text"] = "Watched resource content." };
        }
        else if (uri.StartsWith("test://template/", StringComparison.Ordinal) && uri.EndsWith("/data", StringComparison.Ordinal))
        {
            var id = uri["test://template/".Length..^"/data".Length];
            content = new JsonObject
            {
                ["uri"] = uri,
                ["mimeType"] = "application/json",
                ["text"] = new JsonObject { ["id"] = id, ["templateTest"] = true, ["data"] = $"Data for ID: {id}" }.ToJsonString(),
            };
        }
        else
        {
            throw new McpProtocolException($"Resource not found: {uri}", McpErrorCode.ResourceNotFound);
        }

        return new JsonObject { ["contents"] = new JsonArray(content) };
    }

    private static JsonObject GetPrompt(string name, IDictionary<string, JsonElement>? arguments)
    {
        string Arg(string key) => arguments is not null && arguments.TryGetValue(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
        static JsonObject User(JsonObject content) => new() { ["role"] = "user", ["content"] = content };
        static JsonObject Text(string text) => new() { ["type"] = "text", ["text"] = text };
        var messages = name switch
        {
            "test_simple_prompt" => new JsonArray(User(Text("This is a simple prompt for testing."))),
            "test_prompt_with_arguments" => new JsonArray(User(Text($"Prompt with arguments: arg1='{Arg("arg1")}', arg2='{Arg("arg2")}'"))),
            "test_prompt_with_embedded_resource" => new JsonArray(
                User(new JsonObject
                {
                    ["type"] = "resource",
                    ["resource"] = new JsonObject { ["uri"] = Arg("resourceUri"), ["mimeType"] = "text/plain", ["text"] = "Embedded resource content for testing." },
                }),
                User(Text("Please process the embedded resource above."))),
            "test_prompt_with_image" => new JsonArray(
                User(new JsonObject { ["type"] = "image", ["data"] = Png, ["mimeType"] = "image/png" }),
                User(Text("Please analyze the image above."))),
            _ => throw new McpProtocolException($"Unknown prompt: {name}", McpErrorCode.InvalidParams),
        };
        return new JsonObject { ["messages"] = messages };
    }

    private static IEnumerable<McpServerTool> Tools()
    {
        var none = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() };
        static JsonObject Text(string text) => new() { ["type"] = "text", ["text"] = text };
        static JsonObject Result(params JsonObject[] content) => new() { ["content"] = new JsonArray(content) };

        yield return Tool("test_simple_text", "Returns a simple text answer", none, (_, _) => Done(Result(Text("This is a simple text response for testing."))));
        yield return Tool("test_image_content", "Returns an image", none, (_, _) => Done(Result(new JsonObject { ["type"] = "image", ["data"] = Png, ["mimeType"] = "image/png" })));
        yield return Tool("test_audio_content", "Returns audio", none, (_, _) => Done(Result(new JsonObject { ["type"] = "audio", ["data"] = Wav, ["mimeType"] = "audio/wav" })));
        yield return Tool("test_embedded_resource", "Returns an embedded resource", none, (_, _) => Done(Result(new JsonObject
        {
            ["type"] = "resource",
            ["resource"] = new JsonObject { ["uri"] = "test://embedded-resource", ["mimeType"] = "text/plain", ["text"] = "This is an embedded resource content." },
        })));
        yield return Tool("test_multiple_content_types", "Returns text, an image and a resource", none, (_, _) => Done(Result(
            Text("Multiple content types test:"),
            new JsonObject { ["type"] = "image", ["data"] = Png, ["mimeType"] = "image/png" },
            new JsonObject
            {
                ["type"] = "resource",
                ["resource"] = new JsonObject { ["uri"] = "test://mixed-content-resource", ["mimeType"] = "application/json", ["text"] = """{"test":"data","value":123}""" },
            })));
        yield return Tool("test_error_handling", "Always answers with a tool error", none, (_, _) =>
            Done(new JsonObject { ["isError"] = true, ["content"] = new JsonArray(Text("This tool intentionally returns an error for testing")) }));
        yield return Tool("test_tool_with_logging", "Sends three log messages while it runs", none, async (request, cancellationToken) =>
        {
            foreach (var (message, delay) in new[] { ("Tool execution started", 0), ("Tool processing data", 50), ("Tool execution completed", 50) })
            {
                await Task.Delay(delay, cancellationToken);
                await request.Server.SendNotificationAsync(NotificationMethods.LoggingMessageNotification,
                    new JsonObject { ["level"] = "info", ["logger"] = "conformance", ["data"] = message }, Json, cancellationToken);
            }

            return Result(Text("Logging test completed"));
        });
        yield return Tool("test_tool_with_progress", "Reports progress 0, 50, 100 of 100", none, async (request, cancellationToken) =>
        {
            var token = request.Params?.ProgressToken;
            for (var p = 0; p <= 100; p += 50)
            {
                if (p > 0)
                {
                    await Task.Delay(50, cancellationToken);
                }

                if (token is { } t)
                {
                    await request.Server.NotifyProgressAsync(t, new ProgressNotificationValue { Progress = p, Total = 100 }, cancellationToken: cancellationToken);
                }
            }

            return Result(Text("Progress test completed"));
        });
        yield return Tool("test_sampling", "Asks the client for an LLM completion of the prompt", Object(("prompt", "The prompt to send to the LLM")), async (request, cancellationToken) =>
        {
            var prompt = Argument(request, "prompt");
            var answer = await Ask(request, RequestMethods.SamplingCreateMessage, new JsonObject
            {
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Text(prompt) }),
                ["maxTokens"] = 100,
            }, cancellationToken);
            return Result(Text($"LLM response: {(string?)answer?["content"]?["text"] ?? answer?.ToJsonString()}"));
        });
        yield return Tool("test_elicitation", "Asks the user for a username and an email", Object(("message", "The message to show the user")), async (request, cancellationToken) =>
        {
            var answer = await Ask(request, RequestMethods.ElicitationCreate, new JsonObject
            {
                ["message"] = Argument(request, "message"),
                ["requestedSchema"] = JsonNode.Parse("""
                    {"type":"object","properties":{"username":{"type":"string","description":"User's response"},
                     "email":{"type":"string","description":"User's email address"}},"required":["username","email"]}
                    """),
            }, cancellationToken);
            return Result(Text($"User response: action={(string?)answer?["action"]}, content={answer?["content"]?.ToJsonString() ?? "{}"}"));
        });
        yield return Tool("test_elicitation_sep1034_defaults", "Elicitation with a default for every primitive type", none, async (request, cancellationToken) =>
        {
            var answer = await Ask(request, RequestMethods.ElicitationCreate, new JsonObject
            {
                ["message"] = "Please review and update the form fields with defaults",
                ["requestedSchema"] = JsonNode.Parse("""
                    {"type":"object","properties":{
                     "name":{"type":"string","description":"User name","default":"John Doe"},
                     "age":{"type":"integer","description":"User age","default":30},
                     "score":{"type":"number","description":"User score","default":95.5},
                     "status":{"type":"string","description":"User status","enum":["active","inactive","pending"],"default":"active"},
                     "verified":{"type":"boolean","description":"Verification status","default":true}}}
                    """),
            }, cancellationToken);
            return Result(Text($"Elicitation completed: action={(string?)answer?["action"]}, content={answer?["content"]?.ToJsonString() ?? "{}"}"));
        });
        yield return Tool("test_elicitation_sep1330_enums", "Elicitation with the five enum forms", none, async (request, cancellationToken) =>
        {
            var answer = await Ask(request, RequestMethods.ElicitationCreate, new JsonObject
            {
                ["message"] = "Please select options from the enum fields",
                ["requestedSchema"] = JsonNode.Parse("""
                    {"type":"object","properties":{
                     "untitledSingle":{"type":"string","description":"Select one option","enum":["option1","option2","option3"]},
                     "titledSingle":{"type":"string","description":"Select one option with titles","oneOf":[
                       {"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},{"const":"value3","title":"Third Option"}]},
                     "legacyEnum":{"type":"string","description":"Select one option (legacy)","enum":["opt1","opt2","opt3"],
                       "enumNames":["Option One","Option Two","Option Three"]},
                     "untitledMulti":{"type":"array","description":"Select multiple options","minItems":1,"maxItems":3,
                       "items":{"type":"string","enum":["option1","option2","option3"]}},
                     "titledMulti":{"type":"array","description":"Select multiple options with titles","minItems":1,"maxItems":3,
                       "items":{"anyOf":[{"const":"value1","title":"First Choice"},{"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}}}
                    """),
            }, cancellationToken);
            return Result(Text($"Elicitation completed: action={(string?)answer?["action"]}, content={answer?["content"]?.ToJsonString() ?? "{}"}"));
        });
        yield return Tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JsonNode.Parse("""
            {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
             "$defs":{"address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},
             "properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"}},"additionalProperties":false}
            """)!.AsObject(), (request, _) => Done(Result(Text($"Received: {JsonSerializer.Serialize(request.Params?.Arguments ?? new Dictionary<string, JsonElement>(), Json)}"))));
        yield return Tool("test_reconnection", "Answers after 100 ms (the SSE polling scenario calls it)", none, async (_, cancellationToken) =>
        {
            await Task.Delay(100, cancellationToken);
            return Result(Text("Reconnection test completed"));
        });
    }

    private static JsonObject Object(params (string Name, string Description)[] strings)
    {
        var properties = new JsonObject();
        foreach (var (name, description) in strings)
        {
            properties[name] = new JsonObject { ["type"] = "string", ["description"] = description };
        }

        return new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = new JsonArray([.. strings.Select(s => (JsonNode)s.Name)]) };
    }

    private static string Argument(RequestContext<CallToolRequestParams> request, string name) =>
        request.Params?.Arguments is { } args && args.TryGetValue(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    /// <summary>A request to the client (sampling, elicitation) as written; its result as JSON.</summary>
    private static async Task<JsonNode?> Ask(RequestContext<CallToolRequestParams> request, string method, JsonObject parameters, CancellationToken cancellationToken)
    {
        var response = await request.Server.SendRequestAsync(new JsonRpcRequest { Method = method, Params = parameters }, cancellationToken);
        return response.Result;
    }

    private static ValueTask<JsonObject> Done(JsonObject result) => ValueTask.FromResult(result);

    private static T Read<T>(JsonObject json) => JsonSerializer.Deserialize<T>(json, Json) ?? throw new JsonException("null");

    private static McpServerTool Tool(string name, string description, JsonObject inputSchema, Func<RequestContext<CallToolRequestParams>, CancellationToken, ValueTask<JsonObject>> run) =>
        new RawTool(new Tool { Name = name, Description = description, InputSchema = JsonSerializer.SerializeToElement(inputSchema, Json) }, run);

    private static byte[] MakeWav()
    {
        var data = new byte[8];
        Array.Fill(data, (byte)128);
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write("RIFF"u8);
        w.Write(36 + data.Length);
        w.Write("WAVEfmt "u8);
        w.Write(16);
        w.Write((short)1); // PCM
        w.Write((short)1); // mono
        w.Write(8000);     // sample rate
        w.Write(8000);     // byte rate
        w.Write((short)1); // block align
        w.Write((short)8); // bits per sample
        w.Write("data"u8);
        w.Write(data.Length);
        w.Write(data);
        w.Flush();
        return stream.ToArray();
    }

    /// <summary>A tool with a definition and an answer written as MCP JSON.</summary>
    private sealed class RawTool(Tool tool, Func<RequestContext<CallToolRequestParams>, CancellationToken, ValueTask<JsonObject>> run) : McpServerTool
    {
        public override Tool ProtocolTool => tool;

        public override IReadOnlyList<object> Metadata => [];

        public override async ValueTask<CallToolResult> InvokeAsync(RequestContext<CallToolRequestParams> request, CancellationToken cancellationToken = default) =>
            Read<CallToolResult>(await run(request, cancellationToken));
    }
}
