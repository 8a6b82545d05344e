using System.Reflection;
using Rtt.Core.Errors;

namespace Rtt.Core.Tests;

public sealed class ErrorCodeTests
{
    private static IEnumerable<string> Codes() => typeof(ErrorCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral)
        .Select(f => (string)f.GetRawConstantValue()!);

    [Fact]
    public void Codes_are_unique_and_well_formed()
    {
        var codes = Codes().ToList();
        Assert.Equal(codes.Count, codes.Distinct(StringComparer.Ordinal).Count());
        Assert.All(codes, c => Assert.Matches("^RTT-[A-Z]+-[0-9]{3}$", c));
    }

    [Fact]
    public void Every_code_is_documented_and_every_documented_code_exists()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Rtt.sln")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        var doc = File.ReadAllText(Path.Combine(dir.FullName, "docs", "errors.md"));
        var documented = System.Text.RegularExpressions.Regex.Matches(doc, @"^\| (RTT-[A-Z]+-[0-9]{3}) \|", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(Codes().Order(StringComparer.Ordinal), documented.Order(StringComparer.Ordinal));

        // Each row gives the cause and what to do about it.
        var rows = System.Text.RegularExpressions.Regex.Matches(doc, @"^\| (RTT-[A-Z]+-[0-9]{3}) \| (.+?) \| (.+?) \|$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.Equal(documented.Count, rows.Count);
        Assert.All(rows, r => Assert.True(r.Groups[2].Value.Trim().Length > 10 && r.Groups[3].Value.Trim().Length > 10, r.Value));
    }

    [Fact]
    public void Headline_names_code_message_and_location()
    {
        var ex = new WorkspaceException(ErrorCodes.WorkspaceExists, "exists", "/tmp/x", "choose another folder");
        Assert.Equal("RTT-WS-002: exists (/tmp/x)", ex.Headline);
        Assert.Equal("choose another folder", ex.Remedy);
    }
}
