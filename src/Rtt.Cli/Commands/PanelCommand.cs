using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Core.Errors;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Silo.Web;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt panel</c>: a fresh one-time login URL for the panel of the silo running on the workspace (docs/panel.md).</summary>
public static class PanelCommand
{
    public static readonly TimeSpan DefaultLoginTtl = TimeSpan.FromMinutes(10);

    public static Command Create()
    {
        var ttl = new Option<string?>("--ttl") { Description = "How long the login link stays usable (default 10m; it is spent by the first login)" };
        var readOnly = new Option<bool>("--read-only") { Description = "A session that can look but not apply or roll back (rx on rtt://rtt/manage/panel only)" };
        var command = new Command("panel", "Print a one-time login URL for the panel of the silo running here (`rtt up --panel`)") { ttl, readOnly };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var life = parse.GetValue(ttl) is { } text ? TelemetryCommands.Duration(text, "--ttl") : DefaultLoginTtl;
            Console.WriteLine(LoginUrl(ws, Running(ws), life, parse.GetValue(readOnly)));
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    /// <summary>The web host's base URL from .rtt/state/web.json (written while it runs).</summary>
    public static Uri Running(RttWorkspace ws)
    {
        var path = Path.Combine(ws.State, RttWebHost.WebInfoName);
        JsonObject? info = null;
        try
        {
            info = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject : null;
        }
        catch (System.Text.Json.JsonException)
        {
        }

        if ((string?)info?["url"] is not { } url || (int?)info["pid"] is not { } pid || !Alive(pid))
        {
            throw new HostingException(ErrorCodes.NoSiloAnswers, "no silo with a panel is running on this workspace", path, "start one with `rtt up --panel` (in another terminal), then run this again");
        }

        return new Uri(url);
    }

    /// <summary>
    /// <c>BASE/login#token=…</c>: a sealed token from the workspace's signing key allowing rx (and, unless read-only, tx) on
    /// <c>rtt://rtt/manage/*</c>, spent by the first login. In the fragment, so it never reaches a server log or a Referer.
    /// </summary>
    public static string LoginUrl(RttWorkspace ws, Uri web, TimeSpan ttl, bool readOnly)
    {
        using var key = ws.LoadSigningKey();
        var token = readOnly
            ? CapabilityToken.Issue(key, RttWebHost.PanelSymbol, ["rx"], [], ttl, DateTimeOffset.UtcNow)
            : CapabilityToken.Issue(key, ManagementTokens.Symbol("*"), ["rx", "tx"], [], ttl, DateTimeOffset.UtcNow);
        return $"{new Uri(web, RttWebHost.LoginPath)}#token={CapabilityToken.Seal(token)}";
    }

    private static bool Alive(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
