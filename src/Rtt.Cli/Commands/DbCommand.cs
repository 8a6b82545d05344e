using System.CommandLine;
using Rtt.Core.Errors;
using Rtt.Silo.Hosting;
using Rtt.Silo.Storage.Postgres;

namespace Rtt.Cli.Commands;

/// <summary>
/// <c>rtt db init|check [CONNSTR]</c>: the cluster's PostgreSQL database. <c>init</c> applies RTT's schema (membership,
/// grain state, ledgers, the Merkle WAL) idempotently; <c>check</c> lists what a silo would find missing. Without
/// CONNSTR, <c>Cluster:ConnectionString</c> from the configuration (appsettings.json, RTT_Cluster__ConnectionString).
/// </summary>
public static class DbCommand
{
    public static Command Create()
    {
        var db = new Command("db", "Prepare and check the cluster's PostgreSQL database");

        var initConnection = Connection();
        var init = new Command("init", "Create or update RTT's tables, functions and provider queries (idempotent; safe while silos run)") { initConnection };
        init.SetAction(RttCommands.Guard((parse, _) =>
        {
            var connection = Resolve(parse.GetValue(initConnection));
            ClusterDatabase.Initialize(connection);
            Console.WriteLine($"cluster schema applied to {ClusterDatabase.Location(connection)}: {ClusterDatabase.Tables.Count} tables, {ClusterDatabase.QueryKeys.Count} provider queries");
            return Task.FromResult(RttCommands.Ok);
        }));

        var checkConnection = Connection();
        var check = new Command("check", "Say whether the database has everything a silo needs (exit 1 naming what is missing)") { checkConnection };
        check.SetAction(RttCommands.Guard((parse, _) =>
        {
            var connection = Resolve(parse.GetValue(checkConnection));
            ClusterDatabase.Check(connection);
            Console.WriteLine($"cluster schema complete at {ClusterDatabase.Location(connection)}");
            return Task.FromResult(RttCommands.Ok);
        }));

        db.Subcommands.Add(init);
        db.Subcommands.Add(check);
        return db;
    }

    private static Argument<string?> Connection() => new("CONNSTR")
    {
        Description = "Npgsql connection string, e.g. \"Host=db;Port=5432;Database=rtt;Username=rtt;Password=…\" (default: Cluster:ConnectionString)",
        Arity = ArgumentArity.ZeroOrOne,
    };

    private static string Resolve(string? given) =>
        given is { Length: > 0 } ? given
        : RttSiloHost.LoadConfiguration()["Cluster:ConnectionString"] is { Length: > 0 } configured ? configured
        : throw new HostingException(ErrorCodes.ConfigInvalid, "no connection string given", "Cluster:ConnectionString",
            "pass it as `rtt db init \"Host=…;Database=…;Username=…;Password=…\"` or set RTT_Cluster__ConnectionString");
}
