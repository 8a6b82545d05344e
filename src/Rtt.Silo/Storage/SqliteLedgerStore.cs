using Microsoft.Data.Sqlite;
using Rtt.Grains.Reconciling;
using Rtt.Reconciling.State;

namespace Rtt.Silo.Storage;

/// <summary>
/// Participants' ledgers in the silo's SQLite database (table <c>rtt_route_ledger</c>, one row per route, and per node under <c>node:&lt;id&gt;</c>,
/// JSON text; a large target, as a node's, in a row of its own that the ledger row refers to: <see cref="LedgerJson.Rows"/>). Writes go through the database's one writer (<see cref="SqliteStateDatabase"/>): those that arrive while
/// a transaction is being committed go out together in the next one (group commit, with the WAL's appends and grain
/// state), with <c>synchronous=NORMAL</c> like grain state: a commit survives the process being killed, and the
/// reconciler's decisions, which the participants follow, are in the fsynced Merkle WAL.
/// </summary>
public sealed class SqliteLedgerStore : IParticipantLedgerStore, IDisposable
{
    private readonly SqliteStateDatabase _database;
    private readonly bool _ownsDatabase;
    private long _lastTransaction = -1;

    /// <summary>The table.</summary>
    public const string Schema = "CREATE TABLE IF NOT EXISTS rtt_route_ledger (route TEXT PRIMARY KEY, ledger TEXT NOT NULL);";

    /// <summary>A store with a writer of its own on the file (tests, tools); a silo shares its state database's.</summary>
    public SqliteLedgerStore(string databasePath)
        : this(SqliteStateDatabase.Open(databasePath), ownsDatabase: true)
    {
    }

    /// <summary>The ledgers in a state database opened by its owner (the silo); disposing the store leaves it open.</summary>
    public SqliteLedgerStore(SqliteStateDatabase database)
        : this(database, ownsDatabase: false)
    {
    }

    private SqliteLedgerStore(SqliteStateDatabase database, bool ownsDatabase)
    {
        _database = database;
        _ownsDatabase = ownsDatabase;
        try
        {
            var exists = database.Read(c =>
            {
                using var command = c.CreateCommand();
                command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rtt_route_ledger';";
                return (long)command.ExecuteScalar()! > 0;
            });
            if (!exists)
            {
                database.Execute(Schema, durable: false);
            }
        }
        catch
        {
            if (ownsDatabase)
            {
                database.Dispose();
            }

            throw;
        }
    }

    /// <summary>Transactions of the state database that held ledger writes so far.</summary>
    public long Batches { get; private set; }

    public Task<LedgerState?> ReadAsync(string key) => Task.Run(() => _database.Read(c =>
    {
        var json = Text(c, null, key);
        return json is null ? null : LedgerJson.Read(json, key, target => Text(c, null, target));
    }));

    /// <summary>
    /// The ledger's row and the rows of its large targets (<see cref="LedgerJson.Rows"/>) in the database's next
    /// transaction: a target row is written only when missing, and those the replaced row referred to and this one does
    /// not are deleted. Of several states of one route in a transaction, the last is the one kept.
    /// </summary>
    public Task WriteAsync(string key, LedgerState state)
    {
        var rows = LedgerJson.Rows(key, state);
        return _database.WriteAsync((c, tx) =>
        {
            // Runs on the database's writer thread, one write at a time: counting here needs no lock.
            var transaction = _database.Batch;
            if (transaction != _lastTransaction)
            {
                _lastTransaction = transaction;
                Batches++;
            }

            var replaced = LedgerJson.References(key, Text(c, tx, key));
            foreach (var (target, text) in rows.Targets)
            {
                if (!replaced.Contains(target) && !Exists(c, tx, target))
                {
                    Put(c, tx, target, text);
                }
            }

            Put(c, tx, key, rows.Ledger);
            foreach (var gone in replaced)
            {
                if (!rows.Targets.Any(t => t.Key == gone))
                {
                    using var delete = Command(c, tx, "DELETE FROM rtt_route_ledger WHERE route = $k;", gone);
                    delete.ExecuteNonQuery();
                }
            }

            return true;
        }, durable: false);
    }

    private static string? Text(SqliteConnection c, SqliteTransaction? tx, string key)
    {
        using var command = Command(c, tx, "SELECT ledger FROM rtt_route_ledger WHERE route = $k;", key);
        return command.ExecuteScalar() as string;
    }

    private static bool Exists(SqliteConnection c, SqliteTransaction tx, string key)
    {
        using var command = Command(c, tx, "SELECT 1 FROM rtt_route_ledger WHERE route = $k;", key);
        return command.ExecuteScalar() is not null;
    }

    private static void Put(SqliteConnection c, SqliteTransaction tx, string key, string text)
    {
        using var command = Command(c, tx, "INSERT INTO rtt_route_ledger (route, ledger) VALUES ($k, $v) ON CONFLICT (route) DO UPDATE SET ledger = excluded.ledger;", key, text);
        command.ExecuteNonQuery();
    }

    /// <summary>A statement on the table with the row key as <c>$k</c> (and a text as <c>$v</c>).</summary>
    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql, string key, string? text = null)
    {
        var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.Parameters.AddWithValue("$k", key);
        if (text is not null)
        {
            command.Parameters.AddWithValue("$v", text);
        }

        return command;
    }

    public void Dispose()
    {
        if (_ownsDatabase)
        {
            _database.Dispose();
        }
    }
}
