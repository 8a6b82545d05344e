using System.Globalization;
using Microsoft.Data.Sqlite;
using Orleans.Runtime;
using Orleans.Serialization.Serializers;
using Orleans.Storage;
using Rtt.Reconciling.State;

namespace Rtt.Silo.Storage;

/// <summary>
/// Grain state of the embedded silo (storage provider <c>rtt</c>) in the state database's table <c>rtt_state</c>,
/// written through the database's group commit with the WAL and the ledgers (<see cref="SqliteStateDatabase"/>),
/// with <c>synchronous=NORMAL</c> as before. One row per (service, state name, grain key), keyed as Orleans' ADO.NET
/// provider keyed it (so its rows carry over as they are); the payload is what the silo's
/// <see cref="IGrainStorageSerializer"/> writes (Newtonsoft JSON without type names, <see cref="StorageJson"/>).
/// The ETag is the row's version: 1 on the first write, +1 on each write or clear; a write or a clear whose ETag is
/// not the stored one throws <see cref="InconsistentStateException"/> and changes nothing.
/// </summary>
public sealed class SqliteGrainStorage(SqliteStateDatabase database, IGrainStorageSerializer serializer, IActivatorProvider activators, string serviceId) : IGrainStorage
{
    /// <summary>The table, and what <see cref="Prepare"/> carries over from Orleans' ADO.NET provider (persistence.sql of earlier versions).</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS rtt_state (
            service_id TEXT NOT NULL,
            state_name TEXT NOT NULL,
            key_n0 INTEGER NOT NULL,
            key_n1 INTEGER NOT NULL,
            key_ext TEXT NULL,
            version INTEGER NOT NULL CHECK (version BETWEEN 1 AND 2147483647),
            payload BLOB NULL,
            created_utc TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
            modified_utc TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE UNIQUE INDEX IF NOT EXISTS ux_rtt_state_key ON rtt_state (state_name, key_n0, key_n1, ifnull(key_ext, 0), service_id);
        """;

    /// <summary>For people: the payloads as JSON text, under the view's name and columns of earlier versions.</summary>
    public const string View = """
        CREATE VIEW IF NOT EXISTS rtt_grain_state_text AS
            SELECT rowid AS id, service_id, state_name, key_n0 AS grain_key_n0, key_n1 AS grain_key_n1, key_ext AS grain_key_ext,
                   version, CAST(payload AS TEXT) AS payload_text, created_utc, modified_utc
            FROM rtt_state;
        """;

    /// <summary>What the payloads are written and read with.</summary>
    public IGrainStorageSerializer Serializer => serializer;

    private const string Where = "state_name = $n AND key_n0 = $n0 AND key_n1 = $n1 AND ifnull(key_ext, 0) = ifnull($e, 0) AND service_id = $s";

    /// <summary>
    /// Creates the table and moves the state Orleans' ADO.NET provider wrote (table <c>rtt_grain_state</c>, with its
    /// query table) into it, in one transaction: rows already in <c>rtt_state</c> are kept, the old table is dropped,
    /// and the view <c>rtt_grain_state_text</c> now reads <c>rtt_state</c>. Idempotent; run before the silo starts.
    /// </summary>
    public static void Prepare(SqliteStateDatabase database) => database.Write((c, tx) =>
    {
        Execute(c, tx, Schema);
        if (Scalar(c, tx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rtt_grain_state';") is long n && n > 0)
        {
            Execute(c, tx, """
                INSERT OR IGNORE INTO rtt_state (service_id, state_name, key_n0, key_n1, key_ext, version, payload, created_utc, modified_utc)
                    SELECT service_id, state_name, grain_key_n0, grain_key_n1, grain_key_ext, version, payload, created_utc, modified_utc FROM rtt_grain_state;
                DROP VIEW IF EXISTS rtt_grain_state_text;
                DROP TABLE rtt_grain_state;
                DROP TABLE IF EXISTS OrleansQuery;
                """);
        }

        Execute(c, tx, View);
        return true;
    }, durable: false);

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = Key.Of(grainId);
        var row = await Task.Run(() => database.Read(c =>
        {
            using var command = c.CreateCommand();
            command.CommandText = $"SELECT version, payload FROM rtt_state WHERE {Where};";
            Bind(command, stateName, key);
            using var reader = command.ExecuteReader();
            return reader.Read() ? (Version: reader.GetInt64(0), Payload: reader.IsDBNull(1) ? null : (byte[])reader.GetValue(1)) : default((long Version, byte[]? Payload)?);
        })).ConfigureAwait(false);
        var state = row?.Payload is { } payload ? serializer.Deserialize<T>(new BinaryData(payload)) : default;
        grainState.State = state ?? activators.GetActivator<T>().Create();
        grainState.ETag = row?.Version.ToString(CultureInfo.InvariantCulture);
        grainState.RecordExists = row is not null;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = Key.Of(grainId);
        var payload = serializer.Serialize(grainState.State).ToArray();
        var expected = Expected(grainState.ETag);
        var version = await database.WriteAsync((c, tx) =>
        {
            using var command = c.CreateCommand();
            command.Transaction = tx;
            command.CommandText = expected is null
                ? "INSERT OR IGNORE INTO rtt_state (service_id, state_name, key_n0, key_n1, key_ext, version, payload) VALUES ($s, $n, $n0, $n1, $e, 1, $p) RETURNING version;"
                : $"UPDATE rtt_state SET payload = $p, version = CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END, modified_utc = CURRENT_TIMESTAMP WHERE {Where} AND version = $v RETURNING version;";
            Bind(command, stateName, key);
            command.Parameters.AddWithValue("$p", payload);
            command.Parameters.AddWithValue("$v", (object?)expected ?? DBNull.Value);
            return command.ExecuteScalar() is long v ? v : (long?)null;
        }, durable: false).ConfigureAwait(false);
        grainState.ETag = Checked(version, "WriteState", stateName, grainId, grainState.ETag);
        grainState.RecordExists = true;
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var key = Key.Of(grainId);
        var expected = Expected(grainState.ETag);
        var version = await database.WriteAsync((c, tx) =>
        {
            using var command = c.CreateCommand();
            command.Transaction = tx;
            command.CommandText = expected is null
                ? $"SELECT CASE WHEN EXISTS (SELECT 1 FROM rtt_state WHERE {Where}) THEN NULL ELSE 0 END;" // nothing stored, nothing to clear
                : $"UPDATE rtt_state SET payload = NULL, version = CASE WHEN version >= 2147483647 THEN 1 ELSE version + 1 END, modified_utc = CURRENT_TIMESTAMP WHERE {Where} AND version = $v RETURNING version;";
            Bind(command, stateName, key);
            command.Parameters.AddWithValue("$v", (object?)expected ?? DBNull.Value);
            return command.ExecuteScalar() is long v ? v : (long?)null;
        }, durable: false).ConfigureAwait(false);
        grainState.ETag = version == 0 ? null : Checked(version, "ClearState", stateName, grainId, grainState.ETag);
        grainState.RecordExists = false;
        grainState.State = activators.GetActivator<T>().Create();
    }

    private string Checked(long? version, string operation, string stateName, GrainId grainId, string? etag) =>
        version?.ToString(CultureInfo.InvariantCulture)
        ?? throw new InconsistentStateException($"Version conflict ({operation}): ServiceId={serviceId} ProviderName=rtt StateName={stateName} GrainId={grainId} ETag={etag ?? "none"}: the stored state was written by another activation",
            storedEtag: "unknown", currentEtag: etag ?? "none");

    private static long? Expected(string? etag) =>
        string.IsNullOrWhiteSpace(etag) ? null
        : long.TryParse(etag, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
        : throw new InconsistentStateException($"the ETag \"{etag}\" was not given by this storage", "unknown", etag);

    private void Bind(SqliteCommand command, string stateName, Key key)
    {
        command.Parameters.AddWithValue("$s", serviceId);
        command.Parameters.AddWithValue("$n", stateName);
        command.Parameters.AddWithValue("$n0", key.N0);
        command.Parameters.AddWithValue("$n1", key.N1);
        command.Parameters.AddWithValue("$e", (object?)key.Ext ?? DBNull.Value);
    }

    private static void Execute(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        using var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection c, SqliteTransaction tx, string sql)
    {
        using var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    /// <summary>A grain's key as Orleans' ADO.NET provider stored it: a Guid as two halves, an integer as (0, n), a string as the extension; the key extension beside a Guid or integer.</summary>
    internal readonly record struct Key(long N0, long N1, string? Ext)
    {
        public static Key Of(GrainId id)
        {
            if (id.TryGetGuidKey(out var guid, out var ext))
            {
                Span<byte> bytes = stackalloc byte[16];
                guid.TryWriteBytes(bytes);
                return new Key(BitConverter.ToInt64(bytes[..8]), BitConverter.ToInt64(bytes[8..]), ext);
            }

            if (id.TryGetIntegerKey(out var integer, out ext))
            {
                return new Key(0, integer, ext);
            }

            return new Key(0, 0, id.Key.ToString());
        }
    }
}
