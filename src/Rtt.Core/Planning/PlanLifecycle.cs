using Rtt.Core.Errors;

namespace Rtt.Core.Planning;

/// <summary>The states a plan goes through, and the moves allowed between them.</summary>
public static class PlanLifecycle
{
    public const string Proposed = "proposed";
    public const string Applying = "applying";
    public const string Applied = "applied";
    public const string RolledBack = "rolled-back";
    public const string Superseded = "superseded";

    private static readonly Dictionary<string, string[]> Next = new(StringComparer.Ordinal)
    {
        [Proposed] = [Applying, Superseded],
        [Applying] = [Applied, RolledBack],
        [Applied] = [Superseded, RolledBack],
        [RolledBack] = [],
        [Superseded] = [],
    };

    public static IReadOnlyCollection<string> States => Next.Keys;

    /// <summary>Checks a transition; throws RTT-PLAN-007 when it is not allowed.</summary>
    public static void Check(string planId, string from, string to)
    {
        if (!Next.TryGetValue(to, out _))
        {
            throw new RttException(ErrorCodes.PlanStatusInvalid, $"\"{to}\" is not a plan status", planId, $"use one of: {string.Join(", ", Next.Keys)}");
        }

        if (!Next[from].Contains(to, StringComparer.Ordinal))
        {
            throw new RttException(ErrorCodes.PlanStatusInvalid, $"plan cannot go from {from} to {to}", planId,
                Next[from].Length == 0 ? $"{from} is final" : $"from {from} it can go to: {string.Join(", ", Next[from])}");
        }
    }
}
