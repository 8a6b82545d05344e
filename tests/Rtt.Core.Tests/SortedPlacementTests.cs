using Rtt.Planning;

namespace Rtt.Core.Tests;

/// <summary>A placement over two arrays in ordinal symbol order answers as a dictionary, by search first, then by one.</summary>
public sealed class SortedPlacementTests
{
    [Fact]
    public void Lookups_by_search_and_by_dictionary_answer_alike()
    {
        var rnd = new Random(5);
        var symbols = Enumerable.Range(0, 500).Select(i => $"rtt://p/svc/{rnd.Next(100_000):x}-{i}").Distinct().ToArray();
        Array.Sort(symbols, StringComparer.Ordinal);
        var nodes = symbols.Select(_ => $"n{rnd.Next(4)}").ToArray();
        var expected = symbols.Zip(nodes).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal);
        var placement = new SortedPlacement(symbols, nodes);
        for (var i = 0; i < 300; i++) // past the searches, into the dictionary
        {
            var symbol = rnd.Next(3) == 0 ? $"rtt://p/svc/absent-{i}" : symbols[rnd.Next(symbols.Length)];
            Assert.Equal(expected.TryGetValue(symbol, out var node), placement.TryGetValue(symbol, out var found));
            Assert.Equal(node, found);
            Assert.Equal(expected.ContainsKey(symbol), placement.ContainsKey(symbol));
            if (node is null)
            {
                Assert.Throws<KeyNotFoundException>(() => placement[symbol]);
            }
            else
            {
                Assert.Equal(node, placement[symbol]);
            }
        }

        Assert.Equal(expected.OrderBy(p => p.Key, StringComparer.Ordinal), placement);
    }
}
