using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Core.Calls;

/// <summary>
/// How a symbol is served: a manifest's <c>serve</c> block (docs/calls.md). <see cref="Normalize"/> checks it and
/// returns the canonical form (defaults filled in, members sorted) that the planner carries, by hash, in the
/// signed plan: the endpoint a route's lane ends at. Kinds:
/// <c>echo</c>, <c>process</c> (a service speaking RTT frames over a lane), <c>dotnet</c> (an in-process plugin in a
/// collectible load context), <c>mcp-stdio</c> and <c>mcp-http</c> (an MCP server's tool, called with <c>tools/call</c>).
/// </summary>
public static class ServeSpec
{
    public const string Echo = "echo";
    public const string Process = "process";
    public const string Dotnet = "dotnet";
    public const string McpStdio = "mcp-stdio";
    public const string McpHttp = "mcp-http";

    /// <summary>The defaults a normalized block carries (one copy each; readers of a block use them too).</summary>
    public const int DefaultTimeoutMs = 30_000;
    public const int DefaultMaxInFlight = 256;
    public const int DefaultStartTimeoutMs = 10_000;
    public const int DefaultWindow = 4096;

    public static readonly IReadOnlyList<string> Kinds = [Dotnet, Echo, McpHttp, McpStdio, Process];

    private static readonly Dictionary<string, string[]> Allowed = new(StringComparer.Ordinal)
    {
        [Echo] = ["kind"],
        [Process] = ["kind", "command", "args", "env", "cwd", "lane", "attach", "start_timeout_ms", "window", "sandbox"],
        [Dotnet] = ["kind", "assembly", "type", "config", "timeout_ms", "max_in_flight"],
        [McpStdio] = ["kind", "command", "args", "env", "cwd", "timeout_ms", "max_in_flight", "tool", "sandbox"],
        [McpHttp] = ["kind", "url", "headers", "timeout_ms", "max_in_flight", "tool"],
    };

    /// <summary>
    /// Checks a <c>serve</c> block and returns its canonical form (a new object). Errors are RTT-CALL-001 naming
    /// <paramref name="source"/> and the JSON Pointer of the field (<paramref name="pointer"/> is where the block sits).
    /// </summary>
    public static JsonObject Normalize(JsonNode? serve, string source, string pointer = "/serve")
    {
        if (serve is not JsonObject o)
        {
            throw Invalid(source, pointer, "must be an object such as {\"kind\": \"process\", \"command\": \"…\"}");
        }

        if (o["kind"] is not JsonValue kv || !kv.TryGetValue<string>(out var kind) || !Allowed.TryGetValue(kind, out var allowed))
        {
            throw Invalid(source, pointer + "/kind", $"must be one of {string.Join(", ", Kinds)}");
        }

        foreach (var (name, _) in o)
        {
            if (!allowed.Contains(name, StringComparer.Ordinal))
            {
                throw Invalid(source, $"{pointer}/{name}", $"is not a field of a \"{kind}\" serve block (allowed: {string.Join(", ", allowed)})");
            }
        }

        var result = new JsonObject { ["kind"] = kind };
        switch (kind)
        {
            case Process:
                result["command"] = RequiredString(o, "command", source, pointer);
                CopyCommand(o, result, source, pointer);
                var lane = OptionalString(o, "lane", source, pointer) ?? "shm";
                if (lane is not ("shm" or "uds"))
                {
                    throw Invalid(source, pointer + "/lane", "must be \"shm\" or \"uds\" (the lane the service attaches with)");
                }

                result["lane"] = lane;
                result["attach"] = OptionalBool(o, "attach", source, pointer) ?? false;
                result["start_timeout_ms"] = OptionalInt(o, "start_timeout_ms", source, pointer, 1, 600_000) ?? DefaultStartTimeoutMs;
                result["window"] = OptionalInt(o, "window", source, pointer, 1, 1 << 16) ?? DefaultWindow;
                CopySandbox(o, result, source, pointer);
                break;
            case Dotnet:
                result["assembly"] = RequiredString(o, "assembly", source, pointer);
                result["type"] = RequiredString(o, "type", source, pointer);
                if (o["config"] is { } config)
                {
                    result["config"] = config is JsonObject ? config.DeepClone() : throw Invalid(source, pointer + "/config", "must be an object (handed to the plugin as JSON)");
                }

                CopyLimits(o, result, source, pointer);
                break;
            case McpStdio:
                result["command"] = RequiredString(o, "command", source, pointer);
                CopyCommand(o, result, source, pointer);
                CopyLimits(o, result, source, pointer);
                CopyTool(o, result, source, pointer);
                CopySandbox(o, result, source, pointer);
                break;
            case McpHttp:
                var url = RequiredString(o, "url", source, pointer);
                if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                {
                    throw Invalid(source, pointer + "/url", $"\"{url}\" is not an absolute http(s) URL");
                }

                result["url"] = url;
                result["headers"] = StringMap(o, "headers", source, pointer);
                CopyLimits(o, result, source, pointer);
                CopyTool(o, result, source, pointer);
                break;
        }

        return (JsonObject)Sorted(result)!; // members in ordinal order: the same text however the block was built or read
    }

    /// <summary>
    /// <c>sandbox</c>: <c>{"network": false, "read": [paths], "write": [paths]}</c>, all optional; the driver then runs under
    /// bubblewrap with a seccomp filter (docs/security.md). Part of the block, so of its hash and of the signed plan.
    /// </summary>
    private static void CopySandbox(JsonObject o, JsonObject result, string source, string pointer)
    {
        if (o["sandbox"] is not { } node)
        {
            return;
        }

        var at = pointer + "/sandbox";
        if (node is not JsonObject sandbox)
        {
            throw Invalid(source, at, "must be an object {\"network\": false, \"read\": [paths], \"write\": [paths]}");
        }

        foreach (var (name, _) in sandbox)
        {
            if (name is not ("network" or "read" or "write"))
            {
                throw Invalid(source, $"{at}/{name}", "is not a field of a sandbox (allowed: network, read, write)");
            }
        }

        JsonArray Paths(string name)
        {
            if (sandbox[name] is null)
            {
                return [];
            }

            if (sandbox[name] is not JsonArray list || list.Any(p => p is not JsonValue v || !v.TryGetValue<string>(out var s) || s.Length == 0))
            {
                throw Invalid(source, $"{at}/{name}", "must be a list of paths (relative to the workspace root, or absolute)");
            }

            return [.. list.Select(p => (JsonNode)(string)p!)];
        }

        result["sandbox"] = new JsonObject
        {
            ["network"] = OptionalBool(sandbox, "network", source, at) ?? false,
            ["read"] = Paths("read"),
            ["write"] = Paths("write"),
        };
    }

    private static JsonNode? Sorted(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject([.. o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sorted(p.Value)))]),
        JsonArray a => new JsonArray([.. a.Select(Sorted)]),
        _ => node?.DeepClone(),
    };

    /// <summary>The endpoint's hash in plans: <c>sha256:</c> of the canonical serve block.</summary>
    public static string Hash(JsonObject normalized) => ContentHash.OfCanonical(normalized);

    /// <summary>A driver process (<c>process</c>, <c>mcp-stdio</c>) whose serve block asks for no sandbox: what a strict-mode silo refuses unless policy allows it.</summary>
    public static bool RunsUnsandboxed(JsonObject serve) => (string?)serve["kind"] is Process or McpStdio && serve["sandbox"] is null;

    /// <summary>
    /// Resolves a path of a serve block (command, cwd, assembly) against the workspace root when relative; a
    /// bare command name (no slash) is left for PATH lookup.
    /// </summary>
    public static string ResolvePath(string root, string path, bool isCommand = false)
    {
        path = Expand(path);
        if (Path.IsPathRooted(path) || (isCommand && !path.Contains('/', StringComparison.Ordinal)))
        {
            return path;
        }

        return Path.GetFullPath(Path.Combine(root, path));
    }

    /// <summary>The variable a serve block's strings may use for the folder of the running RTT binaries (bundled samples).</summary>
    public const string HomeVariable = "${RTT_HOME}";

    /// <summary>
    /// Expands <c>${RTT_HOME}</c> (the folder of the running silo's binaries) in a serve block's command, args, cwd or
    /// assembly. The plan keeps the text unexpanded, so its hash is the same on every machine.
    /// </summary>
    public static string Expand(string value) =>
        value.Contains(HomeVariable, StringComparison.Ordinal)
            ? value.Replace(HomeVariable, AppContext.BaseDirectory.TrimEnd('/'), StringComparison.Ordinal)
            : value;

    private static void CopyCommand(JsonObject o, JsonObject result, string source, string pointer)
    {
        result["args"] = StringArray(o, "args", source, pointer);
        result["env"] = StringMap(o, "env", source, pointer);
        if (OptionalString(o, "cwd", source, pointer) is { } cwd)
        {
            result["cwd"] = cwd;
        }
    }

    private static void CopyLimits(JsonObject o, JsonObject result, string source, string pointer)
    {
        result["timeout_ms"] = OptionalInt(o, "timeout_ms", source, pointer, 1, 3_600_000) ?? DefaultTimeoutMs;
        result["max_in_flight"] = OptionalInt(o, "max_in_flight", source, pointer, 1, 1 << 16) ?? DefaultMaxInFlight;
    }

    private static void CopyTool(JsonObject o, JsonObject result, string source, string pointer)
    {
        if (o["tool"] is null)
        {
            return;
        }

        if (o["tool"] is not JsonObject tool)
        {
            throw Invalid(source, pointer + "/tool", "must be an object {name, pin, object}");
        }

        result["tool"] = tool.DeepClone();
    }

    private static string RequiredString(JsonObject o, string name, string source, string pointer) =>
        OptionalString(o, name, source, pointer) ?? throw Invalid(source, $"{pointer}/{name}", "is required");

    private static string? OptionalString(JsonObject o, string name, string source, string pointer)
    {
        if (o[name] is null)
        {
            return null;
        }

        if (o[name] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 && !s.Contains('\0', StringComparison.Ordinal))
        {
            return s;
        }

        throw Invalid(source, $"{pointer}/{name}", "must be a non-empty string");
    }

    private static bool? OptionalBool(JsonObject o, string name, string source, string pointer)
    {
        if (o[name] is null)
        {
            return null;
        }

        return o[name] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Invalid(source, $"{pointer}/{name}", "must be true or false");
    }

    private static int? OptionalInt(JsonObject o, string name, string source, string pointer, int min, int max)
    {
        if (o[name] is null)
        {
            return null;
        }

        // A parsed number (JsonElement) or one set in code (int, long, double): read through its JSON text either way.
        if (o[name] is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            && double.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
            && d == Math.Floor(d) && d >= min && d <= max)
        {
            return (int)d;
        }

        throw Invalid(source, $"{pointer}/{name}", $"must be a whole number from {min} to {max}");
    }

    private static JsonArray StringArray(JsonObject o, string name, string source, string pointer)
    {
        if (o[name] is null)
        {
            return [];
        }

        if (o[name] is not JsonArray a)
        {
            throw Invalid(source, $"{pointer}/{name}", "must be an array of strings");
        }

        var result = new JsonArray();
        for (var i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonValue v || !v.TryGetValue<string>(out var s) || s.Contains('\0', StringComparison.Ordinal))
            {
                throw Invalid(source, $"{pointer}/{name}/{i}", "must be a string");
            }

            result.Add(s);
        }

        return result;
    }

    private static JsonObject StringMap(JsonObject o, string name, string source, string pointer)
    {
        if (o[name] is null)
        {
            return [];
        }

        if (o[name] is not JsonObject m)
        {
            throw Invalid(source, $"{pointer}/{name}", "must be an object of strings");
        }

        var result = new JsonObject();
        foreach (var (key, value) in m.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (value is not JsonValue v || !v.TryGetValue<string>(out var s))
            {
                throw Invalid(source, $"{pointer}/{name}/{key}", "must be a string");
            }

            result[key] = s;
        }

        return result;
    }

    private static RttException Invalid(string source, string pointer, string what) =>
        new(ErrorCodes.ServeInvalid, $"serve block: {pointer} {what}", $"{source}: {pointer}", "fix the manifest's serve block (docs/calls.md lists every kind and field)");
}
