using System.Text.Json.Nodes;
using Rtt.Core.Workspace;

namespace Rtt.Core.Tests;

/// <summary>A fresh workspace in a temp folder, with helpers to write source files.</summary>
public sealed class TestWorkspace : IDisposable
{
    public TestWorkspace()
    {
        Root = Directory.CreateTempSubdirectory("rtt-reg-").FullName;
        Workspace = WorkspaceInitializer.Create(Root).Workspace;
    }

    public string Root { get; }

    public RttWorkspace Workspace { get; }

    public string Write(string relative, string text)
    {
        var path = Path.Combine(Root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    public static string Agent(string id, string version = "1.0.0", string description = "does things") => new JsonObject
    {
        ["id"] = id,
        ["version"] = version,
        ["description"] = description,
        ["instructions"] = $"You are {id}.",
        ["model"] = new JsonObject { ["hint"] = "small" },
        ["tools"] = new JsonArray("read"),
        ["exports"] = new JsonArray(new JsonObject { ["symbol"] = $"rtt://agents/agent/{id}", ["input"] = "rtt.types/Text", ["output"] = "rtt.types/Text" }),
    }.ToJsonString();

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
