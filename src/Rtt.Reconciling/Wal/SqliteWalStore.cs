using Microsoft.Data.Sqlite;
using Rtt.Core.Errors;

namespace Rtt.Reconciling.Wal;

/// <summary>
/// The embedded WAL store: two tables in the silo's SQLite database (<c>.rtt/state/rtt.db</c>), journal in WAL
/// mode with <c>synchronous=FULL</c>, so a returned <see cref="Append"/> has been fsynced. Triggers refuse any
/// UPDATE or DELETE: the log is append-only at the database level too.
/// </summary>
public sealed class SqliteWalStore : IWalStore
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS rtt_wal (
            idx INTEGER PRIMARY KEY,
            leaf BLOB NOT NULL,
            leaf_hash BLOB NOT NULL
        );
        CREATE TABLE IF NOT EXISTS rtt_wal_heads (
            size INTEGER PRIMARY KEY,
            head TEXT NOT NULL
        );
        CREATE TRIGGER IF NOT EXISTS rtt_wal_no_update BEFORE UPDATE ON rtt_wal BEGIN SELECT RAISE(ABORT, 'rtt_wal is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS rtt_wal_no_delete BEFORE DELETE ON rtt_wal BEGIN SELECT RAISE(ABORT, 'rtt_wal is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS rtt_wal_heads_no_update BEFORE UPDATE ON rtt_wal_heads BEGIN SELECT RAISE(ABORT, 'rtt_wal_heads is append-only'); END;
        CREATE TRIGGER IF NOT EXISTS rtt_wal_heads_no_delete BEFORE DELETE ON rtt_wal_heads BEGIN SELECT RAISE(ABORT, 'rtt_wal_heads is append-only'); END;
        """;

    private readonly SqliteConnection _connection;
    private readonly Lock _gate = new();
    private bool _readOnly;
    private bool _empty;

    private SqliteWalStore(SqliteConnection connection, string path)
    {
        _connection = connection;
        Location = path;
    }

    public string Location { get; }

    /// <summary>Opens (and creates when asked) the WAL tables in the SQLite file at <paramref name="path"/>.</summary>
    public static SqliteWalStore Open(string path, bool create = true)
    {
        var connection = Connection(path, create ? SqliteOpenMode.ReadWriteCreate : SqliteOpenMode.ReadWrite);
        try
        {
            connection.Open();
            Execute(connection, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
            Execute(connection, Schema);
            return new SqliteWalStore(connection, path);
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw new RttException(ErrorCodes.WalUnavailable, $"cannot open the WAL in the state database: {ex.Message}", path,
                "check that the file is a readable, writable SQLite database (see `rtt wal verify`)", ex);
        }
    }

    /// <summary>
    /// Opens the WAL for reading only (`rtt wal verify|root|export|proof`): SQLite read-only mode, no schema or pragma
    /// written, so checking a log never changes the database (not even the append-only triggers a tamperer dropped).
    /// A database without the WAL tables holds an empty log. Appending through this store throws.
    /// </summary>
    public static SqliteWalStore OpenReadOnly(string path)
    {
        var connection = Connection(path, SqliteOpenMode.ReadOnly);
        try
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('rtt_wal', 'rtt_wal_heads');";
            var tables = (long)command.ExecuteScalar()!;
            return new SqliteWalStore(connection, path) { _readOnly = true, _empty = tables < 2 };
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw new RttException(ErrorCodes.WalUnavailable, $"cannot read the WAL in the state database: {ex.Message}", path,
                "check that the file is a readable SQLite database", ex);
        }
    }

    /// <summary>An unopened connection to the state database; only <see cref="SqliteOpenMode.ReadWriteCreate"/> may make the file.</summary>
    private static SqliteConnection Connection(string path, SqliteOpenMode mode)
    {
        if (mode != SqliteOpenMode.ReadWriteCreate && !File.Exists(path))
        {
            throw new RttException(ErrorCodes.WalUnavailable, "there is no state database, so no WAL yet", path,
                "run `rtt up` (or `rtt apply`) on this workspace first");
        }

        return new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Pooling = false,
            DefaultTimeout = 30,
            Mode = mode,
        }.ToString());
    }

    private void Writable()
    {
        if (_readOnly)
        {
            throw new InvalidOperationException("this WAL store was opened read-only");
        }
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    public long Count()
    {
        if (_empty)
        {
            return 0;
        }

        lock (_gate)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM rtt_wal;";
            return (long)command.ExecuteScalar()!;
        }
    }

    public void Append(IReadOnlyList<WalRecord> records) => Append(records, null);

    /// <summary>The entries and the head in one transaction: one fsync.</summary>
    public void AppendWithHead(IReadOnlyList<WalRecord> records, long headSize, string headJson) => Append(records, (headSize, headJson));

    private void Append(IReadOnlyList<WalRecord> records, (long Size, string Json)? head)
    {
        Writable();
        if (records.Count == 0)
        {
            if (head is { } only)
            {
                AddHead(only.Size, only.Json);
            }

            return;
        }

        lock (_gate)
        {
            using var tx = _connection.BeginTransaction(deferred: false);
            using (var check = _connection.CreateCommand())
            {
                check.Transaction = tx;
                check.CommandText = "SELECT COALESCE(MAX(idx) + 1, 0) FROM rtt_wal;";
                var count = (long)check.ExecuteScalar()!;
                if (count != records[0].Index)
                {
                    throw new RttException(ErrorCodes.WalConflict, $"the WAL has {count} entries but this batch starts at {records[0].Index}: another writer appended", Location,
                        "only one silo's WAL grain writes a log; restart the silo so it re-reads the log");
                }
            }

            using var insert = _connection.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = "INSERT INTO rtt_wal (idx, leaf, leaf_hash) VALUES ($i, $l, $h);";
            var i = insert.Parameters.Add("$i", SqliteType.Integer);
            var l = insert.Parameters.Add("$l", SqliteType.Blob);
            var h = insert.Parameters.Add("$h", SqliteType.Blob);
            insert.Prepare();
            foreach (var r in records)
            {
                i.Value = r.Index;
                l.Value = r.Leaf;
                h.Value = r.LeafHash;
                insert.ExecuteNonQuery();
            }

            if (head is { } h2)
            {
                using var addHead = _connection.CreateCommand();
                addHead.Transaction = tx;
                addHead.CommandText = "INSERT OR IGNORE INTO rtt_wal_heads (size, head) VALUES ($s, $h);";
                addHead.Parameters.AddWithValue("$s", h2.Size);
                addHead.Parameters.AddWithValue("$h", h2.Json);
                addHead.ExecuteNonQuery();
            }

            tx.Commit(); // synchronous=FULL: the WAL file is fsynced before this returns
        }
    }

    public IEnumerable<WalRecord> Read(long from, long to)
    {
        var result = new List<WalRecord>((int)Math.Max(0, Math.Min(to - from, 1 << 20)));
        if (_empty)
        {
            return result;
        }

        lock (_gate)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT idx, leaf, leaf_hash FROM rtt_wal WHERE idx >= $from AND idx < $to ORDER BY idx;";
            command.Parameters.AddWithValue("$from", from);
            command.Parameters.AddWithValue("$to", to);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                result.Add(new WalRecord(reader.GetInt64(0), (byte[])reader.GetValue(1), (byte[])reader.GetValue(2)));
            }
        }

        return result;
    }

    public void AddHead(long size, string json)
    {
        Writable();
        lock (_gate)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "INSERT OR IGNORE INTO rtt_wal_heads (size, head) VALUES ($s, $h);";
            command.Parameters.AddWithValue("$s", size);
            command.Parameters.AddWithValue("$h", json);
            command.ExecuteNonQuery();
        }
    }

    public IReadOnlyList<WalHeadRecord> Heads()
    {
        var result = new List<WalHeadRecord>();
        if (_empty)
        {
            return result;
        }

        lock (_gate)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT size, head FROM rtt_wal_heads ORDER BY size;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                result.Add(new WalHeadRecord(reader.GetInt64(0), reader.GetString(1)));
            }
        }

        return result;
    }

    public void Dispose() => _connection.Dispose();
}
