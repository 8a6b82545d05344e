using Newtonsoft.Json;
using Newtonsoft.Json.Serialization;

namespace Rtt.Silo.Storage;

/// <summary>
/// Grain state is stored as Newtonsoft JSON (Orleans' ADO.NET provider). Orleans' default settings write and honour
/// <c>$type</c> names (TypeNameHandling.All with a binder that resolves any loadable type), so whoever can write
/// rtt.db could make the silo instantiate a type of their choosing on read. RTT's state types are all concrete, so
/// type names are neither written nor honoured: <c>$type</c> members in old rows are skipped, and a binder that
/// refuses every name backs that up (docs/security.md).
/// </summary>
public static class StorageJson
{
    public static void Harden(JsonSerializerSettings settings)
    {
        settings.TypeNameHandling = TypeNameHandling.None;
        settings.SerializationBinder = NoTypeNames.Instance;
    }

    private sealed class NoTypeNames : ISerializationBinder
    {
        public static readonly NoTypeNames Instance = new();

        public Type BindToType(string? assemblyName, string typeName) =>
            throw new JsonSerializationException($"type names in stored grain state are not honoured (found \"{typeName}\")");

        public void BindToName(Type serializedType, out string? assemblyName, out string? typeName)
        {
            assemblyName = null;
            typeName = null;
        }
    }
}
