using System.Globalization;

namespace Rtt.Core.Autotune;

/// <summary>
/// The lane settings autotune varies: the SHM ring (plan frames x 4 KiB), the lane host worker's idle thresholds (spin
/// rounds, then yields, then it parks on its doorbell, or with <see cref="Park"/> false goes on yielding and never sleeps)
/// and the CPUs its worker is pinned to (empty: not pinned).
/// </summary>
public sealed record TuneSettings(int RingSize, int Spins, int Yields, IReadOnlyList<int> Cpus, bool Park = true)
{
    /// <summary>What a lane host uses without a profile: 1 MiB rings, ~1 ms of spinning, 200 yields, then the doorbell, no pinning.</summary>
    public static readonly TuneSettings Defaults = new(256, 50_000, 200, []);

    /// <summary>Bytes of an SHM ring for <see cref="RingSize"/>.</summary>
    public int RingCapacity => RingSize * 4096;

    public string CpusText => Cpus.Count == 0 ? "any" : string.Join(',', Cpus.Select(c => c.ToString(CultureInfo.InvariantCulture)));

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"ring {RingSize} spins {Spins} yields {Yields}{(Park ? "" : " no-park")} cpus {CpusText}");

    public bool Same(TuneSettings other) => RingSize == other.RingSize && Spins == other.Spins && Yields == other.Yields && Park == other.Park && Cpus.SequenceEqual(other.Cpus);
}

/// <summary>The values tried per setting, in the order they are tried.</summary>
public sealed record TuneSpace(IReadOnlyList<int> RingSizes, IReadOnlyList<int> Spins, IReadOnlyList<int> Yields, IReadOnlyList<bool> Parks, IReadOnlyList<IReadOnlyList<int>> CpuSets)
{
    /// <summary>
    /// The issue's ranges: rings 512-4096 frames, spin thresholds around the default, sleeping on the doorbell or never
    /// (a busy-polling worker: a whole core), and the worker unpinned or on each core of each NUMA node.
    /// </summary>
    public static TuneSpace For(MachineKey machine) => new(
        [512, 1024, 2048, 4096],
        [2_000, 10_000, 200_000],
        [0, 2_000],
        [true, false],
        [.. machine.NumaNodes.SelectMany(n => n.Cpus).Distinct().Order().Select(c => (IReadOnlyList<int>)[c])]);
}

/// <summary>One measurement of one setting on a trace (the objective's inputs).</summary>
public sealed record ReplayFigures(long P50Ns, long P99Ns, double FramesPerSecond, double CpuNsPerFrame, long Frames)
{
    public static ReplayFigures Median(IReadOnlyList<ReplayFigures> runs)
    {
        static T Mid<T>(IEnumerable<T> values) where T : IComparable<T>
        {
            var sorted = values.Order().ToArray();
            return sorted[sorted.Length / 2];
        }

        return new(Mid(runs.Select(r => r.P50Ns)), Mid(runs.Select(r => r.P99Ns)), Mid(runs.Select(r => r.FramesPerSecond)), Mid(runs.Select(r => r.CpuNsPerFrame)), runs[0].Frames);
    }
}

/// <summary>The run-to-run spread of the defaults, measured first: a change must beat the best by more than this.</summary>
public sealed record NoiseGuard(long P99Ns, double FramesPerSecond, double CpuNsPerFrame)
{
    public static NoiseGuard Of(IReadOnlyList<ReplayFigures> runs) => new(
        runs.Max(r => r.P99Ns) - runs.Min(r => r.P99Ns),
        runs.Max(r => r.FramesPerSecond) - runs.Min(r => r.FramesPerSecond),
        runs.Max(r => r.CpuNsPerFrame) - runs.Min(r => r.CpuNsPerFrame));

    /// <summary>
    /// The objective: p99 at the recorded load first; when p99 is within the spread, throughput at full speed; when that
    /// is too, CPU per frame. True only when <paramref name="candidate"/> wins by more than the spread on the first that differs.
    /// </summary>
    public bool Beats(ReplayFigures candidate, ReplayFigures best)
    {
        if (Math.Abs(candidate.P99Ns - best.P99Ns) > P99Ns)
        {
            return candidate.P99Ns < best.P99Ns;
        }

        if (Math.Abs(candidate.FramesPerSecond - best.FramesPerSecond) > FramesPerSecond)
        {
            return candidate.FramesPerSecond > best.FramesPerSecond;
        }

        return best.CpuNsPerFrame - candidate.CpuNsPerFrame > CpuNsPerFrame;
    }
}

/// <summary>One step of the search, for the progress display and the report.</summary>
public sealed record SearchStep(int Index, string Knob, TuneSettings Settings, ReplayFigures Figures, bool Kept);

/// <summary>What the search found.</summary>
public sealed record SearchResult(TuneSettings Best, ReplayFigures Before, ReplayFigures After, NoiseGuard Noise, IReadOnlyList<SearchStep> Steps, bool BudgetReached);

/// <summary>
/// Coordinate hill climbing in a fixed order: ring size, then spins, then yields, then doorbell use (park), then CPU placement; for each setting
/// every value of the space is tried (ascending, as listed) with the others at the best found so far, and a value is kept
/// only when <see cref="NoiseGuard.Beats"/> says it wins. Deterministic: the order depends on the space alone, never on
/// timing; the measurements decide only what is kept. Bounded by <c>outOfTime</c>, asked before each measurement.
/// </summary>
public static class TuneSearch
{
    public static readonly string[] Knobs = ["ring_size", "spins", "yields", "park", "cpus"];

    /// <summary>The candidates for one knob, given the settings they vary.</summary>
    public static IEnumerable<TuneSettings> Candidates(string knob, TuneSettings current, TuneSpace space) => knob switch
    {
        "ring_size" => space.RingSizes.Select(v => current with { RingSize = v }),
        "spins" => space.Spins.Select(v => current with { Spins = v }),
        "yields" => space.Yields.Select(v => current with { Yields = v }),
        "park" => space.Parks.Select(v => current with { Park = v }),
        "cpus" => space.CpuSets.Select(v => current with { Cpus = v }),
        _ => throw new ArgumentOutOfRangeException(nameof(knob)),
    };

    /// <param name="measure">Replays the trace once with the settings (one run).</param>
    /// <param name="repeats">Runs per setting (the median counts); the defaults are measured this many times for the noise guard (at least 2).</param>
    public static SearchResult Run(TuneSettings defaults, TuneSpace space, Func<TuneSettings, ReplayFigures> measure, int repeats, Func<bool> outOfTime, Action<SearchStep>? progress = null)
    {
        var baseline = Enumerable.Range(0, Math.Max(2, repeats)).Select(_ => measure(defaults)).ToArray();
        var noise = NoiseGuard.Of(baseline);
        var before = ReplayFigures.Median(baseline);
        var best = defaults;
        var bestFigures = before;
        var steps = new List<SearchStep>();
        var budget = false;
        foreach (var knob in Knobs)
        {
            foreach (var candidate in Candidates(knob, best, space).ToArray())
            {
                if (candidate.Same(best))
                {
                    continue;
                }

                if (outOfTime())
                {
                    budget = true;
                    break;
                }

                var figures = ReplayFigures.Median([.. Enumerable.Range(0, repeats).Select(_ => measure(candidate))]);
                var kept = noise.Beats(figures, bestFigures);
                var step = new SearchStep(steps.Count + 1, knob, candidate, figures, kept);
                steps.Add(step);
                progress?.Invoke(step);
                if (kept)
                {
                    best = candidate;
                    bestFigures = figures;
                }
            }

            if (budget)
            {
                break;
            }
        }

        return new SearchResult(best, before, bestFigures, noise, steps, budget);
    }
}
