using Rtt.Silo.Nodes;

namespace Rtt.Silo.Tests.Cluster;

/// <summary>The auto_replan service's bookkeeping: which nodes are down, and which silo re-plans.</summary>
public sealed class DownNodeTrackerTests
{
    private static MemberView Active(string silo, string node) => new(silo, true, false, node);

    private static MemberView Dead(string silo) => new(silo, false, true, null);

    [Fact]
    public void A_node_is_down_once_its_silo_is_dead_and_up_again_when_a_silo_serves_it()
    {
        var t = new DownNodeTracker();
        Assert.False(t.Observe([Active("s1", "n0"), Active("s2", "n1"), Active("s3", "n2")]));
        Assert.Empty(t.Down);

        // s3 dies: its node is down (its metadata is gone by then: the tracker remembers it from when it was active).
        Assert.True(t.Observe([Active("s1", "n0"), Active("s2", "n1"), Dead("s3")]));
        Assert.Equal(["n2"], t.Down);
        Assert.False(t.Observe([Active("s1", "n0"), Active("s2", "n1"), Dead("s3")])); // the same snapshot again: no change

        // A new silo (a new address: a restart) serves n2 again.
        Assert.True(t.Observe([Active("s1", "n0"), Active("s2", "n1"), Dead("s3"), Active("s4", "n2")]));
        Assert.Empty(t.Down);
    }

    [Fact]
    public void Dead_silos_never_seen_active_change_nothing_and_a_node_still_served_elsewhere_is_not_down()
    {
        var t = new DownNodeTracker();
        Assert.False(t.Observe([Dead("old1"), Dead("old2"), Active("s1", "n0")])); // left in the table by earlier runs
        Assert.Empty(t.Down);
        Assert.False(t.Observe([Active("s1", "n0"), Active("s2", "n0")]));
        Assert.False(t.Observe([Active("s1", "n0"), Dead("s2")])); // n0 is still served by s1
        Assert.Empty(t.Down);
        Assert.True(t.Observe([Dead("s1"), Dead("s2"), Active("s5", "n1")]));
        Assert.Equal(["n0"], t.Down);
    }

    [Fact]
    public void The_leader_is_the_first_active_silo_by_address()
    {
        MemberView[] members = [Active("S127.0.0.1:11113@3", "n2"), Dead("S127.0.0.1:11111@1"), Active("S127.0.0.1:11112@2", "n1")];
        Assert.True(DownNodeTracker.Leads("S127.0.0.1:11112@2", members));
        Assert.False(DownNodeTracker.Leads("S127.0.0.1:11113@3", members));
        Assert.False(DownNodeTracker.Leads("S127.0.0.1:11111@1", members)); // dead: never leads

        // A silo that restarts gets a newer generation: it never takes the lead from the older ones, even with an
        // address that sorts first (it did not see the node go down, so it would never plan it back).
        MemberView[] restarted = [new("S127.0.0.1:11112@2", true, false, "n1", 2), new("S127.0.0.1:11113@3", true, false, "n2", 3), new("S127.0.0.1:10001@9", true, false, "n0", 9)];
        Assert.True(DownNodeTracker.Leads("S127.0.0.1:11112@2", restarted));
        Assert.False(DownNodeTracker.Leads("S127.0.0.1:10001@9", restarted));
    }
}
