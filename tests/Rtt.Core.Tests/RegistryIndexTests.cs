using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>
/// The compact index (UTF-8 keys in one block, raw hashes, a sorted delta merged into the base) against the plain
/// ordinal-sorted dictionary it replaced: the same lookups, the same order, the same index.json bytes.
/// </summary>
public sealed class RegistryIndexTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-index-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Hash(string seed) => ContentHash.Of(Encoding.UTF8.GetBytes(seed));

    // Keys an ordinal sort and a UTF-8 byte sort put in different orders (U+E000-U+FFFF against the supplementary
    // planes), IDs that are prefixes of others, prerelease and build versions, escapes.
    private static readonly string[] Tricky =
    [
        "a@1.0.0", "a@1.0.0-alpha", "a@1.0.0-alpha.1", "a@1.0.0+build.5", "a@10.0.0", "a@2.0.0", "ab@1.0.0", "a-b@1.0.0",
        "a.b@1.0.0", "a@b@1.0.0", "A@1.0.0", "rtt://mcp/demo/echo@2.0.0", "rtt://mcp/demo/echo/x@2.0.0",
        "view:claude/prod/summarize@1.0.0+v.00ff", "view-set:openai/prod@1", "é@1.0.0", "e\u0301@1.0.0", "\uE000@1.0.0",
        "\uFF5E@1.0.0", "\uFFFD@1.0.0", "\U0001F600@1.0.0", "\U00010000@1.0.0", "日本@1.0.0", "q\"uote\\@1.0.0", "tab\t@1.0.0",
        "\u007F@1.0.0", "\u0080@1.0.0", "\u07FF@1.0.0", "\u0800@1.0.0", "\uD7FF@1.0.0",
    ];

    private static byte[] Expected(SortedDictionary<string, string> entries)
    {
        var obj = new JsonObject();
        foreach (var (k, v) in entries)
        {
            obj[k] = v;
        }

        return PrettyJson.ToUtf8(obj); // the tree form main wrote index.json from before it was streamed
    }

    [Fact]
    public void Lookups_order_and_bytes_match_an_ordinal_dictionary_across_merges()
    {
        var path = Path.Combine(_dir, "index.json");
        var index = RegistryIndex.Load(path);
        var reference = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var random = new Random(7);
        // Enough entries for several merges of the delta into the base (4,096 at least per merge), tricky ones spread over them.
        var keys = Enumerable.Range(0, 12_000).Select(i => $"agent-{random.Next(100_000)}@1.{i % 5}.0{(i % 3 == 0 ? "-rc." + i : "")}")
            .Concat(Tricky).Distinct().OrderBy(_ => random.Next()).ToList();
        foreach (var key in keys)
        {
            Assert.True(index.Add(key, Hash(key), "test"));
            reference[key] = Hash(key);
        }

        Assert.False(index.Add(Tricky[3], Hash(Tricky[3]), "test")); // the same entry again: nothing to do
        var refused = Assert.Throws<RttException>(() => index.Add(Tricky[3], Hash("other"), "test"));
        Assert.Equal(ErrorCodes.Immutable, refused.Code);

        Assert.Equal(reference.Count, index.Count);
        Assert.Equal(reference.ToList(), index.Entries.ToList());
        Assert.Equal(reference.Keys, index.Entries.Keys);
        Assert.Equal(reference.Values, index.Entries.Values);
        foreach (var key in Tricky)
        {
            Assert.True(index.TryGet(key, out var hash));
            Assert.Equal(reference[key], hash);
            Assert.Equal(reference[key], index.Entries[key]);
            Assert.True(index.Has(key, hash));
            Assert.False(index.Has(key, Hash("other")));
        }

        foreach (var missing in (string[])["a@1", "a@1.0.0-alph", "a@1.0.0-alpha.10", "agent-@1.0.0", "", "@", "\uD800@1.0.0", "\U0001F600@1.0.1"])
        {
            Assert.False(index.TryGet(missing, out _));
            Assert.False(index.Entries.ContainsKey(missing));
            Assert.False(index.Has(missing, Hash(missing)));
        }

        Assert.Throws<KeyNotFoundException>(() => index.Entries["nope@1.0.0"]);

        index.Save();
        Assert.Equal(Expected(reference), File.ReadAllBytes(path));

        // Loaded back: the same entries, lookups and bytes.
        var loaded = RegistryIndex.Load(path);
        Assert.Equal(reference.ToList(), loaded.Entries.ToList());
        Assert.True(loaded.TryGet("\U0001F600@1.0.0", out var smiley));
        Assert.Equal(Hash("\U0001F600@1.0.0"), smiley);
        loaded.Save();
        Assert.Equal(Expected(reference), File.ReadAllBytes(path));
    }

    [Fact]
    public void Prefix_queries_give_every_version_of_an_id_and_no_other_id()
    {
        var index = RegistryIndex.Load(Path.Combine(_dir, "index.json"));
        var reference = new SortedDictionary<string, string>(StringComparer.Ordinal);
        // Half the entries merged into the base, half still in the delta, for the same IDs.
        for (var i = 0; i < 10_000; i++)
        {
            var key = $"{(i % 2 == 0 ? "a" : "ab")}@{i / 2}.0.0";
            index.Add(key, Hash(key), null);
            reference[key] = Hash(key);
        }

        foreach (var key in Tricky)
        {
            index.Add(key, Hash(key), null);
            reference[key] = Hash(key);
        }

        foreach (var prefix in (string[])["a@", "ab@", "a", "\uE000@", "\U0001F600@", "zz@", "", "\uD800"])
        {
            Assert.Equal(reference.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList(), index.StartingWith(prefix).ToList());
        }
    }

    [Fact]
    public void Replace_moves_entries_in_the_base_and_in_the_delta()
    {
        var path = Path.Combine(_dir, "index.json");
        var index = RegistryIndex.Load(path);
        var reference = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < 9_000; i++)
        {
            var key = $"x{i}@1.0.0";
            index.Add(key, Hash(key), null);
            reference[key] = Hash(key);
        }

        // Entries in the base and in the delta: moved to another key, re-hashed under the same key, and missing ones.
        foreach (var i in (int[])[0, 17, 4_500, 8_999, 123_456])
        {
            var (old, moved) = ($"x{i}@1.0.0", $"x{i}@1.0.0+r");
            index.Replace(old, moved, Hash(moved));
            reference.Remove(old);
            reference[moved] = Hash(moved);
            index.Replace($"x{i + 1}@1.0.0", $"x{i + 1}@1.0.0", Hash("re-signed" + i));
            reference[$"x{i + 1}@1.0.0"] = Hash("re-signed" + i);
        }

        Assert.Equal(reference.Count, index.Count);
        Assert.Equal(reference.ToList(), index.Entries.ToList());
        index.Save();
        Assert.Equal(Expected(reference), File.ReadAllBytes(path));
        Assert.Equal(reference.ToList(), RegistryIndex.Load(path).Entries.ToList());
    }

    [Fact]
    public void Enumerating_while_the_index_changes_throws_as_the_dictionary_did()
    {
        var index = RegistryIndex.Load(Path.Combine(_dir, "index.json"));
        for (var i = 0; i < 5_000; i++)
        {
            index.Add($"k{i}@1.0.0", Hash(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), null);
        }

        Assert.Throws<InvalidOperationException>(() =>
        {
            foreach (var (key, _) in index.Entries)
            {
                index.Add(key + "-x", Hash(key), null);
            }
        });
    }

    [Fact]
    public void A_hand_edited_file_out_of_order_is_read_and_written_back_sorted()
    {
        var path = Path.Combine(_dir, "index.json");
        var keys = Tricky.Reverse().ToList();
        File.WriteAllText(path, "{" + string.Join(",", keys.Select(k => $"{JsonValue.Create(k).ToJsonString()}:\"{Hash(k)}\"")) + "}");
        var index = RegistryIndex.Load(path);
        var reference = new SortedDictionary<string, string>(keys.ToDictionary(k => k, Hash), StringComparer.Ordinal);
        Assert.Equal(reference.ToList(), index.Entries.ToList());
        index.Save();
        Assert.Equal(Expected(reference), File.ReadAllBytes(path));
    }

    [Fact]
    public void A_damaged_file_is_refused_with_the_codes_it_had()
    {
        var path = Path.Combine(_dir, "index.json");
        foreach (var (text, code) in ((string, string)[])
        [
            ("[]", ErrorCodes.IndexCorrupt),
            ("{\"a@1\":\"sha256:00\"}", ErrorCodes.IndexCorrupt),
            ($"{{\"a\":\"{Hash("a")}\"}}", ErrorCodes.IndexCorrupt),
            ($"{{\"a@1\":\"{Hash("a").ToUpperInvariant()}\"}}", ErrorCodes.IndexCorrupt),
            ($"{{\"a@1\":\"{Hash("a")}\",\"a@1\":\"{Hash("a")}\"}}", ErrorCodes.JsonDuplicateKey),
            ("{\"a@1\":", ErrorCodes.JsonInvalid),
            ("null", ErrorCodes.DocumentShape),
        ])
        {
            File.WriteAllText(path, text);
            Assert.Equal(code, Assert.ThrowsAny<RttException>(() => RegistryIndex.Load(path)).Code);
        }
    }

    [Fact]
    public void Path_lists_sort_in_ordinal_order_and_read_back_the_same_strings()
    {
        var random = new Random(3);
        var paths = Tricky.Concat(Enumerable.Range(0, 3_000).Select(i => $"agents/g{random.Next(50):D2}/a{i}.agent.json")).ToList();
        var list = new PathList();
        foreach (var p in paths)
        {
            list.Add(p);
        }

        Assert.Equal(paths, list);
        Assert.Equal(paths[^1], list[paths.Count - 1]);
        list.Sort();
        paths.Sort(StringComparer.Ordinal);
        Assert.Equal(paths, list);
        Assert.Equal(paths.Count, list.Count);
        Assert.Equal(paths[5], list[5]);
        Assert.Throws<ArgumentOutOfRangeException>(() => list[paths.Count]);
        Assert.Empty(new PathList());
    }

    [Fact]
    public void Utf8_order_is_utf16_ordinal_order()
    {
        var all = Tricky.Concat(["", "\uFFFF", "\U0010FFFF", "\uE000\U0001F600", "\U0001F600\uE000"]).ToList();
        foreach (var a in all)
        {
            foreach (var b in all)
            {
                var bytes = Math.Sign(PathListOrder(a, b));
                Assert.Equal(Math.Sign(string.CompareOrdinal(a, b)), bytes);
            }
        }

        static int PathListOrder(string a, string b)
        {
            var list = new PathList();
            list.Add(b);
            list.Add(a);
            list.Sort();
            return a == b ? 0 : list[0] == a ? -1 : 1;
        }
    }

    [Fact]
    public void A_key_without_a_utf8_form_or_a_malformed_hash_is_refused_before_it_reaches_the_file()
    {
        var index = RegistryIndex.Load(Path.Combine(_dir, "index.json"));
        Assert.Throws<ArgumentException>(() => index.Add("\uD800@1.0.0", Hash("x"), null));
        Assert.Throws<ArgumentException>(() => index.Add("a@1.0.0", "sha256:" + Convert.ToHexString(SHA256.HashData([1])), null)); // upper case
        Assert.Equal(0, index.Count);
    }
}
