using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Core.Signing;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Reconciling;
using Rtt.Reconciling.Resilience;
using Rtt.Reconciling.Wal;

namespace Rtt.Core.Tests;

/// <summary>
/// The coordinator's protocol over a real SQLite WAL, with in-test participants that record what they were told
/// and answer as each test needs (a silo's route and node grains are exercised in the grain and process tests).
/// </summary>
public sealed class CoordinatorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-coord-").FullName;
    private readonly SigningKey _key = SigningKey.Generate();
    private readonly TrustStore _trust;
    private readonly WalLog _wal;
    private readonly Dictionary<string, TestParticipant> _participants = new(StringComparer.Ordinal);

    public CoordinatorTests()
    {
        var trust = Path.Combine(_dir, "trust");
        TrustStore.WriteTrustedKey(trust, "test", _key.PublicKey);
        _trust = TrustStore.Load(trust);
        _wal = WalLog.Open(SqliteWalStore.Open(Path.Combine(_dir, "rtt.db")));
    }

    private TestParticipant P(string name)
    {
        if (!_participants.TryGetValue(name, out var p))
        {
            p = new TestParticipant();
            _participants[name] = p;
        }

        return p;
    }

    private Coordinator New(TimeSpan? timeout = null, IFaultPoints? faults = null, ILogger? logger = null) =>
        new(new Log(_wal, _key), name => P(name), new ReconcilerOptions
        {
            ParticipantTimeout = timeout ?? TimeSpan.FromSeconds(10),
            CommitRetry = new RetryOptions { Attempts = 3, Delay = TimeSpan.FromMilliseconds(10), MaxDelay = TimeSpan.FromMilliseconds(50) },
            VerifySignature = (plan, payload) => _trust.Verify(plan, payload),
        }, TimeProvider.System, faults, logger);

    private JsonObject Plan(string? baseId, params (string From, string To, string Node)[] lanes) => Planner.Manual(_key, baseId, lanes);

    private List<string> Kinds() => [.. _wal.Read(0, _wal.Size).Select(e => (string)JsonNode.Parse(e.Leaf)!["kind"]!)];

    [Fact]
    public async Task A_plan_goes_through_prepare_commit_verify_and_the_wal_alone_rebuilds_the_state()
    {
        var c = New();
        var p1 = Plan(null, ("a", "b", "n0"));
        var outcome = await c.ApplyAsync(p1);

        Assert.Equal(ApplyOutcome.Applied, outcome.Outcome);
        Assert.Equal(["prepare", "verify"], outcome.Phases.Select(p => p.Phase).Where(p => p != "commit"));
        Assert.Equal(["prepare", "commit", "applied", "verified"], Kinds());
        Assert.Equal(2, _wal.Heads.Count); // signed at the decision, and again when the transaction ends
        Assert.Equal(1, _wal.Heads[0].Size - 1); // the first head covers prepare and commit
        Assert.Equal(_wal.Size, _wal.Heads[^1].Size); // the last covers every entry: none can be rewritten unnoticed
        Assert.Equal(["route:a -> b", "node:n0"], _participants.Keys.Order(StringComparer.Ordinal).Reverse());
        Assert.All(_participants.Values, p => Assert.Equal(["prepare 0", "commit 0"], p.Calls));
        Assert.Contains("node:n0", outcome.Phases.Single(p => p.Phase == "verify").Detail, StringComparison.Ordinal);

        // A second plan changes one route: only that route and its node take part.
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n1"));
        Assert.Equal(ApplyOutcome.Applied, (await c.ApplyAsync(p2)).Outcome);
        Assert.Equal(["prepare 0", "commit 0"], P("route:a -> b").Calls);
        Assert.Equal(["prepare 4", "commit 4"], P("route:c -> d").Calls);

        var again = New();
        Assert.Null(await again.RecoverAsync(_wal.Read(0, _wal.Size)));
        Assert.Equal(p2["plan_id"]!.ToString(), again.AppliedPlanId);
        Assert.Equal(2, again.History.Count);
        Assert.True(WalVerifier.Verify(_wal.Store, _trust).Ok);
    }

    [Fact]
    public async Task A_transaction_costs_one_fsync_its_prepare_is_made_durable_by_its_decision_and_its_verified_entry_by_the_next_decision()
    {
        var database = ((SqliteWalStore)_wal.Store).Database;
        var c = New();
        var p1 = Plan(null, ("a", "b", "n0"));
        var durableBefore = database.DurableTransactions;
        var prepareSeen = false;
        P("node:n0").OnPrepare = () =>
        {
            // When a participant hears prepare, the entry is committed (another connection reads it) but not fsynced.
            Assert.False(database.LastCommitDurable);
            Assert.Equal(durableBefore, database.DurableTransactions);
            using var reader = SqliteWalStore.OpenReadOnly(database.Path);
            Assert.Equal("prepare", (string)JsonNode.Parse(reader.Read(0, 1).Single().Leaf)!["kind"]!);
            prepareSeen = true;
        };

        Assert.Equal(ApplyOutcome.Applied, (await c.ApplyAsync(p1)).Outcome);
        Assert.True(prepareSeen);
        // The decision with its head (covering the prepare): one fsync. Applied + verified with theirs are committed in
        // order (another connection reads them) but not fsynced: the next durable write makes them durable.
        Assert.Equal(durableBefore + 1, database.DurableTransactions);
        Assert.False(database.LastCommitDurable);
        Assert.Equal(["prepare", "commit", "applied", "verified"], Kinds());
        using (var reader = SqliteWalStore.OpenReadOnly(database.Path))
        {
            Assert.Equal("verified", (string)JsonNode.Parse(reader.Read(3, 4).Single().Leaf)!["kind"]!);
            Assert.Equal(4, reader.Heads()[^1].Size);
        }

        // An abort is durable: its decision is fsynced with the prepare and the verified entry before it.
        P("node:n0").Vote = new TxVote(false, "no room");
        P("node:n0").OnPrepare = null;
        var aborted = await c.ApplyAsync(Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n0")));
        Assert.Equal(ApplyOutcome.Aborted, aborted.Outcome);
        Assert.Equal(durableBefore + 2, database.DurableTransactions);
        Assert.True(database.LastCommitDurable);
    }

    [Fact]
    public async Task A_no_vote_or_a_silent_participant_aborts_and_every_participant_hears_the_abort()
    {
        var c = New(TimeSpan.FromMilliseconds(300));
        P("node:n0").Vote = new TxVote(false, "not enough memory");
        var outcome = await c.ApplyAsync(Plan(null, ("a", "b", "n0")));
        Assert.Equal(ApplyOutcome.Aborted, outcome.Outcome);
        Assert.Contains("node:n0: not enough memory", outcome.Reason, StringComparison.Ordinal);
        Assert.Null(c.AppliedPlanId);
        Assert.Equal(["prepare 0", "abort 0"], P("route:a -> b").Calls);
        Assert.Equal(["prepare", "abort"], Kinds());

        P("node:n0").Vote = new TxVote(true, "ok");
        P("node:n0").Hang = new TaskCompletionSource();
        outcome = await c.ApplyAsync(Plan(null, ("a", "b", "n0"), ("x", "y", "n0")));
        Assert.Equal(ApplyOutcome.Aborted, outcome.Outcome);
        Assert.Contains("no answer within 0.3 s", outcome.Reason, StringComparison.Ordinal);
        Assert.Contains("abort 2", P("route:x -> y").Calls);
    }

    [Fact]
    public async Task A_failed_verification_rolls_back_to_the_previous_plan_through_the_same_participants()
    {
        var c = New();
        var p1 = Plan(null, ("a", "b", "n0"));
        await c.ApplyAsync(p1);
        P("node:n1").Failing = (4, new TxCheck(false, "lane c -> d did not answer its probe")); // only the new plan's lanes fail
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n1"));

        var outcome = await c.ApplyAsync(p2);

        Assert.Equal(ApplyOutcome.RolledBack, outcome.Outcome);
        Assert.Contains("did not answer its probe", outcome.Reason, StringComparison.Ordinal);
        Assert.Equal(p1["plan_id"]!.ToString(), c.AppliedPlanId);
        Assert.Equal(["prepare", "commit", "applied", "verified", "prepare", "commit", "applied", "verify-failed", "prepare", "commit", "applied", "verified"], Kinds());
        var rollback = c.History[^1];
        Assert.Equal(Coordinator.TransitionRollback, rollback.Transition);
        Assert.Equal(["prepare 4", "commit 4", "prepare 8", "commit 8"], P("route:c -> d").Calls); // committed in, then committed out
        Assert.Equal(_wal.Size, _wal.Heads[^1].Size);
        Assert.True(_wal.Heads.Count >= 3);
    }

    [Fact]
    public async Task One_plan_at_a_time_stale_repeated_tampered_and_unsigned_plans_are_refused_clearly()
    {
        var c = New();
        var p1 = Plan(null, ("a", "b", "n0"));
        P("node:n0").Hang = new TaskCompletionSource();
        var first = c.ApplyAsync(p1);
        var busy = await Assert.ThrowsAsync<RttException>(() => c.ApplyAsync(Plan(null, ("q", "r", "n0"))));
        Assert.Equal(ErrorCodes.ApplyBusy, busy.Code);
        Assert.Contains($"plan {p1["plan_id"]} is being applied", busy.Message, StringComparison.Ordinal);
        P("node:n0").Hang!.SetResult();
        Assert.Equal(ApplyOutcome.Applied, (await first).Outcome);

        Assert.Equal(ApplyOutcome.Unchanged, (await c.ApplyAsync(p1)).Outcome);
        var stale = await Assert.ThrowsAsync<RttException>(() => c.ApplyAsync(Plan(null, ("q", "r", "n0"))));
        Assert.Equal(ErrorCodes.ApplyStale, stale.Code);
        Assert.Contains((string)p1["plan_id"]!, stale.Message, StringComparison.Ordinal);

        var tampered = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("e", "f", "n0"));
        tampered["placement"]!["f"] = "n9";
        Assert.Equal(ErrorCodes.PlanMismatch, (await Assert.ThrowsAsync<RttException>(() => c.ApplyAsync(tampered))).Code);
        var anonymous = Plan((string)p1["plan_id"]!, ("a", "b", "n0"));
        anonymous.Remove("plan_id");
        var missing = await Assert.ThrowsAsync<RttException>(() => c.ApplyAsync(anonymous));
        Assert.Equal((ErrorCodes.PlanIdMissing, "the plan has no plan_id"), (missing.Code, missing.Message)); // its own code, not a mismatch
        var unsigned = Plan((string)p1["plan_id"]!, ("a", "b", "n0"));
        unsigned.Remove("sign");
        Assert.Equal(ErrorCodes.Unsigned, (await Assert.ThrowsAsync<RttException>(() => c.ApplyAsync(unsigned))).Code);
        Assert.Equal(4, _wal.Size); // nothing refused reached the log
    }

    [Fact]
    public async Task Rollback_restores_the_base_plan_and_with_nothing_applied_it_is_a_clear_error()
    {
        var c = New();
        Assert.Equal(ErrorCodes.ApplyNothingToRollBack, (await Assert.ThrowsAsync<RttException>(() => c.RollbackAsync("test"))).Code);
        var p1 = Plan(null, ("a", "b", "n0"));
        await c.ApplyAsync(p1);
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n1"));
        await c.ApplyAsync(p2);

        var back = await c.RollbackAsync("operator asked");
        Assert.Equal(ApplyOutcome.RolledBack, back.Outcome);
        Assert.Equal(p1["plan_id"]!.ToString(), c.AppliedPlanId);
        Assert.Equal("operator asked", c.History[^1].Reason);
        Assert.Equal(p1["plan_id"]!.ToString(), back.PlanId);
    }

    [Fact]
    public async Task A_rolled_back_plan_cannot_be_applied_again_even_after_recovery()
    {
        var c = New();
        var p1 = Plan(null, ("a", "b", "n0"));
        await c.ApplyAsync(p1);
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n1"));
        await c.ApplyAsync(p2);
        await c.RollbackAsync("bad lanes");
        var walSize = _wal.Size;

        // p2's base (p1) is applied again, so before this it was simply accepted.
        var ex = await Assert.ThrowsAsync<RttException>(() => c.ApplyAsync(p2));
        Assert.Equal(ErrorCodes.PlanStatusInvalid, ex.Code);
        Assert.Contains("rolled back", ex.Message);
        Assert.Equal(walSize, _wal.Size); // refused before anything was logged

        var restarted = New();
        await restarted.RecoverAsync(_wal.Read(0, _wal.Size));
        Assert.Equal(ErrorCodes.PlanStatusInvalid, (await Assert.ThrowsAsync<RttException>(() => restarted.ApplyAsync(p2))).Code);

        // The first plan rolled back to "no plan" is final too.
        await restarted.RollbackAsync("back to nothing");
        Assert.Null(restarted.AppliedPlanId);
        Assert.Equal(ErrorCodes.PlanStatusInvalid, (await Assert.ThrowsAsync<RttException>(() => restarted.ApplyAsync(p1))).Code);
        var p3 = Plan(null, ("a", "b", "n2"));
        Assert.Equal(ApplyOutcome.Applied, (await restarted.ApplyAsync(p3)).Outcome); // a new plan goes forward
    }

    [Theory]
    [InlineData("after-prepare-logged", false)]
    [InlineData("after-votes", false)]
    [InlineData("after-commit-decision", true)]
    [InlineData("during-verify", true)]
    public async Task A_coordinator_that_stops_at_a_phase_boundary_is_resolved_by_recovery(string point, bool committed)
    {
        string? crashPlan = null; // set once plan 2 exists: the coordinator stops at the point for that plan only
        var c = New(faults: new TestFaults((at, plan) => at == point && plan == crashPlan ? throw new CrashException() : Task.CompletedTask));
        var p1 = Plan(null, ("a", "b", "n0"));
        await c.ApplyAsync(p1);
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n1"));
        crashPlan = (string)p2["plan_id"]!;
        await Assert.ThrowsAsync<CrashException>(() => c.ApplyAsync(p2));

        var recovered = New();
        var what = await recovered.RecoverAsync(_wal.Read(0, _wal.Size));
        Assert.NotNull(what);
        Assert.Equal(committed ? p2["plan_id"]!.ToString() : p1["plan_id"]!.ToString(), recovered.AppliedPlanId);
        var route = P("route:c -> d");
        Assert.Equal(committed, route.Calls.Contains("commit 4"));
        if (!committed)
        {
            Assert.True(route.Calls.Count == 0 || route.Calls.Contains("abort 4"), string.Join(", ", route.Calls)); // a reservation is released
            Assert.Equal("abort", recovered.History[^1].Decision);
        }
        else
        {
            Assert.NotNull(recovered.History[^1].VerifiedIndex);
        }

        // Recovery is itself idempotent: a second one finds nothing to do.
        Assert.Null(await New().RecoverAsync(_wal.Read(0, _wal.Size)));
        Assert.True(WalVerifier.Verify(_wal.Store, _trust).Ok);
    }

    [Fact]
    public async Task A_commit_is_resent_until_acknowledged_and_giving_up_is_logged_and_left_to_recovery()
    {
        var log = new ListLogger();
        var c = New(logger: log);
        P("node:n0").CommitFailures = 2; // two lost acknowledgements: the third try goes through
        Assert.Equal(ApplyOutcome.Applied, (await c.ApplyAsync(Plan(null, ("a", "b", "n0")))).Outcome);
        Assert.Equal(["prepare 0", "commit 0", "commit 0", "commit 0"], P("node:n0").Calls);
        Assert.DoesNotContain(log.Entries, e => e.Level >= LogLevel.Warning);

        // A participant that never acknowledges: after Retry:Commit's 3 attempts the coordinator gives up, says so in
        // the log, and the apply fails; the decision is durable, so recovery sends the commit again later.
        var p1 = (string)c.Applied!["plan_id"]!;
        var p2 = Plan(p1, ("a", "b", "n0"), ("c", "d", "n1"));
        P("node:n1").CommitFailures = int.MaxValue;
        var failure = await Assert.ThrowsAsync<IOException>(() => c.ApplyAsync(p2));
        Assert.Equal("commit 4 lost", failure.Message);
        Assert.Equal(3, P("node:n1").Calls.Count(call => call == "commit 4"));
        var gaveUp = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal("Gave up on the commit of transaction 4 to node:n1 after 3 attempt(s) (Retry:Commit): commit 4 lost", gaveUp.Message);
        Assert.IsType<IOException>(gaveUp.Exception);

        P("node:n1").CommitFailures = 0;
        var recovered = New();
        Assert.NotNull(await recovered.RecoverAsync(_wal.Read(0, _wal.Size)));
        Assert.Equal((string)p2["plan_id"]!, recovered.AppliedPlanId);
        Assert.Equal(4, P("node:n1").Calls.Count(call => call == "commit 4"));
    }

    [Fact]
    public void Targets_give_each_changed_participant_its_part_with_stable_route_ids()
    {
        var p1 = Plan(null, ("a", "b", "n0"));
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n1"));
        var changes = PlanTargets.Changes(p1, p2);
        Assert.Equal(["node:n1", "route:c -> d"], changes.Keys);
        var route = JsonNode.Parse(changes["route:c -> d"]!.ToJson())!;
        Assert.Equal(RouteIds.Of("c", "d"), (uint)route["route_id"]!);
        Assert.Equal("n1", (string)route["node"]!);
        Assert.Equal(RouteIds.Of("c", "d"), (uint)JsonNode.Parse(changes["node:n1"]!.ToJson())!["lanes"]![0]!["route_id"]!);
        Assert.NotEqual(RouteIds.Of("a", "b"), RouteIds.Of("b", "a"));

        var removed = PlanTargets.Changes(p2, null);
        Assert.All(removed.Values, Assert.Null);
        Assert.Equal(4, removed.Count);
    }

    public void Dispose()
    {
        _wal.Dispose();
        _key.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_plan_over_another_is_logged_as_a_delta_and_the_wal_alone_rebuilds_it()
    {
        var c = New();
        var lanes = Enumerable.Range(0, 50).Select(i => ($"s{i}", $"t{i}", "n0")).ToList();
        var plans = new List<JsonObject> { Plan(null, [.. lanes]) };
        Assert.Equal(ApplyOutcome.Applied, (await c.ApplyAsync(plans[0])).Outcome);

        // Single-route changes (add one, remove it, change another's node), more than a delta chain holds.
        for (var i = 1; i <= Coordinator.MaxDeltaChain + 3; i++)
        {
            var now = i % 3 == 1 ? [.. lanes, ($"x{i}", $"y{i}", "n1")] : i % 3 == 2 ? lanes : lanes.Select((l, j) => j == i ? (l.Item1, l.Item2, "n1") : l).ToList();
            lanes = i % 3 == 0 ? now : lanes;
            plans.Add(Plan((string)plans[^1]["plan_id"]!, [.. now]));
            Assert.Equal(ApplyOutcome.Applied, (await c.ApplyAsync(plans[^1])).Outcome);
        }

        var prepares = _wal.Read(0, _wal.Size).Select(e => (JsonObject)JsonNode.Parse(e.Leaf)!).Where(e => (string?)e["kind"] == "prepare").ToList();
        Assert.Equal(plans.Count, prepares.Count);
        Assert.NotNull(prepares[0]["plan"]); // nothing applied before: the whole plan
        Assert.Null(prepares[1]["plan"]);
        var delta = Assert.IsType<JsonObject>(prepares[1]["delta"]);
        Assert.Equal((string?)plans[0]["plan_id"], (string?)delta["base"]);
        Assert.True(delta.ToJsonString().Length * 5 < plans[1].ToJsonString().Length, $"a one-route delta is a fraction of the plan: {delta.ToJsonString()} of {plans[1].ToJsonString().Length}");
        Assert.NotNull(prepares[Coordinator.MaxDeltaChain + 1]["plan"]); // the chain is cut: a whole plan again
        Assert.NotNull(prepares[Coordinator.MaxDeltaChain + 2]["delta"]);

        // Recovery rebuilds the applied plan from the WAL alone, and so does `rtt wal plan` (PlanDelta.FromLog).
        var again = New();
        Assert.Null(await again.RecoverAsync(_wal.Read(0, _wal.Size)));
        Assert.Equal(plans[^1]["plan_id"]!.ToString(), again.AppliedPlanId);
        Assert.Equal(CanonicalBytes(plans[^1]), CanonicalBytes(again.Applied!));
        foreach (var plan in plans)
        {
            var rebuilt = PlanDelta.FromLog(_wal.Read(0, _wal.Size), (string)plan["plan_id"]!);
            Assert.Equal(CanonicalBytes(plan), CanonicalBytes(rebuilt!));
            Assert.Equal((string?)plan["plan_id"], Planner.PlanId(rebuilt!));
        }

        // A rollback reads its target back through the deltas too.
        Assert.Equal(ApplyOutcome.RolledBack, (await again.RollbackAsync("test")).Outcome);
        Assert.Equal((string?)plans[^2]["plan_id"], again.AppliedPlanId);
        Assert.Equal(CanonicalBytes(plans[^2]), CanonicalBytes(again.Applied!));
    }

    [Fact]
    public void A_delta_on_another_base_or_that_does_not_hash_to_its_plan_is_refused()
    {
        var p1 = Plan(null, ("a", "b", "n0"), ("c", "d", "n0"));
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n1"), ("e", "f", "n0"));
        var delta = PlanDelta.Diff(p1, p2);
        Assert.Equal(CanonicalBytes(p2), CanonicalBytes(PlanDelta.Rebuild(p1, delta, (string)p2["plan_id"]!)));
        var other = Plan(null, ("a", "b", "n0"));
        Assert.Equal(ErrorCodes.WalTampered, Assert.Throws<RttException>(() => PlanDelta.Apply(other, delta)).Code);
        Assert.Equal(ErrorCodes.WalTampered, Assert.Throws<RttException>(() => PlanDelta.Rebuild(p1, delta, (string)p1["plan_id"]!)).Code);
        delta["arrays"]!["lanes"]!["delete"] = 99;
        Assert.Equal(ErrorCodes.WalTampered, Assert.Throws<RttException>(() => PlanDelta.Apply(p1, delta)).Code);
    }

    private static byte[] CanonicalBytes(JsonObject plan) => Rtt.Core.Json.CanonicalJson.Serialize(plan);

    private sealed class CrashException : Exception;

    private sealed class TestFaults(Func<string, string, Task> hit) : IFaultPoints
    {
        public Task HitAsync(string point, string detail) => hit(point, detail);
    }

    private sealed class Log(WalLog wal, SigningKey key) : ICoordinatorLog
    {
        public Task<long> AppendAsync(WalEntry entry) => wal.AppendAsync(entry.ToJson());

        public Task<long> AppendUnflushedAsync(WalEntry entry) => wal.AppendLeafUnflushedAsync(entry.ToLeaf());

        public Task<SignedTreeHead> SignHeadAsync() => Task.FromResult(wal.SignHead(key, DateTimeOffset.UnixEpoch));

        public Task<(long Size, string Root)> RootAsync() => Task.FromResult(wal.Current());

        public Task<WalEntry?> ReadAsync(long index) => Task.FromResult(WalEntry.Parse(wal.Read(index, index + 1).Single().Leaf));

        /// <summary>The entries and their head in one SQLite transaction, as the WAL grain does.</summary>
        public Task<(long First, SignedTreeHead Head)> AppendAndSignAsync(IReadOnlyList<WalEntry> entries) =>
            Task.FromResult(wal.AppendAndSign([.. entries.Select(e => e.ToLeaf())], key, DateTimeOffset.UnixEpoch));

        public Task<(long First, SignedTreeHead Head)> AppendAndSignUnflushedAsync(IReadOnlyList<WalEntry> entries) =>
            Task.FromResult(wal.AppendAndSign([.. entries.Select(e => e.ToLeaf())], key, DateTimeOffset.UnixEpoch, durable: false));
    }

    private sealed class TestParticipant : IParticipant
    {
        public List<string> Calls { get; } = [];
        public TxVote Vote { get; set; } = new(true, "reserved");
        public (long Tx, TxCheck Check)? Failing { get; set; }

        /// <summary>How many commits from now on fail (a lost acknowledgement).</summary>
        public int CommitFailures { get; set; }
        public TaskCompletionSource? Hang { get; set; }

        /// <summary>Runs when prepare arrives (a check of what the coordinator logged before asking).</summary>
        public Action? OnPrepare { get; set; }

        public async Task<TxVote> PrepareAsync(long tx, string planId, Rtt.Grains.Reconciling.ParticipantTarget? target)
        {
            Calls.Add($"prepare {tx}");
            OnPrepare?.Invoke();
            if (Hang is { } hang)
            {
                await hang.Task;
            }

            return Vote;
        }

        public Task CommitAsync(long tx, string planId, Rtt.Grains.Reconciling.ParticipantTarget? target)
        {
            Calls.Add($"commit {tx}");
            if (CommitFailures > 0)
            {
                CommitFailures--;
                throw new IOException($"commit {tx} lost");
            }

            return Task.CompletedTask;
        }

        public Task AbortAsync(long tx)
        {
            Calls.Add($"abort {tx}");
            return Task.CompletedTask;
        }

        public Task<TxCheck> VerifyAsync(long tx) => Task.FromResult(Failing is { } f && f.Tx == tx ? f.Check : new TxCheck(true, "ok"));
    }
}
