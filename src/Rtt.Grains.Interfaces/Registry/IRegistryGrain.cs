using System.Collections.Immutable;

namespace Rtt.Grains.Registry;

/// <summary>
/// The workspace's registry (key <see cref="WorkspaceKey"/>): lookups by hash, by ID@version and by symbol over
/// the same CAS store the <c>rtt</c> command writes, and ingest from client apps (strict mode: signed objects only).
/// </summary>
[Alias("rtt.IRegistryGrain")]
public interface IRegistryGrain : IGrainWithStringKey
{
    public const string WorkspaceKey = "workspace";

    /// <summary>The object with this hash (hash and signature checked), or null.</summary>
    [Alias("GetByHash")]
    Task<RegistryObject?> GetByHash(string hash);

    /// <summary>The object published as ID@version, or null.</summary>
    [Alias("GetById")]
    Task<RegistryObject?> GetById(string idAtVersion);

    /// <summary>Every version of a symbol (<c>rtt://area/kind/name</c>) from the last discovery, lowest version first.</summary>
    [Alias("ResolveSymbol")]
    Task<ImmutableArray<SymbolVersion>> ResolveSymbol(string symbol);

    /// <summary>Ingests a JSON object as ID@version. In strict mode it must already be signed by a trusted key.</summary>
    [Alias("Ingest")]
    Task<IngestOutcome> Ingest(string json, string id, string version);
}

/// <summary>An agent definition by ID@version (key), with its hash and signature state.</summary>
[Alias("rtt.IAgentGrain")]
public interface IAgentGrain : IGrainWithStringKey
{
    [Alias("GetInfo")]
    Task<AgentInfo?> GetInfo();
}

/// <summary>A registry object: its hash, canonical JSON, and the key that signed it (null when unsigned).</summary>
[GenerateSerializer, Immutable, Alias("rtt.RegistryObject")]
public sealed record RegistryObject([property: Id(0)] string Hash, [property: Id(1)] string Json, [property: Id(2)] string? SignerKeyId);

/// <summary>One version of a symbol, as discovery indexed it.</summary>
[GenerateSerializer, Immutable, Alias("rtt.SymbolVersion")]
public sealed record SymbolVersion(
    [property: Id(0)] string Symbol,
    [property: Id(1)] string Version,
    [property: Id(2)] string Kind,
    [property: Id(3)] string Object,
    [property: Id(4)] string? InputJson,
    [property: Id(5)] string? OutputJson,
    [property: Id(6)] string Source);

[GenerateSerializer, Immutable, Alias("rtt.IngestOutcome")]
public sealed record IngestOutcome([property: Id(0)] string Key, [property: Id(1)] string Hash, [property: Id(2)] bool Added);

/// <summary>What the registry knows of an agent definition.</summary>
[GenerateSerializer, Immutable, Alias("rtt.AgentInfo")]
public sealed record AgentInfo(
    [property: Id(0)] string Key,
    [property: Id(1)] string Hash,
    [property: Id(2)] string Description,
    [property: Id(3)] ImmutableArray<string> Exports,
    [property: Id(4)] string? SignerKeyId,
    [property: Id(5)] bool SignatureValid);
