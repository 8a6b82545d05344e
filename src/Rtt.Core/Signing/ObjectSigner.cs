using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;

namespace Rtt.Core.Signing;

/// <summary>
/// Signs and reads the <c>sign</c> block of a JSON object: <c>{"alg":"ed25519","key_id","sig"}</c>,
/// the signature taken over the RFC 8785 bytes of the object without its <c>sign</c> member.
/// </summary>
public static class ObjectSigner
{
    public const string SignMember = "sign";

    /// <summary>The bytes a signature covers: the canonical object with its <c>sign</c> member removed.</summary>
    public static byte[] SigningPayload(JsonObject obj)
    {
        if (!obj.ContainsKey(SignMember))
        {
            return CanonicalJson.Serialize(obj); // nothing to leave out: no copy (a 10,000-route plan is tens of MB of nodes)
        }

        // The other members as they are (no deep copy of the object to drop one member): the same bytes.
        return CanonicalJson.SerializeMembers([.. obj.Where(m => m.Key != SignMember)]);
    }

    /// <summary>Returns a copy of <paramref name="obj"/> with a fresh <c>sign</c> block (any old one replaced).</summary>
    public static JsonObject Sign(JsonObject obj, SigningKey key)
    {
        var signature = key.Sign(SigningPayload(obj));
        var signed = (JsonObject)obj.DeepClone();
        signed[SignMember] = new JsonObject
        {
            ["alg"] = "ed25519",
            ["key_id"] = key.KeyId,
            ["sig"] = Convert.ToBase64String(signature),
        };
        return signed;
    }

    /// <summary>Adds a fresh <c>sign</c> block to <paramref name="obj"/> itself (which has none), for callers that own it.</summary>
    internal static JsonObject SignInPlace(JsonObject obj, SigningKey key)
    {
        var signature = key.Sign(SigningPayload(obj));
        obj[SignMember] = new JsonObject
        {
            ["alg"] = "ed25519",
            ["key_id"] = key.KeyId,
            ["sig"] = Convert.ToBase64String(signature),
        };
        return obj;
    }

    /// <summary>Reads the sign block, or throws <see cref="ErrorCodes.Unsigned"/> / <see cref="ErrorCodes.SignatureMalformed"/>.</summary>
    public static SignBlock ReadSignBlock(JsonObject obj, string? location = null)
    {
        if (obj[SignMember] is not JsonObject sign)
        {
            if (obj.ContainsKey(SignMember))
            {
                // "sign": 42 (or a string, a list, null) is a malformed sign block, not an absent one.
                var kind = obj[SignMember]?.GetValueKind() switch
                {
                    null or System.Text.Json.JsonValueKind.Null => "null",
                    System.Text.Json.JsonValueKind.Array => "a list",
                    System.Text.Json.JsonValueKind.String => "a string",
                    System.Text.Json.JsonValueKind.Number => "a number",
                    _ => "a boolean",
                };
                throw new SigningException(ErrorCodes.SignatureMalformed,
                    $"the \"sign\" member is {kind}, not a sign block {{\"alg\":\"ed25519\",\"key_id\":\"sha256:…\",\"sig\":\"<base64>\"}}", location,
                    "remove the \"sign\" member (rtt signs the object when it ingests it) or re-sign the object");
            }

            throw new SigningException(ErrorCodes.Unsigned, "object is not signed (no \"sign\" member)", location,
                "sign it with the workspace key, or turn strict mode off to accept unsigned objects");
        }

        var alg = sign["alg"] is JsonValue a && a.TryGetValue<string>(out var algText) ? algText : null;
        var keyId = sign["key_id"] is JsonValue k && k.TryGetValue<string>(out var keyText) ? keyText : null;
        var sigText = sign["sig"] is JsonValue s && s.TryGetValue<string>(out var st) ? st : null;
        if (alg != "ed25519" || keyId is null || sigText is null)
        {
            throw new SigningException(ErrorCodes.SignatureMalformed,
                "sign block must be {\"alg\":\"ed25519\",\"key_id\":\"sha256:…\",\"sig\":\"<base64>\"}", location,
                "re-sign the object");
        }

        byte[] sig;
        try
        {
            sig = Convert.FromBase64String(sigText);
        }
        catch (FormatException)
        {
            throw new SigningException(ErrorCodes.SignatureMalformed, "sign.sig is not base64", location, "re-sign the object");
        }

        return new SignBlock(alg, keyId, sig);
    }
}

/// <summary>A parsed <c>sign</c> block.</summary>
public sealed record SignBlock(string Alg, string KeyId, byte[] Signature);
