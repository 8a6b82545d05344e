using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

namespace Rtt.Cli.Tests;

/// <summary>
/// Hostile capability tokens (issue 17) for the bad-input suite: each plants a token in <c>token.txt</c> of a fresh
/// workspace copy and runs `rtt token verify` (or attenuate/issue/revoke) on it; each must be refused with its own
/// RTT-TOKEN code, in one or two lines, no stack trace, no hang, the workspace unchanged.
/// </summary>
public static class BadTokens
{
    private const string Cls = "capability tokens";
    private const string File = "token.txt";
    private static readonly string[] Verify = ["token", "verify", "@{ws}/token.txt"];
    private static readonly string[] Verbs = ["open", "rx", "tx"];

    public static IEnumerable<BadInput> All()
    {
        // Encoding (RTT-TOKEN-001)
        yield return Text("empty body after the prefix", "rtt1.", "RTT-TOKEN-001");
        yield return Text("wrong version prefix", "rtt2.e30", "RTT-TOKEN-001");
        yield return Text("a JWT instead", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "RTT-TOKEN-001");
        yield return Mangle("standard base64 alphabet", t => t.Replace('-', '+').Replace('_', '/') + "+/", "RTT-TOKEN-001");
        yield return Mangle("padding appended", t => t + "==", "RTT-TOKEN-001");
        yield return Mangle("space inside", t => t.Insert(20, " "), "RTT-TOKEN-001");
        yield return Mangle("non-ASCII character inside", t => t.Insert(20, "é"), "RTT-TOKEN-001");
        yield return Mangle("impossible length", t =>
        {
            while ((t.Length - 5) % 4 != 1)
            {
                t += "A";
            }

            return t;
        }, "RTT-TOKEN-001");
        yield return Text("NUL bytes", "rtt1.\0\0\0\0", "RTT-TOKEN-001");
        yield return Raw("not JSON", "not json at all"u8.ToArray(), "RTT-TOKEN-001");
        yield return Raw("a JSON array", "[]"u8.ToArray(), "RTT-TOKEN-001");
        yield return Raw("invalid UTF-8", [0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d], "RTT-TOKEN-001");
        yield return Raw("duplicate member", """{"format":"rtt.token/1","format":"rtt.token/1"}"""u8.ToArray(), "RTT-TOKEN-001");
        yield return Raw("nesting 100", Encoding.UTF8.GetBytes(new string('[', 100) + new string(']', 100)), "RTT-TOKEN-001");
        yield return Planted("not canonical: spaces", ws => Base("rtt1." + CapabilityToken.Base64Url(Encoding.UTF8.GetBytes(Decode(Issue(ws)).ToJsonString(new() { WriteIndented = true })))), Verify, "RTT-TOKEN-001");
        yield return Planted("not canonical: member order", ws => Base("rtt1." + CapabilityToken.Base64Url(Encoding.UTF8.GetBytes(Reorder(Decode(Issue(ws)))))), Verify, "RTT-TOKEN-001");

        // Shape (RTT-TOKEN-002)
        yield return Edit("format version 2", (_, e) => e["format"] = "rtt.token/2", "RTT-TOKEN-002");
        yield return Edit("no blocks", (_, e) => e["blocks"] = new JsonArray(), "RTT-TOKEN-002");
        yield return Edit("blocks not a list", (_, e) => e["blocks"] = "x", "RTT-TOKEN-002");
        yield return Edit("no proof", (_, e) => e.Remove("proof"), "RTT-TOKEN-002");
        yield return Edit("unknown top-level member", (_, e) => e["admin"] = true, "RTT-TOKEN-002");
        yield return Body("authority kind changed", b => b["kind"] = "attenuation", "RTT-TOKEN-002");
        yield return Body("unknown body member", b => b["role"] = "root", "RTT-TOKEN-002");
        yield return Body("nonce missing", b => b.Remove("nonce"), "RTT-TOKEN-002");
        yield return Body("nonce of 16 bytes", b => b["nonce"] = CapabilityToken.Base64Url(new byte[16]), "RTT-TOKEN-002");
        yield return Body("token id uppercase", b => b["token_id"] = ((string)b["token_id"]!).ToUpperInvariant(), "RTT-TOKEN-002");
        yield return Body("issuer not a key id", b => b["issuer"] = "default", "RTT-TOKEN-002");
        yield return Body("exp not a time", b => b["exp"] = "tomorrow", "RTT-TOKEN-002");
        yield return Body("exp with offset", b => b["exp"] = "2030-01-01T00:00:00+01:00", "RTT-TOKEN-002");
        yield return Body("exp a number", b => b["exp"] = 1893456000, "RTT-TOKEN-002");
        yield return Body("exp before nbf", b => b["exp"] = "2000-01-01T00:00:00Z", "RTT-TOKEN-002");
        yield return Body("lifetime of a year", b => b["exp"] = CapabilityToken.Time(DateTimeOffset.UtcNow.AddDays(365)), "RTT-TOKEN-002");
        yield return Body("unknown verb", b => b["verbs"] = new JsonArray("admin", "open"), "RTT-TOKEN-002");
        yield return Body("verbs unsorted", b => b["verbs"] = new JsonArray("tx", "open"), "RTT-TOKEN-002");
        yield return Body("no verbs", b => b["verbs"] = new JsonArray(), "RTT-TOKEN-002");
        yield return Body("scope uppercase", b => b["scopes"] = new JsonArray("Admin"), "RTT-TOKEN-002");
        yield return Body("saddr not rtt", b => b["saddr"] = "http://core/api/upper", "RTT-TOKEN-002");
        yield return Body("saddr star inside", b => b["saddr"] = "rtt://*/api/upper", "RTT-TOKEN-002");
        yield return Body("next_key of 31 bytes", b => b["next_key"] = Convert.ToBase64String(new byte[31]), "RTT-TOKEN-002");
        yield return Edit("sig of 32 bytes", (_, e) => ((JsonObject)((JsonArray)e["blocks"]!)[0]!)["sig"] = Convert.ToBase64String(new byte[32]), "RTT-TOKEN-002");
        yield return Edit("sig not base64", (_, e) => ((JsonObject)((JsonArray)e["blocks"]!)[0]!)["sig"] = "!!!!", "RTT-TOKEN-002");
        yield return Edit("proof with secret and seal", (_, e) => ((JsonObject)e["proof"]!)["seal"] = Convert.ToBase64String(new byte[64]), "RTT-TOKEN-002");
        yield return Edit("proof secret of 16 bytes", (_, e) => e["proof"] = new JsonObject { ["secret"] = Convert.ToBase64String(new byte[16]) }, "RTT-TOKEN-002");

        // Size (RTT-TOKEN-003)
        yield return Mangle("9,000 characters", t => t + new string('A', 9000), "RTT-TOKEN-003");
        yield return Planted("nine blocks", ws =>
        {
            var t = Issue(ws);
            for (var i = 0; i < 8; i++)
            {
                t = CapabilityToken.Attenuate(t, new TokenNarrowing(Verbs: Verbs));
            }

            return Base(t);
        }, Verify, "RTT-TOKEN-003");

        // Issuer (RTT-TOKEN-004, 005)
        yield return Planted("issuer not trusted here", _ =>
        {
            using var stranger = SigningKey.Generate();
            return Base(CapabilityToken.Issue(stranger, "rtt://core/api/*", Verbs, [], TimeSpan.FromMinutes(5), DateTimeOffset.UtcNow));
        }, Verify, "RTT-TOKEN-004");
        yield return Planted("issuer revoked", ws =>
        {
            var t = Issue(ws);
            using var key = RttWorkspace.Open(ws).LoadSigningKey();
            TrustStore.Revoke(RttWorkspace.Open(ws).Trust, key.KeyId, "compromised in a test", DateTimeOffset.UtcNow);
            return Base(t);
        }, Verify, "RTT-TOKEN-005");

        // Signatures (RTT-TOKEN-006)
        yield return Body("authority widened after signing", b => b["saddr"] = "rtt://*", "RTT-TOKEN-006");
        yield return Body("authority lifetime extended after signing", b => b["exp"] = CapabilityToken.Time(DateTimeOffset.UtcNow.AddDays(2)), "RTT-TOKEN-006");
        yield return Edit("authority signature flipped", (_, e) => Flip((JsonObject)((JsonArray)e["blocks"]!)[0]!), "RTT-TOKEN-006");
        yield return Edit("attenuation signature flipped", (_, e) => Flip((JsonObject)((JsonArray)e["blocks"]!)[1]!), "RTT-TOKEN-006", attenuated: 1);
        yield return Edit("attenuation body narrowed after signing", (_, e) => ((JsonObject)((JsonObject)((JsonArray)e["blocks"]!)[1]!)["body"]!)["verbs"] = new JsonArray("open"), "RTT-TOKEN-006", attenuated: 1);

        // Chain (RTT-TOKEN-007)
        yield return Edit("blocks reordered", (_, e) =>
        {
            var blocks = (JsonArray)e["blocks"]!;
            var one = blocks[1]!.DeepClone();
            blocks[1] = blocks[2]!.DeepClone();
            blocks[2] = one;
        }, "RTT-TOKEN-007", attenuated: 2);
        yield return Edit("block spliced from another token", (ws, e) =>
        {
            var other = Decode(CapabilityToken.Attenuate(Issue(ws), new TokenNarrowing(Verbs: ["open", "tx"])));
            ((JsonArray)e["blocks"]!)[1] = ((JsonArray)other["blocks"]!)[1]!.DeepClone();
        }, "RTT-TOKEN-007", attenuated: 1);
        yield return Edit("middle block dropped", (_, e) => ((JsonArray)e["blocks"]!).RemoveAt(1), "RTT-TOKEN-007", attenuated: 2);

        // Proof (RTT-TOKEN-008)
        yield return Edit("last block dropped", (_, e) => ((JsonArray)e["blocks"]!).RemoveAt(2), "RTT-TOKEN-008", attenuated: 2);
        yield return Edit("proof secret replaced", (_, e) => e["proof"] = new JsonObject { ["secret"] = Convert.ToBase64String(new byte[32]) }, "RTT-TOKEN-008");
        yield return Edit("seal forged", (_, e) => e["proof"] = new JsonObject { ["seal"] = Convert.ToBase64String(new byte[64]) }, "RTT-TOKEN-008");
        yield return Planted("sealed, last block dropped", ws =>
        {
            var e = Decode(CapabilityToken.Seal(CapabilityToken.Attenuate(Issue(ws), new TokenNarrowing(Verbs: ["open", "tx"]))));
            ((JsonArray)e["blocks"]!).RemoveAt(1);
            return Base(Encode(e));
        }, Verify, "RTT-TOKEN-008");

        // Widening (RTT-TOKEN-009): blocks signed correctly with the holder's secret, but broader than the one before.
        yield return Forged("forged block adds a verb", b => b["verbs"] = new JsonArray("close", "open", "rx", "tx"), "RTT-TOKEN-009");
        yield return Forged("forged block extends expiry", b => b["exp"] = CapabilityToken.Time(DateTimeOffset.UtcNow.AddDays(1)), "RTT-TOKEN-009");
        yield return Forged("forged block widens saddr", b => b["saddr"] = "rtt://*", "RTT-TOKEN-009");
        yield return Forged("forged block moves saddr", b => b["saddr"] = "rtt://mcp/*", "RTT-TOKEN-009");
        yield return Forged("forged block adds a scope", b => b["scopes"] = new JsonArray("admin", "metrics.read"), "RTT-TOKEN-009");
        yield return Planted("attenuate with more verbs", ws => Base(Issue(ws, verbs: ["open", "tx"])), ["token", "attenuate", "@{ws}/token.txt", "--verb", "open,tx,close"], "RTT-TOKEN-009");
        yield return Planted("attenuate to a later expiry", ws => Base(Issue(ws)), ["token", "attenuate", "@{ws}/token.txt", "--ttl", "1h"], "RTT-TOKEN-009");
        yield return Planted("attenuate to another area", ws => Base(Issue(ws)), ["token", "attenuate", "@{ws}/token.txt", "--saddr", "rtt://mcp/*"], "RTT-TOKEN-009");

        // Time, revocation, replay (RTT-TOKEN-010 … 013)
        yield return Planted("expired", ws => Base(Issue(ws, now: DateTimeOffset.UtcNow.AddMinutes(-10))), Verify, "RTT-TOKEN-010");
        yield return Planted("attenuated to an expiry already past", ws => Base(CapabilityToken.Attenuate(Issue(ws, now: DateTimeOffset.UtcNow.AddSeconds(-30)),
            new TokenNarrowing(Expires: DateTimeOffset.UtcNow.AddSeconds(-20)))), Verify, "RTT-TOKEN-010");
        yield return Planted("not yet valid", ws => Base(Issue(ws, now: DateTimeOffset.UtcNow.AddHours(1))), Verify, "RTT-TOKEN-011");
        yield return Planted("revoked by id", ws =>
        {
            var t = Issue(ws);
            RevokedTokens.Revoke(RttWorkspace.Open(ws), CapabilityToken.Parse(t).TokenId, "leaked", DateTimeOffset.UtcNow);
            return Base(t);
        }, Verify, "RTT-TOKEN-012");
        yield return Planted("attenuation of a revoked token", ws =>
        {
            var t = Issue(ws);
            RevokedTokens.Revoke(RttWorkspace.Open(ws), CapabilityToken.Parse(t).TokenId, "leaked", DateTimeOffset.UtcNow);
            return Base(CapabilityToken.Attenuate(t, new TokenNarrowing(Verbs: ["open", "tx"])));
        }, Verify, "RTT-TOKEN-012");
        yield return Planted("replayed nonce", ws => Base(Issue(ws)), ["token", "verify", "@{ws}/token.txt", "@{ws}/token.txt", "--once"], "RTT-TOKEN-013");
        yield return Planted("replayed through an attenuation", ws =>
        {
            var t = Issue(ws);
            System.IO.File.WriteAllText(Path.Combine(ws, "token2.txt"), CapabilityToken.Attenuate(t, new TokenNarrowing(Verbs: ["open", "rx", "tx"])));
            return Base(t);
        }, ["token", "verify", "@{ws}/token.txt", "@{ws}/token2.txt", "--once"], "RTT-TOKEN-013");

        // Rights (RTT-TOKEN-014, 015), missing (016), sealed (017)
        yield return Planted("another route", ws => Base(CapabilityToken.Attenuate(Issue(ws), new TokenNarrowing("rtt://core/api/upper"))),
            ["token", "verify", "@{ws}/token.txt", "--saddr", "rtt://core/api/reverse"], "RTT-TOKEN-014");
        yield return Planted("exact pattern is no prefix", ws => Base(Issue(ws, saddr: "rtt://core/api/up")),
            ["token", "verify", "@{ws}/token.txt", "--saddr", "rtt://core/api/upper"], "RTT-TOKEN-014");
        yield return Planted("verb not granted", ws => Base(Issue(ws, verbs: ["open", "rx"])), ["token", "verify", "@{ws}/token.txt", "--saddr", "rtt://core/api/upper", "--verb", "open,tx"], "RTT-TOKEN-015");
        yield return Case("empty argument", _ => { }, ["token", "verify", ""], "RTT-TOKEN-016");
        yield return Case("only whitespace", _ => { }, ["token", "verify", "  \t "], "RTT-TOKEN-016");
        yield return Planted("attenuate a sealed token", ws => Base(CapabilityToken.Seal(Issue(ws))), ["token", "attenuate", "@{ws}/token.txt", "--verb", "open"], "RTT-TOKEN-017");

        // Requests (RTT-TOKEN-020)
        yield return Case("issue for zero seconds", _ => { }, ["token", "issue", "--saddr", "rtt://core/*", "--ttl", "0s"], "RTT-TOKEN-020");
        yield return Case("issue for 31 days", _ => { }, ["token", "issue", "--saddr", "rtt://core/*", "--ttl", "31d"], "RTT-TOKEN-020");
        yield return Case("issue a made-up verb", _ => { }, ["token", "issue", "--saddr", "rtt://core/*", "--verb", "open,fly"], "RTT-TOKEN-020");
        yield return Case("issue for a URL", _ => { }, ["token", "issue", "--saddr", "https://example.com/*"], "RTT-TOKEN-020");
        yield return Case("issue a lifetime in weeks", _ => { }, ["token", "issue", "--saddr", "rtt://core/*", "--ttl", "2w"], "RTT-TOKEN-020");
        yield return Case("revoke a name, not an id", _ => { }, ["token", "revoke", "my-token"], "RTT-TOKEN-020");
    }

    private static BadInput Case(string name, Action<string> plant, string[] args, string code) => new(Cls, name, plant, args, code);

    private static BadInput Planted(string name, Func<string, Action<string>> plant, string[] args, string code) => new(Cls, name, ws => plant(ws)(ws), args, code);

    private static Action<string> Base(string token) => ws => System.IO.File.WriteAllText(Path.Combine(ws, File), token);

    private static BadInput Text(string name, string text, string code) => Planted(name, _ => Base(text), Verify, code);

    private static BadInput Raw(string name, byte[] bytes, string code) => Text(name, "rtt1." + CapabilityToken.Base64Url(bytes), code);

    private static BadInput Mangle(string name, Func<string, string> change, string code) => Planted(name, ws => Base(change(Issue(ws))), Verify, code);

    private static BadInput Edit(string name, Action<string, JsonObject> change, string code, int attenuated = 0) => Planted(name, ws =>
    {
        var t = Issue(ws);
        for (var i = 0; i < attenuated; i++)
        {
            t = CapabilityToken.Attenuate(t, new TokenNarrowing(Verbs: i == 0 ? ["open", "tx"] : ["open"]));
        }

        var e = Decode(t);
        change(ws, e);
        return Base(Encode(e));
    }, Verify, code);

    private static BadInput Body(string name, Action<JsonObject> change, string code) =>
        Edit(name, (_, e) => change((JsonObject)((JsonObject)((JsonArray)e["blocks"]!)[0]!)["body"]!), code);

    /// <summary>A second block that widens, correctly signed with the token's proof secret (what a holder could forge).</summary>
    private static BadInput Forged(string name, Action<JsonObject> widen, string code) => Planted(name, ws =>
    {
        var e = Decode(Issue(ws, saddr: "rtt://core/api/*", verbs: ["open", "rx", "tx"], scopes: ["metrics.read"]));
        var blocks = (JsonArray)e["blocks"]!;
        using var holder = SigningKey.FromSeed(Convert.FromBase64String((string)e["proof"]!["secret"]!));
        using var next = SigningKey.Generate();
        var body = new JsonObject { ["kind"] = "attenuation", ["prev"] = (string)blocks[0]!["sig"]!, ["next_key"] = Convert.ToBase64String(next.PublicKey.RawPublicKey) };
        widen(body);
        blocks.Add(new JsonObject { ["body"] = body, ["sig"] = Convert.ToBase64String(holder.Sign(CanonicalJson.Serialize(body))) });
        e["proof"] = new JsonObject { ["secret"] = (string)next.ToPrivateKeyJson()["private_key"]! };
        return Base(Encode(e));
    }, Verify, code);

    private static string Issue(string ws, string saddr = "rtt://core/api/*", string[]? verbs = null, string[]? scopes = null, DateTimeOffset? now = null)
    {
        using var key = RttWorkspace.Open(ws).LoadSigningKey();
        return CapabilityToken.Issue(key, saddr, verbs ?? Verbs, scopes ?? ["metrics.read"], TimeSpan.FromMinutes(5), now ?? DateTimeOffset.UtcNow);
    }

    private static JsonObject Decode(string token) => (JsonObject)JsonNode.Parse(CapabilityToken.FromBase64Url(token.AsSpan(5))!)!;

    private static string Encode(JsonObject envelope) => "rtt1." + CapabilityToken.Base64Url(CanonicalJson.Serialize(envelope));

    private static void Flip(JsonObject block)
    {
        var sig = Convert.FromBase64String((string)block["sig"]!);
        sig[10] ^= 0x01;
        block["sig"] = Convert.ToBase64String(sig);
    }

    /// <summary>The envelope with its members in reverse order (valid JSON, not canonical).</summary>
    private static string Reorder(JsonObject envelope)
    {
        var parts = envelope.Reverse().Select(p => $"\"{p.Key}\":{CanonicalJson.ToCanonicalString(p.Value)}");
        return "{" + string.Join(",", parts) + "}";
    }
}
