using Npgsql;
using Rtt.Core.Tests;
using Rtt.Grains.Reconciling;
using Rtt.Silo.Storage.Postgres;

namespace Rtt.Cli.Tests;

/// <summary>
/// The cluster's ledger store against a real, private PostgreSQL server: a node's large targets are stored once in rows
/// of their own, only those its ledger refers to are kept, and a row written before (targets in place) still reads.
/// </summary>
public sealed class PostgresLedgerStoreTests(PostgresServerFixture pg) : IClassFixture<PostgresServerFixture>
{
    private static string Target(int n) => "{\"lanes\":[" + string.Join(",", Enumerable.Range(0, 200).Select(i => $"{{\"route_id\":{n * 1000 + i},\"to\":\"rtt://s/x/sym{i}\"}}")) + "]}";

    [Fact]
    public async Task Large_targets_are_stored_once_apart_and_only_those_the_ledger_refers_to_are_kept()
    {
        var database = pg.NewDatabase();
        PostgresServerFixture.Sql(database, "CREATE TABLE rtt_route_ledger (route text PRIMARY KEY, ledger text NOT NULL);");
        const string key = "node:n0";
        var state = new LedgerState();
        using (var store = new PostgresLedgerStore(database))
        {
            for (var tx = 1; tx <= 4; tx++)
            {
                TxLedger.Prepare(state, tx, $"p{tx}", Target(tx), _ => null);
                await Check(store, state);
                TxLedger.Commit(state, tx, $"p{tx}", Target(tx));
                await Check(store, state);
            }

            // Concurrent writes of two nodes go out together; each keeps its own targets.
            var other = new LedgerState();
            TxLedger.Prepare(other, 7, "p7", Target(7), _ => null);
            TxLedger.Prepare(state, 5, "p5", Target(5), _ => null);
            await Task.WhenAll(store.WriteAsync("node:n1", other), store.WriteAsync(key, state));
            Assert.Equal(Target(7), (await store.ReadAsync("node:n1"))!.ReservedTarget);
            Assert.Equal(4, TargetRows(database).Count); // n0: reserved 5, applied 4, previous 3; n1: reserved 7
        }

        // A row written before targets were stored apart still reads, and is replaced whole on the next write.
        var old = new LedgerState { AppliedTx = 9, AppliedPlan = "p9", AppliedTarget = Target(9), PreviousTarget = Target(8) };
        using (var c = new NpgsqlConnection(database))
        {
            c.Open();
            using var command = new NpgsqlCommand("UPDATE rtt_route_ledger SET ledger = @v WHERE route = 'node:n0'; DELETE FROM rtt_route_ledger WHERE route LIKE chr(1) || '%' || 'node:n0';", c);
            command.Parameters.AddWithValue("v", LedgerJson.Write(old));
            command.ExecuteNonQuery();
        }

        using var again = new PostgresLedgerStore(database);
        Assert.Equal(Target(9), (await again.ReadAsync(key))!.AppliedTarget);
        TxLedger.Prepare(old, 10, "p10", Target(10), _ => null);
        await Check(again, old);

        async Task Check(PostgresLedgerStore s, LedgerState expected)
        {
            await s.WriteAsync(key, expected);
            Assert.Equal(LedgerJson.Write(expected), LedgerJson.Write((await s.ReadAsync(key))!));
            var rows = TargetRows(database).Where(r => r.Key.EndsWith(key, StringComparison.Ordinal)).Select(r => r.Text).Order();
            Assert.Equal(new[] { expected.AppliedTarget, expected.ReservedTarget, expected.PreviousTarget }.OfType<string>().Distinct().Order(), rows);
        }
    }

    private static List<(string Key, string Text)> TargetRows(string database)
    {
        using var c = new NpgsqlConnection(database);
        c.Open();
        using var command = new NpgsqlCommand("SELECT route, ledger FROM rtt_route_ledger WHERE route LIKE chr(1) || '%';", c);
        using var reader = command.ExecuteReader();
        var rows = new List<(string, string)>();
        while (reader.Read())
        {
            rows.Add((reader.GetString(0), reader.GetString(1)));
        }

        return rows;
    }
}
