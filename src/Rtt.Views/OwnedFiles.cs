using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Json;

namespace Rtt.Views;

/// <summary>
/// The owned-files manifest of one provider folder, <c>providers/&lt;provider&gt;/.rtt-owned.json</c>:
/// every file <c>rtt view build</c> wrote there, with the hash of the bytes it wrote. Only these files are ever
/// changed or removed; anything else in the folder belongs to the user.
/// </summary>
public sealed class OwnedFiles
{
    public const string FileName = ".rtt-owned.json";
    public const string Format = "rtt.view-owned/1";

    private OwnedFiles(string provider, SortedDictionary<string, string> files, bool existed)
    {
        Provider = provider;
        Files = files;
        Existed = existed;
    }

    public string Provider { get; }

    /// <summary>Path relative to the provider folder -> <c>sha256:</c> of the bytes written.</summary>
    public SortedDictionary<string, string> Files { get; }

    public bool Existed { get; }

    public static OwnedFiles Empty(string provider) => new(provider, new(StringComparer.Ordinal), false);

    public static OwnedFiles Load(string providerDir, string provider)
    {
        var path = Path.Combine(providerDir, FileName);
        if (!File.Exists(path))
        {
            return Empty(provider);
        }

        var root = CanonicalJson.ParseNode(File.ReadAllBytes(path), path) as JsonObject;
        if (root is null || (string?)root["format"] != Format || root["files"] is not JsonObject files)
        {
            throw Damaged(path, $"expected {{\"format\": \"{Format}\", \"files\": {{…}}}}");
        }

        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (rel, value) in files)
        {
            var hash = value is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            if (!ContentHash.IsValid(hash))
            {
                throw Damaged(path, $"entry \"{rel}\" has no sha256 hash");
            }

            // A tampered manifest must not make a build delete a file elsewhere: every entry stays in this folder.
            CheckRelative(rel, $"{path}: {rel}", ErrorCodes.ViewOwnedInvalid);
            result[rel] = hash!;
        }

        return new OwnedFiles(provider, result, true);
    }

    public byte[] ToBytes()
    {
        var files = new JsonObject();
        foreach (var (rel, hash) in Files)
        {
            files[rel] = hash;
        }

        return PrettyJson.ToUtf8(new JsonObject { ["format"] = Format, ["provider"] = Provider, ["files"] = files });
    }

    /// <summary>A path relative to a provider folder: <c>/</c>-separated, no empty, <c>.</c> or <c>..</c> segment, not absolute.</summary>
    public static void CheckRelative(string rel, string where, string code = ErrorCodes.ViewTargetOutside)
    {
        var segments = rel.Split('/');
        if (rel.Length == 0 || rel.Contains('\\', StringComparison.Ordinal) || rel.Contains('\0', StringComparison.Ordinal) || Path.IsPathRooted(rel)
            || segments.Any(s => s.Length == 0 || s == "." || s == ".."))
        {
            throw new RttException(code, $"path \"{rel}\" leaves its provider folder", where,
                code == ErrorCodes.ViewOwnedInvalid ? "restore the manifest or delete it (rtt then owns nothing in that folder)" : "use plain names without .. or separators");
        }
    }

    private static RttException Damaged(string path, string why) =>
        new(ErrorCodes.ViewOwnedInvalid, $"owned-files manifest is damaged: {why}", path, "restore it, or delete it (rtt then owns nothing in that folder)");
}
