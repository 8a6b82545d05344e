using System.Text.Json;

namespace Rtt.Registry;

/// <summary>
/// A fast check that a symbol manifest surely matches <c>manifest.schema.json</c>, in one walk over its members (no
/// schema evaluation: JsonSchema.Net costs about 0.2 ms per manifest, and `rtt plan` reads every manifest file of the
/// workspace). It only answers "surely valid" or "not sure": anything it does not recognise exactly (an unknown or
/// repeated member, a number it cannot read, a string with surrogates, an address outside plain ASCII) goes to the
/// schema, which stays the judge and names the fault.
/// </summary>
public static class ManifestShape
{
    public static bool SurelyValid(JsonElement root)
    {
        try
        {
            return Walk(root);
        }
        catch (InvalidOperationException)
        {
            return false; // a string the reader cannot decode: the schema's path reports it
        }
    }

    private static bool Walk(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        var seen = 0; // one bit per member of the schema's properties
        foreach (var member in root.EnumerateObject())
        {
            var (bit, ok) = member.Name switch
            {
                "address" => (1, member.Value.ValueKind == JsonValueKind.String && Address(member.Value.GetString()!)),
                "version" => (2, PlainString(member.Value)),
                "input" => (4, TypeRef(member.Value)),
                "output" => (8, TypeRef(member.Value)),
                "description" => (16, PlainString(member.Value)),
                "compatible_with" => (32, StringArray(member.Value)),
                "lanes" => (64, Lanes(member.Value)),
                "latency_us" => (128, NonNegative(member.Value)),
                "demand" => (256, Demand(member.Value)),
                "serve" => (512, member.Value.ValueKind == JsonValueKind.Object),
                "sign" => (1024, member.Value.ValueKind == JsonValueKind.Object),
                _ => (0, false),
            };
            if (bit == 0 || !ok || (seen & bit) != 0)
            {
                return false; // an x- member (allowed, but rare) also goes to the schema
            }

            seen |= bit;
        }

        return (seen & 15) == 15; // address, version, input and output are required
    }

    /// <summary>
    /// A symbol address the schemas' pattern surely accepts: <c>rtt://</c>, two segments of lower-case letters, digits and
    /// hyphens (not starting with a hyphen), then a name of ASCII letters, digits, dots, underscores and hyphens.
    /// </summary>
    public static bool Address(string s)
    {
        if (!s.StartsWith("rtt://", StringComparison.Ordinal))
        {
            return false;
        }

        var i = 6;
        for (var segment = 0; segment < 2; segment++)
        {
            if (i >= s.Length || !IsLowerOrDigit(s[i]))
            {
                return false;
            }

            i++;
            while (i < s.Length && (IsLowerOrDigit(s[i]) || s[i] == '-'))
            {
                i++;
            }

            if (i >= s.Length || s[i] != '/')
            {
                return false;
            }

            i++;
        }

        if (i >= s.Length || !char.IsAsciiLetterOrDigit(s[i]))
        {
            return false;
        }

        for (i++; i < s.Length; i++)
        {
            if (!(char.IsAsciiLetterOrDigit(s[i]) || s[i] is '.' or '_' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsLowerOrDigit(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');

    private static bool PlainString(JsonElement e) => e.ValueKind == JsonValueKind.String && !HasSurrogate(e.GetString()!);

    private static bool TypeRef(JsonElement e) => e.ValueKind == JsonValueKind.Object || (PlainString(e) && e.GetString()!.Length > 0);

    private static bool NonNegative(JsonElement e) => e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out var d) && double.IsFinite(d) && d >= 0;

    private static bool StringArray(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Array)
        {
            return false;
        }

        foreach (var item in e.EnumerateArray())
        {
            if (!PlainString(item))
            {
                return false;
            }
        }

        return true;
    }

    private static bool Lanes(JsonElement e) => e.ValueKind == JsonValueKind.Array && Once(e.EnumerateArray().Select(item =>
        item.ValueKind != JsonValueKind.String ? 0 : item.GetString() switch
        {
            "shm" => 1,
            "uds" => 2,
            "tcp" => 4,
            _ => 0,
        }));

    private static bool Demand(JsonElement e) => e.ValueKind == JsonValueKind.Object && Once(e.EnumerateObject().Select(member =>
        !NonNegative(member.Value) ? 0 : member.Name switch
        {
            "cpu_millis" => 1,
            "memory_mb" => 2,
            _ => 0,
        }));

    // Each a known name (bit 0: unknown, or a value not allowed) and none twice.
    private static bool Once(IEnumerable<int> bits)
    {
        var seen = 0;
        foreach (var bit in bits)
        {
            if (bit == 0 || (seen & bit) != 0)
            {
                return false;
            }

            seen |= bit;
        }

        return true;
    }

    private static bool HasSurrogate(string s)
    {
        foreach (var c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }
}
