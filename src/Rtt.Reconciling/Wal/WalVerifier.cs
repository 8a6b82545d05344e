using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Core.Signing;

namespace Rtt.Reconciling.Wal;

/// <summary>One thing wrong in a log: where (entry index or head size) and what.</summary>
public sealed record WalFault(string Where, string What);

/// <summary>What a full verification found.</summary>
public sealed record WalVerifyReport(long Size, string Root, int HeadsChecked, IReadOnlyList<WalFault> Faults)
{
    public bool Ok => Faults.Count == 0;

    /// <summary>What to do about the faults: a key rotation for heads signed by a revoked key, otherwise a restore.</summary>
    public string Hint => Faults.Count > 0 && Faults.All(f => f.What.Contains("revoked key", StringComparison.Ordinal) || f.What.Contains("retirement", StringComparison.Ordinal))
        ? "the log is intact but its heads are signed by a revoked key: `rtt keys rotate NEW` (with the silo stopped) countersigns it with a new key (docs/operations.md, key rotation)"
        : "the log was changed outside RTT: restore the state database from a backup (docs/operations.md, recovering from a damaged workspace)";
}

/// <summary>
/// `rtt wal verify`: recomputes every leaf hash from the stored bytes, checks that every entry is canonical JSON,
/// rebuilds the tree, and checks every signed tree head's root and signature. Every fault is listed, each named by
/// entry index or head size; the tree is built from the recomputed hashes, so a changed byte anywhere shows.
/// </summary>
public static class WalVerifier
{
    public static WalVerifyReport Verify(IWalStore store, TrustStore trust, WalAnchor? anchor = null)
    {
        var report = VerifyEntries(store, trust);
        if (anchor is null)
        {
            return report;
        }

        var faults = report.Faults.ToList();
        try
        {
            if (anchor.Read() is { } anchored)
            {
                var leaves = store.Read(0, long.MaxValue).Select(r => Merkle.LeafHash(r.Leaf)).ToList();
                if (WalAnchor.Check(anchored, leaves.Count, size => Merkle.Root(leaves, 0, size)) is { } fault)
                {
                    faults.Add(new WalFault($"anchor {anchor.Path}", fault));
                }

                try
                {
                    trust.Verify((JsonObject)JsonNode.Parse(anchored.Json)!, anchor.Path, WalLog.SignedAt(anchored));
                }
                catch (Rtt.Core.Errors.RttException ex)
                {
                    faults.Add(new WalFault($"anchor {anchor.Path}", $"signature: {ex.Message}"));
                }
            }
        }
        catch (Rtt.Core.Errors.RttException ex)
        {
            faults.Add(new WalFault($"anchor {anchor.Path}", ex.Message));
        }

        return report with { Faults = faults };
    }

    private static WalVerifyReport VerifyEntries(IWalStore store, TrustStore trust)
    {
        var faults = new List<WalFault>();
        var heads = store.Heads(); // before the count, as the replay reads them: a log that grows meanwhile is not "entries removed"
        var count = store.Count();
        var frontier = new MerkleFrontier();
        var nextHead = 0;
        var checkedHeads = 0;
        var lastGoodHead = -1L;
        var revokedHeads = new List<(WalFault Fault, long Size)>();

        void CheckHeadsAt(long size)
        {
            while (nextHead < heads.Count && heads[nextHead].Size == size)
            {
                var stored = heads[nextHead++];
                checkedHeads++;
                var where = $"head at size {stored.Size}";
                SignedTreeHead head;
                try
                {
                    head = WalLog.ParseHead(stored, store);
                }
                catch (Rtt.Core.Errors.RttException ex)
                {
                    faults.Add(new WalFault(where, ex.Message));
                    continue;
                }

                var root = Convert.ToHexStringLower(frontier.Root());
                if (!string.Equals(head.Root, root, StringComparison.Ordinal))
                {
                    faults.Add(new WalFault(where, $"signed root {head.Root} but the entries give {root}"));
                }

                try
                {
                    trust.Verify((JsonObject)JsonNode.Parse(head.Json)!, where, WalLog.SignedAt(head));
                    lastGoodHead = head.Size;
                }
                catch (Rtt.Core.Errors.RttException ex)
                {
                    faults.Add(new WalFault(where, $"signature: {ex.Message}"));
                    if (ex.Code == Rtt.Core.Errors.ErrorCodes.SignerRevoked)
                    {
                        revokedHeads.Add((faults[^1], head.Size));
                    }
                }
            }
        }

        CheckHeadsAt(0);
        // Per-entry work (leaf hash, canonical form) beside the read, on the other cores; the tree and the heads are
        // then checked in order. Faults are reported in index order either way.
        var entries = WalLog.ScanEntries(store, 0, long.MaxValue);

        long expected = 0;
        for (var i = 0; i < entries.Count; i++)
        {
            var index = entries.Indexes[i];
            while (expected < index)
            {
                faults.Add(new WalFault($"entry {expected}", "missing"));
                expected++;
            }

            expected = index + 1;
            if (entries.Faults[i] is { } fault)
            {
                faults.Add(new WalFault($"entry {index}", fault));
            }

            frontier.Add(entries.Hashes[i]);
            CheckHeadsAt(frontier.Size);
        }

        for (; nextHead < heads.Count; nextHead++)
        {
            faults.Add(new WalFault($"head at size {heads[nextHead].Size}", $"covers more entries than the log has ({count})"));
        }

        // A head signed by a key revoked since is vouched for by a later head that verifies: that head's root covers the
        // same entries (its root is recomputed from them), and `rtt keys rotate` signs one with the new key.
        foreach (var (fault, size) in revokedHeads)
        {
            if (size < lastGoodHead)
            {
                faults.Remove(fault);
            }
        }

        return new WalVerifyReport(frontier.Size, Convert.ToHexStringLower(frontier.Root()), checkedHeads, faults);
    }
}
