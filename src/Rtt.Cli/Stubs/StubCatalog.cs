using System.Diagnostics;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;

namespace Rtt.Cli.Stubs;

/// <summary>One stub of <c>stubs/stubs.json</c>, with its placeholders filled in.</summary>
public sealed record StubEntry(string Language, string Source, string Output, IReadOnlyList<string> Tools, IReadOnlyList<IReadOnlyList<string>> Build,
    IReadOnlyList<string> Run, bool Shm, string? WorkingDirectory, IReadOnlyDictionary<string, string> Environment);

/// <summary>
/// The stubs of the universal stub protocol (<c>stubs/stubs.json</c>): how to build each one's sample echo service into
/// a folder outside the source tree and how to start it. A missing toolchain is an error naming it, never a skip.
/// </summary>
public static class StubCatalog
{
    public static IReadOnlyList<StubEntry> Load(string catalogPath, string outputRoot, string rttHome)
    {
        var root = JsonNode.Parse(File.ReadAllText(catalogPath))!;
        var stubsDir = Path.GetDirectoryName(Path.GetFullPath(catalogPath))!;
        var list = new List<StubEntry>();
        foreach (var node in root["stubs"]!.AsArray())
        {
            var language = (string)node!["language"]!;
            var src = Path.Combine(stubsDir, (string)node["dir"]!);
            var output = Path.Combine(outputRoot, language);
            string Fill(string text) => text.Replace("{src}", src, StringComparison.Ordinal).Replace("{out}", output, StringComparison.Ordinal)
                .Replace("{rtt_home}", rttHome, StringComparison.Ordinal);
            IReadOnlyList<string> Argv(JsonNode? argv) => [.. argv!.AsArray().Select(a => Fill((string)a!))];
            list.Add(new StubEntry(
                language,
                src,
                output,
                [.. (node["tools"]?.AsArray() ?? []).Select(t => (string)t!)],
                [.. (node["build"]?.AsArray() ?? []).Select(Argv)],
                Argv(node["run"]),
                (bool?)node["shm"] ?? false,
                node["cwd"] is { } cwd ? Fill((string)cwd!) : null,
                (node["env"] as JsonObject ?? []).ToDictionary(p => p.Key, p => Fill((string)p.Value!))));
        }

        return list;
    }

    /// <summary>Builds every stub (in parallel); returns the failures by language (empty when all built).</summary>
    public static async Task<IReadOnlyDictionary<string, string>> BuildAllAsync(IEnumerable<StubEntry> stubs, CancellationToken cancellationToken = default)
    {
        var failures = new System.Collections.Concurrent.ConcurrentDictionary<string, string>();
        await Parallel.ForEachAsync(stubs, new ParallelOptions { MaxDegreeOfParallelism = 3, CancellationToken = cancellationToken }, async (stub, ct) =>
        {
            try
            {
                await BuildAsync(stub, ct);
            }
            catch (RttException ex)
            {
                failures[stub.Language] = ex.Message;
            }
        });
        return failures;
    }

    public static async Task BuildAsync(StubEntry stub, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(stub.Output);
        foreach (var tool in stub.Tools)
        {
            if (FindOnPath(tool) is null)
            {
                throw new RttException(ErrorCodes.StubCheckUsage, $"the {stub.Language} stub needs \"{tool}\", which is not on PATH", stub.Source,
                    "install its toolchain (.ci/run installs every one it needs with apt-get)");
            }
        }

        foreach (var argv in stub.Build)
        {
            var info = new ProcessStartInfo(argv[0])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = stub.WorkingDirectory ?? stub.Source,
            };
            foreach (var a in argv.Skip(1))
            {
                info.ArgumentList.Add(a);
            }

            foreach (var (k, v) in stub.Environment)
            {
                info.Environment[k] = v;
            }

            using var p = Process.Start(info)!;
            var stdout = p.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = p.StandardError.ReadToEndAsync(cancellationToken);
            await p.WaitForExitAsync(cancellationToken);
            if (p.ExitCode != 0)
            {
                throw new RttException(ErrorCodes.StubCheckUsage, $"building the {stub.Language} stub failed ({string.Join(' ', argv)}: exit {p.ExitCode}): {(await stderr + await stdout).Trim()}",
                    stub.Source, "fix the stub so it builds with warnings as errors");
            }
        }
    }

    /// <summary>The full path of a program on PATH (or the path itself when it has a slash and exists); null when missing.</summary>
    public static string? FindOnPath(string tool)
    {
        if (tool.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(tool) ? tool : null;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, tool);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
