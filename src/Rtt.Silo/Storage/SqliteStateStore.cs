using Microsoft.Data.Sqlite;
using Rtt.Core.Errors;

namespace Rtt.Silo.Storage;

/// <summary>
/// The embedded silo's SQLite database: checked, then given RTT's schema (idempotent) before the silo
/// starts, because the Orleans ADO.NET provider reads its queries from the database while starting.
/// </summary>
public static class SqliteStateStore
{
    public const string Invariant = "System.Data.SQLite"; // Orleans maps this name to Microsoft.Data.Sqlite

    public static string ConnectionString(string databasePath) =>
        new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = true, DefaultTimeout = 30 }.ToString();

    /// <summary>Checks the database file and applies the schema script. Throws <see cref="HostingException"/> with a clear cause.</summary>
    public static void Prepare(string connectionString, string databasePathForMessages)
    {
        try
        {
            using var connection = new SqliteConnection(connectionString);
            connection.Open();
            using (var check = connection.CreateCommand())
            {
                check.CommandText = "PRAGMA quick_check;";
                var result = check.ExecuteScalar() as string;
                if (!string.Equals(result, "ok", StringComparison.Ordinal))
                {
                    throw Corrupt(databasePathForMessages, $"integrity check failed: {result}", null);
                }
            }

            using var apply = connection.CreateCommand();
            apply.CommandText = Script.Value;
            apply.ExecuteNonQuery();
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 11 or 26) // SQLITE_CORRUPT, SQLITE_NOTADB
        {
            throw Corrupt(databasePathForMessages, ex.Message, ex);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 8 or 14) // SQLITE_READONLY, SQLITE_CANTOPEN
        {
            throw new HostingException(ErrorCodes.StateUnwritable, $"cannot open the state database for writing: {ex.Message}", databasePathForMessages,
                "make .rtt/state writable, or point Storage:ConnectionString elsewhere", ex);
        }
        finally
        {
            SqliteConnection.ClearAllPools(); // release the file so nothing holds it between preparation and start
        }
    }

    private static HostingException Corrupt(string path, string detail, Exception? inner) =>
        new(ErrorCodes.StateCorrupt, $"the state database is damaged or not a SQLite file ({detail})", path,
            "move the file aside (the silo starts with empty state) or restore it from a backup", inner);

    private static readonly Lazy<string> Script = new(() =>
    {
        using var stream = typeof(SqliteStateStore).Assembly.GetManifestResourceStream("Rtt.Silo.Storage.Sqlite.persistence.sql")
            ?? throw new InvalidOperationException("the SQLite schema script is not embedded in Rtt.Silo");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });
}
