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
    public void Schema_is_applied_idempotently_with_the_provider_queries_and_wal_journaling()
    {
        SqliteStateStore.Prepare(SqliteStateStore.ConnectionString(Db), Db);
        Scalar(Db, "INSERT INTO rtt_grain_state (service_id, state_name, state_name_hash, grain_key_hash, grain_key_n0, grain_key_n1, grain_key_ext, payload, version) VALUES ('s','node',1,2,0,0,'node0',x'7b7d',1)");
        SqliteStateStore.Prepare(SqliteStateStore.ConnectionString(Db), Db); // second start: nothing lost, nothing duplicated

        Assert.Equal(1L, Scalar(Db, "SELECT count(*) FROM rtt_grain_state"));
        Assert.Equal(4L, Scalar(Db, "SELECT count(*) FROM OrleansQuery WHERE QueryKey IN ('ReadFromStorageKey','WriteToStorageKey','ClearStorageKey','DeleteStorageKey')"));
        Assert.Equal("wal", Scalar(Db, "PRAGMA journal_mode"));
        Assert.Equal("{}", Scalar(Db, "SELECT payload_text FROM rtt_grain_state_text"));
    }

    [Fact]
    public void Write_query_refuses_a_stale_version()
    {
        SqliteStateStore.Prepare(SqliteStateStore.ConnectionString(Db), Db);
        var write = (string)Scalar(Db, "SELECT QueryText FROM OrleansQuery WHERE QueryKey = 'WriteToStorageKey'")!;
        long? Write(long? version)
        {
            using var c = new SqliteConnection($"Data Source={Db};Pooling=False");
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = write;
            cmd.Parameters.AddWithValue("@ServiceId", "svc");
            cmd.Parameters.AddWithValue("@GrainTypeString", "node");
            cmd.Parameters.AddWithValue("@GrainTypeHash", 11);
            cmd.Parameters.AddWithValue("@GrainIdHash", -5);
            cmd.Parameters.AddWithValue("@GrainIdN0", 0L);
            cmd.Parameters.AddWithValue("@GrainIdN1", 0L);
            cmd.Parameters.AddWithValue("@GrainIdExtensionString", "node0");
            cmd.Parameters.AddWithValue("@GrainStateVersion", version is null ? DBNull.Value : version);
            cmd.Parameters.AddWithValue("@PayloadBinary", "{\"a\":1}"u8.ToArray());
            using var reader = cmd.ExecuteReader();
            do
            {
                if (reader.Read())
                {
                    return reader.GetInt64(0);
                }
            }
            while (reader.NextResult());

            return null;
        }

        Assert.Equal(1, Write(null));   // first write
        Assert.Null(Write(null));       // a second "first write" is a conflict
        Assert.Equal(2, Write(1));      // write with the current version
        Assert.Null(Write(1));          // the old version is now stale
    }

    [Fact]
    public void Garbage_file_is_reported_as_corrupt()
    {
        File.WriteAllBytes(Db, [.. Enumerable.Repeat((byte)0x5A, 4096)]);
        var ex = Assert.Throws<HostingException>(() => SqliteStateStore.Prepare(SqliteStateStore.ConnectionString(Db), Db));
        Assert.Equal(ErrorCodes.StateCorrupt, ex.Code);
        Assert.Equal(Db, ex.Location);
    }
}
