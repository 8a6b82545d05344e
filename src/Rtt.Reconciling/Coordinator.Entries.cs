using System.Globalization;
using System.Text.Json.Nodes;

namespace Rtt.Reconciling;

/// <summary>The WAL entries the coordinator writes (docs/reconciler.md lists their kinds and members).</summary>
public sealed partial class Coordinator
{
    private async Task<long> Append(JsonObject entry)
    {
        _signed = null;
        return await log.AppendAsync(entry);
    }

    private async Task<long> AppendAndSign(IReadOnlyList<JsonObject> entries)
    {
        _signed = null;
        var (first, head) = await log.AppendAndSignAsync(entries);
        _signed = head;
        return first;
    }

    private JsonObject Entry(string kind, long tx, params (string Key, string Value)[] extra)
    {
        var o = new JsonObject { ["at"] = Now(), ["kind"] = kind, ["tx"] = tx };
        foreach (var (key, value) in extra)
        {
            o[key] = value;
        }

        return o;
    }

    private string Now() => time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
