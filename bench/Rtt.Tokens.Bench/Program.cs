using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Rtt.Core.Signing;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;

// A management call's MAC token (docs/tokens.md): the JSON form (rttm1, the baseline) against the compact form (rttm2),
// minted as a client does per call, read, and verified as the silo's filter does (read, trust store, MAC; the nonce is not
// spent, so the same token verifies at every iteration). Short jobs: the machine has two cores and other work on them.
//   dotnet run -c Release --project bench/Rtt.Tokens.Bench -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(MacTokenBench).Assembly).Run(args);

[ShortRunJob]
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkDotNet.Configs.BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class MacTokenBench
{
    private string _dir = "";
    private SigningKey _key = null!;
    private TokenVerifier _verifier = null!;
    private string _json = "";
    private string _compact = "";

    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("rtt-bench-tokens-").FullName;
        var workspace = WorkspaceInitializer.Create(_dir).Workspace;
        _key = workspace.LoadSigningKey();
        _verifier = TokenVerifier.ForWorkspace(workspace);
        _json = ManagementTokens.MintMac(_key, ManagementTokens.Apply, ttl: TimeSpan.FromDays(1));
        _compact = ManagementTokens.MintCompactMac(_key, ManagementTokens.Apply, ttl: TimeSpan.FromDays(1));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _key.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("mint")]
    public string MintJson() => ManagementTokens.MintMac(_key, ManagementTokens.Apply);

    [Benchmark, BenchmarkCategory("mint")]
    public string MintCompact() => ManagementTokens.MintCompactMac(_key, ManagementTokens.Apply);

    [Benchmark(Baseline = true), BenchmarkCategory("read")]
    public CapabilityToken ReadJson() => CapabilityToken.Parse(_json);

    [Benchmark, BenchmarkCategory("read")]
    public CapabilityToken ReadCompact() => CapabilityToken.Parse(_compact);

    [Benchmark(Baseline = true), BenchmarkCategory("verify")]
    public CapabilityToken VerifyJson() => _verifier.Verify(_json);

    [Benchmark, BenchmarkCategory("verify")]
    public CapabilityToken VerifyCompact() => _verifier.Verify(_compact);
}
