using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt token issue|attenuate|inspect|verify|revoke</c>: capability tokens (docs/tokens.md).</summary>
public static class TokenCommand
{
    public static Command Create()
    {
        var token = new Command("token", "Capability tokens: issue, attenuate (offline), inspect, verify, revoke (docs/tokens.md)");

        var saddr = new Option<string>("--saddr") { Description = "Symbol pattern: rtt://area/kind/name, or a prefix ending in * (rtt://core/api/*)", Required = true };
        var verb = new Option<string>("--verb") { Description = "Verbs, comma-separated: open, tx, rx, close", DefaultValueFactory = _ => "open,tx,rx" };
        var scope = new Option<string[]>("--scope") { Description = "A scope the token carries (repeat for several)", AllowMultipleArgumentsPerToken = true };
        var ttl = new Option<string>("--ttl") { Description = "Lifetime: 30s, 5m, 1h, 7d (at most 30 days)", DefaultValueFactory = _ => "5m" };
        var key = new Option<string?>("--key") { Description = "Issue with this private key of .rtt/keys/ (default: the workspace's signing key)" };
        var seal = new Option<bool>("--seal") { Description = "Seal the token: it can be used but not attenuated further" };
        var issue = new Command("issue", "Issue a token signed by a key this workspace trusts; prints it") { saddr, verb, scope, ttl, key, seal };
        issue.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            using var signer = parse.GetValue(key) is { } name ? SigningKey.Load(ws.PrivateKeyPath(name)) : ws.LoadSigningKey();
            if (ws.LoadTrustStore().IsRevoked(signer.KeyId))
            {
                throw new TokenException(ErrorCodes.TokenIssuerRevoked, $"key {signer.KeyId} is revoked: tokens it issues are refused", "--key", "issue with a current key");
            }

            var text = CapabilityToken.Issue(signer, parse.GetValue(saddr)!, Split(parse.GetValue(verb)), parse.GetValue(scope) ?? [], Duration(parse.GetValue(ttl)!), DateTimeOffset.UtcNow);
            Console.WriteLine(parse.GetValue(seal) ? CapabilityToken.Seal(text) : text);
            return Task.FromResult(RttCommands.Ok);
        }));

        var input = new Argument<string>("TOKEN") { Description = "The token, @FILE to read it from a file, or - for stdin" };
        var narrowSaddr = new Option<string?>("--saddr") { Description = "A narrower symbol pattern" };
        var narrowVerb = new Option<string?>("--verb") { Description = "Fewer verbs, comma-separated" };
        var narrowScope = new Option<string[]?>("--scope") { Description = "Fewer scopes (repeat); --scope '' for none", AllowMultipleArgumentsPerToken = true };
        var narrowTtl = new Option<string?>("--ttl") { Description = "Expire sooner: at most this long from now" };
        var attenuateSeal = new Option<bool>("--seal") { Description = "Seal the result" };
        var attenuate = new Command("attenuate", "Add a block that narrows the token (offline: no key of the issuer is needed); prints the new token")
        {
            input, narrowSaddr, narrowVerb, narrowScope, narrowTtl, attenuateSeal,
        };
        attenuate.SetAction(RttCommands.Guard((parse, _) =>
        {
            var scopes = parse.GetValue(narrowScope);
            var narrowing = new TokenNarrowing(parse.GetValue(narrowSaddr), parse.GetValue(narrowVerb) is { } v ? Split(v) : null,
                scopes is null ? null : [.. scopes.Where(s => s.Length > 0)],
                parse.GetValue(narrowTtl) is { } t ? DateTimeOffset.UtcNow + Duration(t) : null);
            var text = CapabilityToken.Attenuate(Read(parse.GetValue(input)!), narrowing);
            Console.WriteLine(parse.GetValue(attenuateSeal) ? CapabilityToken.Seal(text) : text);
            return Task.FromResult(RttCommands.Ok);
        }));

        var json = RttCommands.JsonOption();
        var inspectInput = new Argument<string>("TOKEN") { Description = "The token, @FILE, or - for stdin" };
        var inspect = new Command("inspect", "Show a token's blocks and rights (checked offline: chain, proof, and the issuer against this workspace when there is one)")
        {
            inspectInput, json,
        };
        inspect.SetAction(RttCommands.Guard((parse, _) =>
        {
            var parsed = CapabilityToken.Parse(Read(parse.GetValue(inspectInput)!));
            string status;
            try
            {
                var ws = RttCommands.FindWorkspace(parse);
                TokenVerifier.ForWorkspace(ws).Verify(parsed.Text);
                status = "valid here";
            }
            catch (RttException ex) when (ex.Code != ErrorCodes.WorkspaceNotFound)
            {
                status = $"{ex.Code}: {ex.Message}";
            }
            catch (RttException)
            {
                status = "chain and proof intact (no workspace to check the issuer against)";
            }

            var blocks = new JsonArray();
            foreach (var (body, _) in parsed.Blocks)
            {
                blocks.Add(body.DeepClone());
            }

            var r = parsed.Rights;
            var view = new JsonObject
            {
                ["token_id"] = parsed.TokenId,
                ["issuer"] = parsed.IssuerKeyId,
                ["saddr"] = r.Saddr,
                ["verbs"] = new JsonArray([.. r.Verbs.Select(x => (JsonNode)x)]),
                ["scopes"] = new JsonArray([.. r.Scopes.Select(x => (JsonNode)x)]),
                ["nbf"] = CapabilityToken.Time(r.NotBefore),
                ["exp"] = CapabilityToken.Time(r.Expires),
                ["sealed"] = parsed.Sealed,
                ["mac"] = parsed.IsMac,
                ["status"] = status,
                ["blocks"] = blocks,
            };
            if (parse.GetValue(json))
            {
                Console.Out.Write(PrettyJson.ToText(view));
            }
            else
            {
                Console.WriteLine($"token {parsed.TokenId}  issuer {parsed.IssuerKeyId}");
                Console.WriteLine($"  allows {r.Saddr}  verbs {string.Join(",", r.Verbs)}  scopes {(r.Scopes.Count == 0 ? "-" : string.Join(",", r.Scopes))}");
                Console.WriteLine($"  valid {CapabilityToken.Time(r.NotBefore)} .. {CapabilityToken.Time(r.Expires)}  {(parsed.IsMac ? "MAC token" : $"{parsed.Blocks.Count} block(s){(parsed.Sealed ? ", sealed" : "")}")}");
                Console.WriteLine($"  {status}");
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        var verifyInput = new Argument<string[]>("TOKEN") { Description = "The token(s): text, @FILE, or - for stdin", Arity = ArgumentArity.OneOrMore };
        var forSymbol = new Option<string?>("--saddr") { Description = "Also check it allows this symbol" };
        var forVerb = new Option<string?>("--verb") { Description = "Also check it allows these verbs (comma-separated)" };
        var once = new Option<bool>("--once") { Description = "Spend each token's nonce as an attach does: a token given twice is refused the second time" };
        var verify = new Command("verify", "Verify tokens against this workspace (issuer trusted, not revoked, in its time window); exit 1 with the RTT-TOKEN code of the first refused")
        {
            verifyInput, forSymbol, forVerb, once,
        };
        verify.SetAction(RttCommands.Guard((parse, _) =>
        {
            var verifier = TokenVerifier.ForWorkspace(RttCommands.FindWorkspace(parse));
            foreach (var arg in parse.GetValue(verifyInput)!)
            {
                var checkedToken = verifier.Verify(Read(arg));
                if (parse.GetValue(forSymbol) is { } symbol)
                {
                    TokenVerifier.Authorize(checkedToken, symbol, parse.GetValue(forVerb) is { } vs ? Split(vs) : []);
                }

                if (parse.GetValue(once))
                {
                    verifier.Consume(checkedToken);
                }

                Console.WriteLine($"valid: token {checkedToken.TokenId} allows {checkedToken.Rights.Saddr} ({string.Join(",", checkedToken.Rights.Verbs)}) until {CapabilityToken.Time(checkedToken.Rights.Expires)}");
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        var id = new Argument<string>("ID") { Description = "The token_id (rtt token inspect shows it)" };
        var reason = new Option<string>("--reason") { Description = "Why (recorded)", DefaultValueFactory = _ => "" };
        var revoke = new Command("revoke", "Revoke a token by its id: every copy and attenuation of it is refused from now on") { id, reason };
        revoke.SetAction(RttCommands.Guard((parse, _) =>
        {
            var added = RevokedTokens.Revoke(RttCommands.FindWorkspace(parse), parse.GetValue(id)!, parse.GetValue(reason) ?? "", DateTimeOffset.UtcNow);
            Console.WriteLine(added ? $"Revoked token {parse.GetValue(id)}" : $"Token {parse.GetValue(id)} was revoked already");
            return Task.FromResult(RttCommands.Ok);
        }));

        token.Subcommands.Add(issue);
        token.Subcommands.Add(attenuate);
        token.Subcommands.Add(inspect);
        token.Subcommands.Add(verify);
        token.Subcommands.Add(revoke);
        return token;
    }

    private static List<string> Split(string? text) => [.. (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>A lifetime: a number and s, m, h or d.</summary>
    public static TimeSpan Duration(string text)
    {
        if (text.Length >= 2 && long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < 100_000_000)
        {
            switch (text[^1])
            {
                case 's': return TimeSpan.FromSeconds(n);
                case 'm': return TimeSpan.FromMinutes(n);
                case 'h': return TimeSpan.FromHours(n);
                case 'd': return TimeSpan.FromDays(n);
            }
        }

        throw new TokenException(ErrorCodes.TokenRequestInvalid, $"\"{text}\" is not a lifetime", "--ttl", "give a number and s, m, h or d: 30s, 5m, 1h, 7d");
    }

    /// <summary>The token argument: the text itself, @FILE, or - (stdin); surrounding whitespace is dropped.</summary>
    private static string Read(string arg)
    {
        if (arg == "-")
        {
            return Console.In.ReadToEnd().Trim();
        }

        if (arg.StartsWith('@'))
        {
            var path = Path.GetFullPath(arg[1..]);
            return System.Text.Encoding.UTF8.GetString(WorkspaceFiles.ReadBytes(path, WorkspaceFiles.SmallLimit)).Trim();
        }

        return arg.Trim();
    }
}
