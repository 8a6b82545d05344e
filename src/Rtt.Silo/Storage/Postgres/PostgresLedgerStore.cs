using Npgsql;
using NpgsqlTypes;
using Rtt.Core.Json;
using Rtt.Grains.Reconciling;

namespace Rtt.Silo.Storage.Postgres;

/// <summary>
/// Participants' ledgers in the cluster database (table <c>rtt_route_ledger</c>, made by `rtt db init`): the same rows
/// as <see cref="SqliteLedgerStore"/>, group-committed (one transaction per burst of votes), with
/// <c>synchronous_commit=on</c> so a returned write survives the loss of the silo and of the server's cache. Every
/// silo writes only the ledgers of the participants active on it, and a participant is active on one silo at a time.
/// </summary>
public sealed class PostgresLedgerStore : IParticipantLedgerStore, IDisposable
{
    private readonly NpgsqlDataSource _source;
    private readonly GroupCommit<(string Key, string Json), bool> _group;

    public PostgresLedgerStore(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? "-c synchronous_commit=on" : builder.Options + " -c synchronous_commit=on";
        _source = NpgsqlDataSource.Create(builder.ConnectionString);
        _group = new GroupCommit<(string Key, string Json), bool>(Write);
    }

    /// <summary>Transactions written so far.</summary>
    public long Batches { get; private set; }

    public async Task<LedgerState?> ReadAsync(string key)
    {
        await using var connection = await _source.OpenConnectionAsync();
        await using var command = new NpgsqlCommand("SELECT ledger FROM rtt_route_ledger WHERE route = @k;", connection);
        command.Parameters.AddWithValue("k", key);
        return await command.ExecuteScalarAsync() is string json ? LedgerJson.Read(json) : null;
    }

    public Task WriteAsync(string key, LedgerState state) => _group.Enqueue((key, LedgerJson.Write(state)));

    /// <summary>One statement for a batch; of several states of one key in it, the last is kept.</summary>
    private bool[] Write(IReadOnlyList<(string Key, string Json)> batch)
    {
        var latest = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, json) in batch)
        {
            latest[key] = json;
        }

        using var connection = _source.OpenConnection();
        using var command = new NpgsqlCommand(
            "INSERT INTO rtt_route_ledger (route, ledger) SELECT * FROM unnest(@k, @v) ON CONFLICT (route) DO UPDATE SET ledger = excluded.ledger;", connection);
        command.Parameters.Add(new NpgsqlParameter("k", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = latest.Keys.ToArray() });
        command.Parameters.Add(new NpgsqlParameter("v", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = latest.Values.ToArray() });
        command.ExecuteNonQuery();
        Batches++;
        return new bool[batch.Count];
    }

    public void Dispose() => _source.Dispose();
}
