using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Grains.Registry;
using Rtt.Reconciling.Wal;

namespace Rtt.Grains.Tests;

/// <summary>
/// Every type Orleans serializes for RTT (<c>[GenerateSerializer]</c> in Rtt.Grains.Interfaces: what crosses a grain
/// boundary; and in Rtt.Grains: grain state) goes through Orleans' serializer and comes back equal. Each sample sets
/// every member to a value other than its default, so a member without an <c>[Id]</c> (not serialized) shows. A new
/// <c>[GenerateSerializer]</c> type without a sample here fails <see cref="Every_serialized_type_has_a_sample"/>.
/// </summary>
public sealed class WireRoundTripTests
{
    private static readonly DateTimeOffset Time = new(2026, 12, 3, 9, 0, 0, 123, TimeSpan.FromHours(1));

    private static readonly NodeFacts Facts = new("n0", "host-a", "EPYC", 64, 1L << 37,
        [new NumaNodeFacts(1, "0-31", 32, 1L << 36)], "10.0.0.1:11111@1", "/run/rtt/lanes.sock", "10.0.0.1:7000");

    private static readonly NodeRecord Record = new(Facts, Time, Time.AddMinutes(5), 3);

    private static readonly NodePlacement Placement = new("n0", "10.0.0.1:11111@1", "n0", true, "sha256:p1", ["a -> b", "c -> d"], 2);

    private static readonly ClusterView Cluster = new([new SiloView("10.0.0.1:11111@1", "silo-a", "host-a", "0", "n0")], [Record], [Placement]);

    private static readonly LaneSpec Lane = new(42u, "rtt://a/b/c", "rtt://d/e/f", "uds", "n0", 4096, "sha256:e1", new LaneIdle(10_000, 200, true), true, "n1");

    private static readonly NodeTarget Node = new("n0", ["rtt://a/b/c", "rtt://d/e/f"], [Lane, Lane with { RouteId = 43u, Forward = null }],
        [new LaneEndpoint("sha256:e1", "{\"kind\":\"process\",\"command\":\"/bin/svc\"}")]);

    private static readonly WalEntry[] WalEntries =
    [
        new PrepareEntry("2026-12-03T09:00:00.123Z", "sha256:p1", ["node:n0", "route:a -> b"], new JsonObject { ["plan_id"] = "sha256:p2", ["lanes"] = new JsonArray(1, "x") },
            new JsonObject { ["base"] = "sha256:p1", ["set"] = new JsonObject { ["a"] = 1.5 } }, "sha256:p2", "rollback", "why") { IsDelta = true, PlansRead = true },
        new DecisionEntry("2026-12-03T09:00:00.124Z", 4, true, "sha256:p2", [new WalVote("node:n0", "reserved", true)], "why"),
        new AppliedEntry("2026-12-03T09:00:00.125Z", 4),
        new VerifiedEntry("2026-12-03T09:00:00.126Z", 4, "node:n0: 1 changed lane(s) answered"),
        new VerifyFailedEntry("2026-12-03T09:00:00.127Z", 4, "node:n0: no answer"),
        new KeyRotationEntry("2026-12-03T09:00:00.128Z", "key-1", "revoked", "key-2"),
    ];

    private static readonly ParticipantLedgerView LedgerView = new(4, "sha256:p1", "{\"lanes\":[]}", 8, "sha256:p2");

    /// <summary>One sample per serialized type.</summary>
    private static readonly IReadOnlyList<object> Samples =
    [
        // Rtt.Grains.Interfaces: grain calls
        new RttGrainException("RTT-PLAN-001", "a plan must be a JSON object", "plan.json", "pass a plan made by `rtt plan`"),
        Facts,
        Facts.NumaNodes[0],
        Record,
        Placement,
        new NodeSnapshot(Record, Placement),
        new SiloView("10.0.0.1:11111@1", "silo-a", "host-a", "0", "n0"),
        Cluster,
        new MemberView("silo-a", "10.0.0.1:11111@1", "Active", "host-a", new DateTime(2026, 12, 3, 8, 0, 0, DateTimeKind.Utc), 30000, "0", "n0"),
        new Rtt.Grains.Diagnostics.SiloRuntimeView(123_456_789_012, 41, 7, 2, 22_001, 987_654),
        new ClusterStatusView([new MemberView("silo-a", "10.0.0.1:11111@1", "Active", "host-a", new DateTime(2026, 12, 3, 8, 0, 0, DateTimeKind.Utc), 30000, "0", "n0")], Cluster.Records, Cluster.Placements),
        new TxVote(true, "reserved"),
        .. WalEntries,
        new WalVote("node:n0", "reserved", true),
        new JsonObjectSurrogate { Json = "{\"a\":1}" },
        Lane.Idle!,
        Lane,
        Node.Endpoints[0],
        Node,
        new RouteTarget("rtt://a/b/c", "rtt://d/e/f", 42u, "n0", "uds", "sha256:lane"),
        new TxCheck(true, "lane a -> b answered its probe"),
        LedgerView,
        new WalHeadView(12, "sha256:root", "{\"size\":12}"),
        new AppliedRouteView("a", "b", 42u, "n0", "shm", "sha256:e", "process", "echo"),
        new AppliedRoutes("sha256:p1", [new AppliedRouteView("a", "b", 42u, "n0", "shm", "sha256:e", "process", "echo")]),
        new PhaseView("prepare", 1.25, "2 participant(s), 2 yes, 0 no"),
        new ApplyReport("applied", "sha256:p1", 4, "why", [new PhaseView("prepare", 1.25, "ok")], 8, "sha256:root"),
        new PlanChange("sha256:base", "sha256:p2", "{\"base\":\"sha256:base\",\"set\":{\"x\":1}}"),
        new ManagementToken("rttm2.AAAA"),
        new TxView(4, "apply", "sha256:p2", "sha256:p1", "commit", 5, 6, 7, 8, "why", "2026-11-26T05:36:21.519Z", ["node:n0", "route:a -> b"]),
        new ParticipantView("node:n0", LedgerView),
        new ReconcilerHistory("sha256:p1", [new TxView(4, "apply", "sha256:p2", "sha256:p1", "commit", 5, 6, 7, 8, "why", "at", ["node:n0"])],
            [new ParticipantView("node:n0", LedgerView)], 9, "sha256:root", "recovered"),
        new RegistryObject("sha256:o", "{\"id\":\"a\"}", "key-1"),
        new SymbolVersion("a.echo", "1.0.0", "tool", "sha256:o", "{\"type\":\"object\"}", "{\"type\":\"string\"}", "agents/a.agent.json"),
        new IngestOutcome("a@1.0.0", "sha256:o", true),
        new AgentInfo("a@1.0.0", "sha256:o", "an agent", ["a.echo"], "key-1", true),

        // Rtt.Grains: grain state
        new LedgerState
        {
            AppliedTx = 1, AppliedPlan = "p1", AppliedTarget = "t1", ReservedTx = 2, ReservedPlan = "p2", ReservedTarget = "t2",
            LastAbortedTx = 3, VoteTx = 2, VoteYes = true, VoteReason = "reserved", PreviousTarget = "t0",
        },
        new NodeState { Record = Record, Ledger = new LedgerState { AppliedTx = 1, AppliedPlan = "p1" } },
        new NodeDirectoryState { NodeIds = ["n0", "n1"] },
        NodeSiloPlacement.Instance,
    ];

    private static readonly Assembly[] Assemblies = [typeof(TxVote).Assembly, typeof(LedgerState).Assembly];

    private static readonly Serializer Serializer = new ServiceCollection()
        .AddSerializer(b =>
        {
            foreach (var assembly in Assemblies)
            {
                b.AddAssembly(assembly);
            }
        })
        .BuildServiceProvider()
        .GetRequiredService<Serializer>();

    public static TheoryData<string> SampleNames => [.. Samples.Select(s => s.GetType().Name)];

    [Fact]
    public void Every_serialized_type_has_a_sample()
    {
        var serialized = Assemblies.SelectMany(a => a.GetTypes())
            .Where(t => t.GetCustomAttribute<GenerateSerializerAttribute>() is not null && !t.IsAbstract) // ParticipantTarget: its records have samples
            .Select(t => t.FullName!).Order(StringComparer.Ordinal).ToList();
        var sampled = Samples.Select(s => s.GetType().FullName!).Distinct().Order(StringComparer.Ordinal).ToList();
        Assert.True(serialized.Count >= 29, $"found only {serialized.Count} [GenerateSerializer] types: is the reflection looking in the right place?");
        Assert.Equal(serialized, sampled); // a type without a sample: add one to Samples
    }

    [Theory]
    [MemberData(nameof(SampleNames))]
    public void A_sample_comes_back_equal_through_the_orleans_serializer(string name)
    {
        var sample = Samples.Single(s => s.GetType().Name == name);
        AssertNoDefaultMembers(sample);
        var copy = Serializer.Deserialize<object>(Serializer.SerializeToArray<object>(sample));
        Assert.IsType(sample.GetType(), copy);
        if (sample is RttGrainException ex)
        {
            var back = (RttGrainException)copy;
            Assert.Equal((ex.Code, ex.Message, ex.Location, ex.Remedy), (back.Code, back.Message, back.Location, back.Remedy));
            return;
        }

        if (sample.GetType().IsAssignableTo(typeof(IEquatable<>).MakeGenericType(sample.GetType())) && !HasCollections(sample.GetType()))
        {
            Assert.Equal(sample, copy); // a record of scalars (all the way down): its own equality
        }

        Assert.Equal(Json(sample), Json(copy)); // member by member, collections element by element
    }

    [Fact]
    public void A_participant_target_crosses_as_its_base_type_and_comes_back_equal()
    {
        // ITxParticipant.Prepare and Commit declare ParticipantTarget: the record's own type travels with it.
        ParticipantTarget[] targets = [Node, new RouteTarget("rtt://a/b/c", "rtt://d/e/f", 42u, "n0", "uds", Lane.Hash())];
        foreach (var target in targets)
        {
            var copy = Serializer.Deserialize<ParticipantTarget>(Serializer.SerializeToArray(target));
            Assert.IsType(target.GetType(), copy);
            Assert.Equal(target, copy); // value equality, element by element for a node target
            Assert.Equal(target.ToJson(), copy.ToJson());
        }
    }

    [Fact]
    public void A_wal_entry_crosses_as_its_base_type_and_its_stored_bytes_do_not_change()
    {
        // IWalGrain.Append and AppendAndSign declare WalEntry: the grain stores ToLeaf() of what arrives, which must be
        // the caller's bytes exactly (the WAL is hashed and signed).
        foreach (var entry in WalEntries)
        {
            var copy = Serializer.Deserialize<WalEntry>(Serializer.SerializeToArray(entry));
            Assert.IsType(entry.GetType(), copy);
            Assert.Equal(entry.ToLeaf(), copy.ToLeaf());
        }

        var batch = Serializer.Deserialize<ImmutableArray<WalEntry>>(Serializer.SerializeToArray(WalEntries.ToImmutableArray()));
        Assert.Equal(WalEntries.Select(e => Convert.ToHexString(e.ToLeaf())), batch.Select(e => Convert.ToHexString(e.ToLeaf())));
    }

    [Fact]
    public void A_member_that_loses_its_value_fails_the_comparison()
    {
        // The comparison itself can fail: a copy that differs in one nested element is not equal.
        var view = (ReconcilerHistory)Samples.Single(s => s is ReconcilerHistory);
        var changed = view with { Transactions = [view.Transactions[0] with { Participants = [] }] };
        Assert.NotEqual(Json(view), Json(changed));
    }

    private static string Json(object value) => JsonSerializer.Serialize(value, value.GetType());

    /// <summary>Whether a collection is reachable from the type's members (a record's own equality compares those by reference).</summary>
    private static bool HasCollections(Type type, HashSet<Type>? seen = null)
    {
        seen ??= [];
        return seen.Add(type) && type.GetProperties().Any(p => p.PropertyType != typeof(string)
            && (p.PropertyType.IsAssignableTo(typeof(IEnumerable)) || (p.PropertyType.Namespace?.StartsWith("Rtt", StringComparison.Ordinal) == true && HasCollections(p.PropertyType, seen))));
    }

    /// <summary>Every member the type declares has a value other than its default, so a member that is not serialized shows.</summary>
    private static void AssertNoDefaultMembers(object sample)
    {
        foreach (var p in sample.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
        {
            if (p.GetIndexParameters().Length > 0 || p.GetGetMethod() is null || (p.GetSetMethod(nonPublic: true) is null && !IsPositional(p)))
            {
                continue; // computed (Headline): not state
            }

            var value = p.GetValue(sample);
            var empty = value switch
            {
                null => true,
                string s => s.Length == 0,
                IEnumerable e => !e.GetEnumerator().MoveNext(),
                _ => value.Equals(p.PropertyType.IsValueType ? Activator.CreateInstance(p.PropertyType) : null),
            };
            Assert.False(empty, $"{sample.GetType().Name}.{p.Name} has its default value in the sample: give it one that a lost member would change");
        }
    }

    private static bool IsPositional(PropertyInfo p) => p.DeclaringType!.GetConstructors().Any(c => c.GetParameters().Any(a => a.Name == p.Name));

    [Fact]
    public void A_database_error_crosses_a_grain_call_with_its_message()
    {
        var error = new Npgsql.PostgresException("sorry, too many clients already", "FATAL", "FATAL", "53300");

        // Without RTT's exception namespaces Orleans refuses to serialize it: a caller on another silo got only that.
        var plain = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();
        Assert.Throws<CodecNotFoundException>(() => plain.SerializeToArray<Exception>(error));

        var configured = RttExceptions.Add(new ServiceCollection().AddSerializer()).BuildServiceProvider().GetRequiredService<Serializer>();
        var back = configured.Deserialize<Exception>(configured.SerializeToArray<Exception>(error))!;
        Assert.Contains("53300", back.Message, StringComparison.Ordinal);
        Assert.Contains("too many clients", back.Message, StringComparison.Ordinal);
    }
}
