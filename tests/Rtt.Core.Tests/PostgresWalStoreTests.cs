using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Reconciling.Wal;

namespace Rtt.Core.Tests;

/// <summary>The PostgreSQL WAL store against a real, private server (see <see cref="PostgresServerFixture"/>).</summary>
public sealed class PostgresWalStoreTests : IClassFixture<PostgresServerFixture>, IDisposable
{
    private readonly PostgresServerFixture _server;
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-pgwal-").FullName;
    private readonly SigningKey _key = SigningKey.Generate();

    public PostgresWalStoreTests(PostgresServerFixture server) => _server = server;

    private TrustStore Trust()
    {
        var trust = Path.Combine(_dir, "trust");
        TrustStore.WriteTrustedKey(trust, "test", _key.PublicKey);
        return TrustStore.Load(trust);
    }

    private static JsonObject Entry(int i) => new() { ["kind"] = "test", ["n"] = i, ["text"] = $"entry number {i}" };

    [Fact]
    public async Task Appends_survive_reopening_with_the_same_root_as_sqlite_and_concurrent_appends_are_group_committed()
    {
        var db = _server.NewDatabase();
        string root;
        using (var log = WalLog.Open(PostgresWalStore.Open(db)))
        {
            Assert.Equal(0, log.Append(Entry(0)));
            var indices = await Task.WhenAll(Enumerable.Range(1, 400).Select(i => log.AppendAsync(Entry(i))));
            Assert.Equal(Enumerable.Range(1, 400).Select(i => (long)i), indices.Order());
            Assert.Equal(401, log.Size);
            Assert.True(log.Batches < 401, $"{log.Batches} batches for 401 entries: nothing was grouped");
            log.SignHead(_key, DateTimeOffset.UnixEpoch);
            root = log.Current().Root;
        }

        using var again = WalLog.Open(PostgresWalStore.Open(db), Trust());
        Assert.Equal((401L, root), again.Current());
        Assert.Single(again.Heads);
        Assert.Equal(401, again.Store.Count());
        Assert.StartsWith("postgresql://127.0.0.1:", again.Store.Location, StringComparison.Ordinal);
        var leaves = again.Read(0, 401).ToList();
        Assert.Equal(Enumerable.Range(0, 401).Select(i => (long)i), leaves.Select(l => l.Index));
        var proof = again.InclusionProof(17, 401);
        Assert.True(Merkle.VerifyInclusion(Merkle.LeafHash(leaves[17].Leaf), 17, 401, proof, Convert.FromHexString(root)));
        var report = WalVerifier.Verify(again.Store, Trust());
        Assert.True(report.Ok, string.Join("; ", report.Faults));
        Assert.Equal(401, report.Size);

        // The same leaves in the SQLite store give the same tree: the root does not depend on the store.
        using var sqlite = WalLog.Open(SqliteWalStore.Open(Path.Combine(_dir, "rtt.db")));
        foreach (var (_, leaf) in leaves)
        {
            sqlite.Append((JsonObject)JsonNode.Parse(leaf)!);
        }

        Assert.Equal(root, sqlite.Current().Root);
    }

    [Fact]
    public void Reads_page_through_a_log_larger_than_one_page_in_order()
    {
        var db = _server.NewDatabase();
        using var store = PostgresWalStore.Open(db);
        var records = Enumerable.Range(0, 20_000).Select(i =>
        {
            var leaf = Encoding.UTF8.GetBytes($"{{\"n\":{i}}}");
            return new WalRecord(i, leaf, Merkle.LeafHash(leaf));
        }).ToList();
        store.Append(records);
        Assert.Equal(20_000, store.Count());
        Assert.Equal(Enumerable.Range(0, 20_000).Select(i => (long)i), store.Read(0, long.MaxValue).Select(r => r.Index));
        Assert.Equal(Enumerable.Range(8000, 9000).Select(i => (long)i), store.Read(8000, 17_000).Select(r => r.Index));
        Assert.Equal(records[12_345].Leaf, store.Read(12_345, 12_346).Single().Leaf);
        Assert.Empty(store.Read(20_000, 30_000));
    }

    [Fact]
    public void The_tables_refuse_updates_deletes_and_truncates_and_the_schema_is_created_idempotently()
    {
        var db = _server.NewDatabase();
        using (var log = WalLog.Open(PostgresWalStore.Open(db)))
        {
            log.Append(Entry(0));
            log.SignHead(_key, DateTimeOffset.UnixEpoch);
        }

        // Opening again (and from several stores at once) keeps the tables, rows and triggers as they are.
        Parallel.For(0, 4, _ => PostgresWalStore.Open(db).Dispose());
        Assert.Equal(4L, PostgresServerFixture.Scalar<long>(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rtt_wal%';"));

        foreach (var sql in new[]
                 {
                     "UPDATE rtt_wal SET leaf = '\\x00'::bytea WHERE idx = 0;", "DELETE FROM rtt_wal;", "TRUNCATE rtt_wal;",
                     "UPDATE rtt_wal_heads SET head = '{}' WHERE size = 1;", "DELETE FROM rtt_wal_heads;", "TRUNCATE rtt_wal_heads;",
                 })
        {
            var ex = Assert.Throws<PostgresException>(() => PostgresServerFixture.Sql(db, sql));
            Assert.Contains("append-only", ex.MessageText, StringComparison.Ordinal);
            Assert.Equal(PostgresErrorCodes.RestrictViolation, ex.SqlState);
        }

        using var again = WalLog.Open(PostgresWalStore.Open(db), Trust());
        Assert.Equal(1, again.Size);
        Assert.Single(again.Heads);
    }

    [Fact]
    public async Task A_second_writer_on_the_same_database_gets_the_conflict_error_and_never_interleaves()
    {
        var db = _server.NewDatabase();
        using var first = WalLog.Open(PostgresWalStore.Open(db));
        using var second = WalLog.Open(PostgresWalStore.Open(db));
        first.Append(Entry(0));

        // The second log still believes the log is empty: its batch would start at 0.
        var ex = Assert.Throws<RttException>(() => second.Append(Entry(100)));
        Assert.Equal(ErrorCodes.WalConflict, ex.Code);
        Assert.Contains("has 1 entries but this batch starts at 0", ex.Message, StringComparison.Ordinal);
        var grouped = await Assert.ThrowsAsync<RttException>(() => second.AppendAsync(Entry(101)));
        Assert.Equal(ErrorCodes.WalConflict, grouped.Code);
        Assert.Equal(1, first.Store.Count());

        // Two stores racing raw batches: each reads the count and appends a batch there. Every loss is RTT-WAL-003
        // (never a raw database error), and the log ends contiguous with exactly the winners' entries.
        using var a = PostgresWalStore.Open(db);
        using var b = PostgresWalStore.Open(db);
        var won = new long[2];
        var lost = new long[2];
        await Task.WhenAll(new[] { a, b }.Select((store, w) => Task.Run(() =>
        {
            for (var round = 0; round < 60; round++)
            {
                var at = store.Count();
                var batch = Enumerable.Range(0, 5).Select(k =>
                {
                    var leaf = Encoding.UTF8.GetBytes($"{{\"k\":{k},\"r\":{round},\"w\":{w}}}");
                    return new WalRecord(at + k, leaf, Merkle.LeafHash(leaf));
                }).ToList();
                try
                {
                    store.Append(batch);
                    won[w] += batch.Count;
                }
                catch (RttException conflict) when (conflict.Code == ErrorCodes.WalConflict)
                {
                    lost[w]++;
                }
            }
        })));

        Assert.Equal(1 + won[0] + won[1], a.Count());
        Assert.Equal(Enumerable.Range(0, (int)a.Count()).Select(i => (long)i), a.Read(0, long.MaxValue).Select(r => r.Index));
        Assert.True(won[0] > 0 && won[1] > 0, $"one writer never won: {won[0]} / {won[1]} entries");

        // Batches are never interleaved: every aligned run of 5 after entry 0 comes from one writer's one round.
        var rows = a.Read(1, long.MaxValue).Select(r => JsonNode.Parse(r.Leaf)!.AsObject()).ToList();
        for (var i = 0; i < rows.Count; i += 5)
        {
            var run = rows.Skip(i).Take(5).ToList();
            Assert.Single(run.Select(r => ((int)r["w"]!, (int)r["r"]!)).Distinct());
            Assert.Equal([0, 1, 2, 3, 4], run.Select(r => (int)r["k"]!));
        }

        // Whatever the losers did, the log reopens and verifies.
        using var reopened = WalLog.Open(PostgresWalStore.Open(db));
        Assert.Equal(a.Count(), reopened.Size);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(37)]
    [InlineData(99)]
    public void A_single_changed_byte_in_an_entry_is_named_by_its_index(int victim)
    {
        var db = _server.NewDatabase();
        Fill(db, 100, headEvery: 10);
        Tamper(db, $"UPDATE rtt_wal SET leaf = convert_to(replace(convert_from(leaf, 'UTF8'), 'number', 'numbes'), 'UTF8') WHERE idx = {victim};");

        var ex = Assert.Throws<RttException>(() => WalLog.Open(PostgresWalStore.Open(db)));
        Assert.Equal(ErrorCodes.WalTampered, ex.Code);
        Assert.Contains($"entry {victim}:", ex.Message, StringComparison.Ordinal);

        using var store = PostgresWalStore.Open(db);
        var report = WalVerifier.Verify(store, Trust());
        // The changed entry is the only entry named; the heads that cover it fail, the ones before it hold.
        var fault = Assert.Single(report.Faults, f => f.Where.StartsWith("entry ", StringComparison.Ordinal));
        Assert.Equal($"entry {victim}", fault.Where);
        Assert.Equal(Enumerable.Range(victim / 10 + 1, 10 - victim / 10).Select(k => $"head at size {k * 10}"),
            report.Faults.Where(f => f.Where.StartsWith("head ", StringComparison.Ordinal)).Select(f => f.Where));
    }

    [Fact]
    public void A_rewritten_pair_is_caught_by_the_signed_head_and_removed_entries_are_detected()
    {
        var db = _server.NewDatabase();
        Fill(db, 50, headEvery: 10);
        var forged = Encoding.UTF8.GetBytes("{\"kind\":\"forged\"}");
        Tamper(db, $"UPDATE rtt_wal SET leaf = '\\x{Convert.ToHexString(forged)}'::bytea, leaf_hash = '\\x{Convert.ToHexString(Merkle.LeafHash(forged))}'::bytea WHERE idx = 12;");
        using (var store = PostgresWalStore.Open(db))
        {
            var faults = WalVerifier.Verify(store, Trust()).Faults;
            Assert.Contains(faults, f => f.Where == "head at size 20");
            Assert.DoesNotContain(faults, f => f.Where == "head at size 10");
        }

        Assert.Contains("size 20", Assert.Throws<RttException>(() => WalLog.Open(PostgresWalStore.Open(db))).Message, StringComparison.Ordinal);

        Tamper(db, "DELETE FROM rtt_wal WHERE idx >= 45;");
        var ex = Assert.Throws<RttException>(() => WalLog.Open(PostgresWalStore.Open(db)));
        Assert.Equal(ErrorCodes.WalTampered, ex.Code);
    }

    [Fact]
    public void An_unreachable_server_or_a_refused_login_is_RTT_WAL_001_naming_host_and_database_without_the_password()
    {
        const string secret = "S3cret-Pa55word-xyz";
        var port = PostgresServerFixture.FreePort();
        var nowhere = $"Host=127.0.0.1;Port={port};Database=rtt_ledger;Username=rtt;Password={secret};Timeout=5";
        var ex = Assert.Throws<RttException>(() => PostgresWalStore.Open(nowhere));
        Assert.Equal(ErrorCodes.WalUnavailable, ex.Code);
        Assert.Contains($"127.0.0.1:{port}/rtt_ledger", ex.Headline, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, ex.Headline + ex.Remedy, StringComparison.Ordinal);

        // The real server, a wrong password: refused login, same error, still no password.
        var refused = new NpgsqlConnectionStringBuilder(_server.ConnectionString()) { Password = secret, Database = "postgres" }.ConnectionString;
        var login = Assert.Throws<RttException>(() => PostgresWalStore.Open(refused));
        Assert.Equal(ErrorCodes.WalUnavailable, login.Code);
        Assert.Contains($"127.0.0.1:{_server.Port}/postgres", login.Headline, StringComparison.Ordinal);
        Assert.Contains("password", login.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(secret, login.Headline + login.Remedy, StringComparison.Ordinal);
        Assert.DoesNotContain(_server.Password, login.Headline + login.Remedy, StringComparison.Ordinal);

        // A database without the tables, opened without create: no WAL yet, not a crash.
        var empty = _server.NewDatabase();
        Assert.Equal(ErrorCodes.WalUnavailable, Assert.Throws<RttException>(() => PostgresWalStore.Open(empty, create: false)).Code);
    }

    private void Fill(string db, int count, int headEvery)
    {
        using var log = WalLog.Open(PostgresWalStore.Open(db));
        for (var i = 0; i < count; i++)
        {
            log.Append(Entry(i));
            if ((i + 1) % headEvery == 0)
            {
                log.SignHead(_key, DateTimeOffset.UnixEpoch);
            }
        }
    }

    /// <summary>Changes the stored log the way an outside superuser would: with RTT's triggers switched off.</summary>
    private static void Tamper(string db, string sql) =>
        PostgresServerFixture.Sql(db, $"ALTER TABLE rtt_wal DISABLE TRIGGER USER; {sql} ALTER TABLE rtt_wal ENABLE TRIGGER USER;");

    public void Dispose()
    {
        _key.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
