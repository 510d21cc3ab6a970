// Workers and resources versions.
import { api, badge, fmtTime, h, newest, show, showError, state, text, throttle } from "./util.js";

export async function pageWorkers() {
  const table = h("table", { "data-testid": "workers-table" });
  show(h("h2", {}, "Workers"), table);
  const request = newest();
  async function load() {
    const current = request();
    let data;
    try { data = await api("/api/workers"); } catch (e) { if (current()) showError(e); return; }
    if (!current()) return;
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["worker", "status", "rollout", "attempt", "last heartbeat", "last dequeue", "stats"].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.items.length ? data.items.map((w) => h("tr", { "data-worker-id": w.worker_id },
        h("td", { class: "mono" }, w.worker_id), h("td", {}, badge(w.status)),
        h("td", { class: "mono" }, w.current_rollout_id ? h("a", { href: "#/rollout/" + encodeURIComponent(w.current_rollout_id) }, w.current_rollout_id) : ""),
        h("td", { class: "mono" }, w.current_attempt_id || ""), h("td", {}, fmtTime(w.last_heartbeat_time)),
        h("td", {}, fmtTime(w.last_dequeue_time)), h("td", { class: "mono" }, Object.keys(w.heartbeat_stats).length ? text(w.heartbeat_stats) : "")))
        : h("tr", {}, h("td", { colspan: 7, class: "empty" }, "no workers have connected"))));
  }
  state.onRolloutEvent = throttle(load, 500);  // workers change with the rollouts they take
  await load();
}

function resourceSummary(resource) {
  const { type, ...fields } = resource;
  const lines = Object.entries(fields).filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" && !Object.keys(v).length))
    .map(([k, v]) => `${k}: ${text(v)}`);
  return h("div", {}, h("b", {}, type), h("pre", { class: "mono" }, lines.join("\n")));
}

export async function pageResources() {
  const table = h("table", { "data-testid": "resources-table" });
  show(h("h2", {}, "Resources versions"), table);
  let data;
  try { data = await api("/api/resources"); } catch (e) { showError(e); return; }
  table.replaceChildren(
    h("thead", {}, h("tr", {}, ["resources", "version", "created", "updated", "resources"].map((c) => h("th", {}, c)))),
    h("tbody", {}, data.items.length ? data.items.map((r) => h("tr", { "data-resources-id": r.resources_id },
      h("td", { class: "mono" }, r.resources_id, r.resources_id === data.latest[r.namespace] ? h("span", { class: "badge ok" }, " latest") : null,
        r.namespace !== "default" ? h("div", { class: "empty" }, `namespace ${r.namespace}`) : null),
      h("td", { class: "num" }, String(r.version)), h("td", {}, fmtTime(r.create_time)), h("td", {}, fmtTime(r.update_time)),
      h("td", {}, Object.entries(r.resources).map(([name, res]) => h("div", {}, h("span", { class: "mono" }, name + " "), resourceSummary(res))))))
      : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "no resources published"))));
}
