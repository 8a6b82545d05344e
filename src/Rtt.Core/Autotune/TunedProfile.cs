using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Nodes;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;

namespace Rtt.Core.Autotune;

/// <summary>What a profile is keyed by: the CPU model, the logical core count and the NUMA nodes with their CPUs.</summary>
public sealed record MachineKey(string CpuModel, int Cores, IReadOnlyList<NumaNode> NumaNodes)
{
    public static MachineKey Of(MachineTopology machine) =>
        new(machine.CpuModel, machine.LogicalCores, [.. machine.NumaNodes.OrderBy(n => n.Id).Select(n => n with { MemoryBytes = 0, Cpus = [.. n.Cpus.Order()] })]);

    public static MachineKey Local() => Of(MachineTopology.ReadLocal());

    public string Numa => string.Join(' ', NumaNodes.Select(n => $"node{n.Id}:{string.Join(',', n.Cpus)}"));

    public JsonObject ToJson() => new()
    {
        ["cpu_model"] = CpuModel,
        ["cores"] = Cores,
        ["numa_nodes"] = new JsonArray([.. NumaNodes.Select(n => (JsonNode)new JsonObject
        {
            ["id"] = n.Id,
            ["cpus"] = new JsonArray([.. n.Cpus.Select(c => (JsonNode)JsonValue.Create(c))]),
        })]),
    };

    public static MachineKey FromJson(JsonObject json) => new(
        (string)json["cpu_model"]!, (int)json["cores"]!,
        [.. json["numa_nodes"]!.AsArray().Select(n => new NumaNode((int)n!["id"]!, [.. n["cpus"]!.AsArray().Select(c => (int)c!)], 0))]);

    /// <summary>Why <paramref name="other"/> is another machine, or null when it is this one.</summary>
    public string? Mismatch(MachineKey other) =>
        CpuModel != other.CpuModel ? $"CPU model \"{other.CpuModel}\", this machine has \"{CpuModel}\""
        : Cores != other.Cores ? $"{other.Cores} cores, this machine has {Cores}"
        : Numa != other.Numa ? $"NUMA nodes {other.Numa}, this machine has {Numa}"
        : null;
}

/// <summary>
/// <c>.rtt/tuned/profile.json</c> (docs/autotune.md): the settings autotune found for this machine, keyed by
/// <see cref="MachineKey"/>, with the trace's hash, the before/after figures and the lanes' measured p99s, signed with
/// the workspace key (canonical JSON, RFC 8785, like plans and registry objects).
/// </summary>
public sealed class TunedProfile
{
    public const string Format = "rtt.tuned/1";

    private TunedProfile(JsonObject json, string hash)
    {
        Json = json;
        Hash = hash;
        Machine = MachineKey.FromJson(json["machine"]!.AsObject());
        Settings = ReadSettings(json["settings"]!.AsObject());
        LaneP99Us = json["lanes"] is JsonObject lanes
            ? lanes.Where(l => l.Value?["p99_us"] is JsonValue).ToDictionary(l => l.Key, l => (double)l.Value!["p99_us"]!, StringComparer.Ordinal)
            : [];
    }

    /// <summary>The signed document.</summary>
    public JsonObject Json { get; }

    /// <summary><c>sha256:</c> of the canonical signed profile: what the plan inputs name.</summary>
    public string Hash { get; }

    public MachineKey Machine { get; }

    public TuneSettings Settings { get; }

    /// <summary>Measured p99 per lane kind (<c>shm</c>, <c>uds</c>, <c>tcp</c>), µs.</summary>
    public IReadOnlyDictionary<string, double> LaneP99Us { get; }

    public static string PathOf(RttWorkspace workspace) => Path.Combine(workspace.Tuned, "profile.json");

    public static JsonObject SettingsJson(TuneSettings s) => new()
    {
        ["ring_size"] = s.RingSize,
        ["spins"] = s.Spins,
        ["yields"] = s.Yields,
        ["park"] = s.Park,
        ["cpus"] = new JsonArray([.. s.Cpus.Select(c => (JsonNode)JsonValue.Create(c))]),
    };

    public static JsonObject FiguresJson(ReplayFigures f) => new()
    {
        ["p50_ns"] = f.P50Ns,
        ["p99_ns"] = f.P99Ns,
        ["frames_per_s"] = Math.Round(f.FramesPerSecond),
        ["cpu_ns_per_frame"] = Math.Round(f.CpuNsPerFrame),
        ["frames"] = f.Frames,
    };

    /// <summary>Builds, signs and writes the profile (0600 in a 0700 folder); returns it as loaded back.</summary>
    public static TunedProfile Write(RttWorkspace workspace, SigningKey key, MachineKey machine, TuneSettings settings, Trace trace, string lane,
        ReplayFigures before, ReplayFigures after, IReadOnlyDictionary<string, double> laneP99Us)
    {
        var body = new JsonObject
        {
            ["format"] = Format,
            ["machine"] = machine.ToJson(),
            ["settings"] = SettingsJson(settings),
            ["defaults"] = SettingsJson(TuneSettings.Defaults),
            ["trace"] = new JsonObject { ["hash"] = trace.Hash, ["frames"] = trace.Frames.Count, ["source"] = trace.Source, ["lane"] = lane },
            ["objective"] = "p99 at the recorded timing, then throughput at full speed, then lane host CPU per frame",
            ["before"] = FiguresJson(before),
            ["after"] = FiguresJson(after),
            ["lanes"] = new JsonObject([.. laneP99Us.OrderBy(l => l.Key, StringComparer.Ordinal)
                .Select(l => KeyValuePair.Create(l.Key, (JsonNode?)new JsonObject { ["p99_us"] = l.Value }))]),
        };
        var signed = ObjectSigner.Sign(body, key);
        WorkspaceModes.CreatePrivateDirectory(workspace.Tuned);
        AtomicFile.WriteAllBytes(PathOf(workspace), PrettyJson.ToUtf8(signed), WorkspaceModes.File);
        return Parse(signed, workspace.LoadTrustStore(), PathOf(workspace));
    }

    /// <summary>
    /// Reads the workspace's profile. Null when there is none; <paramref name="mismatch"/> says why a profile made on
    /// another machine is not used. A profile that is malformed or whose signature does not verify is refused (RTT-TUNE-005).
    /// </summary>
    public static TunedProfile? Load(RttWorkspace workspace, MachineKey machine, out string? mismatch)
    {
        mismatch = null;
        var path = PathOf(workspace);
        if (!WorkspaceFiles.Exists(path))
        {
            return null;
        }

        JsonObject json;
        try
        {
            json = RttWorkspace.ReadObject(path);
        }
        catch (RttException ex) when (ex.Code != ErrorCodes.WorkspaceFileTooLarge)
        {
            throw Invalid(path, $"it is not readable JSON ({ex.Code} {ex.Message})", ex);
        }

        var profile = Parse(json, workspace.LoadTrustStore(), path);
        mismatch = machine.Mismatch(profile.Machine) is { } why ? $"{path} was tuned on another machine ({why}); the defaults are used" : null;
        return mismatch is null ? profile : null;
    }

    public static TunedProfile Parse(JsonObject json, TrustStore trust, string path)
    {
        if ((string?)json["format"] != Format || json["machine"] is not JsonObject || json["settings"] is not JsonObject)
        {
            throw Invalid(path, $"it is not a tuned profile (format \"{Format}\" with machine and settings)");
        }

        try
        {
            trust.Verify(json, path);
        }
        catch (RttException ex)
        {
            throw Invalid(path, $"its signature does not verify: {ex.Code} {ex.Message}", ex);
        }

        try
        {
            return new TunedProfile(json, ContentHash.OfCanonical(json));
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or NullReferenceException or ArgumentException)
        {
            throw Invalid(path, "a field has the wrong type or is missing", ex);
        }
    }

    private static TuneSettings ReadSettings(JsonObject s)
    {
        // "park" came later: a profile without it was tuned with the worker sleeping on its doorbell (park true).
        var settings = new TuneSettings((int)s["ring_size"]!, (int)s["spins"]!, (int)s["yields"]!, [.. s["cpus"]!.AsArray().Select(c => (int)c!)],
            s["park"] is null || (bool)s["park"]!);
        if (settings.RingSize is < 256 or > 16_384 || (settings.RingSize & (settings.RingSize - 1)) != 0 || settings.Spins is < 0 or > 10_000_000
            || settings.Yields is < 0 or > 1_000_000 || settings.Cpus.Any(c => c < 0))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"settings out of range: {settings}"));
        }

        return settings;
    }

    private static RttException Invalid(string path, string what, Exception? inner = null) =>
        new(ErrorCodes.TuneProfileInvalid, $"the tuned profile cannot be used: {what}", path,
            "run rtt autotune again to write a fresh profile, or delete the file to use the defaults", inner);
}
