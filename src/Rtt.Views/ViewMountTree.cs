using Rtt.Core.Errors;
using Rtt.Core.Hashing;

namespace Rtt.Views;

/// <summary>A file or folder of a view mount. <see cref="Path"/> is relative to the mount point (<c>""</c> for the root).</summary>
public sealed class ViewMountNode
{
    private readonly List<ViewMountNode> _children = [];

    internal ViewMountNode(string path, bool isDirectory, DateTimeOffset modifiedAt)
    {
        Path = path;
        Name = path.Length == 0 ? "" : path[(path.LastIndexOf('/') + 1)..];
        IsDirectory = isDirectory;
        ModifiedAt = modifiedAt;
    }

    public string Path { get; }

    public string Name { get; }

    public bool IsDirectory { get; }

    /// <summary>The file's size in bytes (0 for a folder).</summary>
    public long Size { get; internal set; }

    /// <summary><c>sha256:</c> of the file's bytes (null for a folder).</summary>
    public string? Hash { get; internal set; }

    /// <summary>The record time of the view set the entry comes from (the newest set for a folder holding several).</summary>
    public DateTimeOffset ModifiedAt { get; internal set; }

    /// <summary>Children in ordinal order of name.</summary>
    public IReadOnlyList<ViewMountNode> Children => _children;

    /// <summary>Names what the entry is: a folder by its path, a file by its path and the hash of its bytes. Two trees give
    /// the same identity only to an entry with the same bytes, so a mount can keep the kernel's cached pages across a switch.</summary>
    public string Identity => IsDirectory ? "d:" + Path : $"f:{Path}\n{Hash}";

    /// <summary>The set the file is rendered from (null for a folder).</summary>
    public ViewSet? Set { get; internal set; }

    /// <summary>The recorded file (null for a folder and for the owned-files manifest).</summary>
    public ViewSetFile? File { get; internal set; }

    /// <summary>The owned-files manifest's bytes, made from the signed set when the tree is built (null for other entries).</summary>
    internal byte[]? Manifest { get; set; }

    /// <summary>The bytes of the first verified render: a later open checks the objects' hashes again and, when they still
    /// hold, serves these (the rendering is a pure function of those objects) instead of parsing and rendering again.</summary>
    internal byte[]? Rendered { get; set; }

    /// <summary>The number of sub-folders (a folder's link count is 2 plus this).</summary>
    public int Subdirectories => _children.Count(c => c.IsDirectory);

    internal void Add(ViewMountNode child)
    {
        var at = _children.BinarySearch(child, Comparer<ViewMountNode>.Create((a, b) => string.CompareOrdinal(a.Name, b.Name)));
        _children.Insert(~at, child);
    }

    public ViewMountNode? Child(string name)
    {
        foreach (var child in _children)
        {
            if (string.Equals(child.Name, name, StringComparison.Ordinal))
            {
                return child;
            }
        }

        return null;
    }
}

/// <summary>
/// The file tree a view mount shows, computed from recorded view sets only: one provider's folder at the root
/// (<c>rtt view mount --provider P</c>) or one folder per provider (<c>--all</c>). Paths, sizes and times come from the
/// signed sets, so listing and <c>stat</c> read no view object; <see cref="Render"/> makes one file's bytes from the
/// hash-checked view objects, byte for byte what <c>rtt view build</c> writes. Pure and deterministic.
/// </summary>
public sealed class ViewMountTree
{
    private readonly Dictionary<string, ViewMountNode> _byPath = new(StringComparer.Ordinal);

    private ViewMountTree(IReadOnlyList<ViewSet> sets, ViewMountNode root)
    {
        Sets = sets;
        Root = root;
    }

    public ViewMountNode Root { get; }

    /// <summary>The sets shown, in the order given.</summary>
    public IReadOnlyList<ViewSet> Sets { get; }

    public int FileCount => _byPath.Values.Count(n => !n.IsDirectory);

    public long TotalBytes => _byPath.Values.Sum(n => n.Size);

    /// <param name="sets">Each set with the folder it is shown in: <c>""</c> for the root (a single provider), else a folder
    /// name (the provider's, for <c>--all</c>).</param>
    public static ViewMountTree Build(IReadOnlyList<(string Folder, ViewSet Set)> sets)
    {
        var newest = sets.Count == 0 ? DateTimeOffset.UnixEpoch : sets.Max(s => s.Set.RecordedAt);
        var root = new ViewMountNode("", isDirectory: true, newest);
        var tree = new ViewMountTree([.. sets.Select(s => s.Set)], root);
        tree._byPath[""] = root;
        foreach (var (folder, set) in sets.OrderBy(s => s.Folder, StringComparer.Ordinal))
        {
            if (folder.Length > 0)
            {
                ViewNames.Provider(folder, set.Key);
                if (tree._byPath.ContainsKey(folder))
                {
                    throw new ArgumentException($"two sets in folder {folder}", nameof(sets));
                }

                tree.Directory(folder, set.RecordedAt);
            }

            string Under(string rel) => folder.Length == 0 ? rel : $"{folder}/{rel}";
            foreach (var file in set.Files)
            {
                var node = tree.File(Under(file.Path), set);
                node.Size = file.Size;
                node.Hash = file.Hash;
                node.File = file;
            }

            if (set.ManifestBytes() is { } manifest)
            {
                var node = tree.File(Under(OwnedFiles.FileName), set);
                node.Size = manifest.LongLength;
                node.Hash = ContentHash.Of(manifest);
                node.Manifest = manifest;
            }
        }

        return tree;
    }

    /// <summary>The entry at a mount-relative path (<c>/</c>-separated, <c>""</c> for the root), or null.</summary>
    public ViewMountNode? Find(string path) => _byPath.GetValueOrDefault(path.Trim('/'));

    /// <summary>Every entry, root first, then depth first in ordinal order.</summary>
    public IEnumerable<ViewMountNode> All()
    {
        var stack = new Stack<ViewMountNode>();
        stack.Push(Root);
        while (stack.TryPop(out var node))
        {
            yield return node;
            for (var i = node.Children.Count - 1; i >= 0; i--)
            {
                stack.Push(node.Children[i]);
            }
        }
    }

    /// <summary>
    /// The bytes of one file. <paramref name="readObject"/> returns an object's canonical bytes after checking they hash
    /// to its name (the registry's reader), for each view the file is rendered from; the rendered bytes are compared with the
    /// hash and size the set recorded. Any mismatch is RTT-VIEW-015, never other bytes. The returned array is shared: never
    /// change it.
    /// </summary>
    public static byte[] Render(ViewMountNode node, Func<string, byte[]> readObject)
    {
        if (node.IsDirectory || node.Set is not { } set)
        {
            throw new ArgumentException("not a file", nameof(node));
        }

        try
        {
            // The set was read (hash and signature checked) when the tree was built; it is immutable in memory since.
            byte[] bytes;
            if (node.File is not { } file)
            {
                bytes = node.Manifest!;
            }
            else if (node.Rendered is { } rendered)
            {
                foreach (var agent in file.Agents)
                {
                    readObject(set.Views[agent]); // still there and still hashing to its name: the same bytes render
                }

                return rendered;
            }
            else
            {
                var contents = file.Agents.Select(agent => (agent, ViewSets.ViewContent(readObject(set.Views[agent]), set.Views[agent], set.Provider, agent)));
                if (!ProviderFormats.Render(set.Provider, contents).TryGetValue(file.Path, out bytes!))
                {
                    throw new RttException(ErrorCodes.ViewMountVerify, $"the views of {string.Join(", ", file.Agents)} do not render {file.Path}", set.Key,
                        "record the set again with `rtt view build --record-only`");
                }
            }

            if (bytes.LongLength != node.Size || ContentHash.Of(bytes) != node.Hash)
            {
                throw new RttException(ErrorCodes.ViewMountVerify, $"rendered {bytes.Length} bytes hashing to {ContentHash.Of(bytes)}, but {set.Key} recorded {node.Size} bytes {node.Hash}",
                    node.Path, "record the set again with `rtt view build --record-only` (this rtt renders the views differently from the one that recorded it)");
            }

            if (node.File is not null)
            {
                node.Rendered = bytes;
            }

            return bytes;
        }
        catch (RttException ex) when (ex.Code != ErrorCodes.ViewMountVerify)
        {
            throw new RttException(ErrorCodes.ViewMountVerify, $"cannot serve {node.Path}: {ex.Code}: {ex.Message}", ex.Location ?? node.Path,
                "restore the registry (or record the views again with `rtt view build --record-only`); `rtt verify` lists damaged objects", ex);
        }
    }

    private ViewMountNode Directory(string path, DateTimeOffset modifiedAt)
    {
        if (_byPath.TryGetValue(path, out var existing))
        {
            if (!existing.IsDirectory)
            {
                throw new RttException(ErrorCodes.ViewMountVerify, $"{path} is both a file and a folder", path, "record the set again");
            }

            existing.ModifiedAt = existing.ModifiedAt > modifiedAt ? existing.ModifiedAt : modifiedAt;
            return existing;
        }

        var slash = path.LastIndexOf('/');
        var parent = slash < 0 ? Root : Directory(path[..slash], modifiedAt);
        var node = new ViewMountNode(path, isDirectory: true, modifiedAt);
        parent.Add(node);
        _byPath[path] = node;
        return node;
    }

    private ViewMountNode File(string path, ViewSet set)
    {
        var slash = path.LastIndexOf('/');
        var parent = slash < 0 ? Root : Directory(path[..slash], set.RecordedAt);
        if (_byPath.ContainsKey(path))
        {
            throw new RttException(ErrorCodes.ViewMountVerify, $"{path} appears twice", set.Key, "record the set again");
        }

        var node = new ViewMountNode(path, isDirectory: false, set.RecordedAt) { Set = set };
        parent.Add(node);
        _byPath[path] = node;
        return node;
    }
}
