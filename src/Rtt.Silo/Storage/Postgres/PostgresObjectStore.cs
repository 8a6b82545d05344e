using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Silo.Storage.Postgres;

/// <summary>
/// The registry everywhere (operations.md, "The registry in a cluster"): registry objects by hash in the cluster
/// database (table <c>rtt_objects</c>, made by `rtt db init`). Every silo publishes its workspace's objects there
/// (<see cref="ClusterObjectSync"/>), and reads an object it lacks from there (<see cref="RegistryStore.Remote"/>),
/// checking the bytes against the hash and, for signed objects, the signature against its trust store.
/// </summary>
public sealed class PostgresObjectStore(string connectionString) : IRemoteObjects, IDisposable
{
    private readonly NpgsqlDataSource _source = NpgsqlDataSource.Create(connectionString);

    public byte[]? Fetch(string hash)
    {
        using var connection = _source.OpenConnection();
        using var command = new NpgsqlCommand("SELECT bytes FROM rtt_objects WHERE hash = @h;", connection);
        command.Parameters.AddWithValue("h", hash);
        return command.ExecuteScalar() as byte[];
    }

    /// <summary>Of these hashes, the ones the table lacks.</summary>
    public IReadOnlyList<string> Missing(IReadOnlyList<string> hashes)
    {
        using var connection = _source.OpenConnection();
        using var command = new NpgsqlCommand("SELECT h FROM unnest(@h) AS h WHERE NOT EXISTS (SELECT 1 FROM rtt_objects o WHERE o.hash = h);", connection);
        command.Parameters.Add(new NpgsqlParameter("h", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = hashes.ToArray() });
        var missing = new List<string>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            missing.Add(reader.GetString(0));
        }

        return missing;
    }

    /// <summary>Stores objects (an object already there is left as it is: content addressed, so it is the same).</summary>
    public void Publish(IReadOnlyList<(string Hash, byte[] Bytes)> objects)
    {
        using var connection = _source.OpenConnection();
        using var command = new NpgsqlCommand("INSERT INTO rtt_objects (hash, bytes) SELECT * FROM unnest(@h, @b) ON CONFLICT (hash) DO NOTHING;", connection);
        command.Parameters.Add(new NpgsqlParameter("h", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = objects.Select(o => o.Hash).ToArray() });
        command.Parameters.Add(new NpgsqlParameter("b", NpgsqlDbType.Array | NpgsqlDbType.Bytea) { Value = objects.Select(o => o.Bytes).ToArray() });
        command.ExecuteNonQuery();
    }

    public void Dispose() => _source.Dispose();
}

/// <summary>
/// Publishes the workspace's registry objects (loose and packed) to the cluster's object table: at start, and again
/// whenever the registry changed (`rtt scan`, `rtt pack`: the index, the CAS folder or the pack is newer), checked
/// every <see cref="Interval"/>. Objects the table already has are not sent again.
/// </summary>
public sealed class ClusterObjectSync(RttWorkspace workspace, PostgresObjectStore store, ILogger<ClusterObjectSync> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    private const int Batch = 500;
    private readonly HashSet<string> _published = new(StringComparer.Ordinal);
    private DateTime _stamp = DateTime.MinValue;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                PublishIfChanged();
            }
            catch (Exception ex) when (ex is NpgsqlException or IOException or Core.Errors.RttException or InvalidOperationException)
            {
                logger.LogWarning("Registry objects not published to the cluster database yet (tried again in {Seconds} s): {Message}", Interval.TotalSeconds, ex.Message);
                _stamp = DateTime.MinValue;
            }

            try
            {
                await Task.Delay(Interval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Publishes what changed since the last run; the number of objects sent.</summary>
    public int PublishIfChanged()
    {
        var stamp = new[] { workspace.IndexPath, workspace.Cas, Path.Combine(workspace.Pack, Packfile.PackName) }
            .Select(p => File.Exists(p) ? File.GetLastWriteTimeUtc(p) : Directory.Exists(p) ? Directory.GetLastWriteTimeUtc(p) : DateTime.MinValue)
            .Max();
        if (stamp == _stamp)
        {
            return 0;
        }

        using var registry = RegistryStore.Open(workspace);
        var hashes = new SortedSet<string>(registry.Cas.List(), StringComparer.Ordinal);
        if (registry.Pack is { } pack)
        {
            hashes.UnionWith(pack.Hashes());
        }

        hashes.ExceptWith(_published);
        var sent = 0;
        foreach (var chunk in hashes.Chunk(Batch))
        {
            var missing = store.Missing(chunk);
            if (missing.Count > 0)
            {
                store.Publish([.. missing.Select(h => (h, registry.ReadBytes(h)))]);
                sent += missing.Count;
            }

            _published.UnionWith(chunk);
        }

        _stamp = stamp;
        if (sent > 0)
        {
            logger.LogInformation("Published {Count} registry object(s) to the cluster database", sent);
        }

        return sent;
    }
}
