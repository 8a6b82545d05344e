using Npgsql;
using NpgsqlTypes;
using Rtt.Core.Errors;

namespace Rtt.Reconciling.Wal;

/// <summary>
/// The cluster WAL store: the same two append-only tables as <see cref="SqliteWalStore"/> in a PostgreSQL
/// database. Every connection runs with <c>synchronous_commit=on</c>, so a returned <see cref="Append"/> has been
/// flushed to the server's WAL whatever the server's default; triggers refuse UPDATE, DELETE and TRUNCATE, so the
/// log is append-only at the database level too. An append takes an EXCLUSIVE lock on <c>rtt_wal</c> (readers go
/// on, a second writer waits), so two writers can never interleave a batch: the loser sees the winner's entries and
/// gets RTT-WAL-003.
/// </summary>
public sealed class PostgresWalStore : IWalStore
{
    /// <summary>Key of the transaction-scoped advisory lock that serialises schema creation ("RTT-WAL" in ASCII).</summary>
    private const long SchemaLockKey = 0x5254_542D_5741_4C;

    private const int ReadPage = 8192;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS rtt_wal (
            idx bigint PRIMARY KEY CHECK (idx >= 0),
            leaf bytea NOT NULL,
            leaf_hash bytea NOT NULL
        );
        CREATE TABLE IF NOT EXISTS rtt_wal_heads (
            size bigint PRIMARY KEY CHECK (size >= 0),
            head text NOT NULL
        );
        CREATE OR REPLACE FUNCTION rtt_wal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
        END
        $fn$;
        DO $do$
        DECLARE t text;
        BEGIN
            FOREACH t IN ARRAY ARRAY['rtt_wal', 'rtt_wal_heads'] LOOP
                IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t::regclass AND tgname = t || '_no_change') THEN
                    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION rtt_wal_refuse_change()', t || '_no_change', t);
                END IF;
                IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t::regclass AND tgname = t || '_no_truncate') THEN
                    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION rtt_wal_refuse_change()', t || '_no_truncate', t);
                END IF;
            END LOOP;
        END
        $do$;
        """;

    private readonly NpgsqlDataSource _source;
    private readonly string? _password;

    private PostgresWalStore(NpgsqlDataSource source, string location, string? password)
    {
        _source = source;
        Location = location;
        _password = password;
    }

    /// <summary>The server and database, as <c>postgresql://host:port/database</c> (never the user's password).</summary>
    public string Location { get; }

    /// <summary>
    /// Connects to the database named by <paramref name="connectionString"/> (an Npgsql connection string) and
    /// creates the WAL tables and triggers when they are missing (when <paramref name="create"/> is false, missing
    /// tables are an error). A server that cannot be reached or refuses the login is RTT-WAL-001.
    /// </summary>
    public static PostgresWalStore Open(string connectionString, bool create = true)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw new RttException(ErrorCodes.WalUnavailable, $"the PostgreSQL connection string for the WAL is not valid: {ex.Message}", "postgresql",
                "give an Npgsql connection string such as \"Host=db;Port=5432;Database=rtt;Username=rtt;Password=…\"");
        }

        var location = LocationOf(builder);
        var password = builder.Password;
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? "-c synchronous_commit=on" : builder.Options + " -c synchronous_commit=on";
        var source = NpgsqlDataSource.Create(builder.ConnectionString);
        var store = new PostgresWalStore(source, location, password);
        try
        {
            using var connection = store.Connect();
            if (create)
            {
                using var tx = connection.BeginTransaction();
                using (var command = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({SchemaLockKey});", connection, tx))
                {
                    command.ExecuteNonQuery();
                }

                using (var command = new NpgsqlCommand(Schema, connection, tx))
                {
                    command.ExecuteNonQuery();
                }

                tx.Commit();
            }
            else
            {
                using var command = new NpgsqlCommand("SELECT to_regclass('rtt_wal') IS NOT NULL AND to_regclass('rtt_wal_heads') IS NOT NULL;", connection);
                if (!(bool)command.ExecuteScalar()!)
                {
                    throw new RttException(ErrorCodes.WalUnavailable, "the database has no WAL tables (rtt_wal, rtt_wal_heads), so no WAL yet", location,
                        "run `rtt up` (or `rtt apply`) against this database first");
                }
            }

            return store;
        }
        catch (RttException)
        {
            store.Dispose();
            throw;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            store.Dispose();
            throw store.Unavailable("cannot open the WAL", ex);
        }
    }

    private static string LocationOf(NpgsqlConnectionStringBuilder builder)
    {
        var host = string.IsNullOrWhiteSpace(builder.Host) ? "localhost" : builder.Host;
        var database = string.IsNullOrWhiteSpace(builder.Database) ? builder.Username ?? Environment.UserName : builder.Database;
        return host.StartsWith('/') ? $"postgresql://[{host}]:{builder.Port}/{database}" : $"postgresql://{host}:{builder.Port}/{database}";
    }

    /// <summary>RTT-WAL-001 naming the server and database; the password never appears, even when the driver echoes it.</summary>
    private RttException Unavailable(string what, Exception ex)
    {
        var detail = ex.Message;
        if (ex.InnerException is { } inner && !detail.Contains(inner.Message, StringComparison.Ordinal))
        {
            detail += $" ({inner.Message})";
        }

        if (!string.IsNullOrEmpty(_password))
        {
            detail = detail.Replace(_password, "***", StringComparison.Ordinal);
        }

        return new RttException(ErrorCodes.WalUnavailable, $"{what} on the PostgreSQL server at {Location}: {detail}", Location,
            "check that the server is running and reachable, that the database exists and that the user and password are right", ex);
    }

    private NpgsqlConnection Connect() => _source.OpenConnection();

    private T Run<T>(string what, Func<NpgsqlConnection, T> body)
    {
        try
        {
            using var connection = Connect();
            return body(connection);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            throw Unavailable(what, ex);
        }
    }

    public long Count() => Run("cannot count the WAL's entries", connection =>
    {
        using var command = new NpgsqlCommand("SELECT count(*) FROM rtt_wal;", connection);
        return (long)command.ExecuteScalar()!;
    });

    public void Append(IReadOnlyList<WalRecord> records)
    {
        if (records.Count == 0)
        {
            return;
        }

        var first = records[0].Index;
        var indices = new long[records.Count];
        var leaves = new byte[records.Count][];
        var hashes = new byte[records.Count][];
        for (var i = 0; i < records.Count; i++)
        {
            if (records[i].Index != first + i)
            {
                throw new ArgumentException($"the batch is not contiguous: entry {i} has index {records[i].Index}, not {first + i}", nameof(records));
            }

            indices[i] = records[i].Index;
            leaves[i] = records[i].Leaf;
            hashes[i] = records[i].LeafHash;
        }

        Run("cannot append to the WAL", connection =>
        {
            using var tx = connection.BeginTransaction();
            try
            {
                // EXCLUSIVE conflicts with every writer's lock (and itself) but not with readers: the check below
                // and the insert see no other writer's batch in between.
                using (var check = new NpgsqlCommand("LOCK TABLE rtt_wal IN EXCLUSIVE MODE; SELECT COALESCE(max(idx) + 1, 0) FROM rtt_wal;", connection, tx))
                {
                    // The next index from the primary key (O(log n)); it equals count(*) while the log has no gap,
                    // which every WalLog.Open checks.
                    var next = (long)check.ExecuteScalar()!;
                    if (next != first)
                    {
                        throw Conflict(next, first);
                    }
                }

                using (var insert = new NpgsqlCommand("INSERT INTO rtt_wal (idx, leaf, leaf_hash) SELECT * FROM unnest($1, $2, $3);", connection, tx))
                {
                    insert.Parameters.Add(new NpgsqlParameter { Value = indices, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = leaves, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                    insert.Parameters.Add(new NpgsqlParameter { Value = hashes, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                    insert.ExecuteNonQuery();
                }

                tx.Commit(); // synchronous_commit=on: the server has flushed its WAL before this returns
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw Conflict(-1, first); // only reachable when a writer ignored the lock
            }

            return 0;
        });
    }

    private RttException Conflict(long next, long first) =>
        new(ErrorCodes.WalConflict,
            next >= 0
                ? $"the WAL has {next} entries but this batch starts at {first}: another writer appended"
                : $"entry {first} is already stored: another writer appended",
            Location, "only one silo's WAL grain writes a log; restart the silo so it re-reads the log");

    public IEnumerable<WalRecord> Read(long from, long to)
    {
        // Pages by key, each on its own pooled connection, so a caller that walks a large log holds no
        // connection (or snapshot) between pages.
        var next = Math.Max(from, 0);
        while (next < to)
        {
            var page = Run("cannot read the WAL", connection =>
            {
                using var command = new NpgsqlCommand("SELECT idx, leaf, leaf_hash FROM rtt_wal WHERE idx >= $1 AND idx < $2 ORDER BY idx LIMIT $3;", connection);
                command.Parameters.Add(new NpgsqlParameter { Value = next, NpgsqlDbType = NpgsqlDbType.Bigint });
                command.Parameters.Add(new NpgsqlParameter { Value = to, NpgsqlDbType = NpgsqlDbType.Bigint });
                command.Parameters.Add(new NpgsqlParameter { Value = ReadPage, NpgsqlDbType = NpgsqlDbType.Integer });
                var result = new List<WalRecord>(ReadPage);
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    result.Add(new WalRecord(reader.GetInt64(0), reader.GetFieldValue<byte[]>(1), reader.GetFieldValue<byte[]>(2)));
                }

                return result;
            });

            foreach (var record in page)
            {
                yield return record;
            }

            if (page.Count < ReadPage)
            {
                yield break;
            }

            next = page[^1].Index + 1;
        }
    }

    public void AddHead(long size, string json) => Run("cannot store a signed tree head", connection =>
    {
        using var command = new NpgsqlCommand("INSERT INTO rtt_wal_heads (size, head) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING;", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = size, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = json, NpgsqlDbType = NpgsqlDbType.Text });
        return command.ExecuteNonQuery();
    });

    public IReadOnlyList<WalHeadRecord> Heads() => Run("cannot read the signed tree heads", connection =>
    {
        var result = new List<WalHeadRecord>();
        using var command = new NpgsqlCommand("SELECT size, head FROM rtt_wal_heads ORDER BY size;", connection);
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(new WalHeadRecord(reader.GetInt64(0), reader.GetString(1)));
        }

        return result;
    });

    public void Dispose() => _source.Dispose();
}
