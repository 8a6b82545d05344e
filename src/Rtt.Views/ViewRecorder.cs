using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>
/// Records merged views in the registry with their provenance. Each overlay is stored as a signed
/// <c>rtt.overlay</c> object; each view as a signed <c>rtt.view</c> object naming its base's hash, its overlays'
/// hashes in merge order, and the merged content, indexed as
/// <c>view:&lt;provider&gt;/&lt;env or -&gt;/&lt;agent&gt;@&lt;version&gt;+v.&lt;12 hex&gt;</c> (the suffix is taken from the
/// view's content, so a changed overlay never changes a published ID@version).
/// </summary>
public static class ViewRecorder
{
    public const string OverlayKind = "rtt.overlay";

    /// <param name="memo">Hashes of bases and overlays already stored in this build: a base or an env <c>_global</c>
    /// shared by many views is signed and stored once.</param>
    public static IngestResult Record(RegistryStore store, SigningKey key, ComposedView view, Dictionary<string, string>? memo = null)
    {
        memo ??= new Dictionary<string, string>(StringComparer.Ordinal);
        var version = (string)view.Base.Definition["version"]!;
        if (!memo.TryGetValue("base:" + view.Base.Path, out var baseHash))
        {
            baseHash = memo["base:" + view.Base.Path] = store.Ingest(view.Base.Definition, view.Agent, version, view.Base.Path, signIfUnsigned: true).Hash;
        }

        var overlays = new JsonArray();
        foreach (var overlay in view.Overlays)
        {
            if (!memo.TryGetValue("overlay:" + overlay.Path, out var hash))
            {
                var obj = new JsonObject
                {
                    ["kind"] = OverlayKind,
                    ["level"] = overlay.Level,
                    ["scope"] = overlay.Scope,
                    ["target"] = overlay.Target,
                    ["path"] = overlay.Path,
                    ["patch"] = overlay.Patch.DeepClone(),
                };
                hash = memo["overlay:" + overlay.Path] = store.Cas.Put(CanonicalJson.Serialize(ObjectSigner.Sign(obj, key)));
            }

            overlays.Add(new JsonObject { ["level"] = overlay.Level, ["path"] = overlay.Path, ["hash"] = hash, ["patch_hash"] = overlay.Hash });
        }

        var record = new JsonObject
        {
            ["kind"] = ObjectIdentity.ViewKind,
            ["agent"] = view.Agent,
            ["version"] = version,
            ["provider"] = view.Provider,
            ["env"] = view.Env,
            ["base"] = baseHash,
            ["overlays"] = overlays,
            ["content_hash"] = view.ContentHash,
            ["content"] = view.Content.DeepClone(),
        };
        var suffix = ContentHash.OfCanonical(record)[ContentHash.Prefix.Length..][..12];
        var id = ObjectIdentity.ViewId(view.Provider, view.Env, view.Agent);
        var indexKey = RegistryIndex.Key(id, $"{version}+v.{suffix}");
        if (store.Index.TryGet(indexKey, out var existing))
        {
            return new IngestResult(indexKey, existing, Added: false); // the key is taken from this very content: already recorded
        }

        return store.Ingest(record, id, $"{version}+v.{suffix}", id, signIfUnsigned: true);
    }

    /// <summary>
    /// Checks a recorded view: its signature, its base's and overlays' signatures, and that merging the base with the
    /// overlays in the recorded order gives exactly the recorded content. Returns the content.
    /// </summary>
    public static JsonObject VerifyProvenance(RegistryStore store, string viewHash)
    {
        var view = store.ReadObject(viewHash);
        if ((string?)view["kind"] != ObjectIdentity.ViewKind || view["content"] is not JsonObject content || view["base"] is not JsonValue baseRef)
        {
            throw Fault(viewHash, "not a view object (kind rtt.view with base and content)");
        }

        JsonNode merged = Strip(store.ReadObject((string)baseRef!, $"{viewHash}: base"));
        foreach (var entry in view["overlays"] as JsonArray ?? [])
        {
            var hash = (string?)entry?["hash"] ?? throw Fault(viewHash, "an overlay entry has no hash");
            var overlay = store.ReadObject(hash, $"{viewHash}: overlay {hash}");
            if ((string?)overlay["kind"] != OverlayKind || overlay["patch"] is not JsonObject patch)
            {
                throw Fault(viewHash, $"{hash} is not an overlay object");
            }

            merged = JsonMergePatch.Apply(merged, patch)!;
        }

        if (!JsonMergePatch.SameJson(merged, content))
        {
            throw Fault(viewHash, "merging the base with the recorded overlays does not give the recorded content");
        }

        if ((string?)view["content_hash"] != ContentHash.OfCanonical(content))
        {
            throw Fault(viewHash, "content_hash does not match the content");
        }

        return content;
    }

    private static JsonObject Strip(JsonObject obj)
    {
        var copy = (JsonObject)obj.DeepClone();
        copy.Remove(ObjectSigner.SignMember);
        return copy;
    }

    private static RttException Fault(string hash, string why) =>
        new(ErrorCodes.ViewProvenance, $"view provenance does not check out: {why}", hash, "rebuild the view with `rtt view build`");
}
