using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Playwright;

namespace Rtt.Cli.Tests;

/// <summary>
/// The RTT panel in a real browser (Debian's chromium driven by Playwright): one silo with the quickstart planned, started
/// with `rtt up --panel --dashboard`, logged into once with the printed one-time URL; every page checked against what
/// `rtt … --json` prints, the plan applied from the Plans page, a WAL proof verified by the page's own JavaScript and a
/// tampered one refused, and the credential and Origin/Host checks. Screenshots go to panel-screenshots/ in the output.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class PanelBrowserTests(PanelBrowserTests.Fixture fixture) : IClassFixture<PanelBrowserTests.Fixture>
{
    [Fact]
    public async Task Requests_without_valid_credentials_get_401_and_foreign_hosts_and_origins_get_403()
    {
        using var http = new HttpClient { BaseAddress = fixture.Base };
        foreach (var path in new[] { "/", "/api/plans", "/api/wal/root", "/api/metrics", "/dashboard/", "/assets/app.js" })
        {
            var response = await http.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{path}: {response.StatusCode}");
            var body = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain("rtt1.", body, StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/login")).StatusCode); // the login page itself is public

        // A bearer token from `rtt token issue` for the panel symbol reads; one for another symbol, or a mangled one, does not.
        var reader = Token("--saddr", "rtt://rtt/manage/panel", "--verb", "rx", "--ttl", "5m");
        var other = Token("--saddr", "rtt://core/api/*", "--verb", "rx", "--ttl", "5m");
        Assert.Equal(HttpStatusCode.OK, (await Get(http, "/api/wal/root", reader)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get(http, "/api/wal/root", other)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Get(http, "/api/wal/root", reader[..^2] + (reader[^2] == 'A' ? "BA" : "AA"))).StatusCode);

        // A read-only bearer cannot apply (the reconciler's grain call filter refuses it: it allows no tx on …/apply).
        using (var post = new HttpRequestMessage(HttpMethod.Post, "/api/apply"))
        {
            post.Headers.Authorization = new("Bearer", reader);
            var refused = await http.SendAsync(post);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("RTT-TOKEN", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // DNS rebinding: another name for 127.0.0.1 in Host is refused even with a valid credential.
        using (var rebound = new HttpRequestMessage(HttpMethod.Get, "/api/wal/root"))
        {
            rebound.Headers.Host = $"rebind.example:{fixture.Base.Port}";
            rebound.Headers.Authorization = new("Bearer", reader);
            Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(rebound)).StatusCode);
        }

        // A state-changing request from another origin, or a cookie-carrying one with no Origin, is refused before anything runs.
        var cookie = (await fixture.Context.CookiesAsync()).Single(c => c.Name == "rtt_session");
        Assert.True(cookie.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, cookie.SameSite);
        foreach (var origin in new[] { "http://evil.example", null })
        {
            using var post = new HttpRequestMessage(HttpMethod.Post, "/api/rollback");
            post.Headers.Add("Cookie", $"rtt_session={cookie.Value}");
            if (origin is not null)
            {
                post.Headers.Add("Origin", origin);
            }

            var refused = await http.SendAsync(post);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        // The one-time login token was spent by the login: using it again is refused.
        using var again = new HttpRequestMessage(HttpMethod.Post, "/api/session") { Content = new StringContent(new JsonObject { ["token"] = fixture.LoginToken }.ToJsonString(), Encoding.UTF8, "application/json") };
        again.Headers.Add("Origin", fixture.Base.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(again)).StatusCode);
    }

    [Fact]
    public async Task Rtt_panel_prints_a_one_time_login_and_a_read_only_session_cannot_apply()
    {
        var url = Cli("panel", "--read-only", "--ttl", "2m").Trim();
        Assert.StartsWith(new Uri(fixture.Base, "/login#token=rtt1.").ToString(), url, StringComparison.Ordinal);
        await using var context = await fixture.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(url);
        await page.Locator("body[data-ready]").WaitForAsync(new() { Timeout = 30_000 });
        Assert.Contains("read-only", await page.Locator("#who").InnerTextAsync(), StringComparison.Ordinal);
        await Show(page, "plans");
        Assert.True(await page.Locator("#apply").IsDisabledAsync());
        Assert.True(await page.Locator("#rollback").IsDisabledAsync());

        // Even sent by hand from the page's origin, the session's write is refused: its login token allowed no tx.
        var status = await page.EvaluateAsync<int>("async () => (await fetch('/api/rollback', { method: 'POST' })).status");
        Assert.Equal(403, status);

        // The same link again (a second browser) is refused: the login spent it.
        await using var second = await fixture.Browser.NewContextAsync();
        var again = await second.NewPageAsync();
        await again.GotoAsync(url);
        await again.Locator("#login-status.bad").WaitForAsync(new() { Timeout = 30_000 });
        Assert.Contains("refused", await again.Locator("#login-status").InnerTextAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plans_page_applies_the_proposed_plan_through_the_reconciler_and_shows_the_two_phase_commit()
    {
        var applied = await fixture.AppliedAsync();
        Assert.Equal("applied", applied.Outcome);
        Assert.Equal(new[] { "prepare", "commit", "verify" }, applied.Phases.ToArray());
        // The WAL entries the 2PC wrote, read by the page while the apply ran, in order.
        Assert.Equal(new[] { "prepare", "commit", "applied", "verified" }, applied.WalKinds.ToArray());

        var history = Json(Cli("history", "--json"));
        Assert.Equal(applied.PlanId, (string?)history["applied"]);
        Assert.Equal(applied.PlanId, (string?)Json(File.ReadAllText(Path.Combine(fixture.Workspace, ".rtt", "plans", "applied.json")))["plan_id"]);

        var page = fixture.Page;
        await Show(page, "plans");
        Assert.Equal(applied.PlanId, await page.Locator("#applied-id").InnerTextAsync());
        var tx = (JsonArray)history["transactions"]!;
        Assert.Equal(tx.Count, await page.Locator("#history tbody tr").CountAsync());
        Assert.Equal(0, await page.Locator("#diff-added tbody tr").CountAsync()); // the proposal is now the applied plan
        await fixture.Shot("plans");
    }

    [Fact]
    public async Task Routes_and_nodes_pages_show_what_the_cli_prints()
    {
        await fixture.AppliedAsync();
        var page = fixture.Page;
        var plan = Json(File.ReadAllText(Path.Combine(fixture.Workspace, ".rtt", "plans", "applied.json")));
        var lanes = (JsonArray)plan["lanes"]!;

        await Show(page, "routes");
        Assert.Equal(lanes.Count, await page.Locator("#route-graph path.lane").CountAsync());
        Assert.Equal(lanes.Count, await page.Locator("#routes-table tbody tr").CountAsync());
        var metrics = Json(Cli("metrics", "--json"));
        foreach (var lane in lanes)
        {
            var (from, to, kind) = ((string)lane!["route"]!["from"]!, (string)lane["route"]!["to"]!, (string)lane["kind"]!);
            var edge = page.Locator($"#route-graph path.lane[data-from=\"{from}\"][data-to=\"{to}\"]");
            Assert.Equal(kind, await edge.GetAttributeAsync("data-kind"));
            var cells = await page.Locator($"#routes-table tr[data-from=\"{from}\"][data-to=\"{to}\"] td").AllInnerTextsAsync();
            Assert.Equal(kind, cells[2]);
            var m = ((JsonArray)metrics["routes"]!).Single(r => (string?)r!["route"] == to && ((string?)r["from"] ?? from) == from)!;
            Assert.Equal((string)m["breaker"]!["state"]!, cells[8]);
        }

        await fixture.Shot("routes");

        var status = Json(Cli("status", "--json"));
        await Show(page, "nodes");
        var nodes = (JsonArray)status["nodes"]!;
        Assert.Equal(nodes.Count, await page.Locator("#nodes tbody tr").CountAsync());
        foreach (var n in nodes)
        {
            var cells = await page.Locator($"#nodes tr[data-node=\"{(string)n!["node_id"]!}\"] td").AllInnerTextsAsync();
            Assert.Equal((string)n["host"]!, cells[1]);
            Assert.Contains($"{lanes.Count}/0/0", cells[6], StringComparison.Ordinal); // the quickstart: every lane shm on node0
        }

        Assert.Equal(((JsonArray)status["members"]!).Count, await page.Locator("#members tbody tr").CountAsync());
        await fixture.Shot("nodes");

        // The Orleans Dashboard, linked from the Nodes page, opens with the same session.
        var dashboard = await page.Context.APIRequest.GetAsync(new Uri(fixture.Base, "/dashboard/").ToString());
        Assert.Equal(200, dashboard.Status);
        Assert.Equal("/dashboard/", await page.Locator("#dashboard-link").GetAttributeAsync("href"));

    }

    [Fact]
    public async Task Wal_page_verifies_an_inclusion_proof_in_the_browser_and_refuses_a_tampered_one()
    {
        await fixture.AppliedAsync();
        var page = fixture.Page;
        var root = Json(Cli("wal", "root", "--json"));
        await Show(page, "wal");
        Assert.Equal(((long)root["size"]!).ToString(CultureInfo.InvariantCulture), await page.Locator("#wal-root").GetAttributeAsync("data-size"));
        Assert.Equal((string)root["root"]!, await page.Locator("#wal-root").GetAttributeAsync("data-root"));
        Assert.Equal((long)root["size"]!, await page.Locator("#entries tbody tr").CountAsync());
        var heads = await page.Locator("#heads tbody tr").CountAsync();
        Assert.True(heads >= 2, $"{heads} signed head(s)"); // the apply wrote two
        Assert.Equal(heads, await page.Locator("#heads tbody tr[data-signature=\"ok\"]").CountAsync()); // Ed25519 checked by the page

        // Entry 1 (the commit decision) against the latest signed tree head.
        await page.Locator("button.prove[data-index=\"1\"]").ClickAsync();
        var verdict = page.Locator("#verdict[data-index=\"1\"]");
        await verdict.WaitForAsync();
        Assert.Equal("verified", await verdict.GetAttributeAsync("data-verdict"));
        var proof = Json(Cli("wal", "proof", "inclusion", "1"));
        var shown = await page.Locator("#proof-table td").AllInnerTextsAsync();
        Assert.Equal((string)proof["leaf_hash"]!, shown[0]); // computed by the page's own SHA-256 over the entry's bytes
        Assert.Equal((string)proof["root"]!, shown[1]);
        await fixture.Shot("wal-verified");

        await page.Locator("#tamper").ClickAsync();
        await page.WaitForFunctionAsync("() => document.getElementById('verdict').dataset.verdict === 'refused'");
        Assert.Contains("refused", await verdict.InnerTextAsync(), StringComparison.Ordinal);
        await fixture.Shot("wal-tampered");

        // A proof altered on its way from the silo (the page is not told) is refused by the page itself.
        await page.RouteAsync("**/api/wal/proof*", async route =>
        {
            var response = await route.FetchAsync();
            var body = Json(await response.TextAsync());
            var path = (JsonArray)body["path"]!;
            var first = (string)path[0]!;
            path[0] = (first[0] == '0' ? "1" : "0") + first[1..];
            await route.FulfillAsync(new() { Response = response, Body = body.ToJsonString() });
        });
        try
        {
            await page.Locator("button.prove[data-index=\"0\"]").ClickAsync();
            await page.WaitForFunctionAsync("() => document.getElementById('verdict').dataset.index === '0'");
            Assert.Equal("refused", await page.Locator("#verdict").GetAttributeAsync("data-verdict"));
        }
        finally
        {
            await page.UnrouteAllAsync();
        }

        // A signed head whose root was changed on the way is shown as a bad signature by the page's own Ed25519 check.
        await page.RouteAsync("**/api/wal/heads", async route =>
        {
            var response = await route.FetchAsync();
            var list = JsonNode.Parse(await response.TextAsync())!.AsArray();
            var r = (string)list[0]!["root"]!;
            list[0]!["root"] = (r[0] == '0' ? "1" : "0") + r[1..];
            await route.FulfillAsync(new() { Response = response, Body = list.ToJsonString() });
        });
        try
        {
            await page.ReloadAsync();
            await page.Locator("body[data-ready=\"wal\"]").WaitForAsync();
            Assert.Equal(1, await page.Locator("#heads tbody tr[data-signature=\"bad\"]").CountAsync());
        }
        finally
        {
            await page.UnrouteAllAsync();
        }
    }

    [Fact]
    public async Task Registry_page_shows_each_routed_mcp_tool_live_and_a_drift_as_it_happens()
    {
        await fixture.AppliedAsync();
        var page = fixture.Page;
        await Show(page, "registry");
        var verify = Json(Cli("verify", "--json"));
        Assert.Equal(((long)verify["objects"]!).ToString(CultureInfo.InvariantCulture), await page.Locator("#registry-verify").GetAttributeAsync("data-objects"));
        Assert.Equal((bool)verify["ok"]! ? "ok" : "bad", await page.Locator("#registry-verify").GetAttributeAsync("class"));
        var index = Json(File.ReadAllText(Path.Combine(fixture.Workspace, ".rtt", "registry", "index.json")));
        Assert.Equal(index.Count, await page.Locator("#registry tbody tr").CountAsync());
        foreach (var (key, hash) in index)
        {
            var shown = await page.Locator($"#registry tr[data-key=\"{key}\"] td").AllInnerTextsAsync();
            Assert.Equal((string)hash!, shown[2]);
            Assert.Equal("ok", shown[6]);
        }

        // The quickstart routes one MCP tool (rtt://mcp/sample/upper): its server runs and lists it with the pinned definition.
        var live = page.Locator("#registry-live tbody tr");
        Assert.Equal(1, await live.CountAsync());
        Assert.Equal("rtt://mcp/sample/upper", await live.First.GetAttributeAsync("data-symbol"));
        Assert.Equal("ok", await live.First.GetAttributeAsync("data-state"));
        var cells = await live.First.Locator("td").AllInnerTextsAsync();
        Assert.Equal(cells[3], cells[4]); // pinned = live
        Assert.Equal("ok", await page.Locator("tr.pinned[data-symbol=\"rtt://mcp/sample/upper\"] td.live").GetAttributeAsync("data-state"));
        Assert.Equal("unrouted", await page.Locator("tr.pinned[data-symbol=\"rtt://mcp/sample/echo\"] td.live").GetAttributeAsync("data-state"));
        await fixture.Shot("registry");

        // The server's list changes under the silo (drift is exercised for real in McpEndpointTests; here what the silo would
        // say is put in the answer): the page's refresh shows it without a reload, in the live table and the pinned tools.
        await page.RouteAsync("**/api/registry", async route =>
        {
            var response = await route.FetchAsync();
            var body = Json(await response.TextAsync());
            var tool = body["live"]![0]!;
            tool["state"] = "drifted";
            tool["live_pin"] = "sha256:" + new string('0', 64);
            tool["why"] = "RTT-MCP-003 tool \"upper\" of MCP server \"sample\" drifted from its pin";
            await route.FulfillAsync(new() { Response = response, Body = body.ToJsonString() });
        });
        try
        {
            await page.Locator("#registry-live tbody tr[data-state=\"drifted\"]").WaitForAsync(new() { Timeout = 10_000 });
            Assert.Equal("drifted", await page.Locator("tr.pinned[data-symbol=\"rtt://mcp/sample/upper\"] td.live").GetAttributeAsync("data-state"));
            Assert.Contains("RTT-MCP-003", await page.Locator("#registry-live").InnerTextAsync(), StringComparison.Ordinal);
        }
        finally
        {
            await page.UnrouteAllAsync();
        }
    }

    [Fact]
    public async Task Live_page_charts_each_request_of_the_flight_recorder_once()
    {
        await fixture.AppliedAsync();
        var page = fixture.Page;
        await Show(page, "live");
        var since = await page.Locator("#live-charts[data-since]").GetAttributeAsync("data-since");
        const string Upper = "rtt://core/api/upper";
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal($"v1:CALL {i}", Cli("call", Upper, "--args", $"call {i}").Trim());
        }

        // The host's own record of those requests, as `rtt tap` prints it: every frame of the route that ended after the page's start.
        var frames = Cli("tap", "--flight", "60s").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!)
            .Where(n => (string?)n["type"] == "frame" && (string?)n["route"] == Upper)
            .Where(n => string.CompareOrdinal(End(n), since) > 0).ToList();
        Assert.True(frames.Count >= 4, $"{frames.Count} frame(s) of {Upper} in the flight record");
        var id = Assert.Single(frames.Select(n => (long)n["route_id"]!).Distinct());
        var chart = page.Locator($"#live-charts [data-route-id=\"{id}\"]");
        await page.WaitForFunctionAsync($"() => {{ const c = document.querySelector('#live-charts [data-route-id=\"{id}\"]'); return c && +c.dataset.frames >= {frames.Count}; }}", null, new() { Timeout = 15_000 });
        await Task.Delay(2500); // two more ticks: nothing is counted twice
        Assert.Equal(frames.Count.ToString(CultureInfo.InvariantCulture), await chart.GetAttributeAsync("data-frames"));
        Assert.Equal("0", await chart.GetAttributeAsync("data-errors"));
        Assert.True(await chart.Locator("circle.max").CountAsync() >= 1);
        await fixture.Shot("live");

        static string End(JsonNode frame) => Rtt.Cli.Panel.FlightSummary.FormatTime(
            Rtt.Cli.Panel.FlightSummary.ParseTime((string)frame["ts"]!)!.Value.AddTicks((long)frame["latency_ns"]! / 100));
    }

    private static async Task Show(IPage page, string name)
    {
        await page.GotoAsync($"{page.Url.Split('#')[0]}#{name}");
        await page.Locator($"body[data-ready=\"{name}\"]").WaitForAsync(new() { Timeout = 30_000 });
        if (await page.Locator("#page-error").CountAsync() > 0)
        {
            Assert.Fail($"the {name} page failed: {await page.Locator("#page-error").InnerTextAsync()}");
        }
    }

    private static Task<HttpResponseMessage> Get(HttpClient http, string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new("Bearer", token);
        return http.SendAsync(request);
    }

    private string Token(params string[] args) => Cli(["token", "issue", .. args]).Trim();

    private string Cli(params string[] args)
    {
        var r = RttProcess.Run(fixture.Workspace, args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }

    private static JsonObject Json(string text) => JsonNode.Parse(text)!.AsObject();

    public sealed record ApplyFromPanel(string Outcome, string PlanId, IReadOnlyList<string> Phases, IReadOnlyList<string> WalKinds);

    /// <summary>One silo with the panel and the Dashboard, one browser, one logged-in page, shared by the tests above.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        public const string Chromium = "/usr/bin/chromium";
        private readonly SemaphoreSlim _applyGate = new(1, 1);
        private TempDir? _dir;
        private RttProcess? _silo;
        private IPlaywright? _playwright;
        private IBrowser? _browser;
        private ApplyFromPanel? _applied;

        public string Workspace { get; private set; } = "";
        public Uri Base { get; private set; } = null!;
        public string LoginToken { get; private set; } = "";
        public IBrowser Browser => _browser!;
        public IBrowserContext Context { get; private set; } = null!;
        public IPage Page { get; private set; } = null!;
        public string Screenshots { get; } = Path.Combine(AppContext.BaseDirectory, "panel-screenshots");

        public async Task InitializeAsync()
        {
            if (!File.Exists(Chromium))
            {
                throw new InvalidOperationException($"{Chromium} is missing: the panel's browser tests drive Debian's chromium (apt-get install -y chromium; .ci/run installs it)");
            }

            _dir = TempDir.Quickstart(out var ws, scan: true);
            Workspace = ws;
            var plan = RttProcess.Run(ws, "plan");
            Assert.True(plan.ExitCode == 0, plan.ToString());
            var port = RttProcess.FreePort();
            _silo = RttProcess.StartSilo(ws, RttProcess.FreePort(), RttProcess.FreePort(), null, TimeSpan.FromSeconds(90),
                "--panel", "--panel-port", port.ToString(CultureInfo.InvariantCulture), "--dashboard");
            var stdout = _silo.Stdout;
            Assert.Contains($"panel: http://127.0.0.1:{port}/", stdout, StringComparison.Ordinal);
            Assert.Contains($"dashboard: http://127.0.0.1:{port}/dashboard/", stdout, StringComparison.Ordinal);
            var login = stdout.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith("login", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            Base = new Uri($"http://127.0.0.1:{port}/");
            LoginToken = login[(login.IndexOf("#token=", StringComparison.Ordinal) + "#token=".Length)..];

            Directory.CreateDirectory(Screenshots);
            _playwright = await Playwright.CreateAsync();
            _browser = await _playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true });
            Context = await _browser.NewContextAsync(new() { ViewportSize = new() { Width = 1400, Height = 900 } });
            Context.SetDefaultTimeout(30_000);
            Page = await Context.NewPageAsync();
            await Page.GotoAsync(login);
            await Page.Locator("body[data-ready]").WaitForAsync(); // the login spent the token, set the cookie and went to "/"
            Assert.StartsWith(Base.ToString(), Page.Url, StringComparison.Ordinal);
            Assert.DoesNotContain("login", Page.Url, StringComparison.Ordinal);
        }

        /// <summary>Applies the proposed plan once by clicking Apply on the Plans page; later callers get the same result.</summary>
        public async Task<ApplyFromPanel> AppliedAsync()
        {
            await _applyGate.WaitAsync();
            try
            {
                if (_applied is not null)
                {
                    return _applied;
                }

                await Show(Page, "plans");
                Assert.True(await Page.Locator("#diff-added tbody tr").CountAsync() > 0, await Page.Locator("#main").InnerTextAsync()); // the quickstart's routes, all new
                await Shot("plans-before-apply");
                await Page.Locator("#apply").ClickAsync();
                await Page.Locator("#outcome[data-outcome]").WaitForAsync(new() { Timeout = 60_000 });
                var outcome = (await Page.Locator("#outcome").GetAttributeAsync("data-outcome"))!;
                var text = await Page.Locator("#outcome").InnerTextAsync();
                var phases = await Page.Locator("#phases li").EvaluateAllAsync<string[]>("items => items.map(i => i.dataset.phase)");
                var kinds = await Page.Locator("#wal-live li").EvaluateAllAsync<string[]>("items => items.map(i => i.dataset.kind)");
                await Shot("plans-applied");
                var planId = text.Split(' ')[2];
                _applied = new ApplyFromPanel(outcome, planId, phases, kinds);
                return _applied;
            }
            finally
            {
                _applyGate.Release();
            }
        }

        public Task Shot(string name) => Page.ScreenshotAsync(new() { Path = Path.Combine(Screenshots, name + ".png"), FullPage = true });

        public async Task DisposeAsync()
        {
            if (_browser is not null)
            {
                await _browser.CloseAsync();
            }

            _playwright?.Dispose();
            if (_silo is not null)
            {
                _silo.Terminate();
                if (!_silo.WaitForExit(TimeSpan.FromSeconds(30)))
                {
                    _silo.Kill();
                }

                _silo.Dispose();
            }

            _dir?.Dispose();
        }
    }
}
