using System.Text.Json.Nodes;
using Rtt.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>
/// <see cref="PlanDelta.Same"/> (equality with a shortcut for values whose JSON texts are the same bytes) must answer as
/// <see cref="JsonNode.DeepEquals"/> does, on values parsed from text, built in code, and mixed, including texts that
/// differ but mean the same value (escapes, number forms).
/// </summary>
public sealed class PlanDeltaSameTests
{
    private static readonly string[] Atoms = ["1", "1.0", "100", "1e2", "-0", "0", "\"A\"", "\"\\u0041\"", "\"a\"", "\"\"", "true", "false", "null", "\"x\\ny\"", "\"x\\u000ay\""];

    [Fact]
    public void Answers_as_deep_equals_on_random_pairs()
    {
        var random = new Random(1204);
        int equal = 0, differentTexts = 0;
        for (var n = 0; n < 20_000; n++)
        {
            var left = Text(random, 0);
            var right = random.Next(3) == 0 ? left : random.Next(2) == 0 ? Vary(left, random) : Text(random, 0);
            var a = JsonNode.Parse(left);
            var b = random.Next(4) == 0 ? a?.DeepClone() : JsonNode.Parse(right); // a copy holds values built in code
            var expected = JsonNode.DeepEquals(a, b);
            Assert.True(expected == PlanDelta.Same(a, b), $"{left} vs {right}: DeepEquals {expected}");
            equal += expected ? 1 : 0;
            differentTexts += expected && left != right ? 1 : 0;
        }

        Assert.True(equal > 5_000 && differentTexts > 100, $"{equal} equal pairs, {differentTexts} of them with different texts");
    }

    private static string Text(Random random, int depth) => random.Next(depth > 2 ? 1 : 4) switch
    {
        0 => Atoms[random.Next(Atoms.Length)],
        1 => "[" + string.Join(",", Enumerable.Range(0, random.Next(3)).Select(_ => Text(random, depth + 1))) + "]",
        _ => "{" + string.Join(",", new[] { "a", "b", "c" }.Where(_ => random.Next(2) == 0).Select(k => $"\"{k}\":{Text(random, depth + 1)}")) + "}",
    };

    // The same text with one atom swapped for one that may mean the same value in another form.
    private static string Vary(string text, Random random)
    {
        string[][] same = [["1", "1.0"], ["100", "1e2"], ["\"A\"", "\"\\u0041\""], ["\"x\\ny\"", "\"x\\u000ay\""], ["0", "-0"]];
        var pair = same[random.Next(same.Length)];
        var atom = new System.Text.RegularExpressions.Regex("(?<=^|[\\[,:])" + System.Text.RegularExpressions.Regex.Escape(pair[0]) + "(?=$|[\\],}])");
        return atom.Replace(text, pair[1], 1);
    }
}
