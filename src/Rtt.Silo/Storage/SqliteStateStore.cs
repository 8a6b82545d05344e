using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Serialization.Serializers;
using Orleans.Storage;
using Rtt.Core.Errors;
using Rtt.Grains.Nodes;
using Rtt.Reconciling.State;

namespace Rtt.Silo.Storage;

/// <summary>
/// The embedded silo's SQLite database (<c>.rtt/state/rtt.db</c>): checked and opened once, before the silo starts,
/// as the one <see cref="SqliteStateDatabase"/> that the WAL store, the ledger store and grain state
/// (<see cref="SqliteGrainStorage"/>) write through.
/// </summary>
public static class SqliteStateStore
{
    /// <summary>
    /// Checks the file (integrity), opens it with its one writer and gives it the ledger and grain state tables
    /// (idempotent; state written by Orleans' ADO.NET provider before is carried over). The WAL store adds its own
    /// tables when it opens. Throws <see cref="HostingException"/> with a clear cause.
    /// </summary>
    public static SqliteStateDatabase Open(string databasePath)
    {
        SqliteStateDatabase? database = null;
        try
        {
            database = SqliteStateDatabase.Open(databasePath);
            var check = database.Read(c =>
            {
                using var command = c.CreateCommand();
                command.CommandText = "PRAGMA quick_check;";
                return command.ExecuteScalar() as string;
            });
            if (!string.Equals(check, "ok", StringComparison.Ordinal))
            {
                throw Corrupt(databasePath, $"integrity check failed: {check}", null);
            }

            new SqliteLedgerStore(database).Dispose(); // its table; the store the silo uses shares the database
            SqliteGrainStorage.Prepare(database);
            return database;
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 11 or 26) // SQLITE_CORRUPT, SQLITE_NOTADB
        {
            database?.Dispose();
            throw Corrupt(databasePath, ex.Message, ex);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 8 or 14) // SQLITE_READONLY, SQLITE_CANTOPEN
        {
            database?.Dispose();
            throw new HostingException(ErrorCodes.StateUnwritable, $"cannot open the state database for writing: {ex.Message}", databasePath,
                "make .rtt/state writable, or point Storage:ConnectionString elsewhere", ex);
        }
        catch
        {
            database?.Dispose();
            throw;
        }
    }

    /// <summary>The database file a <c>Storage:ConnectionString</c> (a Microsoft.Data.Sqlite connection string) names.</summary>
    public static string PathOf(string connectionString) => new SqliteConnectionStringBuilder(connectionString).DataSource;

    /// <summary>Registers <see cref="SqliteGrainStorage"/> over <paramref name="database"/> as the grain storage named <see cref="RttStorage.Name"/>.</summary>
    public static IServiceCollection AddRttSqliteGrainStorage(this IServiceCollection services, SqliteStateDatabase database) =>
        services.AddKeyedSingleton<IGrainStorage>(RttStorage.Name, (sp, _) => new SqliteGrainStorage(database, sp.GetKeyedService<IGrainStorageSerializer>(RttStorage.Name) ?? sp.GetRequiredService<IGrainStorageSerializer>(),
            sp.GetRequiredService<IActivatorProvider>(), sp.GetRequiredService<IOptions<ClusterOptions>>().Value.ServiceId));

    private static HostingException Corrupt(string path, string detail, Exception? inner) =>
        new(ErrorCodes.StateCorrupt, $"the state database is damaged or not a SQLite file ({detail})", path,
            "move the file aside (the silo starts with empty state) or restore it from a backup", inner);
}
