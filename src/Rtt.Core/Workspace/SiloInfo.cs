using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Json;

namespace Rtt.Core.Workspace;

/// <summary>
/// <c>.rtt/state/silo.json</c>: written by a running silo so that <c>rtt status</c> and client apps on
/// this machine find its gateway; removed on clean shutdown. A stale file (process gone) is ignored. <c>signing_key</c> is
/// the key id the silo signed with when it wrote the file: a client holding that key presents MAC tokens (docs/tokens.md);
/// <c>mac_format</c> the newest MAC token format the silo reads (2: compact <c>rttm2</c> tokens; a file without it, from a
/// silo before them, means 1); <c>token_argument</c> (true) that apply, apply as a change and rollback take their token as
/// the call's argument (a file without it, from a silo before that: in the request context only).
/// </summary>
public sealed record SiloInfo(int ProcessId, string NodeId, int SiloPort, int GatewayPort, string ClusterId, string ServiceId, DateTimeOffset Started, string? SigningKeyId = null,
    int MacFormat = 1, bool TokenArgument = false)
{
    /// <summary>The newest MAC token format this version reads, which a silo of this version writes into its silo.json.</summary>
    public const int NewestMacFormat = 2;

    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["pid"] = ProcessId,
            ["node_id"] = NodeId,
            ["silo_port"] = SiloPort,
            ["gateway_port"] = GatewayPort,
            ["cluster_id"] = ClusterId,
            ["service_id"] = ServiceId,
            ["started"] = Started.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
        };
        if (SigningKeyId is not null)
        {
            json["signing_key"] = SigningKeyId;
            json["mac_format"] = MacFormat;
        }

        if (TokenArgument)
        {
            json["token_argument"] = true;
        }

        return json;
    }

    public void Write(string path) => AtomicFile.WriteAllBytes(path, PrettyJson.ToUtf8(ToJson()));

    /// <summary>Reads the file; null when it is missing, unreadable or its process is gone.</summary>
    public static SiloInfo? ReadLive(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            var json = CanonicalJson.ParseNode(WorkspaceFiles.ReadBytes(path, WorkspaceFiles.SmallLimit), path);
            var info = new SiloInfo(
                (int)json["pid"]!, (string)json["node_id"]!, (int)json["silo_port"]!, (int)json["gateway_port"]!,
                (string)json["cluster_id"]!, (string)json["service_id"]!,
                DateTimeOffset.Parse((string)json["started"]!, CultureInfo.InvariantCulture), (string?)json["signing_key"],
                json["mac_format"] is { } format ? (int)format : 1, json["token_argument"] is { } argument && (bool)argument);
            return IsAlive(info.ProcessId) ? info : null;
        }
        catch (Exception ex) when (ex is IOException or FormatException or InvalidOperationException or NullReferenceException or Errors.RttException)
        {
            return null;
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
