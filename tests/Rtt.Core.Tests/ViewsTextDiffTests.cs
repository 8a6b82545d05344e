using System.Text;
using Rtt.Views;

namespace Rtt.Core.Tests;

public sealed class ViewsTextDiffTests
{
    [Theory]
    [InlineData("a\nb\nc\n", "a\nB\nc\n")]
    [InlineData("", "new\nfile\n")]
    [InlineData("gone\n", "")]
    [InlineData("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n", "1\n2\nx\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n14\n15\n16\n")]
    [InlineData("same\n", "same\n")]
    [InlineData("a\nb\n", "b\na\n")]
    public void Applying_the_unified_diff_to_the_old_text_gives_the_new_text(string before, string after)
    {
        var diff = TextDiff.Unified("a/f", "b/f", before.Length == 0 ? null : before, after.Length == 0 ? null : after);
        Assert.Equal(after, Apply(before, diff));
        if (before == after)
        {
            Assert.DoesNotContain("@@", diff);
        }
    }

    [Fact]
    public void Far_apart_changes_get_separate_hunks_with_three_lines_of_context()
    {
        var before = string.Concat(Enumerable.Range(1, 30).Select(i => $"{i}\n"));
        var after = before.Replace("\n2\n", "\ntwo\n", StringComparison.Ordinal).Replace("\n28\n", "\ntwenty-eight\n", StringComparison.Ordinal);
        var diff = TextDiff.Unified("a/f", "b/f", before, after);
        Assert.Equal(["@@ -1,5 +1,5 @@", "@@ -25,6 +25,6 @@"], diff.Split('\n').Where(l => l.StartsWith("@@", StringComparison.Ordinal)));
    }

    /// <summary>A minimal patch(1) for the format: hunks in order, context and removals checked against the old text.</summary>
    private static string Apply(string before, string diff)
    {
        var old = before.Length == 0 ? [] : before.TrimEnd('\n').Split('\n');
        var result = new List<string>();
        var position = 0;
        var lines = diff.TrimEnd('\n').Split('\n');
        for (var i = 2; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                var oldStart = int.Parse(line.Split(' ')[1][1..].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture);
                var start = line.Split(' ')[1].EndsWith(",0", StringComparison.Ordinal) ? oldStart : oldStart - 1;
                while (position < start)
                {
                    result.Add(old[position++]);
                }

                continue;
            }

            switch (line[0])
            {
                case ' ':
                    Assert.Equal(old[position], line[1..]);
                    result.Add(old[position++]);
                    break;
                case '-':
                    Assert.Equal(old[position], line[1..]);
                    position++;
                    break;
                case '+':
                    result.Add(line[1..]);
                    break;
            }
        }

        while (position < old.Length)
        {
            result.Add(old[position++]);
        }

        return result.Count == 0 ? "" : string.Join("\n", result) + "\n";
    }
}
