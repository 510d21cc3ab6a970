// The agl dashboard: one page, routed by the URL's hash, reading /api/ and following /api/events.
// Plain browser JavaScript, no build step. Every value from the store is put in the page as text
// (textContent), never as HTML: spans and inputs come from agents and may hold anything.
"use strict";

const STATUSES = ["queuing", "preparing", "running", "requeuing", "succeeded", "failed", "cancelled"];
const MODES = ["", "train", "val", "test"];
const PAGE = 50;
const SERIES_COLORS = ["#2f6fdd", "#e37400", "#1e8e3e", "#c5221f", "#7b61ff", "#00838f", "#8d6e63", "#d81b60"];

// --- small helpers ------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "";
  if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(1) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

function fmtReward(value) {
  return value === null || value === undefined ? "" : Number(value).toFixed(3).replace(/\.?0+$/, "") || "0";
}

function badge(status) {
  return h("span", { class: "badge " + (status || ""), "data-status": status }, status || "");
}

function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${path}: HTTP ${response.status}`);
  return body;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// Runs fn at most once per ms, after the first call of a burst: a busy store sends events without
// pause, and a debounce would then never fire.
function throttle(fn, ms) {
  let timer = null;
  let last = [];
  return (...args) => {
    last = args;
    if (timer === null) timer = setTimeout(() => { timer = null; fn(...last); }, ms);
  };
}

const main = () => document.getElementById("main");

function show(...nodes) {
  main().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

function showError(err) {
  main().append(h("div", { class: "error-box", "data-testid": "error" }, String(err.message || err)));
}

// --- live updates -------------------------------------------------------------------------------

// Listeners of the current page for rollout events; replaced whenever the page changes.
let onRolloutEvent = null;
let events = null;

function connectEvents() {
  const live = document.getElementById("live");
  events = new EventSource("/api/events");
  events.addEventListener("ready", () => { live.textContent = "live"; live.className = "live on"; });
  events.addEventListener("rollout", (e) => {
    const data = JSON.parse(e.data);
    refreshStats();
    if (onRolloutEvent) onRolloutEvent(data);
  });
  // EventSource reconnects by itself and sends Last-Event-ID, so no event is missed.
  events.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

// --- header stats -------------------------------------------------------------------------------

const refreshStats = throttle(async () => {
  try {
    const stats = await api("/api/stats");
    const items = [["rollouts", stats.rollouts], ["queue", stats.queue_length], ["spans", stats.spans],
      ["workers", stats.workers], ["resources", stats.resources]];
    for (const status of STATUSES) {
      const n = (stats.rollouts_by_status || {})[status];
      if (n) items.push([status, n]);
    }
    document.getElementById("stats").replaceChildren(
      ...items.map(([k, v]) => h("span", { class: "stat", "data-stat": k }, k, h("b", {}, String(v ?? 0)))));
  } catch (e) { /* the header is informative only; the pages report errors */ }
}, 300);

// --- rollouts -----------------------------------------------------------------------------------

const rolloutFilters = { status: [], mode: "", q: "", offset: 0 };

async function pageRollouts() {
  const table = h("table", { "data-testid": "rollouts-table" });
  const pager = h("div", { class: "pager" });
  const statusBoxes = STATUSES.map((st) =>
    h("label", {}, h("input", { type: "checkbox", value: st, checked: rolloutFilters.status.includes(st),
      "data-testid": "filter-status-" + st,
      onchange: (e) => {
        rolloutFilters.status = e.target.checked ? [...rolloutFilters.status, st]
          : rolloutFilters.status.filter((s) => s !== st);
        rolloutFilters.offset = 0; load();
      } }), st));
  const mode = h("select", { "data-testid": "filter-mode", onchange: (e) => { rolloutFilters.mode = e.target.value; rolloutFilters.offset = 0; load(); } },
    MODES.map((m) => h("option", { value: m, selected: m === rolloutFilters.mode }, m || "any mode")));
  const search = h("input", { type: "search", placeholder: "rollout id contains…", value: rolloutFilters.q,
    "data-testid": "filter-q",
    oninput: debounce((e) => { rolloutFilters.q = e.target.value; rolloutFilters.offset = 0; load(); }, 250) });
  show(h("h2", {}, "Rollouts"), h("div", { class: "filters" }, ...statusBoxes, mode, search), pager, table);

  let seen = new Set();
  async function load(changed) {
    const params = new URLSearchParams({ limit: PAGE, offset: rolloutFilters.offset, order: "desc" });
    if (rolloutFilters.status.length) params.set("status", rolloutFilters.status.join(","));
    if (rolloutFilters.mode) params.set("mode", rolloutFilters.mode);
    if (rolloutFilters.q) params.set("q", rolloutFilters.q);
    let data;
    try { data = await api("/api/rollouts?" + params); } catch (e) { showError(e); return; }
    const rows = data.items.map((r) => h("tr", {
        "data-rollout-id": r.rollout_id, "data-status": r.status,
        class: changed && changed.has(r.rollout_id) ? "flash" : null },
      h("td", { class: "mono" }, h("a", { href: "#/rollout/" + encodeURIComponent(r.rollout_id) }, r.rollout_id)),
      h("td", {}, badge(r.status)),
      h("td", {}, r.mode || ""),
      h("td", { class: "mono" }, r.resources_id || ""),
      h("td", { class: "num" }, String(r.attempts)),
      h("td", { class: "mono" }, r.worker_id || ""),
      h("td", { class: "num", "data-testid": "reward" }, fmtReward(r.reward)),
      h("td", {}, fmtTime(r.start_time)),
      h("td", {}, fmtTime(r.end_time)),
      h("td", { class: "mono" }, r.input_preview)));
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["rollout", "status", "mode", "resources", "attempts", "worker", "reward",
        "started", "ended", "input"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 10, class: "empty" }, "no rollouts match"))));
    const first = data.total ? data.offset + 1 : 0;
    pager.replaceChildren(
      h("button", { disabled: data.offset === 0, onclick: () => { rolloutFilters.offset = Math.max(0, data.offset - PAGE); load(); } }, "‹ newer"),
      h("span", { "data-testid": "rollouts-total" }, `${first}–${data.offset + data.items.length} of ${data.total}`),
      h("button", { disabled: data.offset + data.items.length >= data.total, onclick: () => { rolloutFilters.offset = data.offset + PAGE; load(); } }, "older ›"));
    seen = new Set(data.items.map((r) => r.rollout_id));
  }
  // A status change reloads the page of rows (throttled: a burst of events is one reload) and
  // highlights the rows it touched.
  let pending = new Set();
  const reload = throttle(() => { const changed = pending; pending = new Set(); load(changed); }, 300);
  onRolloutEvent = (event) => { pending.add(event.rollout_id); reload(); };
  await load();
}

// --- one rollout --------------------------------------------------------------------------------

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function timelineView(spans) {
  if (!spans.length) return h("div", { class: "empty" }, "no spans");
  const t0 = Math.min(...spans.map((s) => s.start_ms));
  const t1 = Math.max(...spans.map((s) => s.end_ms));
  const width = Math.max(t1 - t0, 1e-6);
  const box = h("div", { class: "timeline", "data-testid": "timeline" });
  for (const span of spans) {
    const attrs = h("pre", { class: "tl-attrs mono", hidden: true }, text({
      span_id: span.span_id, attempt_id: span.attempt_id, status: span.status,
      status_message: span.status_message || undefined, attributes: span.attributes }));
    const left = ((span.start_ms - t0) / width) * 100;
    const barWidth = ((span.end_ms - span.start_ms) / width) * 100;
    const row = h("div", { class: "tl-row", "data-testid": "span-row", "data-kind": span.kind, title: span.name,
        onclick: () => { attrs.hidden = !attrs.hidden; } },
      h("span", { class: "tl-name", style: `padding-left:${span.depth * 14}px` }, span.name),
      h("div", { class: "tl-track" }, h("div", { class: "tl-bar " + span.kind,
        style: `left:${left.toFixed(3)}%;width:${barWidth.toFixed(3)}%` })),
      h("span", { class: "tl-dur" }, fmtDuration(span.end_ms - span.start_ms)));
    box.append(row, attrs);
  }
  return box;
}

function messageView(message) {
  const role = message.role || "message";
  let content = message.content;
  if (Array.isArray(content)) content = content.map((part) => part.text ?? text(part)).join("\n");
  const extra = message.tool_calls ? "\n" + text(message.tool_calls) : "";
  return h("div", { class: "msg " + role, "data-testid": "message", "data-role": role },
    h("div", { class: "role" }, role), h("pre", {}, text(content) + extra));
}

function llmCallView(call, index) {
  return h("div", { class: "llm-call", "data-testid": "llm-call" },
    h("div", { class: "meta" },
      h("b", {}, `call ${index + 1}`),
      call.model ? h("span", {}, "model ", h("span", { class: "mono" }, call.model)) : null,
      h("span", { "data-testid": "input-tokens" }, `input tokens ${call.input_tokens ?? "?"}`),
      h("span", { "data-testid": "output-tokens" }, `output tokens ${call.output_tokens ?? "?"}`),
      h("span", {}, `token ids ${call.prompt_token_ids}/${call.response_token_ids}`),
      h("span", { "data-testid": "call-reward" }, `reward ${call.reward === null ? "none" : fmtReward(call.reward)}`),
      call.finish_reason ? h("span", {}, `finish ${call.finish_reason}`) : null,
      h("span", { class: "mono" }, `attempt ${call.attempt_id}`)),
    ...call.messages.map(messageView),
    ...call.response.map(messageView));
}

async function pageRollout(rolloutId) {
  const mine = routeSeq;
  show(h("h2", {}, "Rollout ", h("span", { class: "mono" }, rolloutId)), h("div", { class: "empty" }, "loading…"));
  async function load() {
    let r;
    try { r = await api("/api/rollouts/" + encodeURIComponent(rolloutId)); } catch (e) {
      if (mine === routeSeq) { show(h("h2", {}, "Rollout")); showError(e); }
      return;
    }
    if (mine !== routeSeq) return;  // the user has moved on to another page meanwhile
    const attempts = h("table", { "data-testid": "attempts" },
      h("thead", {}, h("tr", {}, ["#", "attempt", "status", "worker", "started", "ended", "last heartbeat"].map((c) => h("th", {}, c)))),
      h("tbody", {}, r.attempts.map((a) => h("tr", {},
        h("td", { class: "num" }, String(a.sequence_id)), h("td", { class: "mono" }, a.attempt_id), h("td", {}, badge(a.status)),
        h("td", { class: "mono" }, a.worker_id || ""), h("td", {}, fmtTime(a.start_time)), h("td", {}, fmtTime(a.end_time)),
        h("td", {}, fmtTime(a.last_heartbeat_time))))));
    const rewards = r.rewards.length ? h("table", { "data-testid": "rewards" },
      h("thead", {}, h("tr", {}, ["attempt", "time", "values"].map((c) => h("th", {}, c)))),
      h("tbody", {}, r.rewards.map((w) => h("tr", {}, h("td", { class: "mono" }, w.attempt_id),
        h("td", {}, fmtTime(w.time_ms / 1000)), h("td", { class: "mono" }, text(w.values)))))) : h("div", { class: "empty" }, "no rewards");
    const truncated = r.span_total > r.spans.length
      ? h("div", { class: "empty" }, `showing ${r.spans.length} of ${r.span_total} spans`) : null;
    show(
      h("h2", {}, "Rollout ", h("span", { class: "mono", "data-testid": "rollout-id" }, r.rollout_id), " ", badge(r.status)),
      kv([["reward", h("b", { "data-testid": "rollout-reward" }, r.reward === null ? "none" : fmtReward(r.reward))],
        ["resources", h("span", { class: "mono" }, (r.resources_id || "") + (r.resources_version ? ` (version ${r.resources_version})` : ""))],
        ["mode", r.mode || ""], ["started", fmtTime(r.start_time)], ["ended", fmtTime(r.end_time)],
        ["input", h("pre", { class: "mono" }, text(r.input))],
        ["config", h("pre", { class: "mono" }, text(r.config))]]),
      h("h3", {}, `Attempts (${r.attempts.length})`), attempts,
      h("h3", {}, `LLM calls (${r.llm_calls.length})`),
      r.llm_calls.length ? h("div", { "data-testid": "llm-calls" }, r.llm_calls.map(llmCallView)) : h("div", { class: "empty" }, "no LLM calls"),
      h("h3", {}, "Rewards"), rewards,
      h("h3", {}, `Spans (${r.span_total})`), truncated, timelineView(r.spans));
  }
  const reload = throttle(load, 300);
  onRolloutEvent = (event) => { if (event.rollout_id === rolloutId) reload(); };
  await load();
}

// --- rewards chart ------------------------------------------------------------------------------

let chart = null;

async function pageRewards() {
  const holder = h("div", { class: "chart", "data-testid": "reward-chart" });
  const summary = h("table", { "data-testid": "reward-series" });
  show(h("h2", {}, "Reward over time, per resources set"), holder, h("h3", {}, "Series"), summary);
  async function load() {
    let data;
    try { data = await api("/api/rewards?limit=1000"); } catch (e) { showError(e); return; }
    summary.replaceChildren(
      h("thead", {}, h("tr", {}, ["resources", "version", "rollouts", "mean reward", "last reward"].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.series.map((s, i) => {
        const rewards = s.points.map((p) => p.reward);
        const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
        return h("tr", { "data-resources-id": s.resources_id },
          h("td", { class: "mono" }, h("span", { style: `color:${SERIES_COLORS[i % SERIES_COLORS.length]}` }, "● "), s.resources_id || "(none)"),
          h("td", { class: "num" }, s.version ?? ""), h("td", { class: "num", "data-testid": "series-count" }, String(s.points.length)),
          h("td", { class: "num" }, fmtReward(mean)), h("td", { class: "num" }, fmtReward(rewards[rewards.length - 1])));
      })));
    drawChart(holder, data.series);
  }
  const reload = throttle(load, 1000);
  onRolloutEvent = (event) => { if (["succeeded", "failed"].includes(event.new_status)) reload(); };
  await load();
}

function drawChart(holder, series) {
  if (chart) { chart.destroy(); chart = null; }
  window.aglChart = null;
  if (!series.length) { holder.replaceChildren(h("div", { class: "empty" }, "no finished rollouts with a reward yet")); return; }
  holder.replaceChildren();
  // uPlot plots series over one shared x array: every finishing time, with gaps (null) where a
  // series has no point.
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.time)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const column = new Array(xs.length).fill(null);
    for (const p of s.points) column[index.get(p.time)] = p.reward;
    return column;
  });
  const opts = {
    width: Math.max(holder.clientWidth - 20, 400), height: 360,
    scales: { x: { time: true } },
    axes: [{}, { label: "reward" }],
    series: [{ label: "finished" }, ...series.map((s, i) => ({
      label: (s.resources_id || "(none)") + (s.version ? ` v${s.version}` : ""),
      stroke: SERIES_COLORS[i % SERIES_COLORS.length], width: 1.5, spanGaps: true,
      points: { show: true, size: 7, fill: SERIES_COLORS[i % SERIES_COLORS.length] },
    }))],
  };
  chart = new uPlot(opts, [xs, ...ys], holder);
  window.aglChart = chart;  // for tests and the curious: the plotted data
}

// --- workers and resources ----------------------------------------------------------------------

async function pageWorkers() {
  const table = h("table", { "data-testid": "workers-table" });
  show(h("h2", {}, "Workers"), table);
  async function load() {
    let data;
    try { data = await api("/api/workers"); } catch (e) { showError(e); return; }
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["worker", "status", "rollout", "attempt", "last heartbeat", "last dequeue", "stats"].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.items.length ? data.items.map((w) => h("tr", { "data-worker-id": w.worker_id },
        h("td", { class: "mono" }, w.worker_id), h("td", {}, badge(w.status)),
        h("td", { class: "mono" }, w.current_rollout_id ? h("a", { href: "#/rollout/" + encodeURIComponent(w.current_rollout_id) }, w.current_rollout_id) : ""),
        h("td", { class: "mono" }, w.current_attempt_id || ""), h("td", {}, fmtTime(w.last_heartbeat_time)),
        h("td", {}, fmtTime(w.last_dequeue_time)), h("td", { class: "mono" }, Object.keys(w.heartbeat_stats).length ? text(w.heartbeat_stats) : "")))
        : h("tr", {}, h("td", { colspan: 7, class: "empty" }, "no workers have connected"))));
  }
  onRolloutEvent = throttle(load, 500);  // workers change with the rollouts they take
  await load();
}

function resourceSummary(resource) {
  const { type, ...fields } = resource;
  const lines = Object.entries(fields).filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" && !Object.keys(v).length))
    .map(([k, v]) => `${k}: ${text(v)}`);
  return h("div", {}, h("b", {}, type), h("pre", { class: "mono" }, lines.join("\n")));
}

async function pageResources() {
  const table = h("table", { "data-testid": "resources-table" });
  show(h("h2", {}, "Resources versions"), table);
  let data;
  try { data = await api("/api/resources"); } catch (e) { showError(e); return; }
  table.replaceChildren(
    h("thead", {}, h("tr", {}, ["resources", "version", "created", "updated", "resources"].map((c) => h("th", {}, c)))),
    h("tbody", {}, data.items.length ? data.items.map((r) => h("tr", { "data-resources-id": r.resources_id },
      h("td", { class: "mono" }, r.resources_id, r.resources_id === data.latest ? h("span", { class: "badge ok" }, " latest") : null),
      h("td", { class: "num" }, String(r.version)), h("td", {}, fmtTime(r.create_time)), h("td", {}, fmtTime(r.update_time)),
      h("td", {}, Object.entries(r.resources).map(([name, res]) => h("div", {}, h("span", { class: "mono" }, name + " "), resourceSummary(res))))))
      : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "no resources published"))));
}

// --- routing ------------------------------------------------------------------------------------

// Each page load gets a number; a page's late answers (a reload in flight) are ignored once the
// user has moved to another page, instead of replacing it.
let routeSeq = 0;

async function route() {
  routeSeq += 1;
  onRolloutEvent = null;
  const hash = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = hash.split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === (page || "rollouts"));
  if (page === "rollout" && rest.length) return pageRollout(decodeURIComponent(rest.join("/")));
  if (page === "rewards") return pageRewards();
  if (page === "workers") return pageWorkers();
  if (page === "resources") return pageResources();
  return pageRollouts();
}

window.addEventListener("hashchange", route);
connectEvents();
refreshStats();
route();
