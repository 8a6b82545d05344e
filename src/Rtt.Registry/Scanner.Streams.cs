using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Json;

namespace Rtt.Registry;

public sealed partial class Scanner
{
    /// <summary>What enumeration learnt of a source.</summary>
    private readonly record struct Found(long Length, long MtimeTicks, bool IsDirectory);

    /// <summary>An exported symbol's symbols.json entry as canonical UTF-8.</summary>
    private sealed record CachedSymbol(string Symbol, byte[] Entry);

    private readonly record struct SymbolRow(string Symbol, string Version, NuGet.Versioning.SemanticVersion SemVer, string Source, byte[] Entry, int Sequence);

    private sealed record CachedObject(string Key, string Hash);

    /// <summary>One file's cache line, <c>"rel":{"mtime","objects","size","symbols"}</c> (canonical), with its bytes.</summary>
    private sealed record CacheLine(string Rel, long Size, long MtimeTicks, IReadOnlyList<CachedObject> Objects, IReadOnlyList<CachedSymbol> Symbols, byte[] Raw)
    {
        public static CacheLine Create(string rel, long size, long mtimeTicks, IReadOnlyList<CachedObject> objects, IReadOnlyList<CachedSymbol> symbols)
        {
            var name = CanonicalJson.Serialize(JsonValue.Create(rel));
            var body = CanonicalJson.Serialize(new JsonObject
            {
                ["size"] = size,
                ["mtime"] = mtimeTicks.ToString(CultureInfo.InvariantCulture), // ticks exceed 2^53: a JSON number would round
                ["objects"] = new JsonArray([.. objects.Select(o => (JsonNode)new JsonObject { ["key"] = o.Key, ["hash"] = o.Hash })]),
                ["symbols"] = new JsonArray([.. symbols.Select(s => (JsonNode)new JsonObject { ["symbol"] = s.Symbol, ["entry"] = JsonNode.Parse(s.Entry) })]),
            });
            return new CacheLine(rel, size, mtimeTicks, objects, symbols, [.. name, (byte)':', .. body]);
        }

        /// <summary>Parses a line (without its separator); a damaged one throws FormatException or JsonException.</summary>
        public static CacheLine Parse(ReadOnlySpan<byte> raw)
        {
            // The path: a JSON string up to its closing quote (escapes skipped), then ':'.
            if (raw.Length < 3 || raw[0] != (byte)'"')
            {
                throw new FormatException("a cache line starts with its path");
            }

            var end = 1;
            while (end < raw.Length && raw[end] != (byte)'"')
            {
                end += raw[end] == (byte)'\\' ? 2 : 1;
            }

            if (end + 1 >= raw.Length || raw[end + 1] != (byte)':')
            {
                throw new FormatException("a cache line's path is followed by ':'");
            }

            var nameReader = new Utf8JsonReader(raw[..(end + 1)]);
            nameReader.Read();
            var rel = nameReader.GetString()!;
            var body = raw[(end + 2)..];
            var reader = new Utf8JsonReader(body);
            Expect(ref reader, JsonTokenType.StartObject);
            long? size = null;
            long? mtime = null;
            var objects = new List<CachedObject>(1);
            var symbols = new List<CachedSymbol>(1);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("size"u8))
                {
                    Expect(ref reader, JsonTokenType.Number);
                    size = reader.GetInt64();
                }
                else if (reader.ValueTextEquals("mtime"u8))
                {
                    Expect(ref reader, JsonTokenType.String);
                    mtime = long.Parse(reader.GetString()!, CultureInfo.InvariantCulture);
                }
                else if (reader.ValueTextEquals("objects"u8))
                {
                    Expect(ref reader, JsonTokenType.StartArray);
                    while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                    {
                        string? key = null, hash = null;
                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            var isKey = reader.ValueTextEquals("key"u8);
                            var isHash = reader.ValueTextEquals("hash"u8);
                            Expect(ref reader, JsonTokenType.String);
                            if (isKey)
                            {
                                key = reader.GetString();
                            }
                            else if (isHash)
                            {
                                hash = reader.GetString();
                            }
                        }

                        objects.Add(new CachedObject(key ?? throw new FormatException("object without key"), hash ?? throw new FormatException("object without hash")));
                    }
                }
                else if (reader.ValueTextEquals("symbols"u8))
                {
                    Expect(ref reader, JsonTokenType.StartArray);
                    while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                    {
                        string? symbol = null;
                        byte[]? entry = null;
                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            if (reader.ValueTextEquals("entry"u8))
                            {
                                Expect(ref reader, JsonTokenType.StartObject);
                                var start = (int)reader.TokenStartIndex;
                                reader.Skip();
                                entry = body[start..(int)reader.BytesConsumed].ToArray();
                            }
                            else if (reader.ValueTextEquals("symbol"u8))
                            {
                                Expect(ref reader, JsonTokenType.String);
                                symbol = reader.GetString();
                            }
                            else
                            {
                                reader.Read();
                                reader.Skip();
                            }
                        }

                        symbols.Add(new CachedSymbol(symbol ?? throw new FormatException("symbol without name"), entry ?? throw new FormatException("symbol without entry")));
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.BytesConsumed != body.Length || size is null || mtime is null)
            {
                throw new FormatException("a cache line is one object with size and mtime");
            }

            return new CacheLine(rel, size.Value, mtime.Value, objects, symbols, raw.ToArray());
        }

        private static void Expect(ref Utf8JsonReader reader, JsonTokenType type)
        {
            if (!reader.Read() || reader.TokenType != type)
            {
                throw new FormatException($"expected {type} in a cache line");
            }
        }
    }

    /// <summary>
    /// <c>.rtt/state/scan-cache.json</c>: one JSON object, written and read line by line so neither side holds it:
    /// <c>{"format":"rtt.scan-cache/5","symbols":N,"files":{</c>, then one line per file in ordinal path order
    /// (<c>"rel":{…},</c>, the last without the comma), then <c>}}</c>. N is the symbol count of the table the cache
    /// was written with (an unchanged scan reports it without reading symbols.json).
    /// </summary>
    private sealed class CacheFile
    {
        private const string Format = "rtt.scan-cache/5";
        private static ReadOnlySpan<byte> HeadStart => "{\"format\":\"rtt.scan-cache/5\",\"symbols\":"u8;
        private static ReadOnlySpan<byte> HeadEnd => ",\"files\":{"u8;
        private static ReadOnlySpan<byte> Tail => "}}"u8;

        private readonly IReadOnlyList<CacheLine>? _upgraded;

        private CacheFile(string path, int symbols, IReadOnlyList<CacheLine>? upgraded = null)
        {
            Path = path;
            Symbols = symbols;
            _upgraded = upgraded;
        }

        public string Path { get; }

        /// <summary>The symbol count the cache was written with; -1 when unknown (a cache upgraded from /4: the table is rebuilt).</summary>
        public int Symbols { get; }

        /// <summary>
        /// A cache written by RTT before the streamed scan (<c>rtt.scan-cache/4</c>: one object, the same per-file values)
        /// read whole once, so the first scan after an upgrade still finds its files unchanged instead of re-reading and
        /// reporting every one as added. Null when the file is not such a cache.
        /// </summary>
        private static CacheFile? Upgrade(string path)
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String
                || format.GetString() != "rtt.scan-cache/4" || !root.TryGetProperty("files", out var files) || files.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            var lines = new List<CacheLine>();
            foreach (var file in files.EnumerateObject())
            {
                lines.Add(CacheLine.Parse([.. CanonicalJson.Serialize(JsonValue.Create(file.Name)), (byte)':', .. CanonicalJson.Serialize(file.Value)]));
            }

            lines.Sort((a, b) => string.CompareOrdinal(a.Rel, b.Rel));
            for (var i = 1; i < lines.Count; i++)
            {
                if (lines[i - 1].Rel == lines[i].Rel)
                {
                    return null;
                }
            }

            return new CacheFile(path, -1, lines);
        }

        /// <summary>
        /// The cache, checked whole first (every line parses, paths strictly ordered, the end present), streamed: a
        /// damaged or older cache is null, which only costs a full re-read.
        /// </summary>
        public static CacheFile? Open(string path)
        {
            try
            {
                if (!File.Exists(path))
                {
                    return null;
                }

                if (!StartsWithHead(path))
                {
                    return Upgrade(path);
                }

                var symbols = -1;
                string? previous = null;
                var ended = false;
                foreach (var (line, head, tail) in Read(path))
                {
                    if (head is { } n)
                    {
                        symbols = n;
                    }
                    else if (tail)
                    {
                        ended = true;
                    }
                    else if (line is null || (previous is not null && string.CompareOrdinal(previous, line.Rel) >= 0))
                    {
                        return null;
                    }
                    else
                    {
                        previous = line.Rel;
                    }
                }

                return symbols >= 0 && ended ? new CacheFile(path, symbols) : null;
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or OverflowException or IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        private static bool StartsWithHead(string path)
        {
            using var file = File.OpenRead(path);
            Span<byte> start = stackalloc byte[HeadStart.Length];
            return file.ReadAtLeast(start, start.Length, throwOnEndOfStream: false) == start.Length && start.SequenceEqual(HeadStart);
        }

        /// <summary>The lines, in path order.</summary>
        public IEnumerable<CacheLine> Lines()
        {
            if (_upgraded is not null)
            {
                foreach (var line in _upgraded)
                {
                    yield return line;
                }

                yield break;
            }

            foreach (var (line, _, _) in Read(Path))
            {
                if (line is not null)
                {
                    yield return line;
                }
            }
        }

        private static IEnumerable<(CacheLine? Line, int? Head, bool Tail)> Read(string path)
        {
            using var reader = new LineReader(path);
            var first = true;
            while (reader.TryRead(out var segment))
            {
                var raw = segment.AsSpan();
                if (first)
                {
                    first = false;
                    if (!raw.StartsWith(HeadStart) || !raw.EndsWith(HeadEnd))
                    {
                        throw new FormatException("not a " + Format + " cache");
                    }

                    yield return (null, int.Parse(raw[HeadStart.Length..^HeadEnd.Length], NumberStyles.None, CultureInfo.InvariantCulture), false);
                    continue;
                }

                if (raw.SequenceEqual(Tail))
                {
                    yield return (null, null, true);
                    continue;
                }

                yield return (CacheLine.Parse(raw.EndsWith((byte)',') ? raw[..^1] : raw), null, false);
            }
        }

        /// <summary>The lines of a pass's temp file (one line each, no separators).</summary>
        public static IEnumerable<CacheLine> ReadLines(string path)
        {
            using var reader = new LineReader(path);
            while (reader.TryRead(out var segment))
            {
                yield return CacheLine.Parse(segment.AsSpan());
            }
        }

        public static void WriteLine(Stream stream, CacheLine line)
        {
            stream.Write(line.Raw);
            stream.WriteByte((byte)'\n');
        }

        /// <summary>Two path-ordered sequences as one.</summary>
        public static IEnumerable<CacheLine> Merge(IEnumerable<CacheLine> a, IReadOnlyList<CacheLine> b)
        {
            var j = 0;
            foreach (var line in a)
            {
                for (; j < b.Count && string.CompareOrdinal(b[j].Rel, line.Rel) < 0; j++)
                {
                    yield return b[j];
                }

                yield return line;
            }

            for (; j < b.Count; j++)
            {
                yield return b[j];
            }
        }

        /// <summary>Writes the cache (atomically) from path-ordered lines. The cache is machine-local state (mtimes).</summary>
        public static void Write(string path, int symbols, IEnumerable<CacheLine> lines) => AtomicFile.Write(path, stream =>
        {
            stream.Write(HeadStart);
            stream.Write(System.Text.Encoding.ASCII.GetBytes(symbols.ToString(CultureInfo.InvariantCulture)));
            stream.Write(HeadEnd);
            var separator = "\n"u8;
            foreach (var line in lines)
            {
                stream.Write(separator);
                stream.Write(line.Raw);
                separator = ",\n"u8;
            }

            stream.Write("\n"u8);
            stream.Write(Tail);
        });
    }

    /// <summary>Reads a file line by line through one reusable buffer (the segment is valid until the next read).</summary>
    private sealed class LineReader(string path) : IDisposable
    {
        private readonly FileStream _stream = new(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        private byte[] _buffer = new byte[1 << 16];
        private int _start;
        private int _end;
        private bool _eof;

        public bool TryRead(out ArraySegment<byte> line)
        {
            while (true)
            {
                var newline = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
                if (newline >= 0)
                {
                    line = new ArraySegment<byte>(_buffer, _start, newline);
                    _start += newline + 1;
                    return true;
                }

                if (_eof)
                {
                    line = new ArraySegment<byte>(_buffer, _start, _end - _start);
                    var any = _end > _start;
                    _start = _end;
                    return any;
                }

                if (_start > 0)
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }

                if (_end == _buffer.Length)
                {
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }

                var read = _stream.Read(_buffer, _end, _buffer.Length - _end);
                _eof = read == 0;
                _end += read;
            }
        }

        public void Dispose() => _stream.Dispose();
    }

    /// <summary>
    /// The symbol table's rows sorted (symbol ordinal, then SemVer, then version text, then file order) in bounded
    /// memory: rows are sorted in runs of about <c>runBytes</c>, spilled to temp files, and merged.
    /// </summary>
    private sealed class SymbolSorter(string directory, long runBytes) : IDisposable
    {
        private readonly List<SymbolRow> _rows = [];
        private readonly List<string> _runs = [];
        private readonly Dictionary<string, NuGet.Versioning.SemanticVersion> _versions = new(StringComparer.Ordinal); // few distinct ones
        private long _bytes;
        private int _sequence;

        public void Add(string symbol, string source, byte[] entry)
        {
            var version = ReadMember(entry, "version"u8) ?? "";
            _rows.Add(new SymbolRow(symbol, version, SemVer(version), source, entry, _sequence++));
            _bytes += entry.Length + (2L * (symbol.Length + source.Length + version.Length)) + 128;
            if (_bytes >= runBytes)
            {
                Spill();
            }
        }

        public IEnumerable<SymbolRow> Sorted()
        {
            if (_runs.Count == 0)
            {
                _rows.Sort(Compare);
                foreach (var row in _rows)
                {
                    yield return row;
                }

                yield break;
            }

            if (_rows.Count > 0)
            {
                Spill();
            }

            var readers = _runs.Select(r => new BinaryReader(new FileStream(r, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 14))).ToList();
            try
            {
                var queue = new PriorityQueue<BinaryReader, SymbolRow>(Comparer<SymbolRow>.Create(Compare));
                foreach (var reader in readers)
                {
                    if (TryRead(reader, out var row))
                    {
                        queue.Enqueue(reader, row);
                    }
                }

                while (queue.TryDequeue(out var reader, out var row))
                {
                    yield return row;
                    if (TryRead(reader, out var next))
                    {
                        queue.Enqueue(reader, next);
                    }
                }
            }
            finally
            {
                readers.ForEach(r => r.Dispose());
            }
        }

        private NuGet.Versioning.SemanticVersion SemVer(string text)
        {
            if (!_versions.TryGetValue(text, out var version))
            {
                _versions[text] = version = NuGet.Versioning.SemanticVersion.Parse(text);
            }

            return version;
        }

        private void Spill()
        {
            _rows.Sort(Compare);
            var path = System.IO.Path.Combine(directory, $".scan-symbols-{Guid.NewGuid():N}.tmp");
            _runs.Add(path);
            using (var writer = new BinaryWriter(new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16)))
            {
                foreach (var row in _rows)
                {
                    writer.Write(row.Symbol);
                    writer.Write(row.Version);
                    writer.Write(row.Source);
                    writer.Write(row.Sequence);
                    writer.Write(row.Entry.Length);
                    writer.Write(row.Entry);
                }
            }

            _rows.Clear();
            _bytes = 0;
        }

        private bool TryRead(BinaryReader reader, out SymbolRow row)
        {
            if (reader.BaseStream.Position >= reader.BaseStream.Length)
            {
                row = default;
                return false;
            }

            var symbol = reader.ReadString();
            var version = reader.ReadString();
            var source = reader.ReadString();
            var sequence = reader.ReadInt32();
            var entry = reader.ReadBytes(reader.ReadInt32());
            row = new SymbolRow(symbol, version, SemVer(version), source, entry, sequence);
            return true;
        }

        private static int Compare(SymbolRow a, SymbolRow b)
        {
            var bySymbol = string.CompareOrdinal(a.Symbol, b.Symbol);
            if (bySymbol != 0)
            {
                return bySymbol;
            }

            var bySemver = a.SemVer.CompareTo(b.SemVer);
            if (bySemver != 0)
            {
                return bySemver;
            }

            var byVersion = string.CompareOrdinal(a.Version, b.Version);
            return byVersion != 0 ? byVersion : a.Sequence.CompareTo(b.Sequence);
        }

        public void Dispose()
        {
            foreach (var run in _runs)
            {
                File.Delete(run);
            }
        }
    }
}
