using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Runtime;
using Orleans.Serialization;
using Orleans.Serialization.Serializers;
using Orleans.Storage;
using Rtt.Core.Errors;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Reconciling.State;
using Rtt.Reconciling.Wal;
using Rtt.Silo.Storage;

namespace Rtt.Silo.Tests;

/// <summary>
/// The one owner of the state database: the WAL's appends, the ledgers and grain state go through one writer and one
/// group commit; grain state keeps its ETag checks; state written by Orleans' ADO.NET provider is carried over.
/// </summary>
public sealed class StateDatabaseTests : IDisposable
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-statedb-").FullName;
    private readonly ServiceProvider _services;

    public StateDatabaseTests()
    {
        var services = new ServiceCollection();
        services.AddSerializer();
        services.AddSingleton<OrleansJsonSerializer>();
        services.AddOptions<OrleansJsonSerializerOptions>().PostConfigure(o => StorageJson.Harden(o.JsonSerializerSettings));
        services.AddSingleton<IGrainStorageSerializer, JsonGrainStorageSerializer>();
        _services = services.BuildServiceProvider();
    }

    private string Db => Path.Combine(_dir, "rtt.db");

    private SqliteGrainStorage Grains(SqliteStateDatabase database) =>
        new(database, _services.GetRequiredService<IGrainStorageSerializer>(), _services.GetRequiredService<IActivatorProvider>(), "rtt");

    private static GrainId Node(string id) => GrainId.Create("node", id);

    private static NodeState State(string id, int registrations) => new()
    {
        Record = new NodeRecord(new NodeFacts(id, "host", "cpu", 2, 1L << 30, [], "silo"), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, registrations),
    };

    private static WalRecord Leaf(long index)
    {
        var leaf = Encoding.UTF8.GetBytes($"{{\"i\":{index}}}");
        return new WalRecord(index, leaf, Merkle.LeafHash(leaf));
    }

    private static object? Scalar(string db, string sql)
    {
        using var c = new SqliteConnection($"Data Source={db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    /// <summary>Holds the writer inside a transaction until released, so the writes queued meanwhile form the next batch.</summary>
    private static (Task Held, ManualResetEventSlim Release) Hold(SqliteStateDatabase database)
    {
        var entered = new ManualResetEventSlim();
        var release = new ManualResetEventSlim();
        var held = database.WriteAsync((_, _) =>
        {
            entered.Set();
            return release.Wait(Guard);
        }, durable: false);
        Assert.True(entered.Wait(Guard));
        return (held, release);
    }

    private static async Task Queued(SqliteStateDatabase database, int count)
    {
        var until = DateTime.UtcNow + Guard;
        while (database.Queued < count)
        {
            Assert.True(DateTime.UtcNow < until, $"only {database.Queued} of {count} writes were queued");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task Grain_state_round_trips_and_a_stale_etag_is_refused_without_changing_the_stored_state()
    {
        using (var database = SqliteStateStore.Open(Db))
        {
            var storage = Grains(database);
            var first = new GrainState<NodeState> { State = State("n1", 1) };
            await storage.WriteStateAsync("node", Node("n1"), first);
            Assert.Equal("1", first.ETag);
            Assert.True(first.RecordExists);

            // A second activation that never read the state (no ETag) must not overwrite it.
            var stranger = new GrainState<NodeState> { State = State("n1", 99) };
            await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("node", Node("n1"), stranger));

            first.State = State("n1", 2);
            await storage.WriteStateAsync("node", Node("n1"), first);
            Assert.Equal("2", first.ETag);

            var stale = new GrainState<NodeState> { State = State("n1", 50), ETag = "1" };
            await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("node", Node("n1"), stale));
            await Assert.ThrowsAsync<InconsistentStateException>(() => storage.ClearStateAsync("node", Node("n1"), stale));

            var other = new GrainState<NodeState> { State = State("n2", 7) };
            await storage.WriteStateAsync("node", Node("n2"), other); // another key: its own row and version
            Assert.Equal("1", other.ETag);
        }

        using (var database = SqliteStateStore.Open(Db)) // a restart reads what was committed
        {
            var storage = Grains(database);
            var read = new GrainState<NodeState>();
            await storage.ReadStateAsync("node", Node("n1"), read);
            Assert.Equal("2", read.ETag);
            Assert.True(read.RecordExists);
            Assert.Equal(2, read.State!.Record!.Registrations);
            Assert.Equal("n1", read.State!.Record.Facts.NodeId);

            var missing = new GrainState<NodeState>();
            await storage.ReadStateAsync("node", Node("nobody"), missing);
            Assert.Null(missing.ETag);
            Assert.False(missing.RecordExists);
            Assert.NotNull(missing.State); // a fresh state, as Orleans' providers give
            Assert.Null(missing.State!.Record);

            await storage.ClearStateAsync("node", Node("n1"), read);
            Assert.Equal("3", read.ETag);
            Assert.False(read.RecordExists);
            var cleared = new GrainState<NodeState>();
            await storage.ReadStateAsync("node", Node("n1"), cleared);
            Assert.Equal("3", cleared.ETag); // the version keeps counting after a clear
            Assert.Null(cleared.State!.Record);
        }

        Assert.Equal(2L, Scalar(Db, "SELECT count(*) FROM rtt_state"));
        Assert.DoesNotContain("$type", (string)Scalar(Db, "SELECT CAST(payload AS TEXT) FROM rtt_state WHERE key_ext = 'n2'")!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task State_written_by_orleans_adonet_provider_is_carried_over_with_its_versions_and_the_wal_still_verifies()
    {
        // A database written by `rtt up --example quickstart --once` before this storage existed (Orleans' ADO.NET
        // provider: table rtt_grain_state, queries in OrleansQuery), with the WAL and the ledgers beside it.
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "adonet-state.db"), Db);
        var walBefore = WalLog.Open(SqliteWalStore.OpenReadOnly(Db));
        var (size, root) = walBefore.Current();
        walBefore.Dispose();
        Assert.Equal(4, size);

        using (var database = SqliteStateStore.Open(Db))
        {
            var storage = Grains(database);
            var node = new GrainState<NodeState>();
            await storage.ReadStateAsync("node", Node("node0"), node);
            Assert.Equal("1", node.ETag);
            Assert.Equal("node0", node.State!.Record!.Facts.NodeId);
            Assert.Equal("AMD EPYC", node.State!.Record.Facts.CpuModel);
            Assert.Equal(1, node.State!.Record.Registrations);

            var directory = new GrainState<NodeDirectoryState>();
            await storage.ReadStateAsync("node-directory", GrainId.Create("node-directory", INodeDirectoryGrain.ClusterKey), directory);
            Assert.Equal(["node0"], directory.State!.NodeIds);

            node.State!.Record = node.State!.Record with { Registrations = 2 };
            await storage.WriteStateAsync("node", Node("node0"), node); // the carried-over version is the ETag to write on
            Assert.Equal("2", node.ETag);

            using var ledgers = new SqliteLedgerStore(database);
            Assert.NotNull(await ledgers.ReadAsync("node:node0"));
            using var wal = WalLog.Open(SqliteWalStore.On(database));
            Assert.Equal((size, root), wal.Current());
        }

        using (var again = SqliteStateStore.Open(Db)) // a second start: nothing carried over twice, nothing lost
        {
            var node = new GrainState<NodeState>();
            await Grains(again).ReadStateAsync("node", Node("node0"), node);
            Assert.Equal("2", node.ETag);
            Assert.Equal(2, node.State!.Record!.Registrations);
        }

        Assert.Equal(0L, Scalar(Db, "SELECT count(*) FROM sqlite_master WHERE name IN ('rtt_grain_state', 'OrleansQuery')"));
        Assert.Contains("\"Registrations\":2", (string)Scalar(Db, "SELECT payload_text FROM rtt_grain_state_text WHERE state_name = 'node' AND grain_key_ext = 'node0'")!, StringComparison.Ordinal);
        Assert.Equal("2026-12-03 11:51:59", Scalar(Db, "SELECT created_utc FROM rtt_state WHERE state_name = 'node'")); // carried over as it was
        Assert.Equal(2L, Scalar(Db, "SELECT count(*) FROM rtt_state"));
        using var verify = SqliteWalStore.OpenReadOnly(Db); // `rtt wal verify` reads the log as before
        Assert.Equal(4, verify.Count());
    }

    [Fact]
    public async Task Concurrent_wal_ledger_and_grain_state_writes_go_out_in_one_transaction_and_the_wal_one_is_fsynced()
    {
        using var database = SqliteStateStore.Open(Db);
        using var wal = SqliteWalStore.On(database);
        using var ledgers = new SqliteLedgerStore(database);
        var grains = Grains(database);
        var before = database.Transactions;

        var (held, release) = Hold(database);
        var append = Task.Run(() => wal.AppendWithHead([Leaf(0), Leaf(1)], 2, "{\"size\":2}"));
        var ledger = ledgers.WriteAsync("a -> b", new LedgerState { AppliedTx = 7, AppliedPlan = "p7" });
        var state = new GrainState<NodeState> { State = State("n1", 1) };
        var grain = grains.WriteStateAsync("node", Node("n1"), state);
        await Queued(database, 3);
        release.Set();
        await Task.WhenAll(held, append, ledger, grain).WaitAsync(Guard);

        Assert.Equal(2, database.Transactions - before); // the held one, then all three together
        Assert.Equal(1, ledgers.Batches);
        Assert.Equal(2, wal.Count());
        Assert.Equal(7, (await ledgers.ReadAsync("a -> b"))!.AppliedTx);
        Assert.Equal("1", state.ETag);
        Assert.True(database.LastCommitDurable); // the batch held a WAL append: committed with synchronous=FULL

        await ledgers.WriteAsync("a -> b", new LedgerState { AppliedTx = 8 });
        Assert.False(database.LastCommitDurable); // ledgers and grain state alone: NORMAL, as before
        Assert.Equal(2, ledgers.Batches);
        Assert.Equal(2, Synchronous(database, durable: true));
        Assert.Equal(1, Synchronous(database, durable: false));
    }

    /// <summary>The writer's <c>synchronous</c> setting inside a transaction of the given kind (2 = FULL, 1 = NORMAL).</summary>
    private static long Synchronous(SqliteStateDatabase database, bool durable) =>
        database.Write((c, tx) =>
        {
            using var command = c.CreateCommand();
            command.Transaction = tx;
            command.CommandText = "PRAGMA synchronous;";
            return (long)command.ExecuteScalar()!;
        }, durable);

    [Fact]
    public async Task A_write_that_fails_fails_alone_and_the_rest_of_its_transaction_commits()
    {
        using var database = SqliteStateStore.Open(Db);
        using var wal = SqliteWalStore.On(database);
        using var ledgers = new SqliteLedgerStore(database);
        var (held, release) = Hold(database);
        var wrong = Task.Run(() => wal.Append([Leaf(5)])); // does not continue the empty log
        var ledger = ledgers.WriteAsync("x -> y", new LedgerState { AppliedTx = 1 });
        await Queued(database, 2);
        release.Set();
        await held.WaitAsync(Guard);

        var conflict = await Assert.ThrowsAsync<RttException>(() => wrong.WaitAsync(Guard));
        Assert.Equal(ErrorCodes.WalConflict, conflict.Code);
        await ledger.WaitAsync(Guard);
        Assert.Equal(1, (await ledgers.ReadAsync("x -> y"))!.AppliedTx);
        Assert.Equal(0, wal.Count());
        Assert.Equal(0, database.FailedTransactions);
    }

    [Fact]
    public async Task A_batch_whose_transaction_fails_fails_every_waiter_and_the_store_keeps_working()
    {
        SqliteStateStore.Open(Db).Dispose(); // the schema
        using var database = SqliteStateDatabase.Open(Db, busyTimeout: TimeSpan.FromSeconds(1));
        using var wal = SqliteWalStore.On(database);
        using var ledgers = new SqliteLedgerStore(database);
        var grains = Grains(database);

        // Another process holds the write lock past the busy timeout: no transaction of the store can begin.
        using var other = new SqliteConnection($"Data Source={Db};Pooling=False");
        other.Open();
        using (var begin = other.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE;";
            begin.ExecuteNonQuery();
        }

        var append = Task.Run(() => wal.Append([Leaf(0)]));
        var ledger = ledgers.WriteAsync("a -> b", new LedgerState { AppliedTx = 1 });
        var state = new GrainState<NodeState> { State = State("n1", 1) };
        var grain = grains.WriteStateAsync("node", Node("n1"), state);
        foreach (var waiter in new[] { append, ledger, grain })
        {
            var failed = await Assert.ThrowsAsync<SqliteException>(() => waiter.WaitAsync(Guard));
            Assert.Equal(5, failed.SqliteErrorCode); // SQLITE_BUSY
        }

        Assert.True(database.FailedTransactions >= 1);
        Assert.Null(state.ETag); // nothing was written, so nothing changed in the grain's view
        using (var end = other.CreateCommand())
        {
            end.CommandText = "ROLLBACK;";
            end.ExecuteNonQuery();
        }

        // The next batch starts afresh: the same writes now succeed.
        var committed = database.Transactions;
        await Task.Run(() => wal.Append([Leaf(0)])).WaitAsync(Guard);
        await ledgers.WriteAsync("a -> b", new LedgerState { AppliedTx = 1 }).WaitAsync(Guard);
        await grains.WriteStateAsync("node", Node("n1"), state).WaitAsync(Guard);
        Assert.Equal("1", state.ETag);
        Assert.Equal(1, wal.Count());
        Assert.Equal(1, (await ledgers.ReadAsync("a -> b"))!.AppliedTx);
        Assert.True(database.Transactions > committed);
    }

    public void Dispose()
    {
        _services.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
