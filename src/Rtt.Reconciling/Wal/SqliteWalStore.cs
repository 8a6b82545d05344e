using Microsoft.Data.Sqlite;
using SQLitePCL;
using Rtt.Core.Errors;
using Rtt.Reconciling.State;

namespace Rtt.Reconciling.Wal;

/// <summary>
/// The embedded WAL store: two tables in the silo's SQLite database (<c>.rtt/state/rtt.db</c>). Appends go through the
/// database's one writer (<see cref="SqliteStateDatabase"/>, group-committed with the ledgers and grain state) as
/// durable writes: their transaction commits with <c>synchronous=FULL</c>, so a returned <see cref="Append"/> has been
/// fsynced. Triggers refuse any UPDATE or DELETE: the log is append-only at the database level too.
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

    private readonly SqliteStateDatabase _database;
    private readonly bool _ownsDatabase;
    private bool _empty;

    private SqliteWalStore(SqliteStateDatabase database, bool ownsDatabase)
    {
        _database = database;
        _ownsDatabase = ownsDatabase;
    }

    public string Location => _database.Path;

    /// <summary>The state database the tables are in (its writer and counters).</summary>
    public SqliteStateDatabase Database => _database;

    /// <summary>
    /// Opens (and creates when asked) the WAL tables in the SQLite file at <paramref name="path"/>, with a writer of its
    /// own: for tools that run without a silo (`rtt keys rotate`, benchmarks, tests). A silo uses <see cref="On"/>.
    /// </summary>
    public static SqliteWalStore Open(string path, bool create = true)
    {
        Exists(path, create);
        SqliteStateDatabase? database = null;
        try
        {
            database = SqliteStateDatabase.Open(path, create);
            var store = new SqliteWalStore(database, ownsDatabase: true);
            store.CreateSchema();
            return store;
        }
        catch (SqliteException ex)
        {
            database?.Dispose();
            throw Unavailable(ex, path);
        }
    }

    /// <summary>The WAL tables in a state database opened by its owner (the silo): appends go through its writer; disposing this store leaves the database open.</summary>
    public static SqliteWalStore On(SqliteStateDatabase database)
    {
        var store = new SqliteWalStore(database, ownsDatabase: false);
        try
        {
            store.CreateSchema();
        }
        catch (SqliteException ex)
        {
            throw Unavailable(ex, database.Path);
        }

        return store;
    }

    /// <summary>
    /// Opens the WAL for reading only (`rtt wal verify|root|export|proof`): SQLite read-only mode, no schema or pragma
    /// written, so checking a log never changes the database (not even the append-only triggers a tamperer dropped).
    /// A database without the WAL tables holds an empty log. Appending through this store throws.
    /// </summary>
    public static SqliteWalStore OpenReadOnly(string path)
    {
        Exists(path, create: false);
        SqliteStateDatabase? database = null;
        try
        {
            database = SqliteStateDatabase.OpenReadOnly(path);
            var tables = database.Read(c =>
            {
                using var command = c.CreateCommand();
                command.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('rtt_wal', 'rtt_wal_heads');";
                return (long)command.ExecuteScalar()!;
            });
            return new SqliteWalStore(database, ownsDatabase: true) { _empty = tables < 2 };
        }
        catch (SqliteException ex)
        {
            database?.Dispose();
            throw new RttException(ErrorCodes.WalUnavailable, $"cannot read the WAL in the state database: {ex.Message}", path,
                "check that the file is a readable SQLite database", ex);
        }
    }

    /// <summary>Only a store that may create the database may find no file.</summary>
    private static void Exists(string path, bool create)
    {
        if (!create && !File.Exists(path))
        {
            throw new RttException(ErrorCodes.WalUnavailable, "there is no state database, so no WAL yet", path,
                "run `rtt up` (or `rtt apply`) on this workspace first");
        }
    }

    private static RttException Unavailable(SqliteException ex, string path) =>
        new(ErrorCodes.WalUnavailable, $"cannot open the WAL in the state database: {ex.Message}", path,
            "check that the file is a readable, writable SQLite database (see `rtt wal verify`)", ex);

    private void CreateSchema() => _database.Execute(Schema, durable: true);

    private void Writable()
    {
        if (!_database.Writable)
        {
            throw new InvalidOperationException("this WAL store was opened read-only");
        }
    }

    public long Count()
    {
        if (_empty)
        {
            return 0;
        }

        return _database.Read(c =>
        {
            using var command = c.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM rtt_wal;";
            return (long)command.ExecuteScalar()!;
        });
    }

    public void Append(IReadOnlyList<WalRecord> records) => Append(records, null, durable: true);

    /// <summary>Without <paramref name="durable"/>: committed with <c>synchronous=NORMAL</c>, made durable by the next durable write.</summary>
    public void Append(IReadOnlyList<WalRecord> records, bool durable) => Append(records, null, durable);

    /// <summary>The entries and the head in one transaction: one fsync.</summary>
    public void AppendWithHead(IReadOnlyList<WalRecord> records, long headSize, string headJson) => Append(records, (headSize, headJson), durable: true);

    /// <summary>The same; without <paramref name="durable"/> committed with <c>synchronous=NORMAL</c>, made durable by the next durable write.</summary>
    public void AppendWithHead(IReadOnlyList<WalRecord> records, long headSize, string headJson, bool durable) => Append(records, (headSize, headJson), durable);

    private void Append(IReadOnlyList<WalRecord> records, (long Size, string Json)? head, bool durable)
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

        // One write of the state database: checked, inserted and committed together (durable: synchronous=FULL, fsynced;
        // otherwise synchronous=NORMAL, made durable by the next durable write), possibly with ledger and grain state
        // writes queued at the same time.
        _database.Write((c, tx) =>
        {
            using (var check = c.CreateCommand())
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

            using var insert = c.CreateCommand();
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
                InsertHead(c, tx, h2.Size, h2.Json);
            }

            return true;
        }, durable);
    }

    public IEnumerable<WalRecord> Read(long from, long to)
    {
        var result = new List<WalRecord>((int)Math.Max(0, Math.Min(to - from, 1 << 20)));
        if (_empty)
        {
            return result;
        }

        return _database.Read(c =>
        {
            using var command = c.CreateCommand();
            command.CommandText = "SELECT idx, leaf, leaf_hash FROM rtt_wal WHERE idx >= $from AND idx < $to ORDER BY idx;";
            command.Parameters.AddWithValue("$from", from);
            command.Parameters.AddWithValue("$to", to);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                result.Add(new WalRecord(reader.GetInt64(0), (byte[])reader.GetValue(1), (byte[])reader.GetValue(2)));
            }

            return result;
        });
    }

    /// <summary>
    /// Steps the query through SQLite's own interface and hands each row's blobs out as SQLite holds them: no byte array
    /// per entry, no data-reader layer (a 100,000-entry replay read its rows in 150-340 ms through the data reader and
    /// its copies, against about 60 ms this way).
    /// </summary>
    public void Scan(long from, long to, WalEntryVisitor visit)
    {
        if (_empty)
        {
            return;
        }

        _database.Read(c =>
        {
            var db = c.Handle ?? throw new InvalidOperationException("the connection is not open");
            var rc = raw.sqlite3_prepare_v2(db, "SELECT idx, leaf, leaf_hash FROM rtt_wal WHERE idx >= ?1 AND idx < ?2 ORDER BY idx;", out sqlite3_stmt statement);
            SqliteException.ThrowExceptionForRC(rc, db);
            try
            {
                raw.sqlite3_bind_int64(statement, 1, from);
                raw.sqlite3_bind_int64(statement, 2, to);
                var busyUntil = Environment.TickCount64 + 30_000;
                var rows = 0L;
                while ((rc = raw.sqlite3_step(statement)) == raw.SQLITE_ROW || (rc == raw.SQLITE_BUSY && rows == 0 && Environment.TickCount64 < busyUntil))
                {
                    if (rc == raw.SQLITE_BUSY)
                    {
                        // A read transaction starts on the first step and can only be refused there (a writer
                        // checkpointing the write-ahead file): start again, as the data reader would.
                        raw.sqlite3_reset(statement);
                        Thread.Sleep(1);
                        continue;
                    }

                    rows++;
                    visit(raw.sqlite3_column_int64(statement, 0), raw.sqlite3_column_blob(statement, 1), raw.sqlite3_column_blob(statement, 2));
                }

                if (rc != raw.SQLITE_DONE)
                {
                    SqliteException.ThrowExceptionForRC(rc, db);
                }
            }
            finally
            {
                statement.Dispose();
            }

            return true;
        });
    }

    /// <summary>The state database's flush (<see cref="SqliteStateDatabase.Flush"/>): every commit so far made durable.</summary>
    public void Sync()
    {
        Writable();
        _database.Flush();
    }

    public void AddHead(long size, string json)
    {
        Writable();
        _database.Write((c, tx) =>
        {
            InsertHead(c, tx, size, json);
            return true;
        }, durable: true);
    }

    private static void InsertHead(SqliteConnection c, SqliteTransaction tx, long size, string json)
    {
        using var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "INSERT OR IGNORE INTO rtt_wal_heads (size, head) VALUES ($s, $h);";
        command.Parameters.AddWithValue("$s", size);
        command.Parameters.AddWithValue("$h", json);
        command.ExecuteNonQuery();
    }

    public IReadOnlyList<WalHeadRecord> Heads()
    {
        var result = new List<WalHeadRecord>();
        if (_empty)
        {
            return result;
        }

        return _database.Read(c =>
        {
            using var command = c.CreateCommand();
            command.CommandText = "SELECT size, head FROM rtt_wal_heads ORDER BY size;";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                result.Add(new WalHeadRecord(reader.GetInt64(0), reader.GetString(1)));
            }

            return result;
        });
    }

    public void Dispose()
    {
        if (_ownsDatabase)
        {
            _database.Dispose();
        }
    }
}
