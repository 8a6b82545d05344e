namespace Rtt.Planning;

/// <summary>
/// Work over many items (routes) split in two halves that run on two cores at once: the second half on a pool thread, the
/// first on the caller's. Below <see cref="From"/> items, or on one core, the caller does it all. Each half must write only
/// its own items' results.
/// </summary>
internal static class Parts
{
    /// <summary>The fewest items worth a second thread (a half of 2,048 routes takes about half a millisecond).</summary>
    public const int From = 4_096;

    /// <summary>Runs <paramref name="part"/> over [start, end) for the halves of [0, count): true when both answered true.</summary>
    public static bool All(int count, Func<int, int, bool> part)
    {
        if (count < From || Environment.ProcessorCount < 2)
        {
            return part(0, count);
        }

        var half = count / 2;
        var second = Task.Run(() => part(half, count));
        bool first;
        try
        {
            first = part(0, half);
        }
        catch
        {
            Task.WaitAny(second); // not left running over what the caller undoes (the first half's error is the one reported)
            throw;
        }

        return second.GetAwaiter().GetResult() & first;
    }
}
