using System.Numerics;
using System.Security.Cryptography;

namespace Rtt.Reconciling.Wal;

/// <summary>
/// Merkle tree hashing per RFC 6962 §2.1 / RFC 9162 §2.1: leaf = SHA-256(0x00 || entry),
/// node = SHA-256(0x01 || left || right), the tree of n leaves split at the largest power of two below n.
/// Inclusion and consistency proofs are produced and checked with the RFC's algorithms, so any outside
/// implementation can check a root or a proof.
/// </summary>
public static class Merkle
{
    public const int HashSize = 32;

    /// <summary>The root of the empty tree: SHA-256 of nothing.</summary>
    public static byte[] EmptyRoot() => SHA256.HashData(ReadOnlySpan<byte>.Empty);

    public static byte[] LeafHash(ReadOnlySpan<byte> entry)
    {
        var buffer = entry.Length <= 1024 ? stackalloc byte[entry.Length + 1] : new byte[entry.Length + 1];
        buffer[0] = 0x00;
        entry.CopyTo(buffer[1..]);
        return SHA256.HashData(buffer);
    }

    public static byte[] NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buffer = stackalloc byte[1 + (2 * HashSize)];
        buffer[0] = 0x01;
        left.CopyTo(buffer[1..]);
        right.CopyTo(buffer[(1 + HashSize)..]);
        return SHA256.HashData(buffer);
    }

    /// <summary>The largest power of two strictly less than <paramref name="n"/> (n ≥ 2).</summary>
    public static long SplitPoint(long n) => 1L << (63 - BitOperations.LeadingZeroCount((ulong)(n - 1)));

    /// <summary>MTH(D[start:start+n]) over precomputed leaf hashes.</summary>
    public static byte[] Root(IReadOnlyList<byte[]> leafHashes, long start, long n)
    {
        if (n == 0)
        {
            return EmptyRoot();
        }

        if (n == 1)
        {
            return leafHashes[(int)start];
        }

        var k = SplitPoint(n);
        return NodeHash(Root(leafHashes, start, k), Root(leafHashes, start + k, n - k));
    }

    /// <summary>The audit path PATH(m, D[0:n]) (RFC 6962 §2.1.1), leaf to root order.</summary>
    public static List<byte[]> InclusionProof(IReadOnlyList<byte[]> leafHashes, long index, long size)
    {
        if (size < 1 || size > leafHashes.Count || index < 0 || index >= size)
        {
            throw new ArgumentOutOfRangeException(nameof(index), $"leaf {index} is not in a tree of {size} (log has {leafHashes.Count})");
        }

        var path = new List<byte[]>();
        Path(leafHashes, index, 0, size, path);
        return path;
    }

    private static void Path(IReadOnlyList<byte[]> leaves, long m, long start, long n, List<byte[]> path)
    {
        if (n <= 1)
        {
            return;
        }

        var k = SplitPoint(n);
        if (m < k)
        {
            Path(leaves, m, start, k, path);
            path.Add(Root(leaves, start + k, n - k));
        }
        else
        {
            Path(leaves, m - k, start + k, n - k, path);
            path.Add(Root(leaves, start, k));
        }
    }

    /// <summary>PROOF(m, D[0:n]) (RFC 6962 §2.1.2): empty when m == n or m == 0.</summary>
    public static List<byte[]> ConsistencyProof(IReadOnlyList<byte[]> leafHashes, long m, long n)
    {
        if (n > leafHashes.Count || m < 0 || m > n)
        {
            throw new ArgumentOutOfRangeException(nameof(m), $"no consistency proof from size {m} to {n} (log has {leafHashes.Count})");
        }

        var proof = new List<byte[]>();
        if (m > 0 && m < n)
        {
            SubProof(leafHashes, m, 0, n, true, proof);
        }

        return proof;
    }

    private static void SubProof(IReadOnlyList<byte[]> leaves, long m, long start, long n, bool complete, List<byte[]> proof)
    {
        if (m == n)
        {
            if (!complete)
            {
                proof.Add(Root(leaves, start, n));
            }

            return;
        }

        var k = SplitPoint(n);
        if (m <= k)
        {
            SubProof(leaves, m, start, k, complete, proof);
            proof.Add(Root(leaves, start + k, n - k));
        }
        else
        {
            SubProof(leaves, m - k, start + k, n - k, false, proof);
            proof.Add(Root(leaves, start, k));
        }
    }

    /// <summary>RFC 9162 §2.1.3.2: checks an inclusion proof against a root.</summary>
    public static bool VerifyInclusion(ReadOnlySpan<byte> leafHash, long index, long size, IReadOnlyList<byte[]> path, ReadOnlySpan<byte> root)
    {
        if (index < 0 || index >= size)
        {
            return false;
        }

        var fn = index;
        var sn = size - 1;
        var r = leafHash.ToArray();
        foreach (var p in path)
        {
            if (sn == 0)
            {
                return false;
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                r = NodeHash(p, r);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                r = NodeHash(r, p);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && r.AsSpan().SequenceEqual(root);
    }

    /// <summary>RFC 9162 §2.1.4.2: checks that the tree of size <paramref name="second"/> extends the one of size <paramref name="first"/>.</summary>
    public static bool VerifyConsistency(long first, long second, ReadOnlySpan<byte> firstRoot, ReadOnlySpan<byte> secondRoot, IReadOnlyList<byte[]> proof)
    {
        if (first < 0 || first > second)
        {
            return false;
        }

        if (first == second)
        {
            return proof.Count == 0 && firstRoot.SequenceEqual(secondRoot);
        }

        if (first == 0)
        {
            return proof.Count == 0; // the empty tree is a prefix of every tree
        }

        if (proof.Count == 0)
        {
            return false;
        }

        var path = new List<byte[]>(proof.Count + 1);
        if (BitOperations.IsPow2(first))
        {
            path.Add(firstRoot.ToArray());
        }

        path.AddRange(proof);
        var fn = first - 1;
        var sn = second - 1;
        while ((fn & 1) == 1)
        {
            fn >>= 1;
            sn >>= 1;
        }

        var fr = path[0];
        var sr = path[0];
        for (var i = 1; i < path.Count; i++)
        {
            var c = path[i];
            if (sn == 0)
            {
                return false;
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                fr = NodeHash(c, fr);
                sr = NodeHash(c, sr);
                while ((fn & 1) == 0 && fn != 0)
                {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
            else
            {
                sr = NodeHash(sr, c);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && fr.AsSpan().SequenceEqual(firstRoot) && sr.AsSpan().SequenceEqual(secondRoot);
    }
}

/// <summary>
/// The tree's right edge: the roots of its perfect subtrees, largest first. Appending a leaf costs O(log n)
/// amortised hashes and the root is a fold over at most log2(n) hashes, so a log never re-reads its past to
/// compute its current root.
/// </summary>
public sealed class MerkleFrontier
{
    private readonly List<(byte[] Hash, long Size)> _peaks = [];

    public long Size { get; private set; }

    public void Add(byte[] leafHash)
    {
        var hash = leafHash;
        long size = 1;
        while (_peaks.Count > 0 && _peaks[^1].Size == size)
        {
            hash = Merkle.NodeHash(_peaks[^1].Hash, hash);
            size *= 2;
            _peaks.RemoveAt(_peaks.Count - 1);
        }

        _peaks.Add((hash, size));
        Size++;
    }

    /// <summary>A copy to compute a root ahead of a write (the copy grows, this one does not).</summary>
    public MerkleFrontier Clone()
    {
        var copy = new MerkleFrontier { Size = Size };
        copy._peaks.AddRange(_peaks);
        return copy;
    }

    public byte[] Root()
    {
        if (_peaks.Count == 0)
        {
            return Merkle.EmptyRoot();
        }

        var root = _peaks[^1].Hash;
        for (var i = _peaks.Count - 2; i >= 0; i--)
        {
            root = Merkle.NodeHash(_peaks[i].Hash, root);
        }

        return root;
    }
}
