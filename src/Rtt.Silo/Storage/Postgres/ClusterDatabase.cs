using Npgsql;
using Rtt.Core.Errors;
using Rtt.Reconciling.Wal;

namespace Rtt.Silo.Storage.Postgres;

/// <summary>
/// The cluster's PostgreSQL database: Orleans membership and grain state (through the ADO.NET providers, invariant
/// <c>Npgsql</c>), the participants' ledgers and the Merkle WAL. <see cref="Initialize"/> (`rtt db init`) applies
/// RTT's schema idempotently; <see cref="Check"/> (every silo start) only reads, and names whatever is missing.
/// </summary>
public static class ClusterDatabase
{
    public const string Invariant = "Npgsql";

    /// <summary>Key of the transaction-scoped advisory lock that serialises concurrent `rtt db init` runs ("RTT-CLU").</summary>
    private const long SchemaLockKey = 0x5254_542D_434C_55;

    /// <summary>Tables and views the schema creates (the WAL store adds rtt_wal and rtt_wal_heads).</summary>
    public static readonly IReadOnlyList<string> Tables =
        ["orleansquery", "rtt_membership_version", "rtt_membership", "rtt_grain_state", "rtt_route_ledger", "rtt_objects", "rtt_wal", "rtt_wal_heads"];

    public static readonly IReadOnlyList<string> Functions = ["rtt_membership_insert", "rtt_membership_update"];

    /// <summary>The query keys the two Orleans providers read at start (a missing one fails their start).</summary>
    public static readonly IReadOnlyList<string> QueryKeys =
    [
        "InsertMembershipVersionKey", "MembershipReadAllKey", "MembershipReadRowKey", "InsertMembershipKey", "UpdateMembershipKey",
        "UpdateIAmAlivetimeKey", "GatewaysQueryKey", "DeleteMembershipTableEntriesKey", "CleanupDefunctSiloEntriesKey", "CleanupDefunctSiloEntryKey",
        "ReadFromStorageKey", "WriteToStorageKey", "ClearStorageKey", "DeleteStorageKey",
    ];

    /// <summary>
    /// A silo's connection pool cap when the connection string sets none. Npgsql's own default (100 per process) lets
    /// one silo alone take all of a default PostgreSQL server's max_connections (100) when an apply activates a thousand
    /// route grains at once, and three silos fail with 53300 "too many clients already". With this cap a silo waits for
    /// a pooled connection (up to the string's Timeout) instead; the server needs silos × cap plus a few for the CLI.
    /// </summary>
    public const int DefaultMaxPoolSize = 20;

    /// <summary>
    /// The connection string a silo uses: <paramref name="connectionString"/> with <c>Maximum Pool Size</c> set to
    /// <see cref="DefaultMaxPoolSize"/> unless it sets one (under any of Npgsql's spellings) itself.
    /// </summary>
    public static string ForSilo(string connectionString)
    {
        var parsed = Parse(connectionString); // an invalid string: RTT-SILO-005 naming Cluster:ConnectionString
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        if (given.Keys.Cast<string>().Any(k => k.Replace(" ", "", StringComparison.Ordinal).ToUpperInvariant() is "MAXIMUMPOOLSIZE" or "MAXPOOLSIZE"))
        {
            return connectionString;
        }

        parsed.MaxPoolSize = DefaultMaxPoolSize;
        return parsed.ConnectionString;
    }

    /// <summary>Creates or updates every table, function and query (safe to run again, and by several at once).</summary>
    public static void Initialize(string connectionString)
    {
        var location = Location(connectionString);
        Run(connectionString, location, "cannot apply the cluster schema", connection =>
        {
            using var tx = connection.BeginTransaction();
            using (var command = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({SchemaLockKey});", connection, tx))
            {
                command.ExecuteNonQuery();
            }

            using (var command = new NpgsqlCommand(Script.Value, connection, tx))
            {
                command.ExecuteNonQuery();
            }

            tx.Commit();
            return 0;
        });
        PostgresWalStore.Open(connectionString, create: true).Dispose(); // the WAL's tables and append-only triggers
    }

    /// <summary>What the database lacks (empty: ready). Reaching the server is RTT-CLUSTER-002.</summary>
    public static IReadOnlyList<string> Missing(string connectionString)
    {
        var location = Location(connectionString);
        return Run(connectionString, location, "cannot check the cluster schema", connection =>
        {
            var missing = new List<string>();
            using (var command = new NpgsqlCommand(
                "SELECT t FROM unnest(@tables) AS t WHERE to_regclass(t) IS NULL ORDER BY t;", connection))
            {
                command.Parameters.AddWithValue("tables", Tables.ToArray());
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    missing.Add($"table {reader.GetString(0)}");
                }
            }

            using (var command = new NpgsqlCommand(
                "SELECT f FROM unnest(@functions) AS f WHERE NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.proname = f AND pg_function_is_visible(p.oid)) ORDER BY f;", connection))
            {
                command.Parameters.AddWithValue("functions", Functions.ToArray());
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    missing.Add($"function {reader.GetString(0)}");
                }
            }

            if (!missing.Contains("table orleansquery"))
            {
                using var command = new NpgsqlCommand("SELECT k FROM unnest(@keys) AS k WHERE NOT EXISTS (SELECT 1 FROM OrleansQuery q WHERE q.QueryKey = k) ORDER BY k;", connection);
                command.Parameters.AddWithValue("keys", QueryKeys.ToArray());
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    missing.Add($"query {reader.GetString(0)}");
                }
            }

            return (IReadOnlyList<string>)missing;
        });
    }

    /// <summary>Throws RTT-CLUSTER-001 naming what is missing, or RTT-CLUSTER-002 when the server cannot be reached.</summary>
    public static void Check(string connectionString)
    {
        var missing = Missing(connectionString);
        if (missing.Count > 0)
        {
            throw new HostingException(ErrorCodes.ClusterSchemaMissing,
                $"the cluster database lacks RTT's schema: {string.Join(", ", missing)}", Location(connectionString),
                "run `rtt db init \"CONNSTR\"` once against this database (idempotent), then start the silo again");
        }
    }

    /// <summary><c>postgresql://host:port/database</c>, never the password.</summary>
    public static string Location(string connectionString)
    {
        var builder = Parse(connectionString);
        var host = string.IsNullOrWhiteSpace(builder.Host) ? "localhost" : builder.Host;
        return $"postgresql://{host}:{builder.Port}/{(string.IsNullOrWhiteSpace(builder.Database) ? builder.Username : builder.Database)}";
    }

    private static NpgsqlConnectionStringBuilder Parse(string connectionString)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"the cluster connection string is not valid: {ex.Message}", "Cluster:ConnectionString",
                "give an Npgsql connection string such as \"Host=db;Port=5432;Database=rtt;Username=rtt;Password=…\"", ex);
        }
    }

    private static T Run<T>(string connectionString, string location, string what, Func<NpgsqlConnection, T> body)
    {
        var builder = Parse(connectionString);
        try
        {
            using var connection = new NpgsqlConnection(builder.ConnectionString);
            connection.Open();
            return body(connection);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
        {
            var detail = ex.Message;
            if (!string.IsNullOrEmpty(builder.Password))
            {
                detail = detail.Replace(builder.Password, "***", StringComparison.Ordinal);
            }

            throw new HostingException(ErrorCodes.ClusterUnavailable, $"{what} on the PostgreSQL server at {location}: {detail}", location,
                "check that the server runs and is reachable, that the database exists and that the user and password are right", ex);
        }
    }

    private static readonly Lazy<string> Script = new(() =>
    {
        using var stream = typeof(ClusterDatabase).Assembly.GetManifestResourceStream("Rtt.Silo.Storage.Postgres.cluster.sql")
            ?? throw new InvalidOperationException("the PostgreSQL cluster schema is not embedded in Rtt.Silo");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });
}
