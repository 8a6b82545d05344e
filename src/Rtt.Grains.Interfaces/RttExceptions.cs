using Microsoft.Extensions.DependencyInjection;

namespace Rtt.Grains;

/// <summary>
/// Database errors cross grain calls with their message: Orleans serializes exceptions only from the namespaces it is
/// told about, and a PostgreSQL error raised while a grain activates on one silo (e.g. 53300, too many clients) otherwise
/// reaches the caller on another as "Could not find a codec for type Npgsql.PostgresException". Silos and clients
/// register the same list (a client without the driver's package gets Orleans' fallback exception, with the message).
/// </summary>
public static class RttExceptions
{
    /// <summary>The namespaces of the database drivers' exceptions (PostgreSQL in a cluster, SQLite in the embedded silo).</summary>
    public static readonly IReadOnlyList<string> Namespaces = ["Npgsql", "Microsoft.Data.Sqlite"];

    public static IServiceCollection Add(IServiceCollection services) =>
        services.Configure<Orleans.Serialization.ExceptionSerializationOptions>(o =>
        {
            foreach (var prefix in Namespaces.Where(p => !o.SupportedNamespacePrefixes.Contains(p)))
            {
                o.SupportedNamespacePrefixes.Add(prefix);
            }
        });
}
