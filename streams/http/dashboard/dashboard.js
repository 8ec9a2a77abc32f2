// routeq live dashboard: reads /v1/overview and follows /v1/stream (Server-Sent
// Events over fetch, so the token goes in a header, never in a URL). No
// libraries: the charts are inline SVG drawn here.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const state = { token: null, seen: 0, lastId: null, refreshing: false, again: false,
                tenants: new Map() };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function pct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + "%"; }

// ------------------------------------------------------------------ token

function takeToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("routeq-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);  // keep it out of sight
  }
  return sessionStorage.getItem("routeq-token");
}

function askToken(message) {
  $("login").hidden = false;
  if (message) showError(message);
  $("login").onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("routeq-token", $("token").value.trim());
    location.reload();
  };
}

function showError(text) { $("error").hidden = !text; $("error").textContent = text || ""; }

// no token: a server run without --tokens answers; one with tokens says 401
function headers() { return state.token ? { "Authorization": "Bearer " + state.token } : {}; }

// --------------------------------------------------------------- overview

async function refresh() {
  if (state.refreshing) { state.again = true; return; }
  state.refreshing = true;
  try {
    const r = await fetch("/v1/overview", { headers: headers(), cache: "no-store" });
    if (r.status === 401 || r.status === 403) {
      const body = await r.json().catch(() => ({}));
      askToken((body.error || "not allowed") + " (the dashboard needs the admin token, or a shop's token for its own shop)");
      return false;
    }
    const data = await r.json();
    showError("");
    $("offset").textContent = data.offset;
    // the feed starts with the decisions of the last inputs, not empty
    if (state.startFrom === undefined) state.startFrom = Math.max(0, data.offset - 50);
    render(data.tenants);
    return true;
  } catch (e) {
    showError("cannot reach routeq: " + e);
    return false;
  } finally {
    state.refreshing = false;
    if (state.again) { state.again = false; setTimeout(refresh, 250); }
  }
}

let timer = null;
function soon() {  // at most a few refreshes a second, however fast decisions come
  if (timer === null) timer = setTimeout(() => { timer = null; refresh(); }, 300);
}

function render(tenants) {
  const main = $("tenants");
  const keep = new Set();
  for (const t of tenants) {
    keep.add(t.tenant);
    let card = state.tenants.get(t.tenant);
    if (!card) {
      card = el("section", { class: "tenant", "data-tenant": t.tenant });
      state.tenants.set(t.tenant, card);
      main.append(card);
    }
    card.replaceChildren(...tenantView(t));
  }
  for (const [name, card] of state.tenants) {
    if (!keep.has(name)) { card.remove(); state.tenants.delete(name); }
  }
}

function kpi(value, label, cls) {
  return el("div", { class: "kpi " + (cls || "") }, el("div", { class: "v" }, value),
            el("div", { class: "l" }, label));
}

function tenantView(t) {
  const online = t.agents.filter((a) => a.status === "online").length;
  const top = el("div", { class: "top" }, el("span", { class: "name" }, t.tenant),
                 el("span", { class: "hint" }, "event time " + clock(t.now)));
  const q = kpi(t.queue, "waiting");
  q.querySelector(".v").setAttribute("data-queue", String(t.queue));
  const kpis = el("div", { class: "kpis" }, q, kpi(online + "/" + t.agents.length, "agents online"),
                  kpi(pct(t.occupancy), "occupancy"), kpi(pct(t.service_level), "answered ≤ 20 s"),
                  kpi(pct(t.abandonment), "abandoned"));
  const out = [top, kpis];
  out.push(el("h3", {}, "waiting chats by page"), pageBars(t.waiting_by_page));
  out.push(el("h3", {}, "agents and load"), agentRows(t.agents));
  out.push(el("h3", {}, "last hour (per minute of event time)"),
           el("div", { class: "charts" },
              lineChart(t.series, "service_level", "service level", "#1f9d55"),
              lineChart(t.series, "abandonment", "abandonment", "#c53030")));
  return out;
}

function clock(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function bar(frac, color) {
  const s = svg("svg", { width: "100%", height: "10", viewBox: "0 0 100 10",
                          preserveAspectRatio: "none" });
  s.append(svg("rect", { x: 0, y: 0, width: 100, height: 10, fill: "#edf1f5" }));
  s.append(svg("rect", { x: 0, y: 0, width: Math.max(0, Math.min(1, frac)) * 100, height: 10,
                         fill: color }));
  return s;
}

function pageBars(byPage) {
  const box = el("div", { class: "bars" });
  const entries = Object.entries(byPage);
  if (!entries.length) { box.append(el("div", { class: "hint" }, "nobody waiting")); return box; }
  const max = Math.max(...entries.map(([, n]) => n));
  for (const [page, n] of entries.sort((a, b) => b[1] - a[1])) {
    box.append(el("div", { class: "row", "data-page": page }, page, bar(n / max, "#2b6cb0"),
                  el("span", {}, n)));
  }
  return box;
}

function agentRows(agents) {
  const box = el("div", { class: "agents" });
  if (!agents.length) { box.append(el("div", { class: "hint" }, "no agent yet")); return box; }
  for (const a of agents) {
    const frac = a.capacity ? a.load / a.capacity : 0;
    box.append(el("div", { class: "row", "data-agent": a.agent },
                  el("span", { class: "dot " + a.status, title: a.status }), a.agent,
                  bar(frac, frac >= 1 ? "#d97706" : "#1f9d55"),
                  el("span", {}, a.load + "/" + a.capacity)));
  }
  return box;
}

function lineChart(series, key, title, color) {
  const W = 180, H = 70, P = 14;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img",
                         "aria-label": title, "data-chart": key });
  s.append(svg("rect", { x: P, y: 4, width: W - P - 2, height: H - 20, fill: "#fafbfc",
                         stroke: "#dde3ea" }));
  const y = (v) => 4 + (H - 20) * (1 - v);
  for (const v of [0, 0.5, 1]) {
    const label = svg("text", { x: 0, y: y(v) + 3 });
    label.textContent = Math.round(v * 100);
    s.append(label);
  }
  const n = series.length;
  const x = (i) => P + (W - P - 2) * (n > 1 ? i / (n - 1) : 0.5);
  let path = "";
  let pen = false;
  series.forEach((p, i) => {
    const v = p[key];
    if (v === null || v === undefined) { pen = false; return; }
    path += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
    pen = true;
    s.append(svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 1.4, fill: color }));
  });
  if (path) s.append(svg("path", { d: path, fill: "none", stroke: color, "stroke-width": 1.5 }));
  const t = svg("text", { x: P + 2, y: H - 4 });
  t.textContent = title + (n ? "" : " (no data yet)");
  s.append(t);
  return s;
}

// ----------------------------------------------------------------- stream

function feed(type, data) {
  const list = $("feed");
  const who = data.agent ? " → " + data.agent : "";
  const what = data.chat ? " " + data.chat : (data.error ? " " + data.error : "");
  list.prepend(el("li", { class: "t-" + type },
                  `${data.tenant || "–"}  ${type}${what}${who}`));
  while (list.children.length > 25) list.lastChild.remove();
}

async function follow() {
  for (;;) {
    try {
      const h = headers();
      h["Accept"] = "text/event-stream";
      if (state.lastId) h["Last-Event-ID"] = state.lastId;
      const from = !state.lastId && state.startFrom !== undefined
        ? "?from=" + state.startFrom : "";
      const r = await fetch("/v1/stream" + from, { headers: h, cache: "no-store" });
      if (r.status === 409 || r.status === 410) {
        // our last id is ahead of the server's log (it restarted in memory) or
        // no longer kept: follow from now on, with the overview as it is now
        state.lastId = null;
        state.startFrom = undefined;
        refresh();
        throw new Error("stream answered " + r.status + "; following from now on");
      }
      if (!r.ok) throw new Error("stream answered " + r.status);
      $("conn").textContent = "live";
      $("conn").className = "conn live";
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let id = null, type = "message", data = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) id = line.slice(4);
            else if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data = line.slice(6);
          }
          if (data === null) continue;
          if (id) state.lastId = id;
          state.seen += 1;
          $("seen").textContent = state.seen;
          feed(type, JSON.parse(data));
          soon();
        }
      }
    } catch (e) {
      showError(String(e));
    }
    $("conn").textContent = "reconnecting";
    $("conn").className = "conn off";
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

async function start() {
  state.token = takeToken();
  if (await refresh()) {
    follow();
    setInterval(refresh, 5000);  // event-time windows move on even when quiet
  }
}

start();
