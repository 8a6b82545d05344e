using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Workspace;

namespace Rtt.Planning;

/// <summary>
/// Plans on disk: every signed plan is kept as <c>.rtt/plans/&lt;hex of plan_id&gt;.json</c> (so a plan's base can
/// always be found), and <c>.rtt/plans/applied.json</c> is the plan in force (written by apply; the planner's base).
/// </summary>
public sealed class PlanStore(RttWorkspace workspace)
{
    public string Directory => Path.Combine(workspace.Dir, "plans");

    public string AppliedPath => Path.Combine(Directory, "applied.json");

    public string PathOf(string planId) => Path.Combine(Directory, planId[ContentHash.Prefix.Length..] + ".json");

    public JsonObject? Applied() => WorkspaceFiles.Exists(AppliedPath) ? RttWorkspace.ReadObject(AppliedPath) : null;

    public JsonObject? Find(string planId) => WorkspaceFiles.Exists(PathOf(planId)) ? RttWorkspace.ReadObject(PathOf(planId)) : null;

    /// <param name="durable">False for copies that can be rebuilt (the reconciler's, from the WAL): written atomically, not flushed to disk.</param>
    public string Save(JsonObject plan, bool durable = true) => Save(plan, PrettyJson.ToUtf8(plan), durable);

    /// <summary>
    /// A plan's file form (<see cref="PrettyJson.ToUtf8"/>'s bytes): from the bytes its signature covers when the planner
    /// sealed it with them (<see cref="Planner.Seal(PlanOutcome, Rtt.Core.Signing.SigningKey, out PlanContent?)"/>), else
    /// by the reference writer.
    /// </summary>
    public static byte[] FileForm(JsonObject plan, PlanContent? content) => content?.Pretty(plan) ?? PrettyJson.ToUtf8(plan);

    /// <summary>Saves a plan whose file form (<see cref="PrettyJson.ToUtf8"/>'s bytes) the caller has made already.</summary>
    public string Save(JsonObject plan, byte[] pretty, bool durable = true)
    {
        var id = (string?)plan["plan_id"] ?? throw new RttException(ErrorCodes.PlanIdMissing, "plan has no plan_id", null, "compute it with `rtt plan`");
        var path = PathOf(id);
        AtomicFile.WriteAllBytes(path, pretty, durable: durable);
        return path;
    }

    /// <summary>The plan_id of the plan file at <paramref name="path"/>, or null when it is missing or unreadable.</summary>
    public static string? IdIn(string path)
    {
        try
        {
            return File.Exists(path) ? (string?)RttWorkspace.ReadObject(path)["plan_id"] : null;
        }
        catch (RttException)
        {
            return null;
        }
    }
}
