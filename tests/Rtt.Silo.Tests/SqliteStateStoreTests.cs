using Microsoft.Data.Sqlite;
using Rtt.Core.Errors;
using Rtt.Silo.Storage;

namespace Rtt.Silo.Tests;

public sealed class SqliteStateStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-sqlite-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private string Db => Path.Combine(_dir, "rtt.db");

    private static object? Scalar(string db, string sql)
    {
        using var c = new SqliteConnection($"Data Source={db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    [Fact]
    public void Opening_applies_the_schema_idempotently_with_wal_journaling()
    {
        SqliteStateStore.Open(Db).Dispose();
        Scalar(Db, "INSERT INTO rtt_state (service_id, state_name, key_n0, key_n1, key_ext, payload, version) VALUES ('s','node',0,0,'node0',x'7b7d',1)");
        SqliteStateStore.Open(Db).Dispose(); // second start: nothing lost, nothing duplicated

        Assert.Equal(1L, Scalar(Db, "SELECT count(*) FROM rtt_state"));
        Assert.Equal(1L, Scalar(Db, "SELECT count(*) FROM sqlite_master WHERE name = 'rtt_route_ledger'"));
        Assert.Equal(0L, Scalar(Db, "SELECT count(*) FROM sqlite_master WHERE name IN ('OrleansQuery', 'rtt_grain_state')")); // no ADO.NET tables any more
        Assert.Equal("wal", Scalar(Db, "PRAGMA journal_mode"));
    }

    [Fact]
    public void Garbage_file_is_reported_as_corrupt()
    {
        File.WriteAllBytes(Db, [.. Enumerable.Repeat((byte)0x5A, 4096)]);
        var ex = Assert.Throws<HostingException>(() => SqliteStateStore.Open(Db));
        Assert.Equal(ErrorCodes.StateCorrupt, ex.Code);
        Assert.Equal(Db, ex.Location);
    }
}
