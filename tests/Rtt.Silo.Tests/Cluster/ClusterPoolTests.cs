using Npgsql;
using Rtt.Core.Errors;
using Rtt.Silo.Storage.Postgres;

namespace Rtt.Silo.Tests.Cluster;

/// <summary>
/// A silo's PostgreSQL pool is capped (issue 19's apply benchmark: three silos applying 1,000 routes took more
/// connections than the server allows, and route grains failed to activate with 53300 "too many clients already").
/// </summary>
public sealed class ClusterPoolTests
{
    private const string Given = "Host=db;Port=5432;Database=rtt;Username=rtt;Password=secret;Timeout=15";

    [Fact]
    public void A_connection_string_without_a_pool_size_gets_the_silo_cap_and_keeps_everything_else()
    {
        var silo = new NpgsqlConnectionStringBuilder(ClusterDatabase.ForSilo(Given));
        Assert.Equal(ClusterDatabase.DefaultMaxPoolSize, silo.MaxPoolSize);
        Assert.True(silo.MaxPoolSize < new NpgsqlConnectionStringBuilder().MaxPoolSize); // below Npgsql's own default
        Assert.Equal(("db", 5432, "rtt", "rtt", "secret", 15), (silo.Host, silo.Port, silo.Database, silo.Username, silo.Password, silo.Timeout));
    }

    [Theory]
    [InlineData("Maximum Pool Size")]
    [InlineData("MAXIMUM POOL SIZE")]
    [InlineData("maxpoolsize")]
    public void A_pool_size_the_operator_set_is_kept(string key)
    {
        var silo = new NpgsqlConnectionStringBuilder(ClusterDatabase.ForSilo($"{Given};{key}=75"));
        Assert.Equal(75, silo.MaxPoolSize);
    }

    [Fact]
    public void An_invalid_connection_string_is_a_configuration_error_naming_the_setting()
    {
        var e = Assert.Throws<HostingException>(() => ClusterDatabase.ForSilo("Host=db;Bogus Key=1"));
        Assert.Equal("Cluster:ConnectionString", e.Location);
    }
}
