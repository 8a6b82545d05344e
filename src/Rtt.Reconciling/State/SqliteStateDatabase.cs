using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Microsoft.Data.Sqlite;
using Rtt.Core.Json;

namespace Rtt.Reconciling.State;

/// <summary>
/// The one owner of the embedded silo's SQLite file (<c>.rtt/state/rtt.db</c>): a single writer connection and a
/// <see cref="GroupCommit{TItem,TResult}"/> through which every write goes (the Merkle WAL's appends, the participants'
/// ledgers, grain state), so whatever is queued while a transaction commits goes out together in the next one.
/// Reads use their own connections (WAL journal: they see the last commit and never wait for the writer).
/// <para>
/// Durability per write: a <c>durable</c> write (the WAL) commits with <c>synchronous=FULL</c>, so it is fsynced when
/// its task completes; a transaction holding only other writes commits with <c>synchronous=NORMAL</c> (survives the
/// process being killed; fsynced at the next checkpoint or the next durable commit).
/// </para>
/// <para>
/// Each write runs in its own savepoint: one that throws (a WAL batch that does not continue the log, a state ETag
/// the caller treats as an error) is rolled back alone and fails only its caller. A transaction that cannot begin or
/// commit (the file locked by another process past the busy timeout, a full disk) fails every write of the batch;
/// the next batch starts afresh.
/// </para>
/// </summary>
public sealed class SqliteStateDatabase : IDisposable
{
    private readonly SqliteConnection? _writer; // null when opened read-only
    private readonly GroupCommit<Op, object?>? _group;
    private readonly ConcurrentBag<SqliteConnection> _readers = [];
    private readonly string _readConnectionString;
    private readonly Lock _writeGate = new(); // held by the writer thread for a batch
    private readonly Lock _readGate = new(); // never held across a read or a write
    private bool? _full;
    private bool _disposed;

    private SqliteStateDatabase(string path, SqliteConnection? writer, string readConnectionString)
    {
        Path = path;
        _writer = writer;
        _readConnectionString = readConnectionString;
        if (writer is not null)
        {
            _group = new GroupCommit<Op, object?>(Write);
        }
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <summary>False when opened with <see cref="OpenReadOnly"/>: every write throws.</summary>
    public bool Writable => _writer is not null;

    /// <summary>Transactions committed so far (each one batch of the group commit).</summary>
    public long Transactions { get; private set; }

    /// <summary>Batches whose transaction failed (every write of each failed).</summary>
    public long FailedTransactions { get; private set; }

    /// <summary>The number of the batch being written (read by a write on the writer thread: writes that see the same number share a transaction).</summary>
    public long Batch { get; private set; }

    /// <summary>Whether the last committed transaction held a durable write (and so committed with <c>synchronous=FULL</c>).</summary>
    public bool LastCommitDurable { get; private set; }

    /// <summary>Transactions committed with <c>synchronous=FULL</c> so far: the fsyncs the writes cost.</summary>
    public long DurableTransactions { get; private set; }

    /// <summary>Writes queued for the next transaction (not counting those of the transaction being written).</summary>
    public int Queued => _group?.Pending ?? 0;

    /// <summary>Writes committed so far (with <see cref="Transactions"/>: how well group commit works).</summary>
    public long Writes { get; private set; }

    /// <summary>
    /// Opens the file for reading and writing (creating it when <paramref name="create"/>), in WAL journal mode.
    /// <paramref name="busyTimeout"/> bounds how long a transaction waits for another process's write lock.
    /// Throws <see cref="SqliteException"/> when the file cannot be opened.
    /// </summary>
    public static SqliteStateDatabase Open(string path, bool create = true, TimeSpan? busyTimeout = null)
    {
        var timeout = (int)Math.Max(1, Math.Ceiling((busyTimeout ?? TimeSpan.FromSeconds(30)).TotalSeconds));
        var writer = new SqliteConnection(ConnectionString(path, create ? SqliteOpenMode.ReadWriteCreate : SqliteOpenMode.ReadWrite, timeout));
        try
        {
            writer.Open();
            using (var command = writer.CreateCommand())
            {
                command.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
                command.ExecuteNonQuery();
            }

            return new SqliteStateDatabase(path, writer, ConnectionString(path, SqliteOpenMode.ReadWrite, timeout)) { _full = true };
        }
        catch
        {
            writer.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens the file for reading only (SQLite read-only mode: no pragma, no schema, nothing written): `rtt wal verify`,
    /// `rtt wal export`. Throws <see cref="SqliteException"/> when the file cannot be read.
    /// </summary>
    public static SqliteStateDatabase OpenReadOnly(string path)
    {
        var database = new SqliteStateDatabase(path, null, ConnectionString(path, SqliteOpenMode.ReadOnly, 30));
        database.Read(c =>
        {
            using var command = c.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM sqlite_master;"; // fails here on a file that is not a database
            return command.ExecuteScalar();
        });
        return database;
    }

    private static string ConnectionString(string path, SqliteOpenMode mode, int timeoutSeconds) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Pooling = false,
        DefaultTimeout = timeoutSeconds,
        Mode = mode,
    }.ToString();

    /// <summary>
    /// Queues a write for the next transaction. <paramref name="write"/> runs on the writer thread inside the
    /// transaction (its commands must set <see cref="SqliteCommand.Transaction"/>); its result or exception is the task's.
    /// With <paramref name="durable"/>, the transaction is fsynced (<c>synchronous=FULL</c>) before the task completes.
    /// </summary>
    public async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> write, bool durable) =>
        Result<T>(await Group().Enqueue(new Op((c, t) => write(c, t), durable)).ConfigureAwait(false));

    /// <summary>The same for synchronous callers such as <c>IWalStore</c>: the calling thread writes the batch itself when none is in progress.</summary>
    public T Write<T>(Func<SqliteConnection, SqliteTransaction, T> write, bool durable) =>
        Result<T>(Group().EnqueueAndWait(new Op((c, t) => write(c, t), durable)));

    /// <summary>
    /// Makes every transaction committed so far durable: nothing when the last one was (a durable commit flushes the ones
    /// before it), else one durable commit that rewrites the header's user version with the value it has (a page written,
    /// so the commit is fsynced; nothing changed, no table touched).
    /// </summary>
    public void Flush()
    {
        if (LastCommitDurable)
        {
            return;
        }

        Write((c, tx) =>
        {
            using var command = c.CreateCommand();
            command.Transaction = tx;
            command.CommandText = "PRAGMA user_version;";
            var version = Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            command.CommandText = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"PRAGMA user_version = {version};");
            command.ExecuteNonQuery();
            return true;
        }, durable: true);
    }

    private GroupCommit<Op, object?> Group()
    {
        var group = _group ?? throw new InvalidOperationException($"the state database {Path} was opened read-only");
        ObjectDisposedException.ThrowIf(_disposed, this);
        return group;
    }

    private static T Result<T>(object? result)
    {
        if (result is Failure failure)
        {
            failure.Error.Throw();
        }

        return (T)result!;
    }

    /// <summary>Runs SQL without parameters (a schema script) as one write, waiting for its transaction.</summary>
    public void Execute(string sql, bool durable) => Write((c, tx) =>
    {
        using var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        command.ExecuteNonQuery();
        return true;
    }, durable);

    /// <summary>Runs <paramref name="read"/> on a read connection (one per concurrent reader, kept for reuse).</summary>
    public T Read<T>(Func<SqliteConnection, T> read)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_readers.TryTake(out var connection))
        {
            connection = new SqliteConnection(_readConnectionString);
            try
            {
                connection.Open();
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        try
        {
            return read(connection);
        }
        finally
        {
            lock (_readGate)
            {
                if (_disposed)
                {
                    connection.Dispose();
                }
                else
                {
                    _readers.Add(connection);
                }
            }
        }
    }

    /// <summary>One transaction for a batch; each write in its own savepoint so one failing write fails only itself.</summary>
    private object?[] Write(IReadOnlyList<Op> batch)
    {
        var writer = _writer!;
        var results = new object?[batch.Count];
        lock (_writeGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Batch++;
            try
            {
                var full = batch.Any(o => o.Durable);
                if (_full != full)
                {
                    using var pragma = writer.CreateCommand();
                    pragma.CommandText = full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;";
                    pragma.ExecuteNonQuery();
                    _full = full;
                }

                using var tx = writer.BeginTransaction(deferred: false);
                for (var i = 0; i < batch.Count; i++)
                {
                    if (batch.Count == 1)
                    {
                        results[i] = batch[i].Run(writer, tx); // alone in its transaction: a throw fails the batch, which is this write
                        continue;
                    }

                    tx.Save("w");
                    try
                    {
                        results[i] = batch[i].Run(writer, tx);
                        tx.Release("w");
                    }
                    catch (Exception ex) when (ex is not OutOfMemoryException)
                    {
                        tx.Rollback("w"); // throws when SQLite already rolled the whole transaction back: the batch fails
                        tx.Release("w");
                        results[i] = new Failure(ExceptionDispatchInfo.Capture(ex));
                    }
                }

                tx.Commit();
                LastCommitDurable = full;
                DurableTransactions += full ? 1 : 0;
                Transactions++;
                Writes += results.Count(r => r is not Failure);
            }
            catch
            {
                FailedTransactions++;
                throw;
            }
        }

        return results;
    }

    public void Dispose()
    {
        lock (_writeGate)
        {
            lock (_readGate)
            {
                if (_disposed)
                {
                    return;
                }

                _disposed = true;
                _writer?.Dispose();
                while (_readers.TryTake(out var reader))
                {
                    reader.Dispose();
                }
            }
        }
    }

    private sealed record Op(Func<SqliteConnection, SqliteTransaction, object?> Run, bool Durable);

    private sealed record Failure(ExceptionDispatchInfo Error);
}
