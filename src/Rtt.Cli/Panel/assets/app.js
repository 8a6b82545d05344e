// The RTT panel's pages (docs/panel.md). Plain JavaScript, no build step, nothing from another origin. Every value shown
// comes from the panel's JSON endpoints, which print what the CLI's --json prints. Text from the workspace is only ever
// inserted as text (never as HTML).
"use strict";
(function () {
  const main = document.getElementById("main");
  let timer = null;
  let me = { apply: false, rollback: false, dashboard: false };

  function el(tag, attrs, ...kids) {
    const e = tag.startsWith("svg:") ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  const put = (target, ...kids) => target.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined));
  const card = (title, ...kids) => el("section", { class: "card" }, el("h2", { text: title }), ...kids);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const msOf = (ns) => (ns / 1e6).toFixed(3);
  const short = (id) => (id ? (id.length > 23 ? id.slice(0, 23) + "…" : id) : "none");

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (response.status === 401) {
      location.href = "/login";
      throw new Error("not logged in");
    }
    return response;
  }
  async function json(path) {
    const r = await api(path);
    if (!r.ok) {
      let reason = r.status + "";
      try { reason = (await r.json()).error || reason; } catch (e) { /* keep the status */ }
      throw new Error(reason);
    }
    return r.json();
  }
  function table(id, headers, rows) {
    return el("table", { id: id }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))), el("tbody", {}, rows));
  }
  function row(cells, attrs) {
    return el("tr", attrs || {}, cells.map((c) => (c instanceof Node && (c.tagName === "TD" || c.tagName === "TH") ? c : el("td", {}, c))));
  }
  const num = (v) => el("td", { class: "num" }, v);

  // ---------------------------------------------------------------- Routes
  function findMetric(metrics, from, to) {
    if (!metrics) return null;
    return (metrics.routes || []).find((m) => m.route === to && (!m.from || m.from === from)) || null;
  }

  async function routes() {
    const [plans, status] = await Promise.all([json("/api/plans"), json("/api/status")]);
    let metrics = null, metricsError = null;
    try { metrics = await json("/api/metrics"); } catch (e) { metricsError = e.message; }
    const plan = plans.applied;
    if (!plan) {
      put(main, card("Routes", el("p", { id: "no-plan", text: "No plan is applied yet: compute one with `rtt plan`, then apply it on the Plans page." })));
      return;
    }
    const placement = plan.placement || {};
    const lanes = plan.lanes || [];
    const symbols = new Set(Object.keys(placement));
    for (const l of lanes) { symbols.add(l.route.from); symbols.add(l.route.to); }
    const groups = new Map();
    for (const s of Array.from(symbols).sort()) {
      const node = placement[s] || "outside the plan";
      if (!groups.has(node)) groups.set(node, []);
      groups.get(node).push(s);
    }
    const facts = new Map((status.nodes || []).map((n) => [n.node_id, n]));
    const colWidth = 320, rowHeight = 46, top = 56;
    const pos = new Map();
    let col = 0, tallest = 0;
    const svg = el("svg:svg", { id: "route-graph", role: "img" });
    for (const [node, list] of groups) {
      const x = 20 + col * colWidth;
      const f = facts.get(node);
      const label = f ? `${node} · host ${f.host} · NUMA ${f.numa_nodes.map((n) => n.id).join(",")}` : node;
      svg.append(el("svg:rect", { class: "group", x: x, y: 8, width: colWidth - 40, height: top + list.length * rowHeight, rx: 6, "data-node": node }));
      svg.append(el("svg:text", { x: x + 10, y: 28, text: label }));
      list.forEach((s, i) => {
        const y = top + i * rowHeight;
        pos.set(s, { x: x + 20, y: y, w: colWidth - 80 });
        svg.append(el("svg:rect", { class: "symbol", x: x + 20, y: y, width: colWidth - 80, height: 30, rx: 4, "data-symbol": s }));
        svg.append(el("svg:text", { x: x + 28, y: y + 19, text: s }));
      });
      tallest = Math.max(tallest, top + list.length * rowHeight + 20);
      col++;
    }
    for (const l of lanes) {
      const a = pos.get(l.route.from), b = pos.get(l.route.to);
      if (!a || !b) continue;
      const x1 = a.x + a.w, y1 = a.y + 15, x2 = b.x + (a.x === b.x ? b.w : 0), y2 = b.y + 15; // same node: out of the right side and back
      const bend = a.x === b.x ? 30 + Math.abs(y2 - y1) / 4 : 0;
      const d = `M ${x1} ${y1} C ${x1 + 40 + bend} ${y1}, ${x2 + (a.x === b.x ? 40 + bend : -40)} ${y2}, ${x2} ${y2}`;
      svg.append(el("svg:path", { class: `lane lane-${l.kind}`, d: d, fill: "none", "stroke-width": 2.5, "data-from": l.route.from, "data-to": l.route.to, "data-kind": l.kind },
        el("svg:title", { text: `${l.route.from} → ${l.route.to} over ${l.kind}` })));
    }
    svg.setAttribute("width", Math.max(col, 1) * colWidth + 140);
    svg.setAttribute("height", tallest);
    const rows = lanes.map((l) => {
      const m = findMetric(metrics, l.route.from, l.route.to);
      const w = m ? m.window : null;
      return row([
        l.route.from, l.route.to, el("td", { class: `kind-${l.kind}`, text: l.kind }), placement[l.route.to] || "",
        num(w ? msOf(w.p50_ns) : "–"), num(w ? msOf(w.p99_ns) : "–"), num(w ? w.rps : "–"), num(m ? m.errors : "–"),
        el("td", { class: m && m.breaker.state !== "closed" ? "bad" : "", text: m ? m.breaker.state : "–" }),
      ], { "data-from": l.route.from, "data-to": l.route.to });
    });
    put(main, 
      card(`Routes of plan ${short(plan.plan_id)}`,
        el("p", { class: "legend" }, el("span", { class: "kind-shm", text: "━ shm" }), el("span", { class: "kind-uds", text: "━ uds" }), el("span", { class: "kind-tcp", text: "━ tcp" })),
        el("div", { style: null }, svg)),
      card("Per-route traffic (last window)",
        metricsError ? el("p", { class: "muted", text: `metrics unavailable: ${metricsError}` }) : null,
        table("routes-table", ["from", "to", "lane", "node", "p50 ms", "p99 ms", "rps", "errors", "breaker"], rows)));
  }

  // ---------------------------------------------------------------- Plans
  function diffTables(diff) {
    const section = (id, title, headers, list, cells) => [el("h3", { text: `${title} (${list.length})` }), table(id, headers, list.map((r) => row(cells(r))))];
    return [
      section("diff-added", "Routes added", ["from", "to", "lane"], diff.added, (r) => [r.from, r.to, r.lane]),
      section("diff-removed", "Routes removed", ["from", "to", "lane"], diff.removed, (r) => [r.from, r.to, r.lane]),
      section("diff-relaned", "Lane changed", ["from", "to", "lane", "was"], diff.relaned, (r) => [r.from, r.to, r.lane, r.was]),
      section("diff-moved", "Symbols moved", ["symbol", "from node", "to node", "reason"], diff.moved, (r) => [r.symbol, r.from, r.to, r.reason || ""]),
      section("diff-rejected", "Rejected", ["from", "to", "constraint", "values"], diff.rejected, (r) => [r.from, r.to, r.constraint, el("code", { text: JSON.stringify(r.values) })]),
    ];
  }

  async function planSummary() {
    const [plans, history] = await Promise.all([json("/api/plans"), json("/api/history")]);
    const d = plans.diff;
    const facts = el("table", { id: "plan-facts" },
      row([el("th", { text: "proposed" }), el("td", { class: "mono", id: "proposed-id", text: d.proposed || "none" })]),
      row([el("th", { text: "base" }), el("td", { class: "mono", id: "proposed-base", text: d.base || "none" })]),
      row([el("th", { text: "applied" }), el("td", { class: "mono", id: "applied-id", text: d.applied || "none" })]),
      row([el("th", { text: "signed by" }), el("td", { class: "mono", text: d.signed_by || "–" })]),
      row([el("th", { text: "signature" }), el("td", { class: "mono", text: plans.proposed && plans.proposed.sign ? plans.proposed.sign.sig : "–" })]));
    const notes = [];
    if (d.proposed && !d.base_is_applied && !d.same_as_applied) notes.push(el("p", { class: "bad", text: "The proposal was computed against another plan than the one applied: recompute it with `rtt plan`." }));
    if (d.same_as_applied) notes.push(el("p", { class: "muted", text: "The proposed plan is the applied one." }));
    const hist = (history.transactions || []).slice().reverse().map((t) => row([num(t.tx), t.transition, el("td", { class: "mono", text: short(t.plan_id) }), t.decision || "in doubt",
      num(t.applied_index ?? "–"), num(t.verified_index ?? (t.verify_failed_index !== null && t.verify_failed_index !== undefined ? "failed@" + t.verify_failed_index : "–")), t.reason || ""]));
    put(document.getElementById("plan-summary"), 
      el("h2", { text: "Proposed plan against the applied one" }), facts, notes, diffTables(d), el("p", { class: "muted", text: `${d.unchanged} route(s) unchanged` }));
    put(document.getElementById("plan-history"), 
      el("h2", { text: `History (applied: ${short(history.applied)}; WAL ${history.wal.size} entries)` }),
      table("history", ["tx", "transition", "plan", "decision", "applied", "verified", "reason"], hist));
    document.getElementById("apply").disabled = !me.apply || !d.proposed;
    document.getElementById("rollback").disabled = !me.rollback;
  }

  async function manage(kind) {
    const live = document.getElementById("wal-live");
    const phases = document.getElementById("phases");
    const outcome = document.getElementById("outcome");
    put(live); put(phases); outcome.textContent = `${kind}: running…`; outcome.removeAttribute("data-outcome");
    document.getElementById("apply").disabled = true; document.getElementById("rollback").disabled = true;
    let seen = (await json("/api/wal/root")).size;
    let done = false;
    async function drain() {
      const page = await json(`/api/wal/entries?from=${seen}&count=100`);
      for (const x of page.entries) {
        const e = x.entry;
        const detail = e.kind === "prepare" ? `${e.transition} ${short(e.plan_id)}; participants ${(e.participants || []).join(", ")}`
          : e.kind === "commit" || e.kind === "abort" ? `tx ${e.tx}; votes ${(e.votes || []).map((v) => `${v.participant} ${v.yes ? "yes" : "no"}`).join(", ")}${e.reason ? "; " + e.reason : ""}`
          : `tx ${e.tx}${e.reason ? "; " + e.reason : ""}`;
        live.append(el("li", { "data-kind": e.kind }, el("strong", { text: e.kind }), ` #${x.index} at ${e.at}: ${detail}`));
        seen = x.index + 1;
      }
    }
    async function follow() {
      // The live list is progress only: a failed read is shown and retried, and never keeps the outcome from showing.
      try { await drain(); } catch (e) { live.append(el("li", { class: "bad", "data-kind": "read-error" }, `reading the WAL failed: ${e.message}; retrying`)); }
    }
    const poll = (async () => { while (!done) { await follow(); await sleep(100); } })();
    let response, body;
    try {
      response = await api(`/api/${kind}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      body = await response.json();
    } catch (e) {
      response = { ok: false };
      body = { error: `no answer from the silo (${e.message})` };
    }
    done = true;
    await poll;
    await follow();
    if (!response.ok) {
      outcome.textContent = `refused: ${body.error}`;
      outcome.className = "bad";
      outcome.setAttribute("data-outcome", "refused");
    } else {
      for (const p of body.phases) phases.append(el("li", { "data-phase": p.phase }, `${p.phase.padEnd(8)} ${p.ms.toFixed(2).padStart(9)} ms  ${p.detail}`));
      outcome.textContent = `${body.outcome}: plan ${body.plan_id || "none"} (tx ${body.tx}); WAL ${body.wal.size} entries, root ${body.wal.root}${body.reason ? "; reason: " + body.reason : ""}`;
      outcome.className = body.outcome === "applied" || body.outcome === "unchanged" || (kind === "rollback" && body.outcome === "rolled-back") ? "ok" : "bad";
      outcome.setAttribute("data-outcome", body.outcome);
    }
    await planSummary();
  }

  async function plans() {
    put(main, 
      el("section", { class: "card", id: "plan-summary" }, "loading…"),
      card("Apply through the reconciler",
        el("p", {}, el("button", { id: "apply", class: "primary", disabled: true, onclick: () => manage("apply") }, "Apply the proposed plan"), " ",
          el("button", { id: "rollback", disabled: true, onclick: () => manage("rollback") }, "Roll back")),
        el("p", { class: "muted", text: "WAL entries as the two-phase commit writes them:" }), el("ol", { id: "wal-live", class: "phases" }),
        el("p", { class: "muted", text: "Phases (from the reconciler's report):" }), el("ol", { id: "phases", class: "phases" }),
        el("p", { id: "outcome", role: "status" })),
      el("section", { class: "card", id: "plan-history" }));
    await planSummary();
  }

  // ---------------------------------------------------------------- WAL
  async function wal() {
    const [root, heads, page, keys] = await Promise.all([json("/api/wal/root"), json("/api/wal/heads"), json("/api/wal/entries?count=200"), json("/api/wal/keys")]);
    const checks = await Promise.all(heads.map((h) => RttMerkle.verifyHead(h, keys)));
    const leaves = new Map(page.entries.map((x) => [x.index, x.leaf]));
    const verdict = el("div", { id: "verdict", class: "verdict" }, "Pick an entry to check its inclusion proof here, in this browser.");
    const proofCard = card("Inclusion proof (RFC 6962), checked in this browser with WebCrypto SHA-256", verdict, el("div", { id: "proof-detail" }));

    async function prove(index, tamper) {
      const head = heads.filter((h) => h.size > index).slice(-1)[0];
      const size = head ? head.size : root.size;
      const expected = head ? head.root : root.root;
      const proof = await json(`/api/wal/proof?index=${index}&size=${size}`);
      let leafB64 = leaves.get(index);
      if (!leafB64) leafB64 = (await json(`/api/wal/entries?from=${index}&count=1`)).entries[0].leaf;
      let leaf = RttMerkle.fromBase64(leafB64);
      let path = proof.path.slice();
      if (tamper) {
        if (path.length > 0) {
          const b = RttMerkle.fromHex(path[0]); b[0] ^= 1; path[0] = RttMerkle.toHex(b);
        } else {
          leaf = leaf.slice(); leaf[0] ^= 1;
        }
      }
      // The root compared with is the signed tree head's (from /api/wal/heads), never the proof's own "root".
      const result = await RttMerkle.verifyInclusion(leaf, index, size, path, expected);
      verdict.className = "verdict " + (result.ok ? "verified" : "refused");
      verdict.setAttribute("data-verdict", result.ok ? "verified" : "refused");
      verdict.setAttribute("data-index", index);
      verdict.textContent = result.ok
        ? `✓ verified in this browser: entry ${index} is in the tree of ${size} entries whose ${head ? "signed" : "current (unsigned)"} root is ${expected} (${path.length} hash(es) on the path)`
        : `✗ refused: ${tamper ? "the tampered " : "the "}proof for entry ${index} does not lead to the ${head ? "signed" : "current"} root ${expected}`;
      put(document.getElementById("proof-detail"), el("table", { id: "proof-table" },
        row([el("th", { text: "leaf hash (computed)" }), el("td", { class: "mono", text: result.leafHash })]),
        row([el("th", { text: "root reached" }), el("td", { class: "mono", id: "root-reached", text: result.computedRoot || "(path does not fit the tree size)" })]),
        row([el("th", { text: "root expected" }), el("td", { class: "mono", text: expected })]),
        row([el("th", { text: "path" }), el("td", { class: "mono" }, path.map((p) => el("div", { text: p })))])),
        el("p", {}, el("button", { id: "tamper", onclick: () => prove(index, true) }, "Tamper with this proof and check again")));
    }

    const entryRows = page.entries.slice().reverse().map((x) => {
      const e = x.entry;
      return row([num(x.index), e.kind, el("td", { class: "mono", text: e.plan_id ? short(e.plan_id) : "" }), num(e.tx ?? ""), e.at || "",
        el("td", {}, el("button", { class: "prove", "data-index": x.index, onclick: () => prove(x.index, false) }, "prove"))], { "data-index": x.index });
    });
    put(main, 
      card("Merkle write-ahead log", el("p", { id: "wal-root", "data-size": root.size, "data-root": root.root }, `${root.size} entries, root `, el("code", { text: root.root }))),
      proofCard,
      card("Signed tree heads (Ed25519 signatures checked in this browser)", table("heads", ["size", "root", "timestamp", "key", "signature"], heads.map((h, i) =>
        row([num(h.size), el("td", { class: "mono", text: h.root }), h.timestamp, el("td", { class: "mono", text: h.sign ? h.sign.key_id : "" }),
          el("td", { class: checks[i].ok ? "ok" : "bad", text: (checks[i].ok ? "✓ " : checks[i].ok === false ? "✗ " : "") + checks[i].why })],
          { "data-size": h.size, "data-signature": checks[i].ok ? "ok" : checks[i].ok === false ? "bad" : "unchecked" })).reverse())),
      card(`Entries (last ${page.entries.length})`, table("entries", ["index", "kind", "plan", "tx", "at", ""], entryRows)));
  }

  // ---------------------------------------------------------------- Registry
  const stateClass = (state) => (state === "ok" ? "ok" : state === "unpinned" || state === "unrouted" ? "muted" : "bad");
  function liveCell(live, symbol) {
    if (!live) return el("td", { class: "muted", text: "no lane host" });
    const t = live.get(symbol);
    const state = t ? t.state : "unrouted";
    return el("td", { class: stateClass(state) + " live", "data-state": state, text: t ? state : "not routed" });
  }
  function liveTable(r) {
    return r.live
      ? table("registry-live", ["symbol", "server", "tool", "pinned", "live", "state", "why"], r.live.map((t) => row([el("td", { class: "mono", text: t.symbol }), t.server, t.tool,
          el("td", { class: "mono", text: t.pin || "none" }), el("td", { class: "mono", text: t.live_pin || "not listed" }),
          el("td", { class: stateClass(t.state), text: t.state }), t.why || ""], { "data-symbol": t.symbol, "data-state": t.state })))
      : el("p", { id: "registry-live-none", class: "muted", text: "No lane host runs in this silo's process: live drift cannot be read here." });
  }
  async function registry() {
    const r = await json("/api/registry");
    const v = r.verify;
    const live = r.live ? new Map(r.live.map((t) => [t.symbol, t])) : null;
    const rows = r.entries.map((e) => row([el("td", { class: "mono", text: e.key }), e.kind, el("td", { class: "mono", text: e.hash }),
      el("td", { class: "mono", text: e.signed_by || "unsigned" }), e.server ? `${e.server.name} ${e.server.version}` : "", num(e.pins.length),
      el("td", { class: e.fault ? "bad" : "ok", text: e.fault || "ok" })], { "data-key": e.key }));
    const pins = r.entries.filter((e) => e.pins.length > 0).map((e) => card(`Pinned tools of ${e.key}`,
      table(null, ["tool", "symbol", "pin", "object", "live"], e.pins.map((p) => row([p.name, el("td", { class: "mono", text: p.symbol }), el("td", { class: "mono", text: p.pin }), el("td", { class: "mono", text: p.object }), liveCell(live, p.symbol)], { class: "pinned", "data-symbol": p.symbol })))));
    put(main,
      card("Registry", el("p", { id: "registry-verify", "data-ok": v.ok, "data-objects": v.objects, class: v.ok ? "ok" : "bad" },
        v.ok ? `✓ ${v.objects} object(s): every hash, signature, the index and the pack verify (rtt verify)` : `✗ ${v.faults.length} fault(s) in ${v.objects} object(s)`),
        v.faults.length ? el("ul", { id: "registry-faults" }, v.faults.map((f) => el("li", { class: "bad", text: f }))) : null,
        el("p", { class: "muted", text: "An MCP server's tools are pinned at ingest; `rtt mcp ingest` again refuses a changed tool list (drift, RTT-MCP-003) unless --accept-drift." })),
      card("Routed MCP tools, live (refreshed every 2 s)", el("div", { id: "registry-live-wrap" }, liveTable(r)),
        el("p", { class: "muted", text: "Each routed tool's pin against the definition its server lists now (re-read on tools/list_changed and on every reconnect): a drifted or removed tool is refused with RTT-MCP-003 until it is re-ingested and re-planned." })),
      card("Objects in the index", table("registry", ["ID@version", "kind", "hash", "signed by", "server", "pins", "status"], rows)),
      pins);
    // Only the live parts are refreshed (the rest is the registry on disk, unchanged while the page is open).
    timer = setInterval(async () => {
      let next;
      try { next = await json("/api/registry"); } catch (e) { return; /* the next tick tries again */ }
      const wrap = document.getElementById("registry-live-wrap");
      if (!wrap) return;
      put(wrap, liveTable(next));
      const nextLive = next.live ? new Map(next.live.map((t) => [t.symbol, t])) : null;
      for (const tr of document.querySelectorAll("tr.pinned")) tr.lastChild.replaceWith(liveCell(nextLive, tr.dataset.symbol));
    }, 2000);
  }

  // ---------------------------------------------------------------- Nodes
  async function nodes() {
    const [status, plans] = await Promise.all([json("/api/status"), json("/api/plans")]);
    const plan = plans.applied || { lanes: [], placement: {} };
    const perNode = new Map();
    for (const l of plan.lanes || []) {
      const node = (plan.placement || {})[l.route.to] || "?";
      const c = perNode.get(node) || { shm: 0, uds: 0, tcp: 0 };
      c[l.kind] = (c[l.kind] || 0) + 1;
      perNode.set(node, c);
    }
    put(main, 
      card("Cluster members", table("members", ["name", "address", "status", "host", "gateway", "started"], status.members.map((m) =>
        row([m.name, el("td", { class: "mono", text: m.address }), m.status, m.host, num(m.gateway_port), m.started])))),
      card("Nodes", table("nodes", ["node", "host", "cpu", "cores", "memory", "NUMA nodes", "lanes (shm/uds/tcp)", "registrations"], status.nodes.map((n) => {
        const c = perNode.get(n.node_id) || { shm: 0, uds: 0, tcp: 0 };
        return row([n.node_id, n.host, n.cpu_model, num(n.logical_cores), num((n.memory_bytes / 2 ** 30).toFixed(1) + " GiB"),
          n.numa_nodes.map((x) => `${x.id}: cpus ${x.cpus}`).join("; "), `${c.shm}/${c.uds}/${c.tcp}`, num(n.registrations)], { "data-node": n.node_id });
      }))),
      card("Orleans Dashboard", me.dashboard
        ? el("p", {}, el("a", { id: "dashboard-link", href: "/dashboard/" }, "Open the Orleans Dashboard"), " (grains, activations, calls per method, silo counters)")
        : el("p", { class: "muted", text: "Not enabled on this silo: start it with `rtt up --panel --dashboard` (Dashboard:Enabled)." })));
  }

  // ---------------------------------------------------------------- Live
  // From the flight recorder: every second the requests that ended since the last tick (/api/flight?since=), per route id:
  // how many, p50/p99/max latency of exactly those requests. Each request is counted once (FlightSummary).
  const series = new Map();
  let flightSince = null, flightFirst = null;
  async function liveTick() {
    let f;
    try { f = await json("/api/flight" + (flightSince ? "?since=" + encodeURIComponent(flightSince) : "")); }
    catch (e) { document.getElementById("live-status").textContent = "flight recorder unavailable: " + e.message; return; }
    const tick = Date.now() / 1000;
    if (!flightFirst) { flightFirst = f.since; document.getElementById("live-charts").dataset.since = f.since; }
    flightSince = f.until || f.since;
    const seen = new Set();
    for (const r of f.routes) {
      seen.add(r.route_id);
      const s = series.get(r.route_id) || { route: r.route, endpoint: r.endpoint, frames: 0, errors: 0, points: [] };
      s.frames += r.frames; s.errors += r.errors;
      s.points.push({ t: tick, frames: r.frames, p50: r.p50_ns / 1e6, p99: r.p99_ns / 1e6, max: r.max_ns / 1e6 });
      series.set(r.route_id, s);
    }
    for (const [id, s] of series) {
      if (!seen.has(id)) s.points.push({ t: tick, frames: 0 });
      while (s.points.length > 120) s.points.shift();
    }
    document.getElementById("live-status").textContent = `flight record up to ${flightSince || "now"} (${f.recorded} record(s) written, ring of ${f.capacity}); ${series.size} route(s) with traffic since ${flightFirst}; refreshed every second`;
    const charts = Array.from(series.entries()).sort((a, b) => a[0] - b[0]).map(([id, s], i) => {
      const w = 560, h = 140, pts = s.points, busy = pts.filter((p) => p.frames > 0);
      const max = Math.max(0.001, ...busy.map((p) => p.p99));
      const t0 = pts[0].t, span = Math.max(1, pts[pts.length - 1].t - t0);
      const x = (p) => (10 + (p.t - t0) / span * (w - 20)).toFixed(1), y = (v) => (h - 10 - v / max * (h - 30)).toFixed(1);
      const line = (f) => busy.map((p) => `${x(p)},${y(f(p))}`).join(" ");
      const last = busy[busy.length - 1];
      return el("div", { class: "card", "data-route": s.route, "data-route-id": id, "data-frames": s.frames, "data-errors": s.errors },
        el("h3", { text: `${s.route} (${s.endpoint}, route ${id})` }),
        el("p", { class: "muted", text: `${s.frames} request(s), ${s.errors} error(s) since ${flightFirst}` + (last ? ` · last busy second: ${last.frames} request(s), p50 ${last.p50.toFixed(3)} ms, p99 ${last.p99.toFixed(3)} ms, max ${last.max.toFixed(3)} ms` : "") }),
        el("svg:svg", { width: w, height: h, id: `live-chart-${i}`, class: "chart" },
          el("svg:text", { x: 10, y: 14, text: `max p99 ${max.toFixed(3)} ms` }),
          el("svg:polyline", { points: line((p) => p.p50), fill: "none", stroke: "#1565c0", "stroke-width": 2, class: "p50" }),
          el("svg:polyline", { points: line((p) => p.p99), fill: "none", stroke: "#b3261e", "stroke-width": 2, class: "p99" }),
          busy.map((p) => el("svg:circle", { cx: x(p), cy: y(Math.min(p.max, max)), r: 2, fill: "#555", class: "max" }))));
    });
    put(document.getElementById("live-charts"), ...charts);
  }
  async function live() {
    put(main, card("Live latency per route from the flight recorder (per second: p50 blue, p99 red, max grey)", el("p", { id: "live-status", class: "muted" }, "…")), el("div", { id: "live-charts" }));
    series.clear(); flightSince = null; flightFirst = null;
    await liveTick();
    timer = setInterval(liveTick, 1000);
  }

  // ---------------------------------------------------------------- navigation
  const pages = { routes: routes, plans: plans, wal: wal, registry: registry, nodes: nodes, live: live };
  async function show() {
    if (timer) { clearInterval(timer); timer = null; }
    const name = (location.hash || "#routes").slice(1);
    const page = pages[name] || routes;
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
    document.body.setAttribute("data-page", name);
    document.body.removeAttribute("data-ready");
    try {
      await page();
    } catch (e) {
      put(main, card("Error", el("p", { class: "bad", id: "page-error", text: e.message })));
    }
    document.body.setAttribute("data-ready", name);
  }
  window.addEventListener("hashchange", show);
  (async function () {
    me = await json("/api/me");
    document.getElementById("who").textContent = `node ${me.node} · ${me.kind}${me.apply ? " · may apply" : " · read-only"}`;
    await show();
  })();
})();
