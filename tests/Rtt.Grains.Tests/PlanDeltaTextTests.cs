using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Planning;
using Rtt.Reconciling;

namespace Rtt.Grains.Tests;

/// <summary>
/// <see cref="PlanDelta.Diff(JsonObject, JsonElement, JsonObject, JsonElement)"/> (from the plans' canonical texts, the
/// silo's path for a plan sent as its canonical text) must give the delta the tree walk gives, byte for byte in the log's
/// canonical form, and <see cref="PlanDelta.SameAs"/> must accept exactly the rebuilt plans equal to the target.
/// </summary>
public sealed class PlanDeltaTextTests
{
    [Fact]
    public void The_delta_from_texts_is_the_delta_from_trees_and_rebuilds_the_target()
    {
        var random = new Random(20261206);
        var changed = 0;
        var refused = 0;
        for (var n = 0; n < 1500; n++)
        {
            var basePlan = Plan(random);
            var target = Mutate((JsonObject)basePlan.DeepClone(), random);
            var (baseTree, basePayload) = FromText(basePlan);
            var (targetTree, targetPayload) = FromText(target);

            var fromTrees = PlanDelta.Diff(baseTree, targetTree);
            var fromTexts = PlanDelta.Diff(baseTree, basePayload, targetTree, targetPayload);
            Assert.Equal(CanonicalJson.ToCanonicalString(fromTrees), CanonicalJson.ToCanonicalString(fromTexts));
            changed += fromTexts.Count > 1 ? 1 : 0;

            var rebuilt = PlanDelta.Apply(baseTree, fromTexts);
            Assert.True(PlanDelta.SameAs(rebuilt, targetTree, targetPayload));
            Assert.True(PlanDelta.Same(rebuilt, targetTree));
            Assert.True(PlanDelta.SameWhereChanged(rebuilt, targetTree, targetPayload, fromTexts));

            // Where the delta changed the plan, a rebuilt plan that is not the target is refused: an inserted lane
            // altered, a placement it set altered, a member too many.
            if (fromTexts["arrays"]?["lanes"] is JsonObject splice && splice["insert"]!.AsArray().Count > 0)
            {
                var wrong = (JsonObject)rebuilt.DeepClone();
                wrong["lanes"]![(int)splice["at"]!]!["ring_size"] = 7;
                Assert.False(PlanDelta.SameWhereChanged(wrong, targetTree, targetPayload, fromTexts));
                refused++;
            }

            if (fromTexts["objects"]?["placement"]?["set"] is JsonObject placed && placed.Count > 0)
            {
                var wrong = (JsonObject)rebuilt.DeepClone();
                wrong["placement"]![placed.First().Key] = "elsewhere";
                Assert.False(PlanDelta.SameWhereChanged(wrong, targetTree, targetPayload, fromTexts));
                refused++;
            }

            var extra = (JsonObject)rebuilt.DeepClone();
            extra["extra"] = 1;
            Assert.False(PlanDelta.SameWhereChanged(extra, targetTree, targetPayload, fromTexts));

            // Any other plan is refused: the check compares every value (against a third plan, by DeepEquals).
            var other = Mutate((JsonObject)target.DeepClone(), random);
            var (otherTree, otherPayload) = FromText(other);
            Assert.Equal(JsonNode.DeepEquals(rebuilt, otherTree), PlanDelta.SameAs(rebuilt, otherTree, otherPayload));
        }

        Assert.True(changed > 1200, $"{changed} pairs differed");
        Assert.True(refused > 500, $"{refused} wrong rebuilt plans refused");
    }

    [Fact]
    public void A_delta_applied_to_the_base_text_gives_the_targets_canonical_text_and_any_other_delta_goes_to_the_tree_path()
    {
        // PlanDelta.ApplyToText (the silo's path for a plan sent as a change, docs/reconciler.md "Plans sent as changes"):
        // for every delta the diff makes, the bytes are the target's canonical text; for deltas changed by hand (hostile or
        // odd), it either gives the canonical text of what Apply makes or declines (null), and declines whenever Apply throws.
        var random = new Random(20261204);
        var taken = 0;
        var declined = 0;
        for (var n = 0; n < 1500; n++)
        {
            var basePlan = Plan(random);
            if (random.Next(4) == 0)
            {
                // Names that sort by UTF-16 code units and need escapes.
                ((JsonObject)basePlan["placement"]!)[random.Next(2) == 0 ? "rtt://s/\u00e9" : "rtt://s/\"q\\"] = "node1";
            }

            var target = Mutate((JsonObject)basePlan.DeepClone(), random);
            if (random.Next(4) == 0)
            {
                ((JsonObject)target["placement"]!)[random.Next(2) == 0 ? "rtt://s/\ud83d\ude00" : "rtt://s/\u007f\t"] = "node2";
            }

            var baseText = CanonicalJson.Serialize(basePlan);
            var delta = PlanDelta.Diff((JsonObject)JsonNode.Parse(baseText)!, target);
            Assert.Equal(CanonicalJson.Serialize(target), PlanDelta.ApplyToText(baseText, delta));

            var odd = Odd(delta, random);
            JsonObject? applied;
            try
            {
                applied = PlanDelta.Apply((JsonObject)JsonNode.Parse(baseText)!, odd);
            }
            catch (Exception ex) when (ex is Rtt.Core.Errors.RttException or InvalidOperationException or FormatException or InvalidCastException)
            {
                applied = null;
            }

            var fromText = PlanDelta.ApplyToText(baseText, odd);
            if (fromText is null)
            {
                declined++;
            }
            else
            {
                taken++;
                Assert.NotNull(applied);
                Assert.Equal(CanonicalJson.Serialize(applied), fromText);
            }
        }

        Assert.True(taken > 300 && declined > 300, $"{taken} odd deltas taken, {declined} declined");
    }

    // One change of a delta's shape or values: another base, a splice moved or widened, a member set and spliced, set and
    // removed, changed in an object the base lacks, unknown members, wrong kinds.
    private static JsonObject Odd(JsonObject delta, Random random)
    {
        var d = (JsonObject)delta.DeepClone();
        switch (random.Next(10))
        {
            case 0:
                d["base"] = "sha256:other";
                break;
            case 1:
                d["arrays"] = new JsonObject { ["lanes"] = new JsonObject { ["at"] = random.Next(-1, 10), ["delete"] = random.Next(-1, 4), ["insert"] = new JsonArray(Lane(random, 7)) } };
                break;
            case 2:
                d["set"] = new JsonObject { ["lanes"] = new JsonArray() };
                d["arrays"] = new JsonObject { ["lanes"] = new JsonObject { ["at"] = 0, ["delete"] = 0 } };
                break;
            case 3:
                d["remove"] = new JsonArray("placement", "zeta");
                break;
            case 4:
                d["objects"] = new JsonObject { ["nothing"] = new JsonObject { ["set"] = new JsonObject { ["a"] = 1 } } };
                break;
            case 5:
                d["extra"] = 1;
                break;
            case 6:
                d["objects"] = new JsonObject { ["placement"] = new JsonObject { ["set"] = new JsonObject { ["rtt://s/0"] = "x", ["rtt://s/99"] = new JsonArray(1, "é") }, ["remove"] = new JsonArray("rtt://s/1", "rtt://s/404") } };
                break;
            case 7:
                d["set"] = new JsonObject { ["zeta"] = null, ["alpha"] = new JsonObject { ["k"] = 1.5 } };
                d["remove"] = new JsonArray("alpha", "base");
                break;
            case 8:
                d["remove"] = new JsonArray(1);
                break;
            default:
                d["arrays"] = new JsonObject { ["placement"] = new JsonObject { ["at"] = 0, ["delete"] = 0 } };
                break;
        }

        return d;
    }

    // The plan as the silo sees it: parsed from its canonical text, with that text's payload (no sign) read as a document.
    private static (JsonObject Tree, JsonElement Payload) FromText(JsonObject plan)
    {
        var text = CanonicalJson.Serialize(plan);
        var tree = (JsonObject)JsonNode.Parse(text)!;
        var content = Planner.Content(tree, text);
        Assert.True(content.Plain);
        return (tree, JsonDocument.Parse(content.SigningPayload).RootElement);
    }

    private static JsonObject Plan(Random random)
    {
        var plan = new JsonObject
        {
            ["base"] = random.Next(3) == 0 ? null : $"sha256:{random.Next(1000)}",
            ["lanes"] = new JsonArray([.. Enumerable.Range(0, random.Next(8)).Select(i => (JsonNode)Lane(random, i))]),
            ["placement"] = new JsonObject(Enumerable.Range(0, random.Next(10)).Select(i => KeyValuePair.Create<string, JsonNode?>($"rtt://s/{i}", $"node{random.Next(3)}"))),
            ["plan_id"] = $"sha256:{random.Next(1000)}",
            ["routes_add"] = new JsonArray(),
        };
        if (random.Next(4) > 0)
        {
            plan["sign"] = new JsonObject { ["alg"] = "ed25519", ["sig"] = $"s{random.Next(1000)}" };
        }

        if (random.Next(3) == 0)
        {
            plan["tuning"] = new JsonObject { ["spins"] = random.Next(100) };
        }

        return plan;
    }

    private static JsonObject Lane(Random random, int i) => new()
    {
        ["kind"] = random.Next(2) == 0 ? "shm" : "uds",
        ["route"] = new JsonObject { ["from"] = $"rtt://a/{i}", ["to"] = $"rtt://b/{random.Next(20)}" },
        ["ring_size"] = 256 * (1 + random.Next(3)),
    };

    // Random changes of the kinds plans go through: lanes in and out, placement moved/added/removed, members added,
    // removed or replaced (sign too), a scalar turned into an object.
    private static JsonObject Mutate(JsonObject plan, Random random)
    {
        for (var k = random.Next(4); k >= 0; k--)
        {
            var lanes = (JsonArray)plan["lanes"]!;
            var placement = (JsonObject)plan["placement"]!;
            switch (random.Next(9))
            {
                case 0:
                    lanes.Insert(random.Next(lanes.Count + 1), Lane(random, 100 + random.Next(100)));
                    break;
                case 1 when lanes.Count > 0:
                    lanes.RemoveAt(random.Next(lanes.Count));
                    break;
                case 2:
                    placement[$"rtt://s/{random.Next(12)}"] = $"node{random.Next(3)}";
                    break;
                case 3 when placement.Count > 0:
                    placement.Remove(placement.GetAt(random.Next(placement.Count)).Key);
                    break;
                case 4:
                    plan["sign"] = new JsonObject { ["alg"] = "ed25519", ["sig"] = $"s{random.Next(1000)}" };
                    break;
                case 5:
                    plan.Remove("sign");
                    break;
                case 6:
                    plan["plan_id"] = $"sha256:{random.Next(1000)}";
                    break;
                case 7:
                    plan[random.Next(2) == 0 ? "tuning" : "zeta"] = random.Next(2) == 0 ? random.Next(9) : new JsonObject { ["x"] = random.Next(9) };
                    break;
                default:
                    plan.Remove(random.Next(2) == 0 ? "tuning" : "base");
                    break;
            }
        }

        return plan;
    }
}
