using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using Rtt.Core.Errors;
using Rtt.Views;
using static Rtt.Views.Mount.FuseProtocol;

namespace Rtt.Views.Mount;

/// <summary>
/// Serves a <see cref="ViewMountTree"/> on an open <c>/dev/fuse</c> connection: lookups, attributes, listings and reads, all
/// read-only. Node ids: a folder keeps its id for its path; a file's id is for its path and the hash of its bytes, so a
/// switch to a new tree (<see cref="Switch"/>) gives changed files new ids (the kernel never mixes cached pages of two
/// versions) and keeps unchanged ones. A file's bytes are rendered and verified when it is opened and kept by the open
/// handle until it is closed: a reader sees the old file or the new one, never a mix.
/// </summary>
public sealed unsafe class FuseServer : IDisposable
{
    private const int BufferSize = (128 * 1024) + 4096;
    private static readonly ulong EntryTimeout = 10; // seconds; a switch invalidates what changed at once

    private readonly int _fd;
    private readonly Func<string, byte[]> _readObject;
    private readonly Action<string> _log;
    private readonly uint _uid = Native.Geteuid();
    private readonly uint _gid = Native.Getegid();
    private readonly object _gate = new();
    private readonly Dictionary<ulong, Inode> _byId = [];
    private readonly Dictionary<string, Inode> _byIdentity = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<ulong, byte[]> _files = new();
    private readonly ConcurrentDictionary<ulong, Entry[]> _dirs = new();
    private readonly List<Thread> _workers = [];
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ViewMountTree _tree;
    private long _generation;
    private ulong _nextId = RootId;
    private long _nextHandle;
    private int _running;
    private volatile bool _initialized;

    public FuseServer(int fd, ViewMountTree tree, Func<string, byte[]> readObject, Action<string> log)
    {
        _fd = fd;
        _readObject = readObject;
        _log = log;
        _tree = tree;
        lock (_gate)
        {
            Adopt(tree);
        }
    }

    /// <summary>The tree served now.</summary>
    public ViewMountTree Tree => Volatile.Read(ref _tree);

    /// <summary>Completes when the kernel ends the connection (unmount) or <see cref="Dispose"/> is called.</summary>
    public Task Stopped => _stopped.Task;

    /// <summary>Opens served since the start (for tests and figures).</summary>
    public long Opens => Interlocked.Read(ref _opens);

    private long _opens;

    /// <summary>Files refused with EIO since the start.</summary>
    public long Faults => Interlocked.Read(ref _faults);

    private long _faults;

    public void Start(int threads = 2)
    {
        _running = threads;
        for (var i = 0; i < threads; i++)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"rtt-fuse-{i}" };
            _workers.Add(thread);
            thread.Start();
        }
    }

    /// <summary>Serves <paramref name="tree"/> from now on: lookups see it at once (the kernel's cached names and folder
    /// attributes that changed are invalidated); open files keep the bytes they had.</summary>
    public void Switch(ViewMountTree tree)
    {
        var invalidate = new List<(ulong Parent, string Name)>();
        var folders = new List<ulong>();
        lock (_gate)
        {
            var old = _tree;
            foreach (var dir in old.All().Where(n => n.IsDirectory))
            {
                var parentId = _byIdentity.TryGetValue(dir.Identity, out var p) ? p.Id : 0;
                var now = tree.Find(dir.Path);
                foreach (var child in dir.Children)
                {
                    if (now?.Child(child.Name)?.Identity != child.Identity && parentId != 0)
                    {
                        invalidate.Add((parentId, child.Name));
                    }
                }

                if (now is not null && parentId != 0)
                {
                    folders.Add(parentId);
                }
            }

            Adopt(tree);
            Volatile.Write(ref _tree, tree);
        }

        if (!_initialized)
        {
            return;
        }

        foreach (var (parent, name) in invalidate)
        {
            Notify(NotifyInvalEntry, parent, name);
        }

        foreach (var id in folders)
        {
            Notify(NotifyInvalInode, id, null);
        }
    }

    /// <summary>Gives every entry of the tree a node id (kept for an identity seen before) and drops forgotten ones.</summary>
    private void Adopt(ViewMountTree tree)
    {
        _generation++;
        foreach (var node in tree.All())
        {
            if (!_byIdentity.TryGetValue(node.Identity, out var inode))
            {
                inode = new Inode(node.Path.Length == 0 ? RootId : ++_nextId, node.Identity, node);
                if (inode.Id == RootId)
                {
                    _nextId = Math.Max(_nextId, RootId);
                }

                _byIdentity[node.Identity] = inode;
                _byId[inode.Id] = inode;
            }

            inode.Node = node;
            inode.Generation = _generation;
        }

        foreach (var stale in _byId.Values.Where(i => i.Generation != _generation && i.Lookups <= 0).ToList())
        {
            Drop(stale);
        }
    }

    private void Drop(Inode inode)
    {
        _byId.Remove(inode.Id);
        _byIdentity.Remove(inode.Identity);
    }

    private void Loop()
    {
        var buffer = GC.AllocateArray<byte>(BufferSize, pinned: true);
        var reply = GC.AllocateArray<byte>(BufferSize, pinned: true);
        try
        {
            while (true)
            {
                nint n;
                fixed (byte* p = buffer)
                {
                    n = Native.Read(_fd, p, (nuint)buffer.Length);
                }

                if (n < 0)
                {
                    var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                    if (errno is Native.EINTR or Native.EAGAIN or Native.ENOENT)
                    {
                        continue; // interrupted, or a request the kernel withdrew
                    }

                    if (errno != Native.ENODEV && errno != Native.EBADF)
                    {
                        _log($"reading /dev/fuse failed: {Native.Describe(errno)}");
                    }

                    return; // ENODEV: unmounted
                }

                if (n < InHeaderSize)
                {
                    continue;
                }

                Handle(buffer.AsSpan(0, (int)n), reply);
            }
        }
        finally
        {
            if (Interlocked.Decrement(ref _running) == 0)
            {
                _stopped.TrySetResult();
            }
        }
    }

    private void Handle(ReadOnlySpan<byte> request, byte[] reply)
    {
        var opcode = BinaryPrimitives.ReadUInt32LittleEndian(request[4..]);
        var unique = BinaryPrimitives.ReadUInt64LittleEndian(request[8..]);
        var nodeId = BinaryPrimitives.ReadUInt64LittleEndian(request[16..]);
        var body = request[InHeaderSize..];
        var output = reply.AsSpan(OutHeaderSize);
        int error;
        var length = 0;
        try
        {
            (error, length) = opcode switch
            {
                Init => DoInit(body, output),
                Lookup => DoLookup(nodeId, body, output),
                Forget => Forgotten(nodeId, BinaryPrimitives.ReadUInt64LittleEndian(body)),
                BatchForget => BatchForgotten(body),
                GetAttr => DoGetAttr(nodeId, output),
                Open => DoOpen(nodeId, body, output),
                Read => DoRead(body, output),
                Release => (Released(BinaryPrimitives.ReadUInt64LittleEndian(body)), 0),
                Flush => (Native.ENOSYS, 0), // nothing to flush: the kernel then stops sending FLUSH on close
                OpenDir => DoOpenDir(nodeId, output),
                ReadDir => DoReadDir(body, output),
                ReleaseDir => (ReleasedDir(BinaryPrimitives.ReadUInt64LittleEndian(body)), 0),
                StatFs => DoStatFs(output),
                Interrupt => (-1, 0), // no reply: the interrupted request is answered anyway
                Destroy => (0, 0),
                _ when IsWrite(opcode) => (Native.EROFS, 0),
                _ => (Native.ENOSYS, 0),
            };
        }
        catch (Exception ex)
        {
            _log($"internal fault in FUSE opcode {opcode}: {ex.Message}");
            (error, length) = (Native.EIO, 0);
        }

        if (error < 0)
        {
            return; // forget and interrupt take no reply
        }

        var total = OutHeaderSize + (error == 0 ? length : 0);
        WriteOutHeader(reply, total, -error, unique);
        fixed (byte* p = reply)
        {
            // ENOENT: the request was interrupted and withdrawn; nothing to do.
            Native.Write(_fd, p, (nuint)total);
        }
    }

    private (int, int) DoInit(ReadOnlySpan<byte> body, Span<byte> output)
    {
        var kernelMajor = BinaryPrimitives.ReadUInt32LittleEndian(body);
        var kernelMinor = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        var readahead = BinaryPrimitives.ReadUInt32LittleEndian(body[8..]);
        var kernelFlags = BinaryPrimitives.ReadUInt32LittleEndian(body[12..]);
        if (kernelMajor < Major)
        {
            _log($"the kernel speaks FUSE {kernelMajor}.{kernelMinor}; this server needs 7.x");
            return (Native.EPROTO, 0);
        }

        var o = output[..InitOutSize];
        o.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(o, Major);
        BinaryPrimitives.WriteUInt32LittleEndian(o[4..], kernelMajor > Major ? Minor : Math.Min(Minor, kernelMinor));
        BinaryPrimitives.WriteUInt32LittleEndian(o[8..], readahead);
        BinaryPrimitives.WriteUInt32LittleEndian(o[12..], kernelFlags & (AsyncRead | ParallelDirops));
        BinaryPrimitives.WriteUInt16LittleEndian(o[16..], 16); // max_background
        BinaryPrimitives.WriteUInt16LittleEndian(o[18..], 12); // congestion_threshold
        BinaryPrimitives.WriteUInt32LittleEndian(o[20..], 128 * 1024); // max_write (nothing is written; the kernel wants a value)
        BinaryPrimitives.WriteUInt32LittleEndian(o[24..], 1_000_000_000); // time_gran: whole seconds
        _initialized = true;
        if (kernelMajor > Major)
        {
            return (0, 8); // the kernel answers with the version it wants; it sends INIT again
        }

        return (0, InitOutSize);
    }

    private (int, int) DoLookup(ulong parentId, ReadOnlySpan<byte> body, Span<byte> output)
    {
        var end = body.IndexOf((byte)0);
        var name = Encoding.UTF8.GetString(end < 0 ? body : body[..end]);
        lock (_gate)
        {
            if (!_byId.TryGetValue(parentId, out var parent) || !parent.Node.IsDirectory)
            {
                return (Native.ENOENT, 0);
            }

            // A folder's id stands for its path: look the name up in the tree served now.
            var current = _tree.Find(parent.Node.Path) ?? parent.Node;
            if (current.Child(name) is not { } child || !_byIdentity.TryGetValue(child.Identity, out var inode))
            {
                return (Native.ENOENT, 0);
            }

            inode.Lookups++;
            var o = output[..EntryOutSize];
            BinaryPrimitives.WriteUInt64LittleEndian(o, inode.Id);
            BinaryPrimitives.WriteUInt64LittleEndian(o[8..], 0); // generation: ids are never reused
            BinaryPrimitives.WriteUInt64LittleEndian(o[16..], EntryTimeout);
            BinaryPrimitives.WriteUInt64LittleEndian(o[24..], EntryTimeout);
            BinaryPrimitives.WriteUInt64LittleEndian(o[32..], 0);
            Attr(o[40..], inode);
            return (0, EntryOutSize);
        }
    }

    private (int, int) Forgotten(ulong nodeId, ulong count)
    {
        lock (_gate)
        {
            ForgetNode(nodeId, count);
        }

        return (-1, 0);
    }

    private (int, int) BatchForgotten(ReadOnlySpan<byte> body)
    {
        var count = BinaryPrimitives.ReadUInt32LittleEndian(body);
        lock (_gate)
        {
            for (var i = 0; i < count && 8 + (i * 16) + 16 <= body.Length; i++)
            {
                var one = body[(8 + (i * 16))..];
                ForgetNode(BinaryPrimitives.ReadUInt64LittleEndian(one), BinaryPrimitives.ReadUInt64LittleEndian(one[8..]));
            }
        }

        return (-1, 0);
    }

    private void ForgetNode(ulong nodeId, ulong count)
    {
        if (_byId.TryGetValue(nodeId, out var inode))
        {
            inode.Lookups -= (long)count;
            if (inode.Lookups <= 0 && inode.Generation != _generation && inode.Id != RootId)
            {
                Drop(inode);
            }
        }
    }

    private (int, int) DoGetAttr(ulong nodeId, Span<byte> output)
    {
        lock (_gate)
        {
            if (!_byId.TryGetValue(nodeId, out var inode))
            {
                return (Native.ENOENT, 0);
            }

            var o = output[..AttrOutSize];
            BinaryPrimitives.WriteUInt64LittleEndian(o, EntryTimeout);
            BinaryPrimitives.WriteUInt64LittleEndian(o[8..], 0);
            Attr(o[16..], inode);
            return (0, AttrOutSize);
        }
    }

    private void Attr(Span<byte> s, Inode inode)
    {
        var node = inode.Node;
        if (node.IsDirectory)
        {
            WriteAttr(s, inode.Id, 0, 0x4000 | 0x16D /* 0555 */, (uint)(2 + node.Subdirectories), _uid, _gid, node.ModifiedAt);
        }
        else
        {
            WriteAttr(s, inode.Id, node.Size, 0x8000 | 0x124 /* 0444 */, 1, _uid, _gid, node.ModifiedAt);
        }
    }

    private (int, int) DoOpen(ulong nodeId, ReadOnlySpan<byte> body, Span<byte> output)
    {
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(body);
        if ((flags & 3) != 0)
        {
            return (Native.EROFS, 0);
        }

        ViewMountNode node;
        lock (_gate)
        {
            if (!_byId.TryGetValue(nodeId, out var inode))
            {
                return (Native.ENOENT, 0);
            }

            node = inode.Node;
        }

        if (node.IsDirectory)
        {
            return (Native.EISDIR, 0);
        }

        byte[] bytes;
        try
        {
            bytes = ViewMountTree.Render(node, _readObject);
        }
        catch (RttException ex)
        {
            Interlocked.Increment(ref _faults);
            _log($"EIO {node.Path}: {ex.Headline}");
            return (Native.EIO, 0);
        }

        Interlocked.Increment(ref _opens);
        var fh = (ulong)Interlocked.Increment(ref _nextHandle);
        _files[fh] = bytes;
        var o = output[..OpenOutSize];
        BinaryPrimitives.WriteUInt64LittleEndian(o, fh);
        // The id stands for these very bytes: the kernel may keep the pages it cached from an earlier open.
        BinaryPrimitives.WriteUInt32LittleEndian(o[8..], FopenKeepCache);
        BinaryPrimitives.WriteUInt32LittleEndian(o[12..], 0);
        return (0, OpenOutSize);
    }

    private (int, int) DoRead(ReadOnlySpan<byte> body, Span<byte> output)
    {
        var fh = BinaryPrimitives.ReadUInt64LittleEndian(body);
        var offset = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        var size = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(body[16..]), (uint)output.Length);
        if (!_files.TryGetValue(fh, out var bytes))
        {
            return (Native.EBADF, 0);
        }

        if (offset >= (ulong)bytes.Length)
        {
            return (0, 0);
        }

        var count = (int)Math.Min((ulong)size, (ulong)bytes.Length - offset);
        bytes.AsSpan((int)offset, count).CopyTo(output);
        return (0, count);
    }

    private int Released(ulong fh)
    {
        _files.TryRemove(fh, out _);
        return 0;
    }

    private (int, int) DoOpenDir(ulong nodeId, Span<byte> output)
    {
        Entry[] entries;
        lock (_gate)
        {
            if (!_byId.TryGetValue(nodeId, out var inode))
            {
                return (Native.ENOENT, 0);
            }

            if (!inode.Node.IsDirectory)
            {
                return (Native.ENOTDIR, 0);
            }

            // A listing is taken whole at open from the tree served now: one version, never a mix.
            var node = _tree.Find(inode.Node.Path) ?? inode.Node;
            var parentId = node.Path.Length == 0 ? RootId
                : _byIdentity.TryGetValue("d:" + (node.Path.Contains('/', StringComparison.Ordinal) ? node.Path[..node.Path.LastIndexOf('/')] : ""), out var parent) ? parent.Id : RootId;
            var list = new List<Entry> { new(inode.Id, ".", DtDir), new(parentId, "..", DtDir) };
            foreach (var child in node.Children)
            {
                if (_byIdentity.TryGetValue(child.Identity, out var c))
                {
                    list.Add(new Entry(c.Id, child.Name, child.IsDirectory ? DtDir : DtReg));
                }
            }

            entries = [.. list];
        }

        var fh = (ulong)Interlocked.Increment(ref _nextHandle);
        _dirs[fh] = entries;
        var o = output[..OpenOutSize];
        o.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(o, fh);
        return (0, OpenOutSize);
    }

    private (int, int) DoReadDir(ReadOnlySpan<byte> body, Span<byte> output)
    {
        var fh = BinaryPrimitives.ReadUInt64LittleEndian(body);
        var offset = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        var size = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(body[16..]), (uint)output.Length);
        if (!_dirs.TryGetValue(fh, out var entries))
        {
            return (Native.EBADF, 0);
        }

        var written = 0;
        for (var i = (int)Math.Min(offset, (ulong)entries.Length); i < entries.Length; i++)
        {
            var name = Encoding.UTF8.GetBytes(entries[i].Name);
            var record = (DirentHeaderSize + name.Length + 7) & ~7;
            if (written + record > size)
            {
                break;
            }

            var d = output.Slice(written, record);
            d.Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(d, entries[i].Id);
            BinaryPrimitives.WriteUInt64LittleEndian(d[8..], (ulong)(i + 1)); // the offset of the next entry
            BinaryPrimitives.WriteUInt32LittleEndian(d[16..], (uint)name.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(d[20..], entries[i].Type);
            name.CopyTo(d[DirentHeaderSize..]);
            written += record;
        }

        return (0, written);
    }

    private int ReleasedDir(ulong fh)
    {
        _dirs.TryRemove(fh, out _);
        return 0;
    }

    private (int, int) DoStatFs(Span<byte> output)
    {
        var tree = Tree;
        var o = output[..StatfsOutSize];
        o.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(o, (ulong)((tree.TotalBytes + 4095) / 4096)); // blocks
        BinaryPrimitives.WriteUInt64LittleEndian(o[24..], (ulong)tree.FileCount); // files
        BinaryPrimitives.WriteUInt32LittleEndian(o[40..], 4096); // bsize
        BinaryPrimitives.WriteUInt32LittleEndian(o[44..], 255); // namelen
        BinaryPrimitives.WriteUInt32LittleEndian(o[48..], 4096); // frsize
        return (0, StatfsOutSize);
    }

    /// <summary>Tells the kernel to drop a cached name (<paramref name="name"/> under <paramref name="id"/>) or a node's cached attributes.</summary>
    private void Notify(int code, ulong id, string? name)
    {
        var nameBytes = name is null ? [] : Encoding.UTF8.GetBytes(name);
        var length = OutHeaderSize + (name is null ? 24 : 16 + nameBytes.Length + 1);
        var message = new byte[length];
        WriteOutHeader(message, length, code, 0);
        var s = message.AsSpan(OutHeaderSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s, id);
        if (name is null)
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[8..], -1); // attributes only, no pages
            BinaryPrimitives.WriteInt64LittleEndian(s[16..], 0);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], (uint)nameBytes.Length);
            nameBytes.CopyTo(s[16..]);
        }

        fixed (byte* p = message)
        {
            Native.Write(_fd, p, (nuint)length); // ENOENT: the kernel had not cached it; nothing to drop
        }
    }

    public void Dispose()
    {
        _stopped.TrySetResult();
    }

    private sealed class Inode(ulong id, string identity, ViewMountNode node)
    {
        public ulong Id { get; } = id;

        public string Identity { get; } = identity;

        public ViewMountNode Node { get; set; } = node;

        public long Lookups { get; set; }

        public long Generation { get; set; }
    }

    private readonly record struct Entry(ulong Id, string Name, uint Type);
}
