// The rollouts table: filters, paging, and rows reloaded as rollouts change status.
import { STATUSES, api, badge, debounce, fmtReward, fmtTime, h, newest, show, showError, state, throttle } from "./util.js";

const MODES = ["", "train", "val", "test"];
const PAGE = 50;

const rolloutFilters = { status: [], mode: "", q: "", offset: 0 };

export async function pageRollouts() {
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

  // Loads overlap (a filter changed while a reload is in flight): only the newest answer is shown,
  // or an older filter's rows could stay on screen.
  const request = newest();
  async function load(changed) {
    const current = request();
    const params = new URLSearchParams({ limit: PAGE, offset: rolloutFilters.offset, order: "desc" });
    if (rolloutFilters.status.length) params.set("status", rolloutFilters.status.join(","));
    if (rolloutFilters.mode) params.set("mode", rolloutFilters.mode);
    if (rolloutFilters.q) params.set("q", rolloutFilters.q);
    let data;
    try { data = await api("/api/rollouts?" + params); } catch (e) { if (current()) showError(e); return; }
    if (!current()) return;
    const rows = data.items.map((r) => h("tr", {
        "data-rollout-id": r.rollout_id, "data-status": r.status,
        class: changed && changed.has(r.rollout_id) ? "flash" : null },
      h("td", { class: "mono" }, h("a", { href: "#/rollout/" + encodeURIComponent(r.rollout_id) }, r.rollout_id)),
      h("td", { class: "mono", title: `queue ${r.queue}` }, r.namespace),
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
      h("thead", {}, h("tr", {}, ["rollout", "namespace", "status", "mode", "resources", "attempts", "worker", "reward",
        "started", "ended", "input"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 11, class: "empty" }, "no rollouts match"))));
    const first = data.total ? data.offset + 1 : 0;
    pager.replaceChildren(
      h("button", { disabled: data.offset === 0, onclick: () => { rolloutFilters.offset = Math.max(0, data.offset - PAGE); load(); } }, "‹ newer"),
      h("span", { "data-testid": "rollouts-total" }, `${first}–${data.offset + data.items.length} of ${data.total}`),
      h("button", { disabled: data.offset + data.items.length >= data.total, onclick: () => { rolloutFilters.offset = data.offset + PAGE; load(); } }, "older ›"));
  }
  // A status change reloads the page of rows (throttled: a burst of events is one reload) and
  // highlights the rows it touched.
  let pending = new Set();
  const reload = throttle(() => { const changed = pending; pending = new Set(); load(changed); }, 300);
  state.onRolloutEvent = (event) => { pending.add(event.rollout_id); reload(); };
  await load();
}
