using System.Collections.Immutable;
using System.Text;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Reconciling.Wal;

namespace Rtt.Grains.Reconciling;

/// <summary>
/// The Merkle WAL as a grain: a thin shell over <see cref="WalLog"/>. Reentrant, so appends from concurrent callers
/// queue together and go out as one durable transaction (group commit); the I/O runs off the grain scheduler.
/// On activation the stored log is replayed and verified (leaf hashes, roots of every signed head, the latest
/// head's signature).
/// </summary>
[Reentrant]
public sealed class WalGrain(WalStoreFactory stores, RttWorkspace workspace, TimeProvider time, ILogger<WalGrain> logger) : Grain, IWalGrain, IDisposable
{
    private WalLog? _log;

    private WalLog Log => _log ?? throw new InvalidOperationException("the WAL grain is not active");

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _log = await Task.Run(() => WalLog.Open(stores(), workspace.LoadTrustStore(), WalAnchor.Of(workspace)), cancellationToken);
        if (_log.Size > 0)
        {
            _last = _log.Read(_log.Size - 1, _log.Size).Single(); // so a retried append of the last entry is recognised
        }

        logger.LogInformation("WAL replayed and verified: {Size} entries, root {Root}, {Heads} signed head(s), in {Ms:0.0} ms",
            _log.Size, _log.Current().Root, _log.Heads.Count, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// Appends an entry. A caller that retries after losing the answer (the grain moved to another silo) sends the
    /// same bytes again: an entry identical to the last one stored is not appended twice; its index is returned.
    /// Entries carry a millisecond timestamp, so two distinct entries of the reconciler are never identical.
    /// </summary>
    public Task<long> Append(WalEntry entry) => Append(entry, durable: true);

    public Task<long> AppendUnflushed(WalEntry entry) => Append(entry, durable: false);

    private async Task<long> Append(WalEntry entry, bool durable)
    {
        var leaf = entry.ToLeaf();
        var size = Log.Size;
        if (size > 0 && _last is { } last && last.Index == size - 1 && last.Leaf.AsSpan().SequenceEqual(leaf))
        {
            return last.Index;
        }

        var index = await (durable ? Log.AppendLeafAsync(leaf) : Log.AppendLeafUnflushedAsync(leaf));
        if (index == Log.Size - 1)
        {
            _last = (index, leaf);
        }

        return index;
    }

    private (long Index, byte[] Leaf)? _last;

    public async Task<WalHeadView> SignHead()
    {
        var head = await Task.Run(() =>
        {
            // The key is checked at each head (WorkspaceSigner), so a rotation or a revocation takes effect at once in a running silo.
            return Log.SignHead(workspace.Signer.Current(), time.GetUtcNow());
        });
        return new WalHeadView(head.Size, head.Root, head.Json);
    }

    public Task<WalHeadView> AppendAndSign(ImmutableArray<WalEntry> entries) => AppendAndSign(entries, durable: true);

    public Task<WalHeadView> AppendAndSignUnflushed(ImmutableArray<WalEntry> entries) => AppendAndSign(entries, durable: false);

    private async Task<WalHeadView> AppendAndSign(ImmutableArray<WalEntry> entries, bool durable)
    {
        var leaves = entries.Select(e => e.ToLeaf()).ToList();
        var size = Log.Size;
        if (leaves.Count > 0 && size > 0 && _last is { } last && last.Index == size - 1 && last.Leaf.AsSpan().SequenceEqual(leaves[^1]))
        {
            leaves = []; // a retry of a batch already stored: only the head is signed (idempotent per size)
        }

        var head = await Task.Run(() =>
        {
            return Log.AppendAndSign(leaves, workspace.Signer.Current(), time.GetUtcNow(), durable).Head;
        });
        if (leaves.Count > 0)
        {
            _last = (head.Size - 1, leaves[^1]);
        }

        return new WalHeadView(head.Size, head.Root, head.Json);
    }

    public Task<WalHeadView> Root()
    {
        var (size, root) = Log.Current();
        return Task.FromResult(new WalHeadView(size, root, null));
    }

    public async Task<ImmutableArray<string>> Read(long from, long to) =>
        await Task.Run(() => Log.Read(from, to).Select(e => Encoding.UTF8.GetString(e.Leaf)).ToImmutableArray());

    public void Dispose()
    {
        _log?.Dispose();
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        Dispose();
        _log = null;
        return Task.CompletedTask;
    }
}
