using System.Collections;

namespace Rtt.Registry;

/// <summary>
/// A list of strings (a scan report's paths) kept as UTF-8 in one byte block with one offset each, about a third of
/// what a <c>List&lt;string&gt;</c> holds for the same paths; items are decoded when read. Sorts in ordinal order.
/// </summary>
public sealed class PathList : IReadOnlyList<string>
{
    private byte[] _bytes = [];
    private int _length;
    private int[] _starts = new int[1]; // item i is _bytes[_starts[i].._starts[i + 1]]; offsets grow, so they may leave order after Sort
    private int[] _ends = [];
    private int _count;
    private byte[] _scratch = [];

    public int Count => _count;

    public string this[int index] => (uint)index < (uint)_count
        ? Utf8Ordinal.Decode(At(index))
        : throw new ArgumentOutOfRangeException(nameof(index));

    public void Add(string path)
    {
        if (!Utf8Ordinal.TryEncode(path, ref _scratch, out var length))
        {
            throw new ArgumentException("a path with a lone surrogate has no UTF-8 form", nameof(path));
        }

        if (_length + length > _bytes.Length)
        {
            Array.Resize(ref _bytes, Math.Max(_length + length, Math.Max(256, _bytes.Length * 2)));
        }

        if (_count == _ends.Length)
        {
            var size = Math.Max(16, _count * 2);
            Array.Resize(ref _starts, size);
            Array.Resize(ref _ends, size);
        }

        _scratch.AsSpan(0, length).CopyTo(_bytes.AsSpan(_length));
        _starts[_count] = _length;
        _ends[_count] = _length + length;
        _length += length;
        _count++;
    }

    /// <summary>Sorts the items in ordinal (UTF-16 code unit) order, as <c>List&lt;string&gt;.Sort(StringComparer.Ordinal)</c> would.</summary>
    public void Sort()
    {
        var order = new int[_count];
        for (var i = 0; i < _count; i++)
        {
            order[i] = i;
        }

        var starts = _starts;
        var ends = _ends;
        var bytes = _bytes;
        Array.Sort(order, (a, b) => Utf8Ordinal.Compare(bytes.AsSpan(starts[a], ends[a] - starts[a]), bytes.AsSpan(starts[b], ends[b] - starts[b])));
        var sortedStarts = new int[_starts.Length];
        var sortedEnds = new int[_ends.Length];
        for (var i = 0; i < _count; i++)
        {
            sortedStarts[i] = starts[order[i]];
            sortedEnds[i] = ends[order[i]];
        }

        _starts = sortedStarts;
        _ends = sortedEnds;
    }

    private ReadOnlySpan<byte> At(int index) => _bytes.AsSpan(_starts[index], _ends[index] - _starts[index]);

    public IEnumerator<string> GetEnumerator()
    {
        for (var i = 0; i < _count; i++)
        {
            yield return Utf8Ordinal.Decode(At(i));
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
