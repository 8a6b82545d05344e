namespace Rtt.Core.Json;

/// <summary>
/// Group commit for a durable store: callers enqueue items and get a task; one pool thread at a time (started by
/// whoever finds none running) writes everything queued so far as one batch, and whatever arrives during that
/// write goes out in the next batch. The state database's writer (WAL appends, ledgers, grain state), the WAL log and the PostgreSQL ledger store use it, so a burst of writes costs a few
/// transactions (and fsyncs) instead of one each. Enqueuing never waits for a write in progress.
/// </summary>
/// <param name="writeBatch">Writes a batch in one transaction and returns one result per item, in order; an exception fails every item of the batch.</param>
public sealed class GroupCommit<TItem, TResult>(Func<IReadOnlyList<TItem>, IReadOnlyList<TResult>> writeBatch)
{
    private readonly Lock _gate = new(); // never held across a write
    private List<(TItem Item, TaskCompletionSource<TResult> Done)> _queue = [];
    private bool _flushing;

    /// <summary>Items queued for the next batch (not counting the batch being written).</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Adds an item to the next batch; the task completes when its batch is written.</summary>
    public Task<TResult> Enqueue(TItem item)
    {
        var (done, lead) = Add(item);
        if (lead)
        {
            _ = Task.Run(Flush);
        }

        return done;
    }

    /// <summary>Queues an item; <c>Lead</c> when no batch is being written, so the caller must start one.</summary>
    private (Task<TResult> Done, bool Lead) Add(TItem item)
    {
        var done = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _queue.Add((item, done));
            var lead = !_flushing;
            _flushing = true;
            return (done.Task, lead);
        }
    }

    /// <summary>
    /// <see cref="Enqueue"/> for a synchronous caller: when no batch is being written, the caller writes it on its own
    /// thread (with whatever else is queued) instead of handing it to a pool thread and blocking until that one is done;
    /// otherwise it waits for the batch its item goes out in.
    /// </summary>
    public TResult EnqueueAndWait(TItem item)
    {
        var (done, lead) = Add(item);
        if (lead)
        {
            Flush(); // never throws: every item completes with its result or its batch's exception
        }

        return done.GetAwaiter().GetResult();
    }

    private void Flush()
    {
        while (true)
        {
            List<(TItem Item, TaskCompletionSource<TResult> Done)> batch;
            lock (_gate)
            {
                if (_queue.Count == 0)
                {
                    _flushing = false;
                    return;
                }

                batch = _queue;
                _queue = [];
            }

            // Every item of the batch completes exactly once, whatever the writer does (TrySet: a result already set
            // is never overwritten), and the loop always goes on to the next batch, so one failed write never wedges
            // the store.
            try
            {
                var results = writeBatch([.. batch.Select(b => b.Item)]);
                if (results.Count != batch.Count)
                {
                    throw new InvalidOperationException($"the store wrote a batch of {batch.Count} item(s) but returned {results.Count} result(s)");
                }

                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].Done.TrySetResult(results[i]);
                }
            }
            catch (Exception ex)
            {
                foreach (var (_, done) in batch)
                {
                    done.TrySetException(ex);
                }
            }
        }
    }
}
