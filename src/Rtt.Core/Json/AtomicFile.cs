using Rtt.Core.Errors;

namespace Rtt.Core.Json;

/// <summary>
/// Writes a file whole or not at all: a temp file beside it, flushed to disk, then renamed over the target.
/// </summary>
public static class AtomicFile
{
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, UnixFileMode? mode = null)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            System.IO.Directory.CreateDirectory(directory);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (mode is { } m && !OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = m; // set at creation, so the secret is never readable by others
            }

            using (var stream = new FileStream(temp, options))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch (UnauthorizedAccessException ex)
        {
            TryDelete(temp);
            throw new WorkspaceException(ErrorCodes.WorkspaceUnwritable, "cannot write file: permission denied", path,
                "make the folder writable or choose another workspace", ex);
        }
        catch (IOException ex)
        {
            TryDelete(temp);
            throw new WorkspaceException(ErrorCodes.WorkspaceUnwritable, $"cannot write file: {ex.Message}", path,
                "check free space and permissions", ex);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
