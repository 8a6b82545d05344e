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

    [Fact]
    public void The_arguments_are_read_back_as_given_empty_ones_and_raw_bytes_included()
    {
        var entries = Gen0Budget.Entries("rtt\0up\0--name\0\0x\0"u8);
        Assert.Equal(["rtt", "up", "--name", "", "x"], entries.Select(e => System.Text.Encoding.UTF8.GetString(e)));
        Assert.Equal([0xFF, 0x41], Gen0Budget.Entries([0xFF, 0x41, 0])[0]);
        Assert.Empty(Gen0Budget.Entries([]));
        Assert.Equal(["a", ""], Gen0Budget.Entries("a\0\0"u8).Select(e => System.Text.Encoding.UTF8.GetString(e)));
    }
}
