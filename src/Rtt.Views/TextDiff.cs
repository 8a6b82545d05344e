using System.Text;

namespace Rtt.Views;

/// <summary>
/// A small line diff (longest common subsequence) printed in unified format with 3 lines of context, for
/// <c>rtt view diff --verbose</c>. Provider files are small; past a size bound it shows the whole file replaced.
/// </summary>
public static class TextDiff
{
    private const int Context = 3;
    private const long MaxCells = 4_000_000;

    public static string Unified(string oldName, string newName, string? oldText, string? newText)
    {
        var a = Lines(oldText);
        var b = Lines(newText);
        var ops = Diff(a, b);
        var sb = new StringBuilder();
        sb.Append("--- ").Append(oldText is null ? "/dev/null" : oldName).Append('\n');
        sb.Append("+++ ").Append(newText is null ? "/dev/null" : newName).Append('\n');

        // Group edits into hunks with up to 3 lines of unchanged context around them.
        var i = 0;
        while (i < ops.Count)
        {
            if (ops[i].Kind == ' ')
            {
                i++;
                continue;
            }

            var start = Math.Max(0, i - Context);
            var end = i;
            while (end < ops.Count)
            {
                if (ops[end].Kind != ' ')
                {
                    end++;
                    continue;
                }

                var run = end;
                while (run < ops.Count && ops[run].Kind == ' ')
                {
                    run++;
                }

                if (run == ops.Count || run - end > 2 * Context)
                {
                    end = Math.Min(run, end + Context);
                    break;
                }

                end = run;
            }

            var oldStart = ops[start].OldLine;
            var newStart = ops[start].NewLine;
            var oldCount = ops.Skip(start).Take(end - start).Count(o => o.Kind != '+');
            var newCount = ops.Skip(start).Take(end - start).Count(o => o.Kind != '-');
            sb.Append("@@ -").Append(Range(oldStart, oldCount)).Append(" +").Append(Range(newStart, newCount)).Append(" @@\n");
            for (var j = start; j < end; j++)
            {
                sb.Append(ops[j].Kind).Append(ops[j].Text).Append('\n');
            }

            i = end;
        }

        return sb.ToString();
    }

    private static string Range(int start, int count) => count == 0 ? $"{start},0" : count == 1 ? $"{start + 1}" : $"{start + 1},{count}";

    private static string[] Lines(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        return text.EndsWith('\n') ? lines[..^1] : lines;
    }

    private readonly record struct Op(char Kind, string Text, int OldLine, int NewLine);

    private static List<Op> Diff(string[] a, string[] b)
    {
        var ops = new List<Op>();
        if ((long)a.Length * b.Length > MaxCells)
        {
            ops.AddRange(a.Select((t, i) => new Op('-', t, i, 0)));
            ops.AddRange(b.Select((t, i) => new Op('+', t, a.Length, i)));
            return ops;
        }

        // lcs[i, j] = length of the LCS of a[i..] and b[j..].
        var lcs = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
        {
            for (var j = b.Length - 1; j >= 0; j--)
            {
                lcs[i, j] = string.Equals(a[i], b[j], StringComparison.Ordinal) ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && string.Equals(a[x], b[y], StringComparison.Ordinal))
            {
                ops.Add(new Op(' ', a[x], x, y));
                x++;
                y++;
            }
            else if (x < a.Length && (y == b.Length || lcs[x + 1, y] >= lcs[x, y + 1]))
            {
                ops.Add(new Op('-', a[x], x, y)); // deletions before insertions, as diff -u prints them
                x++;
            }
            else
            {
                ops.Add(new Op('+', b[y], x, y));
                y++;
            }
        }

        return ops;
    }
}
