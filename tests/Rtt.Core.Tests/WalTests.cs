using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Reconciling.Wal;

namespace Rtt.Core.Tests;

public sealed class MerkleTests
{
    // The certificate-transparency reference test data (RFC 6962 implementations share it): 8 leaves and the
    // roots of the trees of their first 1..8 entries.
    private static readonly byte[][] CtLeaves =
    [
        [], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
        [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ];

    private static readonly string[] CtRoots =
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    [Fact]
    public void Roots_match_the_reference_vectors_and_the_empty_tree_is_the_hash_of_nothing()
    {
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Convert.ToHexStringLower(Merkle.EmptyRoot()));
        var leaves = CtLeaves.Select(l => Merkle.LeafHash(l)).ToList();
        var frontier = new MerkleFrontier();
        for (var n = 1; n <= 8; n++)
        {
            Assert.Equal(CtRoots[n - 1], Convert.ToHexStringLower(Merkle.Root(leaves, 0, n)));
            frontier.Add(leaves[n - 1]);
            Assert.Equal(CtRoots[n - 1], Convert.ToHexStringLower(frontier.Root()));
        }
    }

    [Fact]
    public void Every_inclusion_and_consistency_proof_up_to_40_leaves_verifies_and_any_flipped_bit_fails()
    {
        var leaves = Enumerable.Range(0, 40).Select(i => Merkle.LeafHash(Encoding.UTF8.GetBytes($"entry {i}"))).ToList();
        var frontier = new MerkleFrontier();
        for (var n = 1; n <= leaves.Count; n++)
        {
            frontier.Add(leaves[n - 1]);
            var root = Merkle.Root(leaves, 0, n);
            Assert.Equal(root, frontier.Root());
            for (var m = 0; m < n; m++)
            {
                var path = Merkle.InclusionProof(leaves, m, n);
                Assert.True(Merkle.VerifyInclusion(leaves[m], m, n, path, root), $"inclusion {m} in {n}");
                Assert.False(Merkle.VerifyInclusion(leaves[(m + 1) % n == m ? m : (m + 1) % n], m, n, path, root) && n > 1, $"wrong leaf {m} in {n}");
                if (path.Count > 0)
                {
                    var bad = path.Select(p => (byte[])p.Clone()).ToList();
                    bad[^1][5] ^= 0x01;
                    Assert.False(Merkle.VerifyInclusion(leaves[m], m, n, bad, root));
                }

                Assert.False(Merkle.VerifyInclusion(leaves[m], m, m, path, root)); // an index outside the tree
            }

            for (var m = 0; m <= n; m++)
            {
                var proof = Merkle.ConsistencyProof(leaves, m, n);
                var first = Merkle.Root(leaves, 0, m);
                Assert.True(Merkle.VerifyConsistency(m, n, first, root, proof), $"consistency {m} -> {n}");
                if (m > 0 && m < n)
                {
                    var bad = proof.Select(p => (byte[])p.Clone()).ToList();
                    bad[0][0] ^= 0x80;
                    Assert.False(Merkle.VerifyConsistency(m, n, first, root, bad));
                    Assert.False(Merkle.VerifyConsistency(m, n, Merkle.Root(leaves, 1, m), root, proof)); // another first tree
                }
            }
        }
    }
}

public sealed class WalLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-wal-").FullName;
    private readonly SigningKey _key = SigningKey.Generate();

    private string Db => Path.Combine(_dir, "rtt.db");

    private TrustStore Trust()
    {
        var trust = Path.Combine(_dir, "trust");
        TrustStore.WriteTrustedKey(trust, "test", _key.PublicKey);
        return TrustStore.Load(trust);
    }

    private static JsonObject Entry(int i) => new() { ["kind"] = "test", ["n"] = i, ["text"] = $"entry number {i}" };

    [Fact]
    public async Task Appends_survive_reopening_with_the_same_root_and_concurrent_appends_are_group_committed()
    {
        string root;
        using (var log = WalLog.Open(SqliteWalStore.Open(Db)))
        {
            Assert.Equal(0, log.Append(Entry(0)));
            var indices = await Task.WhenAll(Enumerable.Range(1, 400).Select(i => log.AppendAsync(Entry(i))));
            Assert.Equal(Enumerable.Range(1, 400).Select(i => (long)i), indices.Order());
            Assert.Equal(401, log.Size);
            Assert.True(log.Batches < 401, $"{log.Batches} batches for 401 entries: nothing was grouped");
            log.SignHead(_key, DateTimeOffset.UnixEpoch);
            root = log.Current().Root;
        }

        using var again = WalLog.Open(SqliteWalStore.Open(Db), Trust());
        Assert.Equal((401L, root), again.Current());
        Assert.Single(again.Heads);
        var leaves = again.Read(0, 401).ToList();
        Assert.Equal(401, leaves.Count);
        var proof = again.InclusionProof(17, 401);
        Assert.True(Merkle.VerifyInclusion(Merkle.LeafHash(leaves[17].Leaf), 17, 401, proof, Convert.FromHexString(root)));
        Assert.True(WalVerifier.Verify(again.Store, Trust()).Ok);
    }

    [Fact]
    public void The_tables_refuse_updates_and_deletes()
    {
        using (var log = WalLog.Open(SqliteWalStore.Open(Db)))
        {
            log.Append(Entry(0));
        }

        var ex = Assert.Throws<SqliteException>(() => Sql("UPDATE rtt_wal SET leaf = x'00' WHERE idx = 0;"));
        Assert.Contains("append-only", ex.Message, StringComparison.Ordinal);
        Assert.Throws<SqliteException>(() => Sql("DELETE FROM rtt_wal;"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(37)]
    [InlineData(99)]
    public void A_single_changed_byte_in_an_entry_is_named_by_its_index(int victim)
    {
        Fill(100, headEvery: 10);
        Tamper($"UPDATE rtt_wal SET leaf = CAST(replace(CAST(leaf AS TEXT), 'number', 'numbes') AS BLOB) WHERE idx = {victim};");

        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db)));
        Assert.Equal(ErrorCodes.WalTampered, ex.Code);
        Assert.Contains($"entry {victim}:", ex.Message, StringComparison.Ordinal);

        using var store = SqliteWalStore.Open(Db);
        var report = WalVerifier.Verify(store, Trust());
        Assert.Contains(report.Faults, f => f.Where == $"entry {victim}");
        Assert.False(report.Ok);
    }

    [Fact]
    public void A_changed_leaf_hash_is_named_and_a_rewritten_pair_is_caught_by_the_signed_head()
    {
        Fill(50, headEvery: 10);
        Tamper("UPDATE rtt_wal SET leaf_hash = zeroblob(32) WHERE idx = 12;");
        using (var store = SqliteWalStore.Open(Db))
        {
            Assert.Contains(WalVerifier.Verify(store, Trust()).Faults, f => f.Where == "entry 12");
        }

        // Both the entry and its stored hash rewritten consistently: the heads that cover it no longer match.
        var forged = Encoding.UTF8.GetBytes("{\"kind\":\"forged\"}");
        Tamper($"UPDATE rtt_wal SET leaf = x'{Convert.ToHexString(forged)}', leaf_hash = x'{Convert.ToHexString(Merkle.LeafHash(forged))}' WHERE idx = 12;");
        using (var store = SqliteWalStore.Open(Db))
        {
            var faults = WalVerifier.Verify(store, Trust()).Faults;
            Assert.Contains(faults, f => f.Where == "head at size 20");
            Assert.DoesNotContain(faults, f => f.Where == "head at size 10"); // heads before the change still hold
        }

        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db)));
        Assert.Contains("size 20", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_changed_head_signature_and_removed_entries_are_detected()
    {
        Fill(30, headEvery: 10);
        Tamper("UPDATE rtt_wal_heads SET head = replace(head, '\"timestamp\":\"1970', '\"timestamp\":\"1971') WHERE size = 30;");
        using (var store = SqliteWalStore.Open(Db))
        {
            var faults = WalVerifier.Verify(store, Trust()).Faults;
            var fault = Assert.Single(faults);
            Assert.Equal("head at size 30", fault.Where);
            Assert.Contains("signature", fault.What, StringComparison.Ordinal);
        }

        Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db), Trust()));

        Tamper("DELETE FROM rtt_wal WHERE idx >= 25;");
        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db)));
        Assert.Contains("entries were removed", ex.Message, StringComparison.Ordinal);
    }

    private WalAnchor Anchor => new(Path.Combine(_dir, WalAnchor.FileName));

    [Fact]
    public void Anchor_writes_beside_the_caller_end_at_the_newest_head_and_a_failed_one_is_told_at_the_next_call()
    {
        static SignedTreeHead Head(long size) => new(size, $"r{size}", "t", "k", $"{{\"root\":\"r{size}\",\"size\":{size}}}");
        var anchor = new WalAnchor(Path.Combine(_dir, "anchor-later.json"));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 1; i <= 300; i++)
        {
            anchor.WriteLater(Head(i));
            if (i % 50 == 0)
            {
                Assert.True(new WalAnchor(anchor.Path).Read() is null or { Size: > 0 and <= 300 }); // never ahead, never torn
            }
        }

        anchor.Flush();
        Assert.Equal(300, anchor.Read()!.Size);
        Assert.Equal("r300", anchor.Read()!.Root);

        // At most one file per MinInterval, plus the one Flush hurries: not one per head.
        Assert.InRange(anchor.Writes, 1, 2 + (long)(clock.Elapsed / WalAnchor.MinInterval));

        // After a quiet spell a head is written at once, without a Flush.
        Thread.Sleep(WalAnchor.MinInterval * 2);
        anchor.WriteLater(Head(301));
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (anchor.Read()!.Size != 301 && waited.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(1);
        }

        Assert.Equal(301, anchor.Read()!.Size);

        // A folder where the anchor goes: the write fails beside the caller, and the caller hears it at its next call.
        var blocked = new WalAnchor(Path.Combine(_dir, "anchor-blocked"));
        Directory.CreateDirectory(Path.Combine(blocked.Path, "inside"));
        blocked.WriteLater(Head(1));
        var failed = Assert.ThrowsAny<RttException>(blocked.Flush);
        Assert.Contains("anchor-blocked", failed.Message, StringComparison.Ordinal);
        blocked.Flush(); // told once
    }

    [Fact]
    public void A_batch_signed_without_a_flush_is_stored_in_order_but_anchored_only_once_a_durable_write_follows()
    {
        // The coordinator's applied + verified entries: committed (synchronous=NORMAL), durable with the next decision. The
        // anchor must never run ahead of what a power loss keeps, so it stays at the last durable head until then: after a
        // crash (the log never closed) it is a head behind; a clean close flushes the database once and anchors the last head.
        var now = DateTimeOffset.UnixEpoch;
        var anchor = Anchor;
        var crashed = WalLog.Open(SqliteWalStore.Open(Db), Trust(), anchor);
        crashed.AppendAndSign([WalLog.LeafOf(Entry(0))], _key, now);
        crashed.AppendAndSign([WalLog.LeafOf(Entry(1))], _key, now, durable: false);
        anchor.Flush(); // the anchor's writer wrote what it was given (the durable head)
        crashed.Store.Dispose(); // the process died here: no clean close of the log
        Assert.Equal(1, Anchor.Read()!.Size);

        using (var log = WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor))
        {
            Assert.Equal(2, log.Size);
            Assert.Equal(1, Anchor.Read()!.Size);
            var database = ((SqliteWalStore)log.Store).Database;
            log.AppendAndSign([WalLog.LeafOf(Entry(2))], _key, now);
            var durable = database.DurableTransactions;
            var (first, head) = log.AppendAndSign([WalLog.LeafOf(Entry(3)), WalLog.LeafOf(Entry(4))], _key, now, durable: false);
            Assert.Equal((3, 5), (first, head.Size));
            Assert.Equal(durable, database.DurableTransactions);
            Assert.False(database.LastCommitDurable);
            log.Dispose();
            Assert.Equal(durable + 1, database.DurableTransactions); // the close's one flush
        }

        Assert.Equal(5, Anchor.Read()!.Size); // closed cleanly: the last head, made durable by the close

        // Opened again: the log and its heads are all there and verify; the next decision is durable and anchored.
        using (var log = WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor))
        {
            Assert.Equal(5, log.Size);
            Assert.Equal([1L, 2L, 3L, 5L], log.Heads.Select(h => h.Size));
            Assert.True(WalVerifier.Verify(log.Store, Trust()).Ok);
            log.AppendAndSign([WalLog.LeafOf(Entry(5))], _key, now);
        }

        Assert.Equal(6, Anchor.Read()!.Size);
    }

    private void FillAnchored(int count, int headEvery)
    {
        using var log = WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor);
        for (var i = 0; i < count; i++)
        {
            log.Append(Entry(i));
            if ((i + 1) % headEvery == 0)
            {
                log.SignHead(_key, DateTimeOffset.UnixEpoch);
            }
        }
    }

    [Fact]
    public void A_reader_opening_the_log_while_the_silo_appends_and_signs_sees_a_consistent_prefix()
    {
        // `rtt wal verify`, `rtt wal export` and the panel open the log read-only while the silo writes it. The silo
        // appends, signs a head and moves the anchor between two of the reader's reads: the reader must see a
        // consistent prefix (the entries, the heads over them, an anchor not beyond them), never "entries were removed".
        FillAnchored(4, 2);
        var trust = Trust();
        using var silo = WalLog.Open(SqliteWalStore.Open(Db), trust, Anchor);
        var n = 0;
        void SiloWrites()
        {
            silo.Append(Entry(100 + n++));
            silo.SignHead(_key, DateTimeOffset.UnixEpoch);
        }

        using (var reader = WalLog.Open(new Interleaved(SqliteWalStore.OpenReadOnly(Db), SiloWrites), trust, Anchor))
        {
            Assert.InRange(reader.Size, 4, 5);
            Assert.Equal(1, n);
        }

        using var verified = new Interleaved(SqliteWalStore.OpenReadOnly(Db), SiloWrites);
        var report = WalVerifier.Verify(verified, trust, Anchor);
        Assert.True(report.Ok, string.Join("; ", report.Faults.Select(f => $"{f.Where}: {f.What}")));
        Assert.Equal(2, n);
    }

    /// <summary>A store whose first read of the count or the heads lets a writer go first before the next read.</summary>
    private sealed class Interleaved(IWalStore inner, Action writer) : IWalStore
    {
        private bool _done;

        public string Location => inner.Location;

        public long Count() => Then(inner.Count());

        public IReadOnlyList<WalHeadRecord> Heads() => Then(inner.Heads());

        public void Append(IReadOnlyList<WalRecord> records) => inner.Append(records);

        public IEnumerable<WalRecord> Read(long from, long to) => inner.Read(from, to);

        public void AddHead(long size, string json) => inner.AddHead(size, json);

        public void Dispose() => inner.Dispose();

        private T Then<T>(T value)
        {
            if (!_done)
            {
                _done = true;
                writer();
            }

            return value;
        }
    }

    [Fact]
    public void Deleting_every_entry_after_the_first_and_every_head_is_caught_by_the_anchor()
    {
        FillAnchored(4, headEvery: 2);
        Assert.Equal(4, Anchor.Read()!.Size);
        Tamper("DELETE FROM rtt_wal WHERE idx > 0; DELETE FROM rtt_wal_heads;");

        // Before: the shortened log verified as "1 entries" and the silo forgot the applied plan.
        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor));
        Assert.Equal(ErrorCodes.WalTampered, ex.Code);
        Assert.Contains("the log has 1 entries, but its anchor was signed over 4", ex.Message, StringComparison.Ordinal);
        using var store = SqliteWalStore.Open(Db);
        Assert.Contains(WalVerifier.Verify(store, Trust(), Anchor).Faults, f => f.What.Contains("entries were removed", StringComparison.Ordinal));
    }

    [Fact]
    public void A_zero_byte_database_is_refused_when_the_anchor_says_the_log_had_entries()
    {
        FillAnchored(3, headEvery: 3);
        SqliteConnection.ClearAllPools();
        File.WriteAllBytes(Db, []);
        File.Delete(Db + "-wal");
        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor));
        Assert.Contains("the log has 0 entries", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rewritten_tail_is_caught_and_a_non_canonical_entry_stops_the_replay_as_verify_does()
    {
        FillAnchored(4, headEvery: 4);
        // Rewritten canonically with its hash recomputed: the anchored root no longer matches.
        var forged = Encoding.UTF8.GetBytes("{\"kind\":\"forged\"}");
        Tamper($"DELETE FROM rtt_wal_heads; UPDATE rtt_wal SET leaf = x'{Convert.ToHexString(forged)}', leaf_hash = x'{Convert.ToHexString(Merkle.LeafHash(forged))}' WHERE idx = 3;");
        Assert.Contains("entries were changed", Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor)).Message, StringComparison.Ordinal);

        // Non-canonical (members out of order), hash recomputed, no anchor: the replay refuses it like `rtt wal verify`.
        File.Delete(Anchor.Path);
        var loose = Encoding.UTF8.GetBytes("{\"n\":3,\"kind\":\"test\"}");
        Tamper($"UPDATE rtt_wal SET leaf = x'{Convert.ToHexString(loose)}', leaf_hash = x'{Convert.ToHexString(Merkle.LeafHash(loose))}' WHERE idx = 3;");
        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor));
        Assert.Contains("entry 3: not in canonical JSON form", ex.Message, StringComparison.Ordinal);
        using var store = SqliteWalStore.Open(Db);
        Assert.Contains(WalVerifier.Verify(store, Trust()).Faults, f => f.Where == "entry 3");
    }

    [Fact]
    public void A_missing_anchor_is_written_from_the_latest_head_and_a_torn_one_is_a_clear_error()
    {
        Fill(6, headEvery: 3);
        using (WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor))
        {
        }

        Assert.Equal(6, Anchor.Read()!.Size);
        File.WriteAllText(Anchor.Path, "{\"root\":");
        Assert.Equal(ErrorCodes.WalTampered, Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db), Trust(), Anchor)).Code);
    }

    [Fact]
    public void A_log_read_in_several_blocks_replays_to_its_root_and_faults_in_later_blocks_come_in_index_order()
    {
        // 9,000 small entries and one of 1.5 MiB: the replay copies entries into blocks of at most 4,096 entries and 1 MiB
        // (or one entry's size) and checks full blocks on other threads while it reads on, so this log spans three blocks
        // (the big entry starts the third) and its faults sit in blocks checked on different threads.
        var big = Encoding.UTF8.GetBytes($"{{\"kind\":\"big\",\"text\":\"{new string('x', 3 << 19)}\"}}");
        var leaves = Enumerable.Range(0, 9_000).Select(i => i == 5_000 ? big : Rtt.Core.Json.CanonicalJson.Serialize(Entry(i))).ToList();
        string root;
        using (var store = SqliteWalStore.Open(Db))
        {
            for (var from = 0; from < leaves.Count; from += 1_000)
            {
                store.Append([.. leaves.Skip(from).Take(1_000).Select((leaf, k) => new WalRecord(from + k, leaf, Merkle.LeafHash(leaf)))]);
            }

            using var log = WalLog.Open(store);
            Assert.Equal(9_000, log.Size);
            root = log.Current().Root;
            log.SignHead(_key, DateTimeOffset.UnixEpoch);

            // The store's scan hands out what its row read gives, for any range.
            var scanned = new List<(long, byte[], byte[])>();
            store.Scan(4_990, 5_010, (index, leaf, hash) => scanned.Add((index, leaf.ToArray(), hash.ToArray())));
            var read = store.Read(4_990, 5_010).ToList();
            Assert.Equal(20, scanned.Count);
            Assert.Equal(read.Select(r => r.Index), scanned.Select(s => s.Item1));
            Assert.True(read.Zip(scanned).All(p => p.First.Leaf.AsSpan().SequenceEqual(p.Second.Item2) && p.First.LeafHash.AsSpan().SequenceEqual(p.Second.Item3)));
        }

        using (var again = WalLog.Open(SqliteWalStore.Open(Db), Trust()))
        {
            Assert.Equal(root, again.Current().Root);
            Assert.True(WalVerifier.Verify(again.Store, Trust()).Ok);
        }

        // Changed bytes in the third and the second block, and an entry missing from the third.
        Tamper("""
            UPDATE rtt_wal SET leaf = CAST(replace(CAST(leaf AS TEXT), 'number', 'numbes') AS BLOB) WHERE idx IN (8500, 4200);
            DELETE FROM rtt_wal WHERE idx = 8800;
            """);
        var ex = Assert.Throws<RttException>(() => WalLog.Open(SqliteWalStore.Open(Db)));
        Assert.Equal(ErrorCodes.WalTampered, ex.Code);
        Assert.Contains("entry 4200:", ex.Message, StringComparison.Ordinal);
        using (var store = SqliteWalStore.Open(Db))
        {
            var faults = WalVerifier.Verify(store, Trust()).Faults.Where(f => f.Where.StartsWith("entry ", StringComparison.Ordinal)).ToList();
            Assert.Equal(["entry 4200", "entry 8500", "entry 8800"], faults.Select(f => f.Where));
            Assert.Equal("missing", faults[2].What);
        }
    }

    [Fact]
    public void Proofs_out_of_range_are_clear_errors()
    {
        Fill(5, headEvery: 5);
        using var log = WalLog.Open(SqliteWalStore.Open(Db));
        Assert.Equal(ErrorCodes.WalProofRange, Assert.Throws<RttException>(() => log.InclusionProof(5, 5)).Code);
        Assert.Equal(ErrorCodes.WalProofRange, Assert.Throws<RttException>(() => log.InclusionProof(0, 6)).Code);
        Assert.Equal(ErrorCodes.WalProofRange, Assert.Throws<RttException>(() => log.ConsistencyProof(4, 3)).Code);
    }

    private void Fill(int count, int headEvery)
    {
        using var log = WalLog.Open(SqliteWalStore.Open(Db));
        for (var i = 0; i < count; i++)
        {
            log.Append(Entry(i));
            if ((i + 1) % headEvery == 0)
            {
                log.SignHead(_key, DateTimeOffset.UnixEpoch);
            }
        }
    }

    private void Sql(string sql)
    {
        using var connection = new SqliteConnection($"Data Source={Db};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Changes the stored log the way an outside writer would: around RTT's append-only triggers.</summary>
    private void Tamper(string sql) => Sql($"""
        DROP TRIGGER IF EXISTS rtt_wal_no_update; DROP TRIGGER IF EXISTS rtt_wal_no_delete;
        DROP TRIGGER IF EXISTS rtt_wal_heads_no_update; DROP TRIGGER IF EXISTS rtt_wal_heads_no_delete;
        {sql}
        """);

    public void Dispose()
    {
        _key.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
