using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Hashing;
using Rtt.Core.Workspace;
using Rtt.Registry;

namespace Rtt.Views;

/// <summary>The transactional writer: a plan carried out as stage, move aside, move in, undone whole on failure; paths checked for escapes and links.</summary>
public sealed partial class ViewBuilder
{
    /// <summary>Carries out a plan as one transaction: stage, move old files aside, move new ones in; undo everything on failure.</summary>
    public void Apply(ViewPlan plan)
    {
        var work = plan.Providers.Where(p => p.Changes.Count > 0 || p.ManifestChanges).ToList();
        if (work.Count == 0)
        {
            return;
        }

        RemoveLeftoverStaging();
        var createdDirs = new List<string>();
        var moves = new List<(string From, string To)>();
        var staging = Path.Combine(ProvidersRoot, StagingPrefix + Guid.NewGuid().ToString("N"));
        var current = ProvidersRoot;
        try
        {
            CreateDirectory(ProvidersRoot, createdDirs);
            current = staging;
            Directory.CreateDirectory(staging);
            createdDirs.Add(staging);

            // 1. Every new byte goes to the staging folder first.
            var n = 0;
            var placements = new List<(string Staged, string Target)>();
            var removals = new List<string>();
            foreach (var p in work)
            {
                foreach (var change in p.Changes)
                {
                    var target = Target(p.Provider, change.Path);
                    if (change.After is { } bytes)
                    {
                        var staged = Path.Combine(staging, $"new-{n++}");
                        current = staged;
                        File.WriteAllBytes(staged, bytes);
                        placements.Add((staged, target));
                    }

                    if (change.Kind != FileChangeKind.Added)
                    {
                        removals.Add(target);
                    }
                }

                if (p.ManifestChanges)
                {
                    var manifest = Path.Combine(p.Directory, OwnedFiles.FileName);
                    if (File.Exists(manifest))
                    {
                        removals.Add(manifest);
                    }

                    if (p.After.Files.Count > 0)
                    {
                        var staged = Path.Combine(staging, $"new-{n++}");
                        current = staged;
                        File.WriteAllBytes(staged, p.After.ToBytes());
                        placements.Add((staged, manifest));
                    }
                }
            }

            // 2. Old files move aside into the staging folder (same file system: a rename).
            var k = 0;
            foreach (var target in removals)
            {
                current = target;
                var backup = Path.Combine(staging, $"old-{k++}");
                File.Move(target, backup);
                moves.Add((target, backup));
            }

            // 3. New files move into place.
            foreach (var (staged, target) in placements)
            {
                current = target;
                CreateDirectory(Path.GetDirectoryName(target)!, createdDirs);
                File.Move(staged, target);
                moves.Add((staged, target));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Undo(moves, createdDirs);
            throw new RttException(ErrorCodes.ViewWriteFailed, $"cannot write the provider views: {ex.Message}", current,
                "make the folder writable (or free space) and build again; nothing was changed");
        }

        TryDeleteTree(staging); // only backups of replaced files remain in it
        foreach (var p in work)
        {
            foreach (var change in p.Changes.Where(c => c.Kind == FileChangeKind.Removed))
            {
                RemoveEmptyParents(Target(p.Provider, change.Path), p.Directory);
            }

            if (p.After.Files.Count == 0)
            {
                RemoveEmptyParents(Path.Combine(p.Directory, OwnedFiles.FileName), ProvidersRoot);
            }
        }
    }

    /// <summary>The full path of a file in a provider folder, refusing anything that would land outside it.</summary>
    public string Target(string provider, string rel)
    {
        ViewNames.Provider(provider);
        OwnedFiles.CheckRelative(rel, $"{ProvidersFolder}/{provider}/{rel}");
        var dir = Path.Combine(ProvidersRoot, provider);
        var full = Path.GetFullPath(Path.Combine(dir, rel));
        if (!full.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new RttException(ErrorCodes.ViewTargetOutside, $"path \"{rel}\" leaves its provider folder", full, "use plain names without .. or separators");
        }

        CheckNoLinks(full);
        return full;
    }

    /// <summary>No folder or file from the workspace root down to <paramref name="full"/> may be a symbolic link: a link
    /// could send a write (or a removal) outside the workspace.</summary>
    private void CheckNoLinks(string full)
    {
        var rel = Path.GetRelativePath(workspace.Root, full);
        if (rel.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(rel))
        {
            throw new RttException(ErrorCodes.ViewTargetOutside, "the target is outside the workspace", full, "materialize only under providers/");
        }

        var path = workspace.Root;
        foreach (var segment in rel.Split(Path.DirectorySeparatorChar))
        {
            path = Path.Combine(path, segment);
            FileSystemInfo info = Directory.Exists(path) ? new DirectoryInfo(path) : new FileInfo(path);
            if (info.LinkTarget is not null)
            {
                throw new RttException(ErrorCodes.ViewTargetOutside, $"\"{Path.GetRelativePath(workspace.Root, path)}\" is a symbolic link (to {info.LinkTarget})", path,
                    "replace the link with a real folder: rtt writes provider views only inside the workspace");
            }

            if (!info.Exists && info is FileInfo)
            {
                return; // nothing below a missing entry exists either
            }
        }
    }

    private static void CreateDirectory(string dir, List<string> created)
    {
        var missing = new Stack<string>();
        for (var d = dir; !Directory.Exists(d); d = Path.GetDirectoryName(d)!)
        {
            missing.Push(d);
        }

        while (missing.TryPop(out var d))
        {
            Directory.CreateDirectory(d);
            created.Add(d);
        }
    }

    private static void Undo(List<(string From, string To)> moves, List<string> createdDirs)
    {
        for (var i = moves.Count - 1; i >= 0; i--)
        {
            try
            {
                File.Move(moves[i].To, moves[i].From, overwrite: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // best effort: keep undoing the rest
            }
        }

        for (var i = createdDirs.Count - 1; i >= 0; i--)
        {
            TryDeleteTree(createdDirs[i]);
        }
    }

    private void RemoveLeftoverStaging()
    {
        if (Directory.Exists(ProvidersRoot))
        {
            foreach (var dir in Directory.GetDirectories(ProvidersRoot, StagingPrefix + "*"))
            {
                TryDeleteTree(dir);
            }
        }
    }

    private static void RemoveEmptyParents(string file, string stopAt)
    {
        for (var dir = Path.GetDirectoryName(file); dir is not null && dir.Length > stopAt.Length; dir = Path.GetDirectoryName(dir))
        {
            if (!Directory.Exists(dir) || Directory.EnumerateFileSystemEntries(dir).Any())
            {
                return;
            }

            try
            {
                Directory.Delete(dir);
            }
            catch (IOException)
            {
                return;
            }
        }
    }

    private static void TryDeleteTree(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
