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

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }
}
