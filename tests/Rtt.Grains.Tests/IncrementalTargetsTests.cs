using System.Text.Json.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>
/// <see cref="PlanTargets.ChangesFromDelta"/>: the participants' changes found from a plan delta must be exactly those the
/// whole computation finds (<c>Changes(Of(applied), Of(target))</c>), and the applied targets brought forward by them must
/// be the target's own, over chains of random changes: lanes added, removed and changed (kind, ring, endpoint, sandbox),
/// symbols placed, moved and unplaced, serve blocks changed, the tuning changed; across three nodes, with lanes forwarded
/// between them.
/// </summary>
public sealed class IncrementalTargetsTests
{
    private static readonly string[] Nodes = ["n0", "n1", "n2"];
    private static readonly string[] Kinds = ["shm", "uds", "tcp"];

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Changes_found_from_the_delta_are_the_ones_the_whole_plan_gives(int seed)
    {
        var random = new Random(seed);
        var plan = RandomPlan(random, 0);
        var applied = PlanTargets.Of(plan);
        int followed = 0, steps = 300;
        for (var step = 1; step <= steps; step++)
        {
            var next = Change(plan, random, step);
            var delta = PlanDelta.Diff(plan, next);
            Assert.True(JsonNode.DeepEquals(PlanDelta.Apply(plan, delta), next));
            var whole = PlanTargets.Of(next);
            var expected = PlanTargets.Changes(applied, whole);
            var found = PlanTargets.ChangesFromDelta(plan, applied, next, delta);
            if (found is not null)
            {
                followed++;
                Assert.Equal(expected.Keys, found.Keys);
                foreach (var (name, target) in expected)
                {
                    Assert.True(Equals(target, found[name]), $"step {step}, {name}: {target?.ToJson() ?? "null"} expected, {found[name]?.ToJson() ?? "null"} found");
                }

                PlanTargets.Apply(applied, found);
                Assert.Equal(whole.Keys, applied.Keys);
                Assert.All(whole, t => Assert.Equal(t.Value, applied[t.Key]));
            }
            else
            {
                applied = whole;
            }

            plan = next;
        }

        // Most random changes are ones it follows (the rest move symbols under kept lanes or change the tuning).
        Assert.True(followed > steps / 3, $"{followed} of {steps} changes followed");
    }

    [Fact]
    public void A_new_lane_whose_id_is_taken_is_left_to_the_whole_computation_which_refuses_it()
    {
        var plan = RandomPlan(new Random(9), 0);
        var next = (JsonObject)plan.DeepClone();
        next["plan_id"] = "sha256:next";
        var lanes = (JsonArray)next["lanes"]!;
        lanes.Add(((JsonObject)lanes[0]!).DeepClone()); // the same route twice
        var delta = PlanDelta.Diff(plan, next);
        Assert.Null(PlanTargets.ChangesFromDelta(plan, PlanTargets.Of(plan), next, delta));
    }

    private static JsonObject RandomPlan(Random random, int id)
    {
        var placement = new JsonObject();
        for (var i = 0; i < 30; i++)
        {
            if (random.Next(5) > 0)
            {
                placement[Symbol(i)] = Nodes[random.Next(Nodes.Length)];
            }
        }

        var endpoints = new JsonObject();
        for (var i = 0; i < 4; i++)
        {
            endpoints[$"sha256:e{i}"] = Serve(i, 0);
        }

        var lanes = new JsonArray();
        var used = new HashSet<(int, int)>();
        for (var i = 0; i < 40; i++)
        {
            var (from, to) = (random.Next(30), random.Next(30));
            if (from != to && used.Add((from, to)))
            {
                lanes.Add(Lane(random, from, to));
            }
        }

        var plan = new JsonObject { ["plan_id"] = $"sha256:p{id}", ["placement"] = placement, ["endpoints"] = endpoints, ["lanes"] = lanes };
        if (random.Next(2) == 0)
        {
            plan["tuning"] = new JsonObject { ["profile"] = "p", ["spins"] = 100, ["yields"] = 10, ["park"] = false };
        }

        return plan;
    }

    private static JsonObject Change(JsonObject plan, Random random, int step)
    {
        var next = (JsonObject)plan.DeepClone();
        next["plan_id"] = $"sha256:p{step}";
        var lanes = (JsonArray)next["lanes"]!;
        var placement = (JsonObject)next["placement"]!;
        var endpoints = (JsonObject)next["endpoints"]!;
        for (var n = random.Next(1, 3); n > 0; n--)
        {
            switch (random.Next(10))
            {
                case 0 or 1 or 2: // a lane added, its symbols placed when they were not
                    var (from, to) = (random.Next(34), random.Next(34));
                    if (from != to && !lanes.Any(l => (string?)l!["route"]!["from"] == Symbol(from) && (string?)l["route"]!["to"] == Symbol(to)))
                    {
                        lanes.Insert(random.Next(lanes.Count + 1), Lane(random, from, to));
                        foreach (var s in new[] { from, to })
                        {
                            if (placement[Symbol(s)] is null && random.Next(2) == 0)
                            {
                                placement[Symbol(s)] = Nodes[random.Next(Nodes.Length)];
                            }
                        }
                    }

                    break;
                case 3 or 4 when lanes.Count > 0: // a lane removed
                    lanes.RemoveAt(random.Next(lanes.Count));
                    break;
                case 5 when lanes.Count > 0: // a lane changed in place
                    var at = random.Next(lanes.Count);
                    var old = (JsonObject)lanes[at]!;
                    lanes[at] = Lane(random, Index((string)old["route"]!["from"]!), Index((string)old["route"]!["to"]!));
                    break;
                case 6: // a symbol placed elsewhere, placed, or unplaced
                    var symbol = Symbol(random.Next(34));
                    if (random.Next(4) == 0)
                    {
                        placement.Remove(symbol);
                    }
                    else
                    {
                        placement[symbol] = Nodes[random.Next(Nodes.Length)];
                    }

                    break;
                case 7: // a serve block changed, or a new one
                    var e = random.Next(6);
                    endpoints[$"sha256:e{e}"] = Serve(e, step);
                    break;
                case 8 when random.Next(4) == 0: // the tuning changed
                    next["tuning"] = new JsonObject { ["profile"] = "p", ["spins"] = random.Next(1000), ["yields"] = 10, ["park"] = false };
                    break;
                default: // lanes taken out and put back: a splice that changes nothing for them
                    if (lanes.Count > 2)
                    {
                        var i = random.Next(lanes.Count - 1);
                        var a = lanes[i]!.DeepClone();
                        lanes.RemoveAt(i);
                        lanes.Insert(i, a);
                    }

                    break;
            }
        }

        return next;
    }

    private static JsonObject Lane(Random random, int from, int to)
    {
        var lane = new JsonObject
        {
            ["route"] = new JsonObject { ["from"] = Symbol(from), ["to"] = Symbol(to) },
            ["kind"] = Kinds[random.Next(Kinds.Length)],
        };
        if (random.Next(2) == 0)
        {
            lane["ring_size"] = 256 << random.Next(3);
        }

        if (random.Next(3) > 0)
        {
            lane["endpoint"] = $"sha256:e{random.Next(4)}";
        }

        if (random.Next(6) == 0)
        {
            lane["unsandboxed"] = true;
        }

        return lane;
    }

    private static JsonObject Serve(int endpoint, int version) => new() { ["kind"] = "process", ["command"] = $"/bin/e{endpoint}", ["args"] = new JsonArray($"v{version}") };

    private static string Symbol(int i) => $"rtt://s/x/sym{i:00}";

    private static int Index(string symbol) => int.Parse(symbol[^2..], System.Globalization.CultureInfo.InvariantCulture);
}
