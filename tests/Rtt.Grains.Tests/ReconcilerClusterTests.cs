using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.TestingHost;
using Rtt.Core.Calls;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Reconciling;
using Rtt.Reconciling.Wal;
using Rtt.Silo.Lanes;
using Rtt.Silo.Storage;

namespace Rtt.Grains.Tests;

/// <summary>
/// The reconciler on a two-silo in-process cluster: each silo is a node (silo name = node id) with its own real
/// lane host, grain state and the WAL in one SQLite file. A node's silo is stopped in the middle of a commit.
/// </summary>
public sealed class ReconcilerClusterTests : IAsyncLifetime
{
    private readonly RttWorkspace _workspace = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-recon-").FullName).Workspace;
    private InProcessTestCluster _cluster = null!;
    private Rtt.Reconciling.State.SqliteStateDatabase _database = null!;

    /// <summary>What the silos' fault points do (both silos share it); null: nothing.</summary>
    private Func<string, string, Task>? _fault;

    public async Task InitializeAsync()
    {
        _database = SqliteStateStore.Open(_workspace.StateDatabasePath); // one owner of the file, shared by both silos
        var builder = new InProcessTestClusterBuilder(initialSilosCount: 2);
        builder.ConfigureSilo((options, silo) =>
        {
            var node = options.SiloName;
            silo.Services.AddRttSqliteGrainStorage(_database);
            silo.AddRttGrains();
            silo.Services.AddSingleton<IFaultPoints>(new TestFaults(() => _fault));
            silo.Services.AddSingleton(_workspace);
            silo.Services.AddSingleton(Rtt.Core.Tokens.TokenVerifier.ForWorkspace(_workspace)); // as RttSiloHost: the reconciler reads plan signers' trust from it
            silo.Services.AddSingleton(TimeProvider.System);
            silo.Services.AddSingleton<WalStoreFactory>(_ => () => SqliteWalStore.On(_database));
            silo.Services.AddSingleton<IParticipantLedgerStore>(_ => new SqliteLedgerStore(_database));
            var socket = Path.Combine(Path.GetTempPath(), $"rtt-recon-{Guid.NewGuid().ToString("N")[..8]}.sock");
            silo.Services.AddSingleton(sp => new LaneHostService(_workspace, new RttLaneOptions { ControlSocket = socket }, NullLogger<LaneHostService>.Instance, node));
            silo.Services.AddSingleton<INodeLaneHost>(sp => sp.GetRequiredService<LaneHostService>());
            silo.Services.AddHostedService(sp => sp.GetRequiredService<LaneHostService>());
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    private string Node(int silo) => _cluster.Silos[silo].Name;

    private LaneHostService Lanes(int silo) => ((InProcessSiloHandle)_cluster.Silos[silo]).SiloHost.Services.GetRequiredService<LaneHostService>();

    private JsonObject Plan(string? baseId, params (string From, string To, string Node)[] lanes)
    {
        using var key = _workspace.LoadSigningKey();
        return Planner.Manual(key, baseId, lanes);
    }

    [Fact]
    public async Task Plan_signatures_are_checked_against_the_trust_store_as_it_is_at_each_apply()
    {
        var grains = _cluster.Client;
        await grains.GetGrain<INodeGrain>(Node(0)).Register(new NodeFacts(Node(0), "host", "cpu", 2, 1L << 30, [], "silo"));
        var reconciler = grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        var partner = WorkspaceInitializer.Create(Directory.CreateTempSubdirectory("rtt-partner-").FullName).Workspace;
        using var partnerKey = partner.LoadSigningKey();

        // Signed by a key the workspace does not trust: refused.
        var first = Planner.Manual(partnerKey, null, [("rtt://p/a", "rtt://p/b", Node(0))]);
        var unknown = await Assert.ThrowsAnyAsync<Exception>(() => reconciler.Apply(first.ToJsonString()));
        Assert.Contains("does not trust", unknown.Message, StringComparison.Ordinal);

        // Trusted while the silo runs: the next apply accepts it.
        var keys = new WorkspaceKeys(_workspace);
        keys.Trust(Directory.GetFiles(partner.TrustKeys).Single(), "partner");
        var applied = await reconciler.Apply(first.ToJsonString());
        Assert.True(applied.Outcome == "applied", applied.Reason);

        // The same text again is unchanged (answered from the tree kept with the text); a text that differs from it under the
        // same plan_id (a lane's node edited) is checked as any other and refused.
        Assert.Equal("unchanged", (await reconciler.Apply(first.ToJsonString())).Outcome);
        Assert.Equal("unchanged", (await reconciler.Apply(first.ToJsonString())).Outcome);
        var edited = first.ToJsonString().Replace($"\"{Node(0)}\"", "\"elsewhere\"", StringComparison.Ordinal);
        Assert.NotEqual(first.ToJsonString(), edited);
        var mismatch = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.Apply(edited));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanMismatch, mismatch.Code);
        Assert.Equal("unchanged", (await reconciler.Apply(first.ToJsonString())).Outcome);

        // The same as UTF-8 bytes (what rtt apply sends): the canonical bytes twice are unchanged, the edited ones refused the
        // same way, bytes that are not UTF-8 refused as plan input; the string path still answers after.
        var utf8 = IReconcilerGrain.PlanUtf8(first);
        Assert.Equal("unchanged", (await reconciler.ApplyUtf8(utf8)).Outcome);
        Assert.Equal("unchanged", (await reconciler.ApplyUtf8([.. utf8])).Outcome);
        var editedUtf8 = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(utf8).Replace($"\"{Node(0)}\"", "\"elsewhere\"", StringComparison.Ordinal));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanMismatch, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyUtf8(editedUtf8))).Code);
        byte[] notUtf8 = [.. utf8[..^2], 0xC3, (byte)'}'];
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanInputInvalid, (await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyUtf8(notUtf8))).Code);
        Assert.Equal("unchanged", (await reconciler.Apply(first.ToJsonString())).Outcome);

        // Revoked while the silo runs: the applied plan's own text is refused now (its signature is checked against the trust
        // as it is, not remembered from before), the next plan it signed too, and the applied plan stays.
        keys.Revoke("partner", "test", DateTimeOffset.UtcNow);
        var again = await Assert.ThrowsAnyAsync<Exception>(() => reconciler.Apply(first.ToJsonString()));
        Assert.Contains("revoked", again.Message, StringComparison.Ordinal);
        Assert.Contains("revoked", (await Assert.ThrowsAnyAsync<Exception>(() => reconciler.ApplyUtf8(utf8))).Message, StringComparison.Ordinal);
        var second = Planner.Manual(partnerKey, (string)first["plan_id"]!, [("rtt://p/c", "rtt://p/d", Node(0))]);
        var revoked = await Assert.ThrowsAnyAsync<Exception>(() => reconciler.Apply(second.ToJsonString()));
        Assert.Contains("revoked", revoked.Message, StringComparison.Ordinal);
        Assert.Equal((string)first["plan_id"]!, (await reconciler.History()).AppliedPlanId);
        Directory.Delete(partner.Root, recursive: true);
    }

    [Fact]
    public async Task A_plan_sent_as_its_changes_from_the_applied_plan_is_applied_as_the_whole_plan_and_a_wrong_change_is_refused()
    {
        var grains = _cluster.Client;
        await grains.GetGrain<INodeGrain>(Node(0)).Register(new NodeFacts(Node(0), "host", "cpu", 2, 1L << 30, [], "silo"));
        var reconciler = grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        var first = Plan(null, ("rtt://c/a", "rtt://c/b", Node(0)), ("rtt://c/c", "rtt://c/d", Node(0)));
        var firstId = (string)first["plan_id"]!;
        PlanChange Change(JsonObject from, JsonObject to) =>
            new((string)from["plan_id"]!, (string)to["plan_id"]!, Rtt.Core.Json.CanonicalJson.ToCanonicalString(PlanDelta.Diff(from, to)));

        // Nothing applied yet: no base to rebuild from.
        var none = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyChange(new PlanChange(firstId, firstId, "{}")));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.ApplyChangeBase, none.Code);
        Assert.True((await reconciler.Apply(IReconcilerGrain.PlanText(first))).Outcome == "applied");

        // The second plan as a change: applied, and what the silo holds is the whole plan, byte for byte.
        var second = Plan(firstId, ("rtt://c/a", "rtt://c/b", Node(0)), ("rtt://c/e", "rtt://c/f", Node(0)));
        var secondId = (string)second["plan_id"]!;
        var report = await reconciler.ApplyChange(Change(first, second));
        Assert.True(report.Outcome == "applied", report.Reason);
        Assert.Equal(secondId, (await reconciler.History()).AppliedPlanId);
        Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(second), File.ReadAllBytes(new PlanStore(_workspace).AppliedPath));
        Assert.Contains(("rtt://c/e", "rtt://c/f"), (await reconciler.AppliedRoutes()).Routes.Select(r => (r.From, r.To)));

        // The same change again: its base is no longer the applied plan (RTT-APPLY-007, nothing changes); the whole plan
        // again is "unchanged" (what `rtt apply` falls back to).
        var stale = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyChange(Change(first, second)));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.ApplyChangeBase, stale.Code);
        Assert.Contains(secondId, stale.Message, StringComparison.Ordinal);
        Assert.Equal("unchanged", (await reconciler.Apply(IReconcilerGrain.PlanText(second))).Outcome);
        var third = Plan(secondId, ("rtt://c/g", "rtt://c/h", Node(0)));

        // A change that rebuilds another plan than it names (a lane changed by hand: its plan_id no longer holds), one that names
        // another plan, and one that does not fit the base: refused with the plan's own codes; the applied plan stays.
        var toThird = PlanDelta.Diff(second, third);
        var tampered = (JsonObject)toThird.DeepClone();
        tampered["set"] = new JsonObject { ["routes_add"] = new JsonArray() };
        var mismatch = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyChange(new PlanChange(secondId, (string)third["plan_id"]!, tampered.ToJsonString())));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanMismatch, mismatch.Code);
        var named = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyChange(new PlanChange(secondId, firstId, toThird.ToJsonString())));
        Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanMismatch, named.Code);
        foreach (var bad in new[] { "not json", "[]", """{"base":"sha256:x"}""", "{\"base\":\"" + secondId + "\",\"arrays\":{\"lanes\":{\"at\":99,\"delete\":0}}}" })
        {
            var refused = await Assert.ThrowsAsync<RttGrainException>(() => reconciler.ApplyChange(new PlanChange(secondId, (string)third["plan_id"]!, bad)));
            Assert.Equal(Rtt.Core.Errors.ErrorCodes.PlanInputInvalid, refused.Code);
        }

        Assert.Equal(secondId, (await reconciler.History()).AppliedPlanId);

        // A plan refused by a participant (a lane on a node that never registered): aborted in prepare. Its files were
        // written while the transaction ran: its own file stays (a valid signed plan, as `rtt plan` writes them), applied.json
        // is still the second plan's and nothing is left beside it.
        var store = new PlanStore(_workspace);
        var orphan = Plan(secondId, ("rtt://c/a", "rtt://c/b", Node(0)), ("rtt://c/k", "rtt://c/l", "nowhere"));
        var aborted = await reconciler.Apply(IReconcilerGrain.PlanText(orphan));
        Assert.True(aborted.Outcome == "aborted", aborted.Reason);
        Assert.Equal(secondId, (await reconciler.History()).AppliedPlanId);
        Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(second), File.ReadAllBytes(store.AppliedPath));
        Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(orphan), File.ReadAllBytes(store.PathOf((string)orphan["plan_id"]!)));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(store.AppliedPath)!, "*.tmp"));

        // After a rollback the applied plan is the first again: a change from it applies (its text made anew from the tree).
        Assert.Equal("rolled-back", (await reconciler.Rollback("test")).Outcome);
        Assert.Equal(Rtt.Core.Json.PrettyJson.ToUtf8(first), File.ReadAllBytes(store.AppliedPath));
        var fourth = Plan(firstId, ("rtt://c/a", "rtt://c/b", Node(0)), ("rtt://c/i", "rtt://c/j", Node(0)));
        Assert.Equal("applied", (await reconciler.ApplyChange(Change(first, fourth))).Outcome);
        Assert.Equal((string)fourth["plan_id"]!, (await reconciler.History()).AppliedPlanId);
    }

    [Fact]
    public async Task History_and_status_show_each_decision_on_the_next_call()
    {
        var grains = _cluster.Client;
        foreach (var i in new[] { 0, 1 })
        {
            await grains.GetGrain<INodeGrain>(Node(i)).Register(new NodeFacts(Node(i), "host", "cpu", 2, 1L << 30, [], "silo"));
        }

        var reconciler = grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        var directory = grains.GetGrain<INodeDirectoryGrain>(INodeDirectoryGrain.ClusterKey);
        var before = await reconciler.History();
        Assert.Empty(before.Transactions);
        Assert.All((await directory.Status()).Placements, p => Assert.Null(p.AppliedPlan));

        string? baseId = null;
        foreach (var (lanes, serving0, serving1) in new[]
        {
            (new[] { ("a", "b", Node(0)), ("c", "d", Node(1)) }, 1, 1),
            (new[] { ("a", "b", Node(0)), ("e", "f", Node(0)) }, 2, 0),
        })
        {
            var plan = Plan(baseId, lanes);
            var planId = (string)plan["plan_id"]!;
            var applied = await reconciler.Apply(plan.ToJsonString());
            Assert.True(applied.Outcome == "applied", applied.Reason);

            var history = await reconciler.History(); // the next call shows the decision, its WAL entries and the ledgers
            Assert.Equal(planId, history.AppliedPlanId);
            Assert.Equal(("commit", planId), (history.Transactions[^1].Decision, history.Transactions[^1].PlanId));
            Assert.NotNull(history.Transactions[^1].VerifiedIndex);
            Assert.Equal(applied.WalSize, history.WalSize);
            Assert.Equal(applied.WalRoot, history.WalRoot);

            // The same plan again is "unchanged", with the WAL as it is now: the root the reconciler kept after its own writes
            // is the WAL grain's (a kept root that a later write did not replace would show the previous transaction's).
            var again = await reconciler.Apply(plan.ToJsonString());
            var wal = await grains.GetGrain<IWalGrain>(IWalGrain.ClusterKey).Root();
            Assert.Equal("unchanged", again.Outcome);
            Assert.Equal((wal.Size, wal.Root), (again.WalSize, again.WalRoot));
            Assert.Equal((history.WalSize, history.WalRoot), (again.WalSize, again.WalRoot));
            Assert.All(history.Transactions[^1].Participants, name =>
            {
                var ledger = history.Participants.Single(p => p.Name == name).Ledger;
                Assert.Equal((planId, -1L, (string?)null), (ledger.AppliedPlan, ledger.ReservedTx, ledger.AppliedTarget)); // compact: no target JSON
            });

            var status = await directory.Status(); // and status shows where the lanes are now
            var placements = status.Placements.ToDictionary(p => p.NodeId);
            Assert.Equal((planId, planId), (placements[Node(0)].AppliedPlan, placements[Node(1)].AppliedPlan));
            Assert.Equal((serving0, serving1), (placements[Node(0)].Serving, placements[Node(1)].Serving));
            Assert.Equal(serving0, placements[Node(0)].Lanes.Length);
            baseId = planId;
        }

        Assert.Equal(2, (await reconciler.History()).Transactions.Length);
        await grains.GetGrain<INodeGrain>(Node(1)).Register(new NodeFacts(Node(1), "host-2", "cpu", 2, 1L << 30, [], "silo"));
        Assert.Equal("host-2", (await directory.Status()).Records.Single(r => r.Facts.NodeId == Node(1)).Facts.HostName); // a node registering again
    }

    [Fact]
    public async Task Plans_drive_each_nodes_lane_host_and_a_node_silo_stopped_mid_commit_leaves_the_new_plan_whole()
    {
        var grains = _cluster.Client;
        foreach (var i in new[] { 0, 1 })
        {
            await grains.GetGrain<INodeGrain>(Node(i)).Register(new NodeFacts(Node(i), "host", "cpu", 2, 1L << 30, [], "silo"));
        }

        var reconciler = grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey);
        var p1 = Plan(null, ("a", "b", Node(0)), ("c", "d", Node(1)));
        var applied = await reconciler.Apply(p1.ToJsonString());
        Assert.True(applied.Outcome == "applied", applied.Reason);
        Assert.Equal([RouteIds.Of("a", "b")], Lanes(0).RouteIds); // each silo serves its own node's lanes
        Assert.Equal([RouteIds.Of("c", "d")], Lanes(1).RouteIds);

        // Plan 2 moves node 1 from c->d to e->f. Node 1's silo stops while its node grain commits.
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", Node(0)), ("e", "f", Node(1)));
        var committing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var node1 = Node(1); // read now: once its silo is stopped, _cluster.Silos no longer has index 1 (a retried commit runs the hook again)
        _fault = async (point, node) =>
        {
            if (point == FaultPoints.MidApply && node == node1 && committing.TrySetResult())
            {
                await release.Task;
                throw new IOException($"silo of {node} is stopping");
            }
        };
        try
        {
            var apply = reconciler.Apply(p2.ToJsonString());
            await committing.Task.WaitAsync(TimeSpan.FromSeconds(60));
            var stop = _cluster.StopSiloAsync(_cluster.Silos[1]);
            release.SetResult();
            await stop;
            // The decision was commit: every participant of plan 2 holds plan 2. Node 1's lanes cannot be served
            // while its silo is down, so verify fails, and the rollback cannot prepare on the missing node. When
            // the reconciler itself was on the stopped silo, its next activation (History below) does the same
            // through recovery.
            try
            {
                var outcome = await apply.WaitAsync(TimeSpan.FromSeconds(120));
                Assert.Equal(ApplyOutcome.VerifyFailed, outcome.Outcome);
                Assert.Contains("rollback could not run", outcome.Reason, StringComparison.Ordinal);
            }
            catch (Orleans.Runtime.SiloUnavailableException)
            {
            }
        }
        finally
        {
            _fault = null;
        }

        var history = await reconciler.History();
        Assert.Equal((string)p2["plan_id"]!, history.AppliedPlanId);
        var p2Tx = history.Transactions.Single(t => t.PlanId == (string)p2["plan_id"]!);
        Assert.Equal("commit", p2Tx.Decision);
        foreach (var name in p2Tx.Participants)
        {
            var ledger = history.Participants.Single(p => p.Name == name).Ledger;
            Assert.Equal(-1, ledger.ReservedTx); // nothing left reserved, by the commit or the aborted rollback
            Assert.Equal((string)p2["plan_id"]!, ledger.AppliedPlan);
        }

        Assert.Equal("abort", history.Transactions[^1].Decision); // the rollback attempt
        Assert.Equal([RouteIds.Of("a", "b")], Lanes(0).RouteIds); // node 0 untouched

        using var store = SqliteWalStore.Open(_workspace.StateDatabasePath);
        var report = WalVerifier.Verify(store, _workspace.LoadTrustStore());
        Assert.True(report.Ok, string.Join("; ", report.Faults));
        Assert.Equal(history.WalSize, report.Size);
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        _database.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_workspace.Root, recursive: true);
    }

    private sealed class TestFaults(Func<Func<string, string, Task>?> current) : IFaultPoints
    {
        public Task HitAsync(string point, string detail) => current()?.Invoke(point, detail) ?? Task.CompletedTask;
    }
}
