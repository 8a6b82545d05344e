using System.Text.Json.Nodes;
using Rtt.Client;
using Rtt.Core.Errors;
using Rtt.Core.Workspace;
using Rtt.Grains;
using Rtt.Grains.Reconciling;

namespace Rtt.Cli.Tests;

/// <summary>
/// Capability tokens with real processes (issue 17): a strict-mode silo serves `rtt apply` and `rtt call` (each presents a
/// token it mints with the workspace key) and refuses an attach without a token; management calls through the gateway
/// without a token, or with one from a key the workspace does not trust (another user's own rtt), are refused.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class TokenProcessTests
{
    private static readonly Dictionary<string, string> Strict = new() { ["RTT_Security__Mode"] = "strict" };

    [Fact]
    public async Task A_strict_silo_admits_the_workspaces_own_tools_and_refuses_everyone_else()
    {
        using var dir = TempDir.Quickstart(out var ws, scan: true);
        using var silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), Strict, TimeSpan.FromSeconds(60));
        try
        {
            // Strict mode refuses driver processes without a sandbox: the quickstart's text service (process) and MCP server
            // (mcp-stdio) are refused at prepare (nothing started), until policy.json allows them by name.
            Assert.Equal(0, RttProcess.Run(ws, "plan").ExitCode);
            var refused = RttProcess.Run(ws, "apply", "--json");
            Assert.True(refused.ExitCode == 4, refused.ToString());
            Assert.Equal("aborted", (string?)JsonNode.Parse(refused.Stdout)!["outcome"]);
            Assert.Equal(ErrorCodes.ApplyAborted, (string?)JsonNode.Parse(refused.Stdout)!["code"]);
            Assert.Contains(ErrorCodes.SandboxRequired, refused.Stdout, StringComparison.Ordinal);
            Assert.Contains("would run without a sandbox", refused.Stdout, StringComparison.Ordinal);
            var policyPath = Path.Combine(ws, ".rtt", "policy.json");
            var policy = JsonNode.Parse(File.ReadAllText(policyPath))!;
            policy["unsandboxed"] = new JsonArray("rtt://core/api/upper", "rtt://mcp/sample/*");
            File.WriteAllText(policyPath, policy.ToJsonString());
            Assert.Equal(0, RttProcess.Run(ws, "plan").ExitCode);
            var apply = RttProcess.Run(ws, "apply", "--json");
            Assert.True(apply.ExitCode == 0, apply.ToString());
            Assert.Equal("applied", (string?)JsonNode.Parse(apply.Stdout)!["outcome"]); // strict verify probes attach with tokens too

            var call = RttProcess.Run(ws, "call", "rtt://core/api/upper", "--args", "hello");
            Assert.True(call.ExitCode == 0, call.ToString());
            Assert.Equal("v1:HELLO", call.Stdout.Trim());

            // An attach without a token.
            var control = RttWorkspace.Open(ws).LaneControlSocket;
            var bare = Assert.Throws<Rtt.Core.Tokens.TokenException>(() => Rtt.Client.Lanes.LaneClient.Attach(control, "rtt://core/api/upper"));
            Assert.Equal(ErrorCodes.TokenMissing, bare.Code);

            // A management call through the gateway without a token.
            await using (var client = await RttClient.ConnectAsync(RttClientOptions.FromWorkspace(RttWorkspace.Open(ws))!))
            {
                var reconciler = client.Cluster.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
                var denied = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Rollback("no token"));
                Assert.Equal(ErrorCodes.TokenMissing, denied.Code);
                var deniedApply = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyUtf8("{}"u8.ToArray()));
                Assert.Equal(ErrorCodes.TokenMissing, deniedApply.Code);
                Assert.NotNull(await reconciler.History()); // reads need none

                // The token as the call's argument (what `rtt apply` and `rtt rollback` send): none, garbage, another
                // operation's, and one spent already are refused with their codes; the silo said it takes one (silo.json).
                var live = SiloInfo.ReadLive(RttWorkspace.Open(ws).SiloInfoPath)!;
                Assert.True(live.TokenArgument);
                Assert.Equal(ErrorCodes.TokenMissing, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Rollback("no token", null!))).Code);
                Assert.Equal(ErrorCodes.TokenMalformed, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Rollback("garbage", new ManagementToken("rttm2.!!")))).Code);
                var applyToken = ManagementCalls.Token(RttWorkspace.Open(ws), Rtt.Core.Tokens.ManagementTokens.Apply);
                Assert.Equal(ErrorCodes.TokenRouteDenied, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Rollback("an apply token", applyToken))).Code);
                var applied = await reconciler.ApplyUtf8(IReconcilerGrain.PlanUtf8(RttWorkspace.ReadObject(Path.Combine(ws, ".rtt", "plans", "applied.json"))), applyToken);
                Assert.Equal("unchanged", applied.Outcome); // the token a rollback was refused with is still unspent: the route check comes first
                Assert.Equal(ErrorCodes.TokenReplayed, (await Assert.ThrowsAsync<RttGrainException>(() =>
                    reconciler.ApplyUtf8(IReconcilerGrain.PlanUtf8(RttWorkspace.ReadObject(Path.Combine(ws, ".rtt", "plans", "applied.json"))), applyToken))).Code);

                // silo.json names the key the silo signs with, so `rtt` on this workspace presents MAC tokens (docs/tokens.md).
                var workspace = RttWorkspace.Open(ws);
                using var key = workspace.LoadSigningKey();
                Assert.Equal(key.KeyId, SiloInfo.ReadLive(workspace.SiloInfoPath)?.SigningKeyId);

                // A MAC token whose body was widened after it was made, and one from a key the silo trusts but cannot check a MAC of.
                var mac = Rtt.Core.Tokens.ManagementTokens.MintMac(key, Rtt.Core.Tokens.ManagementTokens.Apply);
                var envelope = JsonNode.Parse(Rtt.Core.Tokens.CapabilityToken.FromBase64Url(mac.AsSpan(Rtt.Core.Tokens.CapabilityToken.MacPrefix.Length)))!;
                envelope["body"]!["saddr"] = Rtt.Core.Tokens.ManagementTokens.Symbol(Rtt.Core.Tokens.ManagementTokens.Rollback);
                ManagementCalls.Present(Rtt.Core.Tokens.CapabilityToken.MacPrefix + Rtt.Core.Tokens.CapabilityToken.Base64Url(Rtt.Core.Json.CanonicalJson.Serialize(envelope)));
                Assert.Equal(ErrorCodes.TokenSignatureInvalid, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Rollback("widened MAC token"))).Code);
                var inspected = RttProcess.Run(ws, "token", "inspect", Rtt.Core.Tokens.ManagementTokens.MintMac(key, Rtt.Core.Tokens.ManagementTokens.Apply), "--json");
                Assert.True(inspected.ExitCode == 0, inspected.ToString());
                Assert.True((bool)JsonNode.Parse(inspected.Stdout)!["mac"]!);
                Assert.Equal("valid here", (string?)JsonNode.Parse(inspected.Stdout)!["status"]);
                using var colleague = Rtt.Core.Signing.SigningKey.Generate();
                Rtt.Core.Signing.TrustStore.WriteTrustedKey(workspace.Trust, "colleague", colleague.PublicKey);
                ManagementCalls.Present(Rtt.Core.Tokens.ManagementTokens.MintMac(colleague, Rtt.Core.Tokens.ManagementTokens.Rollback));
                Assert.Equal(ErrorCodes.TokenMacKeyUnknown, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Rollback("colleague's MAC token"))).Code);
                File.Delete(Path.Combine(workspace.Trust, "keys", "colleague.pub"));
            }

            // Another user's own rtt: a workspace whose key this one does not trust, pointed at the same gateway.
            var other = Path.Combine(dir.Path, "other");
            Assert.Equal(0, RttProcess.Run(dir.Path, "init", other).ExitCode);
            File.Copy(Path.Combine(ws, ".rtt/state/silo.json"), Path.Combine(other, ".rtt/state/silo.json"));
            var foreign = RttProcess.Run(other, "rollback");
            Assert.Equal(1, foreign.ExitCode);
            Assert.Contains(ErrorCodes.TokenIssuerUnknown, foreign.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", foreign.Stderr, StringComparison.Ordinal);

            // The workspace's own rollback gets past the token check (back to no plan).
            var own = RttProcess.Run(ws, "rollback");
            Assert.True(own.ExitCode == 0, own.ToString());
        }
        finally
        {
            silo.Terminate();
            Assert.True(silo.WaitForExit(TimeSpan.FromSeconds(30)), silo.Stderr);
        }
    }

    [Fact]
    public void The_quickstart_in_strict_mode_is_refused_its_unsandboxed_drivers_with_the_reason()
    {
        using var dir = new TempDir();
        var once = RttProcess.RunWith(dir.Path, Strict, "up", "--example", "quickstart", "--into", dir["qs"], "--once", "--silo-port", RttProcess.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--gateway-port", RttProcess.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(once.ExitCode == 1, once.ToString()); // the summary is printed, and a failed step fails the run
        Assert.Contains(ErrorCodes.SandboxRequired, once.Stdout + once.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", once.Stdout + once.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("v1:", once.Stdout, StringComparison.Ordinal); // no driver process was started
    }
}
