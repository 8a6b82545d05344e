using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Json;

namespace Rtt.Reconciling.Wal;

/// <summary>
/// The log's anchor outside its database: the latest signed tree head, also kept as a file beside the state
/// database (<c>.rtt/state/wal-anchor.json</c>). Whoever can write the database can delete entries and heads
/// together; they cannot make the log shorter than its anchor, or change an entry the anchor covers, without it
/// showing. The anchor is a lower bound: it is written after the head is stored, so it never runs ahead of the log.
/// </summary>
public sealed class WalAnchor(string path)
{
    public const string FileName = "wal-anchor.json";

    public string Path { get; } = path;

    /// <summary>A workspace's anchor: <c>.rtt/state/wal-anchor.json</c>, beside the state database.</summary>
    public static WalAnchor Of(Rtt.Core.Workspace.RttWorkspace workspace) => new(System.IO.Path.Combine(workspace.State, FileName));

    /// <summary>The anchored head, or null when there is none yet. An unreadable anchor is RTT-WAL-002.</summary>
    public SignedTreeHead? Read()
    {
        if (!WorkspaceFiles.Exists(Path))
        {
            return null; // a folder or FIFO in its place is not "no anchor": ReadBytes refuses it below
        }

        try
        {
            var bytes = WorkspaceFiles.ReadBytes(Path, WorkspaceFiles.SmallLimit);
            var obj = CanonicalJson.ParseNode(bytes, Path) as JsonObject ?? throw new JsonException("not a JSON object");
            var size = obj["size"] is JsonValue s && s.TryGetValue<long>(out var n) && n >= 0 ? n : throw new JsonException("no size");
            var root = obj["root"] is JsonValue r && r.TryGetValue<string>(out var t) ? t : throw new JsonException("no root");
            return new SignedTreeHead(size, root, (string?)obj["timestamp"] ?? "", (string?)obj["sign"]?["key_id"] ?? "", Encoding.UTF8.GetString(bytes));
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or RttException)
        {
            throw new RttException(ErrorCodes.WalTampered, $"the WAL anchor is not readable: {(ex is RttException rtt ? rtt.Headline : ex.Message)}", Path,
                "if the machine lost power while it was written, check the log with `rtt wal verify`, then delete the anchor (the next signed head writes it again)");
        }
    }

    /// <summary>Writes a head as the anchor (atomic rename; a copy of what the database holds durably).</summary>
    public void Write(SignedTreeHead head)
    {
        try
        {
            AtomicFile.WriteAllBytes(Path, Encoding.UTF8.GetBytes(head.Json), durable: false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new HostingException(ErrorCodes.StateUnwritable, $"cannot write the WAL anchor: {ex.Message}", Path, "make the state folder writable");
        }
    }

    /// <summary>The least time between two writes of <see cref="WriteLater"/>: heads given meanwhile are written newest only, after it.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(100);

    private readonly Lock _gate = new();
    private SignedTreeHead? _pending; // the newest head given to WriteLater and not yet written
    private bool _writing; // a writer task runs (it writes until nothing is pending)
    private Task _writer = Task.CompletedTask;
    private Exception? _failure; // a later write's error, told at the next WriteLater or Flush
    private long _lastWrite = long.MinValue; // Stopwatch timestamp of the last write of WriteLater's writer
    private TaskCompletionSource _hurry = new(TaskCreationOptions.RunContinuationsAsynchronously); // set by Flush: no more waiting

    /// <summary>Files written by <see cref="WriteLater"/>'s writer so far.</summary>
    public long Writes { get; private set; }

    /// <summary>
    /// Writes <paramref name="head"/> as the anchor beside the caller (a silo's append does not wait for the file), at most
    /// once per <see cref="MinInterval"/>: a transaction signs two heads and a busy silo runs a hundred transactions a
    /// second, and each write makes and deletes a file (0.2-0.6 ms here; more on a file system without a journal, where
    /// making a file skips every recently deleted inode). Heads given meanwhile are written newest only, never an older one
    /// after a newer, and each after the database holds it (the caller stored it), so the anchor is still a lower bound that
    /// never runs ahead of the log; a crash may leave it up to <see cref="MinInterval"/> of heads behind, as the unflushed
    /// file already could. A write that failed is thrown at the next call (or <see cref="Flush"/>).
    /// </summary>
    public void WriteLater(SignedTreeHead head)
    {
        lock (_gate)
        {
            if (_failure is { } failed)
            {
                _failure = null;
                throw failed;
            }

            _pending = head;
            if (!_writing)
            {
                _writing = true;
                _writer = Task.Run(WritePendingAsync);
            }
        }
    }

    private async Task WritePendingAsync()
    {
        while (true)
        {
            var wait = _lastWrite == long.MinValue ? TimeSpan.Zero : MinInterval - System.Diagnostics.Stopwatch.GetElapsedTime(_lastWrite);
            if (wait > TimeSpan.Zero)
            {
                Task hurry;
                lock (_gate)
                {
                    hurry = _hurry.Task;
                }

                await Task.WhenAny(Task.Delay(wait), hurry).ConfigureAwait(false);
            }

            SignedTreeHead head;
            lock (_gate)
            {
                if (_pending is null)
                {
                    _writing = false;
                    return;
                }

                head = _pending;
                _pending = null;
            }

            try
            {
                Write(head);
            }
            catch (Exception ex)
            {
                lock (_gate)
                {
                    _failure = ex;
                }
            }

            _lastWrite = System.Diagnostics.Stopwatch.GetTimestamp();
            Writes++;
        }
    }

    /// <summary>Writes every head given to <see cref="WriteLater"/> now (no more waiting) and returns when it is written; throws a write's error.</summary>
    public void Flush()
    {
        while (true)
        {
            Task writer;
            TaskCompletionSource hurry;
            lock (_gate)
            {
                if (!_writing)
                {
                    if (_hurry.Task.IsCompleted)
                    {
                        _hurry = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    }

                    if (_failure is { } failed)
                    {
                        _failure = null;
                        throw failed;
                    }

                    return;
                }

                writer = _writer;
                hurry = _hurry;
            }

            hurry.TrySetResult();
            writer.Wait();
        }
    }

    /// <summary>
    /// Null when the log (of <paramref name="size"/> entries, roots from <paramref name="rootAt"/>) holds the anchored head;
    /// otherwise what is wrong.
    /// </summary>
    public static string? Check(SignedTreeHead anchor, long size, Func<long, byte[]> rootAt)
    {
        if (anchor.Size > size)
        {
            return $"the log has {size} entries, but its anchor was signed over {anchor.Size}: entries were removed";
        }

        var root = Convert.ToHexStringLower(rootAt(anchor.Size));
        return string.Equals(root, anchor.Root, StringComparison.Ordinal) ? null
            : $"the anchor's signed root at size {anchor.Size} is {anchor.Root}, but the entries give {root}: entries were changed";
    }
}
