using System.Text.Json;
using Json.Schema;
using NuGet.Versioning;
using Rtt.Core.Errors;

namespace Rtt.Registry;

/// <summary>The registry's JSON Schemas (embedded), and the checks a schema cannot express (SemVer).</summary>
public static class SchemaValidator
{
    public static readonly Lazy<JsonSchema> Agent = new(() => Load("agent"));
    public static readonly Lazy<JsonSchema> Manifest = new(() => Load("manifest"));
    public static readonly Lazy<JsonSchema> McpTools = new(() => Load("mcp-tools"));
    public static readonly Lazy<JsonSchema> Routes = new(() => Load("routes"));
    public static readonly Lazy<JsonSchema> Policy = new(() => Load("policy"));
    public static readonly Lazy<JsonSchema> Topology = new(() => Load("topology"));

    /// <summary>The schema text, for docs and for `rtt schema`.</summary>
    public static string Text(string name)
    {
        using var stream = typeof(SchemaValidator).Assembly.GetManifestResourceStream($"Rtt.Registry.Schemas.{name}.schema.json")
            ?? throw new InvalidOperationException($"schema {name} is not embedded");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static readonly EvaluationOptions FlagOptions = new() { OutputFormat = OutputFormat.Flag };

    private static JsonSchema Load(string name) =>
        // Own registry per schema: nothing global, nothing fetched from the network.
        JsonSchema.FromText(Text(name), new BuildOptions { SchemaRegistry = new SchemaRegistry() });

    /// <summary>Validates; the first error names the file and the JSON Pointer of the offending field.</summary>
    public static void Validate(Lazy<JsonSchema> schema, JsonElement instance, string source)
    {
        // The flag form is the fast path (no annotations collected); the detailed form runs only to explain a failure.
        if (schema.Value.Evaluate(instance, FlagOptions).IsValid)
        {
            return;
        }

        var results = schema.Value.Evaluate(instance, new EvaluationOptions { OutputFormat = OutputFormat.Hierarchical });

        // Walk only failing nodes: a passing oneOf keeps its failed branches out of the report.
        // The deepest failing instance location is the field the user has to fix.
        var (pointer, message) = Deepest(results);
        pointer = pointer.Length > 0 ? pointer : "/";
        throw new RttException(ErrorCodes.SchemaViolation, message, $"{source}: {pointer}",
            $"fix the field at {pointer}; see docs/registry.md for the format");
    }

    private static (string Pointer, string Message) Deepest(EvaluationResults node)
    {
        var best = (Pointer: node.InstanceLocation.ToString(), Message: node.Errors?.Values.FirstOrDefault());
        foreach (var child in (node.Details ?? []).Where(d => !d.IsValid))
        {
            var candidate = Deepest(child);
            if (candidate.Message is not null && (best.Message is null || candidate.Pointer.Length > best.Pointer.Length))
            {
                best = candidate;
            }
        }

        return (best.Pointer, best.Message ?? "does not match the schema");
    }

    /// <summary>Checks a SemVer 2.0 version string with NuGet.Versioning's strict parser.</summary>
    public static SemanticVersion Semver(string version, string location)
    {
        if (!SemanticVersion.TryParse(version, out var parsed) || parsed.ToFullString() != version)
        {
            throw new RttException(ErrorCodes.BadSemver, $"\"{version}\" is not a SemVer 2.0 version", location,
                "use MAJOR.MINOR.PATCH, optionally with -prerelease and +build (e.g. 1.2.0, 2.0.0-rc.1)");
        }

        return parsed;
    }
}
