using System.Text.Json;
using Microsoft.Data.Sqlite;
using Rtt.Core.Json;
using Rtt.Grains.Reconciling;

namespace Rtt.Silo.Storage;

/// <summary>
/// Participants' ledgers in the silo's SQLite database (table <c>rtt_route_ledger</c>, one row per route, and per node under <c>node:&lt;id&gt;</c>,
/// JSON text). Writes that arrive while a transaction is being committed go out together in the next one (group
/// commit), with <c>synchronous=NORMAL</c> like grain state: a commit survives the process being killed, and the
/// reconciler's decisions, which the participants follow, are in the fsynced Merkle WAL.
/// </summary>
public sealed class SqliteLedgerStore : IParticipantLedgerStore, IDisposable
{
    private static readonly JsonSerializerOptions Json = new() { IncludeFields = false };
    private readonly SqliteConnection _connection;
    private readonly Lock _io = new();
    private readonly GroupCommit<(string Key, string Json), bool> _group;

    /// <summary>The table, as the schema script (persistence.sql) also creates it.</summary>
    public const string Schema = "CREATE TABLE IF NOT EXISTS rtt_route_ledger (route TEXT PRIMARY KEY, ledger TEXT NOT NULL);";

    public SqliteLedgerStore(string databasePath)
    {
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false, DefaultTimeout = 30 }.ToString());
        _connection.Open();
        _group = new GroupCommit<(string Key, string Json), bool>(Write);
        using var command = _connection.CreateCommand();
        command.CommandText = "PRAGMA synchronous = NORMAL; SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rtt_route_ledger';";
        if ((long)command.ExecuteScalar()! == 0)
        {
            // The silo's schema script creates the table before start; this covers a database used on its own. Only
            // then is a write needed here, so silos opening the store together never contend for the lock.
            command.CommandText = Schema;
            command.ExecuteNonQuery();
        }
    }

    /// <summary>Transactions written so far.</summary>
    public long Batches { get; private set; }

    public Task<LedgerState?> ReadAsync(string key) => Task.Run(() =>
    {
        lock (_io)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT ledger FROM rtt_route_ledger WHERE route = $k;";
            command.Parameters.AddWithValue("$k", key);
            return command.ExecuteScalar() is string json ? JsonSerializer.Deserialize<LedgerState>(json, Json) : null;
        }
    });

    public Task WriteAsync(string key, LedgerState state) => _group.Enqueue((key, JsonSerializer.Serialize(state, Json)));

    /// <summary>One transaction for a batch; of several states of one route in it, the last is the one kept.</summary>
    private bool[] Write(IReadOnlyList<(string Key, string Json)> batch)
    {
        var latest = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, json) in batch)
        {
            latest[key] = json;
        }

        lock (_io)
        {
            using var tx = _connection.BeginTransaction();
            using var command = _connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = "INSERT INTO rtt_route_ledger (route, ledger) VALUES ($k, $v) ON CONFLICT (route) DO UPDATE SET ledger = excluded.ledger;";
            var k = command.Parameters.Add("$k", SqliteType.Text);
            var v = command.Parameters.Add("$v", SqliteType.Text);
            foreach (var (key, json) in latest)
            {
                k.Value = key;
                v.Value = json;
                command.ExecuteNonQuery();
            }

            tx.Commit();
            Batches++;
        }

        return new bool[batch.Count];
    }

    public void Dispose()
    {
        lock (_io)
        {
            _connection.Dispose();
        }
    }
}
