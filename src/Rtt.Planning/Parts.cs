namespace Rtt.Planning;

/// <summary>
/// Work over many items (routes) split in two halves that run on two cores at once: the second half beside the caller
/// (<see cref="Beside{T}"/>), the first on the caller's thread. Below <see cref="From"/> items, or on one core, the caller
/// does it all. Each half must write only its own items' results.
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
        var second = Beside.Start(() => part(half, count));
        bool first;
        try
        {
            first = part(0, half);
        }
        catch
        {
            second.Abandon(); // not left running over what the caller undoes (the first half's error is the one reported)
            throw;
        }

        return second.Result() & first;
    }
}

/// <summary>Starts work beside the caller (<see cref="Beside{T}"/>).</summary>
internal static class Beside
{
    public static Beside<T> Start<T>(Func<T> work) => new(work);
}

/// <summary>
/// Work queued to the thread pool that the caller does itself if no pool thread has taken it by the time the caller needs
/// its result: whichever thread claims it first runs it, once. A pool thread woken from sleep can take milliseconds to run
/// here (an idle virtual CPU is woken by the host), longer than the work: the caller never waits for a thread to start,
/// only for work already under way.
/// </summary>
internal sealed class Beside<T>
{
    private readonly Func<T> _work;
    private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _claimed;

    /// <param name="work">The work.</param>
    /// <param name="queued">False: not given to the pool (tests of the readers' own claims).</param>
    public Beside(Func<T> work, bool queued = true)
    {
        _work = work;
        if (queued)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static self => self.TryRun(), this, preferLocal: false);
        }
    }

    /// <summary>The work's result (its exception rethrown): run here when no pool thread took it yet, else waited for.</summary>
    public T Result()
    {
        TryRun();
        return _done.Task.GetAwaiter().GetResult();
    }

    /// <summary>Makes sure the work does not start; waits for it when it already has (without its outcome).</summary>
    public void Abandon()
    {
        if (Interlocked.Exchange(ref _claimed, 1) != 0)
        {
            ((IAsyncResult)_done.Task).AsyncWaitHandle.WaitOne();
        }
    }

    // Runs the work on this thread unless another thread claimed it first.
    private void TryRun()
    {
        if (Interlocked.Exchange(ref _claimed, 1) != 0)
        {
            return;
        }

        try
        {
            _done.SetResult(_work());
        }
        catch (Exception ex)
        {
            _done.SetException(ex);
        }
    }
}
