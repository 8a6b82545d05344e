namespace Rtt.Reconciling;

// TEMPORARY: a timeline of one apply (removed before committing).
public static class TmpTimeline
{
    private static long _last;
    private static readonly object Gate = new();
    public static readonly Dictionary<string, List<double>> Segments = [];
    public static bool On;

    public static void Start() { _last = System.Diagnostics.Stopwatch.GetTimestamp(); On = true; }

    public static void Mark(string label)
    {
        if (!On) return;
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        lock (Gate)
        {
            if (!Segments.TryGetValue(label, out var l)) Segments[label] = l = [];
            l.Add((now - _last) * 1000.0 / System.Diagnostics.Stopwatch.Frequency);
            _last = now;
        }
    }

    public static string Dump()
    {
        var parts = new List<string>();
        double sum = 0;
        foreach (var (k, v) in Segments) { v.Sort(); var m = v[v.Count / 2]; sum += m; parts.Add($"{k} {m:0.000} (n={v.Count})"); }
        Segments.Clear();
        On = false;
        return $"sum of medians {sum:0.00} ms: " + string.Join("\n  ", parts);
    }
}
