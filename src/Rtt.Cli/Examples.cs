using Rtt.Core.Errors;

namespace Rtt.Cli;

/// <summary>The examples bundled beside the rtt binary (examples/&lt;name&gt;/).</summary>
public static class Examples
{
    public static string Root => Path.Combine(AppContext.BaseDirectory, "examples");

    public static IReadOnlyList<string> Names =>
        Directory.Exists(Root) ? [.. Directory.GetDirectories(Root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)] : [];

    public static string Find(string name)
    {
        var dir = Path.Combine(Root, name);
        if (name.Contains('/') || name.Contains('\\') || name.StartsWith('.') || !Directory.Exists(dir))
        {
            throw new Core.Errors.WorkspaceException(ErrorCodes.ExampleNotFound, $"no example named \"{name}\"", Root,
                Names.Count > 0 ? $"choose one of: {string.Join(", ", Names)}" : "this rtt installation has no examples; reinstall it");
        }

        return dir;
    }
}
