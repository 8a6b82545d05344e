using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Npgsql;

namespace Rtt.Core.Tests;

/// <summary>
/// A private PostgreSQL server for the tests: <c>initdb</c> into a temp folder, <c>pg_ctl start</c> on 127.0.0.1 on a
/// free port with its Unix socket in that folder, password (SCRAM) authentication, and stop + delete at the end. No
/// system service is touched. The Debian server binaries (<c>/usr/lib/postgresql/N/bin</c>, package
/// <c>postgresql</c>) must be installed: when they are missing every test that uses the fixture fails saying so.
/// initdb refuses to run as root, so under root the server runs as an unprivileged user (<c>postgres</c> when it
/// exists, else <c>nobody</c>; RTT_TEST_PG_USER overrides) through <c>runuser</c>, and owns the temp folder.
/// </summary>
public sealed class PostgresServerFixture : IDisposable
{
    public const string Superuser = "rtt";
    private static int _databases;
    private readonly string _root;
    private readonly string _data;
    private readonly string? _runAs;
    private readonly string _bin;

    public PostgresServerFixture()
    {
        _bin = FindBinaries();
        _runAs = IsRoot() ? Environment.GetEnvironmentVariable("RTT_TEST_PG_USER") is { Length: > 0 } u ? u : (UserExists("postgres") ? "postgres" : "nobody") : null;

        // Under root the folder must be reachable by the server's user: /tmp is world-traversable, a TMPDIR may not be.
        var parent = _runAs is null ? Path.GetTempPath() : "/tmp";
        _root = Path.Combine(parent, $"rtt-pg-{Environment.ProcessId}-{Guid.NewGuid():N}"[..24]);
        Directory.CreateDirectory(_root);
        _data = Path.Combine(_root, "data");
        var sockets = Directory.CreateDirectory(Path.Combine(_root, "sock")).FullName;
        Password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var pwfile = Path.Combine(_root, "pwfile");
        File.WriteAllText(pwfile, Password + "\n");
        try
        {
            if (_runAs is not null)
            {
                Run("chown", ["-R", _runAs, _root], asServerUser: false);
            }

            Run(Path.Combine(_bin, "initdb"), ["-D", _data, "-U", Superuser, "--pwfile", pwfile, "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                "-E", "UTF8", "--no-locale", "--no-sync"], asServerUser: true);
            File.Delete(pwfile);

            // A free port is taken between probing and binding only by a race: try a few.
            for (var attempt = 1; ; attempt++)
            {
                Port = FreePort();
                var (code, output) = TryRun(Path.Combine(_bin, "pg_ctl"), ["-D", _data, "-l", Path.Combine(_root, "server.log"), "-w", "-t", "60",
                    "-o", $"-c listen_addresses=127.0.0.1 -p {Port} -k {sockets} -c max_connections=200 -c fsync=on -c synchronous_commit=on", "start"], asServerUser: true);
                if (code == 0)
                {
                    break;
                }

                if (attempt == 3)
                {
                    throw new InvalidOperationException($"pg_ctl start failed ({code}): {output}\n{ServerLog()}");
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Port { get; private set; }

    public string Password { get; }

    /// <summary>The superuser connection string for <paramref name="database"/> over TCP on loopback.</summary>
    public string ConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Database = database,
        Username = Superuser,
        Password = Password,
        Timeout = 15,
        CommandTimeout = 60,
    }.ConnectionString;

    /// <summary>Creates a fresh, empty database and returns its connection string.</summary>
    public string NewDatabase()
    {
        var name = $"rtt_test_{Interlocked.Increment(ref _databases)}";
        using (var connection = new NpgsqlConnection(ConnectionString()))
        {
            connection.Open();
            using var command = new NpgsqlCommand($"CREATE DATABASE {name};", connection);
            command.ExecuteNonQuery();
        }

        return ConnectionString(name);
    }

    /// <summary>Runs SQL as the superuser in the database of <paramref name="connectionString"/>.</summary>
    public static void Sql(string connectionString, string sql)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    public static T Scalar<T>(string connectionString, string sql)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        return (T)command.ExecuteScalar()!;
    }

    /// <summary>A loopback port with nothing listening on it (at the time of asking).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static string FindBinaries()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("RTT_TEST_PG_BIN") is { Length: > 0 } configured)
        {
            candidates.Add(configured);
        }

        if (Directory.Exists("/usr/lib/postgresql"))
        {
            candidates.AddRange(Directory.GetDirectories("/usr/lib/postgresql")
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : 0)
                .Select(d => Path.Combine(d, "bin")));
        }

        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        foreach (var dir in candidates)
        {
            if (File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "pg_ctl")) && File.Exists(Path.Combine(dir, "postgres")))
            {
                return dir;
            }
        }

        throw new InvalidOperationException(
            "The PostgreSQL WAL tests need a real PostgreSQL server, but no initdb/pg_ctl/postgres binaries were found under /usr/lib/postgresql/*/bin, " +
            "RTT_TEST_PG_BIN or PATH. Install Debian's server package (apt-get install -y postgresql) or point RTT_TEST_PG_BIN at a bin folder.");
    }

    private static bool IsRoot()
    {
        var (code, output) = TryRunPlain("id", ["-u"]);
        return code == 0 && output.Trim() == "0";
    }

    private static bool UserExists(string name) => TryRunPlain("id", ["-u", name]).Code == 0;

    private void Run(string program, IReadOnlyList<string> arguments, bool asServerUser)
    {
        var (code, output) = TryRun(program, arguments, asServerUser);
        if (code != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(program)} failed with exit code {code}{(asServerUser && _runAs is not null ? $" (run as {_runAs})" : "")}: {output}");
        }
    }

    private (int Code, string Output) TryRun(string program, IReadOnlyList<string> arguments, bool asServerUser)
    {
        if (asServerUser && _runAs is not null)
        {
            if (!File.Exists("/usr/sbin/runuser") && !File.Exists("/sbin/runuser") && !File.Exists("/usr/bin/runuser"))
            {
                throw new InvalidOperationException("The tests run as root and initdb refuses root, but runuser (util-linux) is not installed to run it as another user.");
            }

            return TryRunPlain("runuser", ["-u", _runAs, "--", program, .. arguments], _root);
        }

        return TryRunPlain(program, arguments, _root);
    }

    private static (int Code, string Output) TryRunPlain(string program, IReadOnlyList<string> arguments, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Path.GetTempPath(),
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["LC_ALL"] = "C";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} did not finish in 2 minutes");
        }

        return (process.ExitCode, (stdout.Result + stderr.Result).Trim());
    }

    private string ServerLog()
    {
        var log = Path.Combine(_root, "server.log");
        return File.Exists(log) ? File.ReadAllText(log) : "(no server log)";
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        var pidFile = Path.Combine(_data, "postmaster.pid");
        if (File.Exists(pidFile))
        {
            var (code, _) = TryRun(Path.Combine(_bin, "pg_ctl"), ["-D", _data, "-m", "fast", "-w", "-t", "30", "stop"], asServerUser: true);
            if (code != 0 && File.Exists(pidFile)
                && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
            {
                try
                {
                    using var postmaster = Process.GetProcessById(pid);
                    postmaster.Kill(entireProcessTree: true);
                    postmaster.WaitForExit(TimeSpan.FromSeconds(10));
                }
                catch (ArgumentException)
                {
                    // already gone
                }
            }
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // a file still held open; the folder is in the temp area
        }
    }
}
