using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Rtt.Core.Signing;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Reconciling;
using Rtt.Reconciling.Wal;

namespace Rtt.Core.Tests;

/// <summary>
/// The WAL entries' bytes do not change: a fixed scenario (fixed key, fixed clock) that writes every kind of entry the
/// coordinator writes, in every variant (whole plan, delta, no plan, rollback reason, abort with votes, recovery's
/// abort and lone "applied"), must leave exactly the leaves in <c>Golden/wal-entries.ndjson</c>, which were captured
/// from the coordinator before its entries were typed.
/// </summary>
public sealed class WalEntryTests : IDisposable
{
    private static readonly DateTimeOffset Clock = new(2026, 11, 26, 5, 36, 21, 519, TimeSpan.Zero);

    private readonly string _dir = Directory.CreateTempSubdirectory("rtt-walentry-").FullName;
    private readonly SigningKey _key = SigningKey.FromSeed(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
    private readonly WalLog _wal;
    private readonly Dictionary<string, Participant> _participants = new(StringComparer.Ordinal);

    public WalEntryTests()
    {
        _wal = WalLog.Open(SqliteWalStore.Open(Path.Combine(_dir, "rtt.db")));
    }

    public void Dispose()
    {
        _wal.Dispose();
        _key.Dispose();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private Participant P(string name)
    {
        if (!_participants.TryGetValue(name, out var p))
        {
            p = new Participant();
            _participants[name] = p;
        }

        return p;
    }

    private Coordinator New(IFaultPoints? faults = null) =>
        new(new Log(_wal, _key), name => P(name), new ReconcilerOptions
        {
            CommitRetry = new Rtt.Reconciling.Resilience.RetryOptions { Attempts = 1, Delay = TimeSpan.FromMilliseconds(1), MaxDelay = TimeSpan.FromMilliseconds(1) },
            Strict = false,
        }, new FixedTime(Clock), faults);

    private JsonObject Plan(string? baseId, params (string From, string To, string Node)[] lanes) => Planner.Manual(_key, baseId, lanes);

    /// <summary>Runs the scenario and returns the WAL's leaves as text, one a line.</summary>
    private async Task<List<string>> Scenario()
    {
        string? crashAt = null;
        var c = New(new Faults((point, _) => point == crashAt ? throw new CrashException() : Task.CompletedTask));

        // prepare (whole plan, base null), commit (votes), applied, verified
        var p1 = Plan(null, ("a", "b", "n0"));
        Assert.Equal(ApplyOutcome.Applied, (await c.ApplyAsync(p1)).Outcome);

        // prepare (delta), commit, applied, verify-failed; then the rollback: prepare (transition, reason, delta), commit, applied, verified
        P("node:n1").Failing = (4, new TxCheck(false, "lane c -> d did not answer its probe"));
        var p2 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("c", "d", "n1"));
        Assert.Equal(ApplyOutcome.RolledBack, (await c.ApplyAsync(p2)).Outcome);

        // prepare, abort (reason, votes with a no)
        P("node:n0").Vote = new TxVote(false, "not enough memory \"quoted\" é");
        var p3 = Plan((string)p1["plan_id"]!, ("a", "b", "n0"), ("e", "f", "n0"));
        Assert.Equal(ApplyOutcome.Aborted, (await c.ApplyAsync(p3)).Outcome);
        P("node:n0").Vote = new TxVote(true, "reserved");

        // a rollback to no plan: prepare with "plan": null and "plan_id": null
        Assert.Equal(ApplyOutcome.RolledBack, (await c.RollbackAsync("operator asked")).Outcome);

        // a crash after prepare: recovery's abort (reason, no votes)
        crashAt = FaultPoints.AfterPrepareLogged;
        await Assert.ThrowsAsync<CrashException>(() => c.ApplyAsync(Plan(null, ("g", "h", "n2"))));
        crashAt = null;
        c = New();
        Assert.NotNull(await c.RecoverAsync(_wal.Read(0, _wal.Size)));

        // a crash after the commit decision: recovery's lone "applied", then verified
        c = New(new Faults((point, _) => point == crashAt ? throw new CrashException() : Task.CompletedTask));
        crashAt = FaultPoints.AfterCommitDecision;
        await Assert.ThrowsAsync<CrashException>(() => c.ApplyAsync(Plan(null, ("i", "j", "n3"))));
        crashAt = null;
        c = New();
        Assert.NotNull(await c.RecoverAsync(_wal.Read(0, _wal.Size)));
        Assert.Null(await New().RecoverAsync(_wal.Read(0, _wal.Size)));

        return [.. _wal.Read(0, _wal.Size).Select(e => Encoding.UTF8.GetString(e.Leaf))];
    }

    [Fact]
    public async Task The_coordinator_writes_the_same_bytes_as_before_its_entries_were_typed()
    {
        var actual = await Scenario();
        var golden = Path.Combine(AppContext.BaseDirectory, "Golden", "wal-entries.ndjson");
        var expected = File.Exists(golden) ? File.ReadAllLines(golden).Where(l => l.Length > 0).ToList() : [];
        if (!actual.SequenceEqual(expected, StringComparer.Ordinal))
        {
            var written = Path.Combine(Path.GetTempPath(), "rtt-wal-entries.actual.ndjson");
            File.WriteAllLines(written, actual);
            Assert.Fail($"the WAL entries differ from {golden} ({expected.Count} expected, {actual.Count} written); what was written: {written}");
        }

        var kinds = actual.Select(l => (string?)JsonNode.Parse(l)!["kind"]).Distinct().Order(StringComparer.Ordinal);
        Assert.Equal(["abort", "applied", "commit", "prepare", "verified", "verify-failed"], kinds);
    }

    [Fact]
    public void Every_stored_entry_reads_back_into_its_record_and_writes_the_same_bytes_again()
    {
        var golden = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Golden", "wal-entries.ndjson")).Where(l => l.Length > 0).ToList();
        var types = new HashSet<Type>();
        foreach (var line in golden)
        {
            var entry = WalEntry.Parse(Encoding.UTF8.GetBytes(line));
            Assert.NotNull(entry);
            types.Add(entry.GetType());
            Assert.Equal(line, Encoding.UTF8.GetString(entry.ToLeaf()));
            Assert.Equal((string?)JsonNode.Parse(line)!["kind"], entry.Kind);
        }

        Assert.Equal(5, types.Count); // prepare, decision, applied, verified, verify-failed
    }

    [Fact]
    public void Each_record_writes_the_members_the_old_writers_wrote()
    {
        const string At = "2026-11-26T05:36:21.519Z";
        Assert.Equal(At, WalEntry.Timestamp(Clock));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","kind":"applied","tx":7}""", Text(new AppliedEntry(At, 7)));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","checks":"node:n0: ok","kind":"verified","tx":7}""", Text(new VerifiedEntry(At, 7, "node:n0: ok")));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","kind":"verify-failed","reason":null,"tx":7}""", Text(new VerifyFailedEntry(At, 7, null)));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","kind":"commit","plan_id":null,"tx":7,"votes":[]}""", Text(new DecisionEntry(At, 7, true, null, [], null)));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","kind":"abort","plan_id":"p","reason":"r","tx":7,"votes":[{"participant":"node:n0","reason":null,"yes":false}]}""",
            Text(new DecisionEntry(At, 7, false, "p", [new WalVote("node:n0", null, false)], "r")));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","base":null,"kind":"prepare","participants":[],"plan":null,"plan_id":null,"transition":"rollback"}""",
            Text(new PrepareEntry(At, null, [], null, null, null, Coordinator.TransitionRollback, null)));
        Assert.Equal("""{"at":"2026-11-26T05:36:21.519Z","base":"b","delta":{"base":"b"},"kind":"prepare","participants":["node:n0"],"plan_id":"p","reason":"why","transition":"apply"}""",
            Text(new PrepareEntry(At, "b", ["node:n0"], new JsonObject { ["x"] = 1 }, new JsonObject { ["base"] = "b" }, "p", Coordinator.TransitionApply, "why")));

        // The key-rotation entry as KeyRotation.Rotate wrote it before it was typed.
        var old = new JsonObject { ["at"] = At, ["from"] = "k1", ["kind"] = "key-rotation", ["revocation"] = "retired", ["to"] = "k2" };
        var rotation = new KeyRotationEntry(At, "k1", "retired", "k2");
        Assert.Equal(WalLog.LeafOf(old), rotation.ToLeaf());
        Assert.Equal(rotation, WalEntry.Parse(rotation.ToLeaf()));
    }

    [Fact]
    public void Old_entries_without_the_later_members_read_with_the_defaults_recovery_gave_them()
    {
        // Before plan deltas and rollbacks: no transition, no delta; a tool's own entry kind is not the coordinator's.
        var prepare = Assert.IsType<PrepareEntry>(WalEntry.Parse("""{"at":"t","base":null,"kind":"prepare","plan":{"a":1},"plan_id":"p"}"""u8));
        Assert.Equal((Coordinator.TransitionApply, false, 0), (prepare.Transition, prepare.IsDelta, prepare.Participants.Length));
        Assert.Equal(1, (int)prepare.Plan!["a"]!);
        var lean = Assert.IsType<PrepareEntry>(WalEntry.Parse("""{"delta":{"base":"b"},"kind":"prepare"}"""u8, plans: false));
        Assert.True(lean.IsDelta);
        Assert.Null(lean.Delta);
        Assert.Equal("", lean.At);
        Assert.Throws<InvalidOperationException>(() => lean.ToJson()); // read without its plan: never written back
        Assert.Null(WalEntry.Parse("""{"kind":"test","n":1}"""u8));
        Assert.Null(WalEntry.Parse("""{"at":"t","kind":"commit"}"""u8)); // a decision without its transaction
    }

    private static string Text(WalEntry entry) => Encoding.UTF8.GetString(entry.ToLeaf());

    private sealed class CrashException : Exception;

    private sealed class Faults(Func<string, string, Task> hit) : IFaultPoints
    {
        public Task HitAsync(string point, string detail) => hit(point, detail);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private sealed class Log(WalLog wal, SigningKey key) : ICoordinatorLog
    {
        public Task<long> AppendAsync(WalEntry entry) => wal.AppendAsync(entry.ToJson());

        public Task<SignedTreeHead> SignHeadAsync() => Task.FromResult(wal.SignHead(key, DateTimeOffset.UnixEpoch));

        public Task<(long Size, string Root)> RootAsync() => Task.FromResult(wal.Current());

        public Task<WalEntry?> ReadAsync(long index) => Task.FromResult(WalEntry.Parse(wal.Read(index, index + 1).Single().Leaf));

        public Task<(long First, SignedTreeHead Head)> AppendAndSignAsync(IReadOnlyList<WalEntry> entries) =>
            Task.FromResult(wal.AppendAndSign([.. entries.Select(e => e.ToLeaf())], key, DateTimeOffset.UnixEpoch));
    }

    private sealed class Participant : IParticipant
    {
        public TxVote Vote { get; set; } = new(true, "reserved");

        public (long Tx, TxCheck Check)? Failing { get; set; }

        public Task<TxVote> PrepareAsync(long tx, string planId, Rtt.Grains.Reconciling.ParticipantTarget? target) => Task.FromResult(Vote);

        public Task CommitAsync(long tx, string planId, Rtt.Grains.Reconciling.ParticipantTarget? target) => Task.CompletedTask;

        public Task AbortAsync(long tx) => Task.CompletedTask;

        public Task<TxCheck> VerifyAsync(long tx) => Task.FromResult(Failing is { } f && f.Tx == tx ? f.Check : new TxCheck(true, "ok"));
    }
}
