using Rtt.Core.Hosting;

namespace Rtt.Core.Tests.Hosting;

public sealed class Gen0BudgetTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] set) =>
        name => set.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void Only_a_linux_host_that_hides_its_caches_and_names_no_budget_starts_again()
    {
        Assert.True(Gen0Budget.Wanted(Env(), cachesVisible: false, linux: true));

        Assert.False(Gen0Budget.Wanted(Env(), cachesVisible: true, linux: true)); // the runtime sizes it from the caches
        Assert.False(Gen0Budget.Wanted(Env(), cachesVisible: false, linux: false));
        Assert.False(Gen0Budget.Wanted(Env(("DOTNET_GCgen0size", "0")), cachesVisible: false, linux: true)); // 0: the runtime's own choice
        Assert.False(Gen0Budget.Wanted(Env(("DOTNET_GCgen0size", "0x4000000")), cachesVisible: false, linux: true));
        Assert.False(Gen0Budget.Wanted(Env(("COMPlus_GCgen0size", "0x800000")), cachesVisible: false, linux: true));
        Assert.True(Gen0Budget.Wanted(Env(("DOTNET_gcServer", "1")), cachesVisible: false, linux: true));
    }
}
