using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Rtt.Cli.Commands;
using Rtt.Client;
using Rtt.Client.Lanes;
using Rtt.Core.Errors;
using Rtt.Core.Json;
using Rtt.Core.Tokens;
using Rtt.Core.Workspace;
using Rtt.Fabric.Telemetry;
using Rtt.Grains;
using Rtt.Grains.Reconciling;
using Rtt.Planning;
using Rtt.Silo.Endpoints.Mcp;
using Rtt.Silo.Hosting;
using Rtt.Silo.Lanes;
using Rtt.Silo.Web;

namespace Rtt.Cli.Panel;

/// <summary>
/// The RTT panel (docs/panel.md) on the silo's web host, when <c>Panel:Enabled</c> (`rtt up --panel`): static pages embedded
/// in this assembly and JSON endpoints built by the same code as the CLI's <c>--json</c> output (StatusCommand.Json,
/// ApplyCommands.ReportJson/HistoryJson, WalCommand.RootJson/ExportLine/InclusionJson, the telemetry snapshot bytes).
/// </summary>
public sealed class PanelModule : IRttWebModule
{
    /// <summary>Largest page of WAL entries one request returns.</summary>
    public const int MaxEntries = 500;

    private static readonly Dictionary<string, string> Types = new(StringComparer.Ordinal)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".txt"] = "text/plain; charset=utf-8",
    };

    public string Name => "Panel";

    public IReadOnlyList<string> PublicPaths => [RttWebHost.LoginPath, "/assets/login.js", "/assets/style.css"];

    public string? StartLine(Uri baseAddress) => $"panel: {baseAddress}";

    public void Map(WebApplication app)
    {
        var ws = app.Services.GetRequiredService<RttWorkspace>();
        var grains = app.Services.GetRequiredService<IGrainFactory>();
        var silo = app.Services.GetRequiredService<RttSiloOptions>();
        var configuration = app.Services.GetRequiredService<IConfiguration>();

        app.MapGet("/", context => Asset(context, "index.html"));
        app.MapGet(RttWebHost.LoginPath, context => Asset(context, "login.html"));
        app.MapGet("/assets/{name}", context => Asset(context, (string)context.Request.RouteValues["name"]!));

        app.MapGet("/api/me", context =>
        {
            var p = RttWebHost.Principal(context);
            return RttWebHost.Json(context, new JsonObject
            {
                ["kind"] = p.Kind, ["apply"] = p.CanApply, ["rollback"] = p.CanRollback, ["node"] = silo.NodeId,
                ["dashboard"] = string.Equals(configuration["Dashboard:Enabled"], "true", StringComparison.OrdinalIgnoreCase),
            });
        });
        app.MapGet("/api/status", async context =>
            await RttWebHost.Json(context, StatusCommand.Json(ws.Root, silo.GatewayPort, await RttClient.GetStatusAsync(grains))));
        app.MapGet("/api/history", async context =>
            await RttWebHost.Json(context, ApplyCommands.HistoryJson(await grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey).History())));
        app.MapGet("/api/plans", context => RttWebHost.Json(context, Plans(ws)));
        var lanes = app.Services.GetService<LaneHostService>();
        app.MapGet("/api/registry", context => RttWebHost.Json(context, Registry(ws, lanes is { Running: true } ? McpToolStates.Of(lanes.Routes) : null)));
        app.MapGet("/api/metrics", async context =>
        {
            byte[] bytes;
            try
            {
                bytes = TelemetryProtocol.Metrics(LaneClient.ControlSocketOf(ws)); // what `rtt metrics --json` prints
            }
            catch (RttException ex)
            {
                await RttWebHost.Refuse(context, StatusCodes.Status503ServiceUnavailable, $"{ex.Code}: {ex.Message}");
                return;
            }

            context.Response.ContentType = "application/json; charset=utf-8";
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.Body.WriteAsync(bytes);
        });

        app.MapGet("/api/flight", async context =>
        {
            // ?since=<the previous answer's until>: the requests that ended after it (at most the last minute); without it
            // the last second. The window asked of the host covers since..now with a second to spare, then is cut at since.
            var sinceText = context.Request.Query["since"].ToString();
            var since = sinceText.Length == 0 ? (DateTime?)null : FlightSummary.ParseTime(sinceText);
            if (sinceText.Length > 0 && since is null)
            {
                await RttWebHost.Refuse(context, StatusCodes.Status400BadRequest, $"since \"{sinceText}\" is not a time as the flight record writes it (2026-12-02T09:49:08.8841200Z)");
                return;
            }

            var window = since is { } s ? TimeSpan.FromSeconds(Math.Clamp((DateTime.UtcNow - s).TotalSeconds + 1, 1, 60)) : TimeSpan.FromSeconds(1);
            using var dump = new MemoryStream();
            try
            {
                await Task.Run(() => TelemetryProtocol.Flight(LaneClient.ControlSocketOf(ws), window, dump));
            }
            catch (RttException ex)
            {
                await RttWebHost.Refuse(context, StatusCodes.Status503ServiceUnavailable, $"{ex.Code}: {ex.Message}");
                return;
            }

            await RttWebHost.Json(context, FlightSummary.Of(dump.GetBuffer().AsSpan(0, (int)dump.Length), since ?? DateTime.UtcNow - window));
        });

        app.MapGet("/api/wal/root", context =>
        {
            using var log = WalCommand.OpenLog(ws, configuration);
            return RttWebHost.Json(context, WalCommand.RootJson(log));
        });
        app.MapGet("/api/wal/heads", context =>
        {
            using var log = WalCommand.OpenLog(ws, configuration);
            return RttWebHost.Json(context, new JsonArray([.. log.Heads.Select(h => (JsonNode)JsonNode.Parse(h.Json)!)]));
        });
        app.MapGet("/api/wal/keys", context =>
        {
            // The trusted public keys (as in .rtt/registry/trust/keys/*.pub), for the page's own Ed25519 check of the heads.
            var trust = ws.LoadTrustStore();
            var revoked = trust.Revoked.ToDictionary(r => r.KeyId, r => r.Kind, StringComparer.Ordinal);
            return RttWebHost.Json(context, new JsonArray([.. trust.Keys.OrderBy(k => k.Key.KeyId, StringComparer.Ordinal).Select(k => (JsonNode)new JsonObject
            {
                ["key_id"] = k.Key.KeyId,
                ["name"] = k.Name,
                ["public_key"] = Convert.ToBase64String(k.Key.RawPublicKey),
                ["revoked"] = revoked.GetValueOrDefault(k.Key.KeyId),
            })]));
        });
        app.MapGet("/api/wal/entries", context =>
        {
            using var log = WalCommand.OpenLog(ws, configuration);
            var size = log.Size;
            var from = Math.Clamp(Number(context, "from") ?? Math.Max(0, size - 50), 0, size);
            var to = Math.Min(size, from + Math.Clamp(Number(context, "count") ?? 50, 0, MaxEntries));
            return RttWebHost.Json(context, new JsonObject
            {
                ["size"] = size,
                ["from"] = from,
                ["entries"] = new JsonArray([.. log.Read(from, to).Select(e => (JsonNode)WalCommand.ExportLine(e.Index, e.Leaf))]),
            });
        });
        app.MapGet("/api/wal/proof", async context =>
        {
            using var log = WalCommand.OpenLog(ws, configuration);
            var size = Number(context, "size") ?? log.Size;
            var index = Number(context, "index");
            if (index is not { } i || i < 0 || i >= size || size > log.Size)
            {
                await RttWebHost.Refuse(context, StatusCodes.Status400BadRequest, $"{ErrorCodes.ObsInputInvalid}: give index from 0 to size-1 and size up to {log.Size}");
                return;
            }

            await RttWebHost.Json(context, WalCommand.InclusionJson(log, i, size));
        });

        Func<IReconcilerGrain, ManagementToken, Task<ApplyReport>> apply = (reconciler, token) =>
        {
            var path = Path.Combine(new PlanStore(ws).Directory, "proposed.json");
            if (!File.Exists(path))
            {
                throw new RttException(ErrorCodes.PlanInputInvalid, "no proposed plan", path, "compute one with `rtt plan`");
            }

            return reconciler.ApplyUtf8(IReconcilerGrain.PlanUtf8(RttWorkspace.ReadObject(path)), token);
        };
        Func<IReconcilerGrain, ManagementToken, Task<ApplyReport>> rollback = (reconciler, token) => reconciler.Rollback("requested from the panel", token);
        app.MapPost("/api/apply", context => Manage(context, ws, ManagementTokens.Apply, apply, grains));
        app.MapPost("/api/rollback", context => Manage(context, ws, ManagementTokens.Rollback, rollback, grains));
    }

    /// <summary>
    /// The registry: `rtt verify --json` (every object's hash and signature, the index, the pack) and each index entry with
    /// its hash, kind, signer, and for MCP servers the pinned tools (pin, object, symbol) and the server version they were
    /// pinned against.
    /// </summary>
    /// <param name="live">
    /// The MCP tools the silo's lane host routes now with their live state (McpToolStates), or null when no lane host runs in
    /// this process (then <c>live</c> is null in the JSON and the page says so).
    /// </param>
    public static JsonObject Registry(RttWorkspace ws, IReadOnlyList<McpToolState>? live = null)
    {
        var verify = Rtt.Registry.RegistryVerifier.Run(ws).ToJson();
        var entries = new JsonArray();
        using (var store = Rtt.Registry.RegistryStore.Open(ws))
        {
            foreach (var (key, hash) in store.Index.Entries.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                JsonObject? obj = null;
                string? fault = null;
                try
                {
                    obj = store.ReadObject(hash, key);
                }
                catch (RttException ex)
                {
                    fault = $"{ex.Code}: {ex.Message}";
                }

                var kind = key.StartsWith("mcp:", StringComparison.Ordinal) ? "mcp" : key.StartsWith("rtt://", StringComparison.Ordinal) ? "manifest" : "agent";
                entries.Add(new JsonObject
                {
                    ["key"] = key,
                    ["hash"] = hash,
                    ["kind"] = kind,
                    ["signed_by"] = (string?)obj?["sign"]?["key_id"],
                    ["server"] = obj?["mcp"]?["server"]?.DeepClone(),
                    // Pins are an MCP manifest's tool objects; an agent's "tools" is a list of names (strings), not pins.
                    ["pins"] = new JsonArray([.. (kind == "mcp" ? obj?["tools"] as JsonArray ?? [] : []).OfType<JsonObject>().Select(t => (JsonNode)new JsonObject
                    {
                        ["name"] = (string?)t?["name"],
                        ["symbol"] = (string?)t?["symbol"],
                        ["pin"] = (string?)t?["pin"],
                        ["object"] = (string?)t?["object"],
                    })]),
                    ["fault"] = fault,
                });
            }
        }

        return new JsonObject
        {
            ["verify"] = verify,
            ["entries"] = entries,
            ["live"] = live is null ? null : new JsonArray([.. live.Select(t => (JsonNode)new JsonObject
            {
                ["route_id"] = t.RouteId,
                ["symbol"] = t.Symbol,
                ["server"] = t.Server,
                ["tool"] = t.Tool,
                ["pin"] = t.Pin,
                ["live_pin"] = t.LivePin,
                ["state"] = t.State,
                ["why"] = t.Why,
            })]),
        };
    }

    /// <summary>The applied plan, the proposed one and their difference (PlanDiff).</summary>
    public static JsonObject Plans(RttWorkspace ws)
    {
        var store = new PlanStore(ws);
        var applied = store.Applied();
        var proposedPath = Path.Combine(store.Directory, "proposed.json");
        var proposed = WorkspaceFiles.Exists(proposedPath) ? RttWorkspace.ReadObject(proposedPath) : null;
        return new JsonObject
        {
            ["applied"] = applied?.DeepClone(),
            ["proposed"] = proposed?.DeepClone(),
            ["diff"] = PlanDiff.Of(proposed, applied),
        };
    }

    /// <summary>
    /// Apply or rollback through the reconciler, with the credential the request came with: a bearer token is the call's
    /// token argument as it is (the grain call filter checks and spends it, as for `rtt apply`); a browser session whose login token allowed
    /// the operation gets a fresh management token from the workspace key (docs/panel.md).
    /// </summary>
    private static async Task Manage(HttpContext context, RttWorkspace ws, string operation, Func<IReconcilerGrain, ManagementToken, Task<ApplyReport>> call, IGrainFactory grains)
    {
        var principal = RttWebHost.Principal(context);
        ManagementToken token;
        if (principal.Bearer is { } bearer)
        {
            token = new ManagementToken(bearer);
        }
        else if (operation == ManagementTokens.Apply ? principal.CanApply : principal.CanRollback)
        {
            token = ManagementCalls.Token(ws, operation);
        }
        else
        {
            await RttWebHost.Refuse(context, StatusCodes.Status403Forbidden, $"the login token did not allow tx on {ManagementTokens.Symbol(operation)}");
            return;
        }

        try
        {
            var report = await call(grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey), token);
            await RttWebHost.Json(context, ApplyCommands.ReportJson(report, rollback: operation == ManagementTokens.Rollback));
        }
        catch (RttException ex)
        {
            await RttWebHost.Refuse(context, ex.Code.StartsWith("RTT-TOKEN", StringComparison.Ordinal) ? StatusCodes.Status403Forbidden : StatusCodes.Status409Conflict, $"{ex.Code}: {ex.Message}");
        }
        catch (RttGrainException ex)
        {
            await RttWebHost.Refuse(context, ex.Code.StartsWith("RTT-TOKEN", StringComparison.Ordinal) ? StatusCodes.Status403Forbidden : StatusCodes.Status409Conflict, $"{ex.Code}: {ex.Message}");
        }
    }

    private static long? Number(HttpContext context, string name) =>
        long.TryParse(context.Request.Query[name].ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;

    private static async Task Asset(HttpContext context, string name)
    {
        var ext = Path.GetExtension(name);
        using var stream = name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_') && Types.TryGetValue(ext, out _)
            ? typeof(PanelModule).Assembly.GetManifestResourceStream($"Rtt.Cli.Panel.assets.{name}") : null;
        if (stream is null)
        {
            await RttWebHost.Refuse(context, StatusCodes.Status404NotFound, "not found");
            return;
        }

        context.Response.ContentType = Types[ext];
        context.Response.Headers.CacheControl = "no-cache";
        // Scripts and styles come only from this origin; no inline script, nothing from a CDN.
        context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";
        await stream.CopyToAsync(context.Response.Body);
    }
}
