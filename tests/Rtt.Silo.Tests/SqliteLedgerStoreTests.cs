using Microsoft.Data.Sqlite;
using Rtt.Grains.Reconciling;
using Rtt.Silo.Storage;

namespace Rtt.Silo.Tests;

public sealed class SqliteLedgerStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-ledger-").FullName;

    private string Db => Path.Combine(_dir, "rtt.db");

    [Fact]
    public async Task Concurrent_writes_are_grouped_the_last_state_of_a_route_wins_and_a_new_store_reads_it_back()
    {
        using (var store = new SqliteLedgerStore(Db))
        {
            Assert.Null(await store.ReadAsync("a -> b"));
            var writes = Enumerable.Range(0, 300).Select(i => store.WriteAsync($"r{i % 100}", new LedgerState { AppliedTx = i, AppliedPlan = $"p{i}", ReservedTx = i % 2 == 0 ? null : i })).ToArray();
            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(store.Batches < 300, $"{store.Batches} transactions for 300 writes: nothing was grouped");
        }

        using var again = new SqliteLedgerStore(Db);
        for (var r = 0; r < 100; r++)
        {
            var state = await again.ReadAsync($"r{r}");
            Assert.NotNull(state);
            Assert.Equal(200 + r, state.AppliedTx); // the last of r, r+100, r+200
            Assert.Equal($"p{200 + r}", state.AppliedPlan);
            Assert.Equal(r % 2 == 0 ? null : 200 + r, state.ReservedTx);
        }
    }

    [Fact]
    public async Task Large_targets_are_stored_once_apart_and_only_those_the_ledger_refers_to_are_kept()
    {
        // A node's ledger through prepare, commit and abort, as TxLedger drives it, with targets over the size that is
        // stored apart: each reads back as it was, and the table holds the ledger row and exactly its targets' rows.
        string Target(int n) => "{\"lanes\":[" + string.Join(",", Enumerable.Range(0, 200).Select(i => $"{{\"route_id\":{n * 1000 + i},\"to\":\"rtt://s/x/sym{i}\"}}")) + "]}";
        const string key = "node:n0";
        var state = new LedgerState();
        using (var store = new SqliteLedgerStore(Db))
        {
            for (var tx = 1; tx <= 6; tx++)
            {
                TxLedger.Prepare(state, tx, $"p{tx}", Target(tx), _ => null);
                await Check(store, state, 3 - (tx == 1 ? 2 : tx == 2 ? 1 : 0)); // reserved, applied, previous (fewer at first)
                if (tx == 4)
                {
                    TxLedger.Abort(state, tx);
                    await Check(store, state, 2);
                    continue;
                }

                TxLedger.Commit(state, tx, $"p{tx}", Target(tx));
                await Check(store, state, tx == 1 ? 1 : 2);
            }
        }

        using var again = new SqliteLedgerStore(Db);
        Assert.Equal(Target(6), (await again.ReadAsync(key))!.AppliedTarget);
        Assert.Equal(Target(5), (await again.ReadAsync(key))!.PreviousTarget);

        // A row written before targets were stored apart (targets in place) still reads, and is replaced whole.
        var old = new LedgerState { AppliedTx = 9, AppliedPlan = "p9", AppliedTarget = Target(9), PreviousTarget = Target(8) };
        using (var c = new SqliteConnection($"Data Source={Db}"))
        {
            c.Open();
            using var command = c.CreateCommand();
            command.CommandText = "UPDATE rtt_route_ledger SET ledger = $v WHERE route = $k; DELETE FROM rtt_route_ledger WHERE route LIKE char(1) || '%';";
            command.Parameters.AddWithValue("$k", key);
            command.Parameters.AddWithValue("$v", LedgerJson.Write(old));
            command.ExecuteNonQuery();
        }

        Assert.Equal(Target(9), (await again.ReadAsync(key))!.AppliedTarget);
        TxLedger.Prepare(old, 10, "p10", Target(10), _ => null);
        await Check(again, old, 3);

        async Task Check(SqliteLedgerStore s, LedgerState expected, int targetRows)
        {
            await s.WriteAsync(key, expected);
            var read = (await s.ReadAsync(key))!;
            Assert.Equal(LedgerJson.Write(expected), LedgerJson.Write(read));
            using var c = new SqliteConnection($"Data Source={Db}");
            c.Open();
            using var command = c.CreateCommand();
            command.CommandText = "SELECT route, ledger FROM rtt_route_ledger WHERE route LIKE char(1) || '%';";
            using var reader = command.ExecuteReader();
            var rows = new List<string>();
            while (reader.Read())
            {
                rows.Add(reader.GetString(1));
            }

            Assert.Equal(targetRows, rows.Count);
            Assert.Equal(new[] { expected.AppliedTarget, expected.ReservedTarget, expected.PreviousTarget }.OfType<string>().Distinct().Order(), rows.Order());
        }
    }

    [Fact]
    public void A_row_whose_target_row_is_gone_is_refused_not_read_with_the_target_missing()
    {
        var target = "{\"lanes\":[" + string.Join(",", Enumerable.Range(0, 400).Select(i => $"{{\"route_id\":{i}}}")) + "]}";
        var rows = LedgerJson.Rows("node:n0", new LedgerState { AppliedTx = 1, AppliedPlan = "p1", AppliedTarget = target });
        var (targetKey, text) = Assert.Single(rows.Targets);
        Assert.Equal(target, text);
        Assert.Equal(target, LedgerJson.Read(rows.Ledger, "node:n0", k => k == targetKey ? text : null).AppliedTarget);
        var refused = Assert.Throws<System.Text.Json.JsonException>(() => LedgerJson.Read(rows.Ledger, "node:n0", _ => null));
        Assert.Contains("AppliedTarget", refused.Message, StringComparison.Ordinal);
        Assert.Equal([targetKey], LedgerJson.References("node:n0", rows.Ledger));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
