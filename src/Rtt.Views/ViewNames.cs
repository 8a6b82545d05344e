using Rtt.Core.Errors;

namespace Rtt.Views;

/// <summary>
/// Provider, environment and agent names become folder and file names, so they are a safe alphabet:
/// no separators, no leading dot (so never <c>..</c>), nothing a shell or another OS would misread.
/// </summary>
public static class ViewNames
{
    /// <summary>The file name of the env overlay that applies to every agent.</summary>
    public const string Global = "_global";

    public static bool IsSafe(string? name, int maxLength = 64)
    {
        if (string.IsNullOrEmpty(name) || name.Length > maxLength || !(char.IsAsciiLetterLower(name[0]) || char.IsAsciiDigit(name[0])))
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    public static string Provider(string? name, string? where = null) => Check(name, "provider", where);

    public static string Env(string? name, string? where = null) => Check(name, "environment", where);

    public static string Agent(string? name, string? where = null) => Check(name, "agent", where, 128);

    private static string Check(string? name, string what, string? where, int max = 64) =>
        IsSafe(name, max) ? name!
            : throw new RttException(ErrorCodes.ViewNameInvalid, $"invalid {what} name \"{name}\"", where,
                $"use 1-{max} characters from a-z 0-9 . _ - starting with a letter or digit (no path separators)");
}
