// jarvisd's dashboard. Plain JavaScript, no dependencies: it reads
// /api/v1/status, follows /api/v1/events, and on a unit's page
// (#/unit/NAME) its log and stored benchmark. Every text from the API goes
// into the DOM as text (textContent / text nodes), never as HTML.
"use strict";

const EVENT_KINDS = [
  "started", "healthy", "unhealthy", "restarted", "oom-killed", "failed", "exited",
  "stopped", "placed", "device-gone", "device-back", "gpu-fallback", "gpu-ok", "rollback",
];
const REFRESH_MS = 5000;       // uptime and memory change without events
const DEBOUNCE_MS = 150;       // events come in bursts
const MAX_EVENTS = 100;        // kept in the list
const MAX_LOG_LINES = 1000;    // kept in the log view
const UNIT_NAME = /^[a-z0-9][a-z0-9-]*$/;

const $ = (id) => document.getElementById(id);

// An element with attributes and children (strings become text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}

function duration(ms) {
  if (ms === null || ms === undefined) return "";
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function clock(t) {
  const d = new Date(t);
  return isNaN(d) ? String(t || "") : d.toLocaleTimeString();
}

// ---- state ----
let report = null;
const cpuSeen = new Map(); // unit -> {ns, at}: CPU % from the last two reads
const cpuPercent = new Map();
let refreshTimer = null;
let debounceTimer = null;
let logSource = null;
let viewed = null; // the unit whose page is shown

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) {
    const err = new Error((await r.text()).trim() || r.statusText);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

async function refresh() {
  try {
    const next = await getJSON("/api/v1/status");
    const now = performance.now();
    for (const u of next.units || []) {
      const prev = cpuSeen.get(u.name);
      if (u.cpu_usage_ns !== null && u.cpu_usage_ns !== undefined) {
        if (prev && now > prev.at && u.cpu_usage_ns >= prev.ns) {
          cpuPercent.set(u.name, ((u.cpu_usage_ns - prev.ns) / 1e6) / (now - prev.at) * 100);
        }
        cpuSeen.set(u.name, { ns: u.cpu_usage_ns, at: now });
      } else {
        cpuSeen.delete(u.name);
        cpuPercent.delete(u.name);
      }
    }
    report = next;
    $("error").hidden = true;
    render();
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = "Cannot read /api/v1/status: " + e.message;
  }
}

// Soon, once: events come in bursts.
function refreshSoon() {
  clearTimeout(debounceTimer);
  debounceTimer = setTimeout(refresh, DEBOUNCE_MS);
}

function render() {
  if (!report) return;
  const units = report.units || [];
  const counts = {};
  for (const u of units) counts[u.state] = (counts[u.state] || 0) + 1;
  $("summary").textContent = units.length + (units.length === 1 ? " unit" : " units") +
    Object.entries(counts).map(([s, n]) => ", " + n + " " + s).join("");

  const problems = report.problems || [];
  $("problems").hidden = problems.length === 0;
  $("problem-list").replaceChildren(...problems.map((p) => el("li", { text: p })));

  renderGpus(report.gpus || []);
  $("unit-rows").replaceChildren(...units.map(unitRow));
  $("no-units").hidden = units.length > 0;
  if (viewed) renderUnit(viewed);
}

function stateBadge(u) {
  return el("span", { class: "state state-" + u.state, "data-state": u.state, text: u.state });
}

function healthText(u) {
  return u.health ? el("span", { class: "health-" + u.health, text: u.health }) : "";
}

function memoryText(u) {
  if (u.memory_bytes === null || u.memory_bytes === undefined) return "";
  return bytes(u.memory_bytes) + (u.memory_max_bytes ? " / " + bytes(u.memory_max_bytes) : "");
}

function cpuText(u) {
  const p = cpuPercent.get(u.name);
  if (p !== undefined) return p.toFixed(p < 10 ? 1 : 0) + "%";
  if (u.cpu_usage_ns !== null && u.cpu_usage_ns !== undefined) return (u.cpu_usage_ns / 1e9).toFixed(1) + " s";
  return "";
}

function placement(u) {
  const parts = [];
  const p = u.placement;
  if (p) {
    if (p.device === "gpu") {
      const names = (p.gpus || []).map((id) => {
        const g = (report.gpus || []).find((g) => g.id === id);
        return g ? g.name : id;
      });
      parts.push(el("span", { class: "gpu-name", text: "GPU " + (names.join(", ") || "") }));
    } else {
      parts.push(el("span", { text: "CPU" }));
    }
  }
  if (u.vram_bytes !== undefined || u.vram_given_bytes !== undefined) {
    const used = u.vram_bytes !== undefined && u.vram_bytes !== null ? bytes(u.vram_bytes) : "?";
    const given = u.vram_given_bytes ? bytes(u.vram_given_bytes) : "";
    parts.push(el("span", { class: "muted", text: " VRAM " + used + (given ? " of " + given + " given" : "") }));
  }
  if (u.gpu === "fallback") {
    parts.push(el("br"));
    parts.push(el("span", { class: "fallback", text: "GPU FALLBACK: running on the CPU" }));
    if (u.gpu_reason) parts.push(el("span", { class: "fallback-reason", text: u.gpu_reason }));
  }
  return parts;
}

function cell(label, cls, ...content) {
  const inner = el("span", { class: "cell" }, ...content);
  const empty = inner.textContent.trim() === "";
  return el("td", { "data-label": label, class: (cls || "") + (empty ? " empty" : "") }, inner);
}

function unitRow(u) {
  const name = el("a", { href: "#/unit/" + encodeURIComponent(u.name), text: u.name });
  const reason = u.reason && (u.state === "failed" || u.state === "waiting" || u.state === "starting" || u.state === "exited")
    ? el("span", { class: "reason" + (u.state === "failed" ? "" : " waiting"), text: u.reason }) : null;
  return el("tr", { "data-unit": u.name },
    cell("Unit", "name", name, u.description ? el("span", { class: "muted", text: " " + u.description }) : null),
    cell("Kind", "kind", u.kind),
    cell("State", "state-cell", stateBadge(u), reason),
    cell("Health", "", healthText(u)),
    cell("Uptime", "", duration(u.uptime_ms)),
    cell("Restarts", "", String(u.restarts)),
    cell("Memory", "", memoryText(u)),
    cell("CPU", "", cpuText(u)),
    cell("Ports", "ports", (u.ports || []).join(" ")),
    cell("Placement", "placement", ...placement(u)),
  );
}

function renderGpus(gpus) {
  $("gpus").hidden = gpus.length === 0;
  $("gpu-list").replaceChildren(...gpus.map((g) => {
    const total = g.memory_total_bytes, used = g.memory_used_bytes;
    const bar = el("div", { class: "bar" });
    if (total && used !== null && used !== undefined) {
      const fill = el("span");
      fill.style.width = Math.min(100, used / total * 100).toFixed(1) + "%";
      bar.append(fill);
    }
    return el("div", { class: "gpu", "data-gpu": g.id },
      el("div", { class: "gname", text: g.name }),
      el("div", { class: "muted", text: g.vendor + " " + g.id }),
      bar,
      el("div", { text: "VRAM " + (used !== null && used !== undefined ? bytes(used) : "?") + " / " + (total ? bytes(total) : "?") +
        (g.utilization_percent !== null && g.utilization_percent !== undefined ? " \u00b7 " + g.utilization_percent + "% busy" : "") }),
      el("div", { class: "muted", text: "Units: " + ((g.units || []).join(", ") || "none") }),
    );
  }));
}

// ---- events ----
function addEvent(ev) {
  const li = el("li", { "data-kind": ev.kind },
    el("span", { class: "t", text: clock(ev.time) }),
    el("span", { class: "k", text: ev.kind }),
    ev.unit ? el("a", { href: "#/unit/" + encodeURIComponent(ev.unit), text: ev.unit }) : null,
    ev.message ? " " + ev.message : "");
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function subscribe() {
  const conn = $("conn");
  const es = new EventSource("/api/v1/events?since=30m");
  const onEvent = (m) => {
    try { addEvent(JSON.parse(m.data)); } catch (_) { /* not an event */ }
    refreshSoon();
  };
  for (const k of EVENT_KINDS) es.addEventListener(k, onEvent);
  es.onmessage = onEvent;
  es.onopen = () => { conn.textContent = "live"; conn.className = "conn live"; refreshSoon(); };
  es.onerror = () => { conn.textContent = "reconnecting"; conn.className = "conn down"; };
}

// ---- a unit's page ----
// One term and its value; none when the value is empty.
function detail(dl, term, ...value) {
  const dd = el("dd", {}, ...value);
  if (dd.textContent.trim() === "") return;
  dl.append(el("dt", { text: term }), dd);
}

function renderUnit(name) {
  const u = report && (report.units || []).find((x) => x.name === name);
  $("unit-title").textContent = name;
  const dl = $("unit-details");
  dl.replaceChildren();
  if (!u) {
    detail(dl, "State", report ? "no such unit" : "loading");
    return;
  }
  dl.setAttribute("data-unit", u.name);
  detail(dl, "State", stateBadge(u));
  if (u.reason) detail(dl, "Reason", el("span", { class: "reason", text: u.reason }));
  if (u.description) detail(dl, "Description", u.description);
  detail(dl, "Kind", u.kind + (u.form_reason ? " (" + u.form_reason + ")" : ""));
  detail(dl, "Health", healthText(u) || "no check");
  detail(dl, "PID", u.pid === null ? "" : String(u.pid));
  detail(dl, "Uptime", duration(u.uptime_ms));
  detail(dl, "Restarts", String(u.restarts));
  if (u.exit_code !== null) detail(dl, "Last exit", String(u.exit_code) + (u.exit_signal ? " (" + u.exit_signal + ")" : "") + (u.oom_killed ? ", OOM-killed" : ""));
  detail(dl, "Memory", memoryText(u));
  detail(dl, "CPU", cpuText(u));
  if (u.tasks !== null) detail(dl, "Tasks", String(u.tasks));
  if ((u.ports || []).length) detail(dl, "Ports", (u.ports || []).join(" "));
  if ((u.networks || []).length) detail(dl, "Networks", u.networks.map((n) => n.name + " " + n.ip).join(", "));
  const p = placement(u);
  if (p.length) detail(dl, "Placement", ...p);
  detail(dl, "Cgroup", u.cgroup);
  if (u.privileged) detail(dl, "Privileged", "yes: every capability and device, no seccomp filter");
}

function logLine(l) {
  return el("div", { class: l.note ? "note" : null },
    l.time ? el("span", { class: "lt", text: clock(l.time) + " " }) : null,
    l.text);
}

function openLog(name) {
  const pre = $("log");
  pre.replaceChildren();
  $("log-state").textContent = "";
  if (logSource) logSource.close();
  logSource = new EventSource("/api/v1/units/" + encodeURIComponent(name) + "/logs?follow=1&lines=200");
  logSource.addEventListener("line", (m) => {
    let l;
    try { l = JSON.parse(m.data); } catch (_) { return; }
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(logLine(l));
    while (pre.children.length > MAX_LOG_LINES) pre.firstElementChild.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  });
  logSource.onopen = () => { $("log-state").textContent = "(live)"; pre.replaceChildren(); };
  logSource.onerror = () => { $("log-state").textContent = "(reconnecting)"; };
}

async function loadBench(name) {
  $("bench").hidden = true;
  let b;
  try {
    b = await getJSON("/api/v1/units/" + encodeURIComponent(name) + "/bench");
  } catch (_) {
    return; // 404: none stored
  }
  if (viewed !== name) return;
  $("bench").hidden = false;
  $("bench-verdict").textContent = (b.verdict || "") +
    (b.recommendation ? " \u2014 recommended: " + b.recommendation : "") + (b.reason ? " (" + b.reason + ")" : "");
  $("bench-chart").replaceChildren(benchChart(b.metrics || {}));
}

// Each metric: its native and container medians as two bars, scaled to
// the larger of the two.
function benchChart(metrics) {
  const names = Object.keys(metrics);
  const row = 46, w = 520, left = 150, barMax = w - left - 90;
  const s = svg("svg", { viewBox: "0 0 " + w + " " + (names.length * row + 24), width: w, role: "img" });
  s.append(svg("rect", { x: left, y: 4, width: 10, height: 10, class: "native" }),
    svg("text", { x: left + 14, y: 13 }, "native"),
    svg("rect", { x: left + 80, y: 4, width: 10, height: 10, class: "container" }),
    svg("text", { x: left + 94, y: 13 }, "container"));
  names.forEach((m, i) => {
    const r = metrics[m];
    const n = r.native ? r.native.median : 0, c = r.container ? r.container.median : 0;
    const max = Math.max(n, c) || 1;
    const y = 24 + i * row;
    s.append(svg("text", { x: 0, y: y + 14 }, m),
      svg("text", { x: 0, y: y + 30, class: "muted" }, (r.higher_is_better ? "higher is better" : "lower is better")));
    [["native", n], ["container", c]].forEach(([form, v], j) => {
      s.append(svg("rect", { x: left, y: y + 4 + j * 17, width: Math.max(1, v / max * barMax), height: 14, class: form }),
        svg("text", { x: left + v / max * barMax + 6, y: y + 15 + j * 17 }, Number(v).toPrecision(4)));
    });
  });
  return s;
}

// ---- routing ----
function route() {
  const m = location.hash.match(/^#\/unit\/([^/]+)$/);
  const name = m ? decodeURIComponent(m[1]) : null;
  if (name && UNIT_NAME.test(name)) {
    $("overview").hidden = true;
    $("unit-view").hidden = false;
    if (viewed !== name) {
      viewed = name;
      renderUnit(name);
      openLog(name);
      loadBench(name);
    }
    document.title = name + " \u2014 jarvisd";
  } else {
    viewed = null;
    if (logSource) { logSource.close(); logSource = null; }
    $("overview").hidden = false;
    $("unit-view").hidden = true;
    document.title = "jarvisd";
  }
}

window.addEventListener("hashchange", route);
route();
refresh();
subscribe();
refreshTimer = setInterval(refresh, REFRESH_MS);
