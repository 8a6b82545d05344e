using System.Collections.Immutable;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Grains.Registry;

/// <summary>
/// Thin shell over <see cref="RegistryStore"/> on the silo's workspace. The store is reopened when index.json
/// changes on disk, so objects ingested by the <c>rtt</c> command are visible without restarting the silo.
/// </summary>
public sealed class RegistryGrain(RttWorkspace workspace) : Grain, IRegistryGrain
{
    private RegistryStore? _store;
    private DateTime _indexStamp;

    private JsonObject? _symbols;
    private DateTime _symbolsStamp;

    /// <summary>Answers of <see cref="ResolveSymbol"/> built from the current symbols.json (at most one per symbol asked).</summary>
    private readonly Dictionary<string, ImmutableArray<SymbolVersion>> _resolved = new(StringComparer.Ordinal);

    /// <summary>symbols.json, parsed once and again only when discovery rewrites it (the same rule as the store).</summary>
    private JsonObject Symbols
    {
        get
        {
            Look();
            if (_symbols is null || _symbolsStale)
            {
                var path = Path.Combine(workspace.Registry, "symbols.json");
                var stamp = File.Exists(path) ? File.GetLastWriteTimeUtc(path) : DateTime.MinValue;
                if (_symbols is null || stamp != _symbolsStamp)
                {
                    _symbols = stamp == DateTime.MinValue ? [] : RttWorkspace.ReadObject(path);
                    _symbolsStamp = stamp;
                    _resolved.Clear();
                }

                _symbolsStale = false;
            }

            return _symbols;
        }
    }

    private RegistryStore Store
    {
        get
        {
            Look();
            if (_store is null || _storeStale)
            {
                var stamp = File.Exists(workspace.IndexPath) ? File.GetLastWriteTimeUtc(workspace.IndexPath) : DateTime.MinValue;
                if (_store is null || stamp != _indexStamp)
                {
                    _store?.Dispose();
                    _store = RegistryStore.Open(workspace);
                    _indexStamp = stamp;
                }

                _storeStale = false;
            }

            return _store;
        }
    }

    // Whether symbols.json and index.json must have their stamps read again: the registry folder's watch (FolderWatch, as the
    // token verifier's over the trust folder) says at once when anything in it changed, so a call between changes reads no
    // file status (two system calls per file, most of a symbol resolution's cost over a bare grain call where measured);
    // the stamps are read anyway at most a second apart, and at every call where there is no watch, for what a watch
    // cannot see (a folder above the registry replaced).
    private FolderWatch? _watch;
    private long _nextOpen;
    private bool _symbolsStale = true;
    private bool _storeStale = true;
    private long _nextStamp;
    private const long StampEveryMs = 1000;

    private void Look()
    {
        var now = Environment.TickCount64;
        if (_watch is null && now >= _nextOpen)
        {
            _watch = Directory.Exists(workspace.Registry) ? FolderWatch.Open(workspace.Registry) : null; // tried again a second later when there is none
            _nextOpen = now + StampEveryMs;
        }

        if (_watch?.Changed() is not false || now >= _nextStamp)
        {
            _symbolsStale = _storeStale = true;
            _nextStamp = now + StampEveryMs;
        }
    }

    public Task<RegistryObject?> GetByHash(string hash) => Task.FromResult(TryRead(hash));

    public Task<RegistryObject?> GetById(string idAtVersion) =>
        Task.FromResult(Store.Index.TryGet(idAtVersion, out _) ? FromObject(Store.ReadEntry(idAtVersion), Store.Resolve(idAtVersion)) : null); // RTT-REG-011 when the entry names another object

    public Task<ImmutableArray<SymbolVersion>> ResolveSymbol(string symbol)
    {
        var symbols = Symbols; // reloads (and forgets earlier answers) when discovery rewrote symbols.json
        if (_resolved.TryGetValue(symbol, out var known))
        {
            return Task.FromResult(known);
        }

        var answer = symbols[symbol] is JsonArray versions
            ? versions.Select(v => new SymbolVersion(
                symbol, (string)v!["version"]!, (string)v["kind"]!, (string)v["object"]!,
                v["input"]?.ToJsonString(), v["output"]?.ToJsonString(), (string)v["source"]!)).ToImmutableArray()
            : ImmutableArray<SymbolVersion>.Empty;
        if (_resolved.Count < 100_000 && !answer.IsEmpty)
        {
            _resolved[symbol] = answer; // unknown symbols are not kept: a caller cannot grow this with names that do not exist
        }

        return Task.FromResult(answer);
    }

    public Task<IngestOutcome> Ingest(string json, string id, string version)
    {
        var obj = CanonicalJson.ParseNode(Encoding.UTF8.GetBytes(json), $"{id}@{version}") as JsonObject
            ?? throw new ArgumentException("the object must be a JSON object", nameof(json));
        SchemaValidator.Semver(version, $"{id}@{version}");
        var result = Store.Ingest(obj, id, version, $"{id}@{version}", signIfUnsigned: false); // client apps sign their own objects
        Store.Save();
        _indexStamp = File.GetLastWriteTimeUtc(workspace.IndexPath);
        return Task.FromResult(new IngestOutcome(result.Key, result.Hash, result.Added));
    }

    private static RegistryObject FromObject(JsonObject obj, string hash) =>
        new(hash, Encoding.UTF8.GetString(CanonicalJson.Serialize(obj)), (string?)(obj[ObjectSigner.SignMember] as JsonObject)?["key_id"]);

    private RegistryObject? TryRead(string hash)
    {
        try
        {
            return FromObject(Store.ReadObject(hash), hash);
        }
        catch (RttException ex) when (ex.Code is ErrorCodes.CasMissing or ErrorCodes.NotFound)
        {
            return null;
        }
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _store?.Dispose();
        return base.OnDeactivateAsync(reason, cancellationToken);
    }
}

/// <summary>An agent definition (key ID@version) as the registry holds it.</summary>
public sealed class AgentGrain(RttWorkspace workspace) : Grain, IAgentGrain
{
    public Task<AgentInfo?> GetInfo()
    {
        var key = this.GetPrimaryKeyString();
        using var store = RegistryStore.Open(workspace);
        if (!store.Index.TryGet(key, out var hash))
        {
            return Task.FromResult<AgentInfo?>(null);
        }

        var obj = CanonicalJson.ParseNode(store.ReadBytes(hash), key).AsObject();
        var valid = ObjectIdentity.Mismatch(key, obj) is null; // an entry pointed at another object is not this agent
        try
        {
            store.VerifySignature(obj, key);
        }
        catch (SigningException)
        {
            valid = false; // reported, not thrown: the caller asked about the agent, not for its use
        }

        var exports = (obj["exports"] as JsonArray ?? []).Select(e => (string)e!["symbol"]!).ToImmutableArray();
        return Task.FromResult<AgentInfo?>(new AgentInfo(key, hash, (string?)obj["description"] ?? "", exports,
            (string?)(obj[ObjectSigner.SignMember] as JsonObject)?["key_id"], valid && obj[ObjectSigner.SignMember] is not null));
    }
}
