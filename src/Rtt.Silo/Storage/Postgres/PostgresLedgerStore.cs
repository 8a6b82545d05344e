using Npgsql;
using NpgsqlTypes;
using Rtt.Core.Json;
using Rtt.Grains.Reconciling;

namespace Rtt.Silo.Storage.Postgres;

/// <summary>
/// Participants' ledgers in the cluster database (table <c>rtt_route_ledger</c>, made by `rtt db init`): the same rows
/// as <see cref="SqliteLedgerStore"/> (large targets in rows of their own, <see cref="LedgerJson.Rows"/>), group-committed (one transaction per burst of votes), with
/// <c>synchronous_commit=on</c> so a returned write survives the loss of the silo and of the server's cache. Every
/// silo writes only the ledgers of the participants active on it, and a participant is active on one silo at a time.
/// </summary>
public sealed class PostgresLedgerStore : IParticipantLedgerStore, IDisposable
{
    private readonly NpgsqlDataSource _source;
    private readonly GroupCommit<(string Key, LedgerRows Rows), bool> _group;

    public PostgresLedgerStore(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? "-c synchronous_commit=on" : builder.Options + " -c synchronous_commit=on";
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
        _group = new GroupCommit<(string Key, LedgerRows Rows), bool>(Write);
    }

    /// <summary>Transactions written so far.</summary>
    public long Batches { get; private set; }

    public async Task<LedgerState?> ReadAsync(string key)
    {
        await using var connection = await _source.OpenConnectionAsync();
        var json = Texts(connection, null, [key]).GetValueOrDefault(key);
        if (json is null)
        {
            return null;
        }

        var targets = Texts(connection, null, [.. LedgerJson.References(key, json)]);
        return LedgerJson.Read(json, key, targets.GetValueOrDefault);
    }

    public Task WriteAsync(string key, LedgerState state) => _group.Enqueue((key, LedgerJson.Rows(key, state)));

    /// <summary>
    /// One transaction for a batch (of several states of one key in it, the last is kept): the ledger rows, the rows of
    /// their large targets that are not stored yet (<see cref="LedgerJson.Rows"/>), and the deletion of the target rows
    /// the replaced ledger rows referred to and the new ones do not.
    /// </summary>
    private bool[] Write(IReadOnlyList<(string Key, LedgerRows Rows)> batch)
    {
        var latest = new Dictionary<string, LedgerRows>(StringComparer.Ordinal);
        foreach (var (key, rows) in batch)
        {
            latest[key] = rows;
        }

        using var connection = _source.OpenConnection();
        using var transaction = connection.BeginTransaction();
        var replaced = Texts(connection, transaction, [.. latest.Keys]);
        var referenced = latest.SelectMany(l => l.Value.Targets).DistinctBy(t => t.Key).ToList();
        var stored = Texts(connection, transaction, [.. referenced.Select(t => t.Key)], keysOnly: true);
        var put = referenced.Where(t => !stored.ContainsKey(t.Key)).Select(t => (t.Key, t.Text))
            .Concat(latest.Select(l => (l.Key, l.Value.Ledger))).ToList();
        using (var command = new NpgsqlCommand(
            "INSERT INTO rtt_route_ledger (route, ledger) SELECT * FROM unnest(@k, @v) ON CONFLICT (route) DO UPDATE SET ledger = excluded.ledger;", connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter("k", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = put.Select(p => p.Item1).ToArray() });
            command.Parameters.Add(new NpgsqlParameter("v", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = put.Select(p => p.Item2).ToArray() });
            command.ExecuteNonQuery();
        }

        var keep = referenced.Select(t => t.Key).ToHashSet(StringComparer.Ordinal);
        var drop = replaced.SelectMany(r => LedgerJson.References(r.Key, r.Value)).Where(k => !keep.Contains(k)).Distinct().ToArray();
        if (drop.Length > 0)
        {
            using var delete = new NpgsqlCommand("DELETE FROM rtt_route_ledger WHERE route = ANY(@k);", connection, transaction);
            delete.Parameters.Add(new NpgsqlParameter("k", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = drop });
            delete.ExecuteNonQuery();
        }

        transaction.Commit();
        Batches++;
        return new bool[batch.Count];
    }

    /// <summary>The rows with these keys (key → text; with <paramref name="keysOnly"/> the texts are not fetched).</summary>
    private static Dictionary<string, string> Texts(NpgsqlConnection connection, NpgsqlTransaction? transaction, string[] keys, bool keysOnly = false)
    {
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        if (keys.Length == 0)
        {
            return found;
        }

        using var command = new NpgsqlCommand(
            keysOnly ? "SELECT route, '' FROM rtt_route_ledger WHERE route = ANY(@k);" : "SELECT route, ledger FROM rtt_route_ledger WHERE route = ANY(@k);", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter("k", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = keys });
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            found[reader.GetString(0)] = reader.GetString(1);
        }

        return found;
    }

    public void Dispose() => _source.Dispose();
}
