using System.Text.Json.Nodes;
using Rtt.Core.Hashing;

namespace Rtt.Registry;

/// <summary>
/// The MCP primitives other than tools that RTT pins and routes (docs/gateway.md, "Prompts and resources"): prompts,
/// resources and resource templates. Each has a key on its server (a prompt's name, a resource's URI, a template's URI
/// template), a symbol <c>rtt://mcp/&lt;server&gt;/&lt;tag&gt;.&lt;key encoded&gt;</c> (one segment, so
/// <c>rtt://mcp/&lt;server&gt;/*</c> covers it; see <see cref="Symbol"/>),
/// a registry object kind and a pin: the sha256 of the canonical definition members below, computed the same way at
/// ingest and by the silo on the live list (drift).
/// </summary>
public sealed record McpPrimitive(string Kind, string ListMember, string KeyMember, string SymbolTag, string ObjectKind, string[] Pinned)
{
    public static readonly McpPrimitive Prompt = new("prompt", "prompts", "name", "prompt", "mcp-prompt", ["name", "title", "description", "arguments", "icons"]);

    public static readonly McpPrimitive Resource = new("resource", "resources", "uri", "resource", "mcp-resource", ["uri", "name", "title", "description", "mimeType", "annotations", "icons"]);

    public static readonly McpPrimitive Template = new("resource-template", "resourceTemplates", "uriTemplate", "template", "mcp-resource-template",
        ["uriTemplate", "name", "title", "description", "mimeType", "annotations", "icons"]);

    /// <summary>In manifest order (after the tools).</summary>
    public static readonly IReadOnlyList<McpPrimitive> All = [Prompt, Resource, Template];

    /// <summary>The primitive of a registry object kind or serve-block primitive name (null: a tool).</summary>
    public static McpPrimitive? Of(string? kindOrObjectKind) =>
        All.FirstOrDefault(p => p.Kind == kindOrObjectKind || p.ObjectKind == kindOrObjectKind);

    /// <summary>The registry kinds of symbols that are MCP primitives served by an MCP endpoint (tools included).</summary>
    public static bool IsMcpKind(string kind) => kind == "mcp-tool" || Of(kind) is not null;

    /// <summary>The definition as pinned: only the members above, from a protocol object's JSON.</summary>
    public JsonObject Definition(JsonObject json)
    {
        var kept = new JsonObject();
        foreach (var member in Pinned)
        {
            if (json[member] is { } value)
            {
                kept[member] = value.DeepClone();
            }
        }

        return kept;
    }

    public string Pin(JsonObject json) => ContentHash.OfCanonical(Definition(json));

    /// <summary>
    /// The symbol: <c>rtt://mcp/&lt;server&gt;/&lt;tag&gt;.&lt;key encoded&gt;</c>, where the encoding keeps
    /// <c>A-Z a-z 0-9 _ -</c> and writes every other UTF-8 byte as <c>.XX</c> (hex), so the symbol fits the routes'
    /// address pattern and decodes back to the key.
    /// </summary>
    public string Symbol(string server, string key) => $"rtt://mcp/{server}/{SymbolTag}.{Encode(key)}";

    public static string Encode(string key)
    {
        var text = new System.Text.StringBuilder();
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(key))
        {
            var c = (char)b;
            if (b < 0x80 && (char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
            {
                text.Append(c);
            }
            else
            {
                text.Append('.').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return text.ToString();
    }

    public static string? Decode(string encoded)
    {
        var bytes = new List<byte>();
        for (var i = 0; i < encoded.Length; i++)
        {
            if (encoded[i] != '.')
            {
                bytes.Add((byte)encoded[i]);
            }
            else if (i + 2 < encoded.Length && byte.TryParse(encoded.AsSpan(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out var b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                return null;
            }
        }

        return System.Text.Encoding.UTF8.GetString([.. bytes]);
    }

    /// <summary>
    /// The server and key of this primitive's symbol (null when the symbol is not of this shape). Only for symbols known
    /// to be of this primitive (from their registry kind or the plan's <c>tool.primitive</c>): a tool may be named
    /// <c>prompt.x</c>; ingest refuses a server whose tool and prompt would share a symbol.
    /// </summary>
    public (string Server, string Key)? Parse(string symbol)
    {
        const string prefix = "rtt://mcp/";
        if (!symbol.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = symbol[prefix.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || !rest.AsSpan(slash + 1).StartsWith(SymbolTag + ".", StringComparison.Ordinal)
            || Decode(rest[(slash + 1 + SymbolTag.Length + 1)..]) is not { } key)
        {
            return null;
        }

        return (rest[..slash], key);
    }

    /// <summary>
    /// Whether <paramref name="uri"/> is one the URI template (RFC 6570) can produce: literal parts as they are, a
    /// <c>{var}</c> one value without <c>/ ? #</c>, <c>{+var}</c>/<c>{#var}</c> anything, <c>{?q}</c>/<c>{&amp;q}</c> an optional query part.
    /// </summary>
    public static bool TemplateMatches(string template, string uri)
    {
        var pattern = new System.Text.StringBuilder("^");
        var i = 0;
        while (i < template.Length)
        {
            var open = template.IndexOf('{', i);
            if (open < 0)
            {
                pattern.Append(System.Text.RegularExpressions.Regex.Escape(template[i..]));
                break;
            }

            var close = template.IndexOf('}', open);
            if (close < 0)
            {
                return false;
            }

            pattern.Append(System.Text.RegularExpressions.Regex.Escape(template[i..open]));
            pattern.Append((close > open + 1 ? template[open + 1] : ' ') switch
            {
                '+' or '#' => ".*",
                '?' or '&' => @"([?&][^#]*)?",
                '/' => "(/[^?#]*)?",
                _ => "[^/?#]*",
            });
            i = close + 1;
        }

        return System.Text.RegularExpressions.Regex.IsMatch(uri, pattern.Append('$').ToString(), System.Text.RegularExpressions.RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }
}
