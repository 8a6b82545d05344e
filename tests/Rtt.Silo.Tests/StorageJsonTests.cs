using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Silo.Hosting;

namespace Rtt.Silo.Tests;

/// <summary>
/// Grain state in rtt.db is Newtonsoft JSON; Orleans' defaults honour <c>$type</c> names on read. The silo's storage
/// serializer writes none and honours none (issue 17, docs/security.md).
/// </summary>
public sealed class StorageJsonTests : IAsyncLifetime
{
    private readonly RttWorkspace _workspace = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-json-").FullName).Workspace;
    private RttSilo? _silo;

    public Task InitializeAsync()
    {
        _silo = RttSiloHost.Build(_workspace, new Dictionary<string, string?> { ["Silo:SiloPort"] = FreePort(), ["Silo:GatewayPort"] = FreePort(), ["Lanes:Enabled"] = "false" });
        return Task.CompletedTask;
    }

    private IGrainStorageSerializer Serializer => _silo!.Host.Services.GetRequiredService<IGrainStorageSerializer>();

    [Fact]
    public void A_type_name_in_stored_state_is_not_honoured()
    {
        var payload = """{"$type":"System.Version, System.Private.CoreLib","Major":1,"Minor":2}"""u8.ToArray();
        var read = Serializer.Deserialize<object>(new BinaryData(payload));
        Assert.IsNotType<Version>(read); // Orleans' default settings would have built a System.Version here
    }

    [Fact]
    public void State_is_written_without_type_names_and_old_rows_with_them_still_read()
    {
        var written = Serializer.Serialize(new NodeDirectoryState { NodeIds = ["node0", "node1"] }).ToString();
        Assert.DoesNotContain("$type", written, StringComparison.Ordinal);

        var old = """{"$id":"1","$type":"Rtt.Grains.Nodes.NodeDirectoryState, Rtt.Grains","NodeIds":{"$type":"System.Collections.Generic.List`1[[System.String, System.Private.CoreLib]], System.Private.CoreLib","$values":["node0"]}}"""u8.ToArray();
        var read = Serializer.Deserialize<NodeDirectoryState>(new BinaryData(old));
        Assert.Equal(["node0"], read!.NodeIds);
    }

    [Fact]
    public void The_embedded_silo_keeps_grain_state_through_its_state_database_with_this_serializer()
    {
        var storage = Assert.IsType<Rtt.Silo.Storage.SqliteGrainStorage>(_silo!.Host.Services.GetRequiredKeyedService<IGrainStorage>(RttStorage.Name));
        Assert.Same(Serializer, storage.Serializer);
    }

    public async Task DisposeAsync()
    {
        if (_silo is not null)
        {
            await _silo.DisposeAsync();
        }

        Directory.Delete(_workspace.Root, recursive: true);
    }

    private static string FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
