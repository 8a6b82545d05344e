using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Json;

namespace Rtt.Core.Hashing;

/// <summary>
/// <c>sha256:&lt;64 lowercase hex&gt;</c> content hashes. Objects are hashed over their RFC 8785
/// canonical bytes, so the hash does not depend on member order or white space.
/// </summary>
public static class ContentHash
{
    public const string Prefix = "sha256:";

    /// <summary>Hash of raw bytes.</summary>
    public static string Of(ReadOnlySpan<byte> bytes)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(bytes, digest);
        return Format(digest);
    }

    /// <summary>Hash of the canonical bytes of a JSON node.</summary>
    public static string OfCanonical(JsonNode? node) => Of(CanonicalJson.Serialize(node));

    /// <summary>Hash of the canonical bytes of a JSON element.</summary>
    public static string OfCanonical(JsonElement element) => Of(CanonicalJson.Serialize(element));

    /// <summary>Formats a 32-byte digest as <c>sha256:hex</c>.</summary>
    public static string Format(ReadOnlySpan<byte> digest) => Prefix + Convert.ToHexStringLower(digest);

    /// <summary>True when <paramref name="value"/> is a well-formed <c>sha256:</c> hash.</summary>
    public static bool IsValid(string? value)
    {
        if (value is null || value.Length != Prefix.Length + 64 || !value.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in value.AsSpan(Prefix.Length))
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return true;
    }
}
