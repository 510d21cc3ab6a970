// The agl dashboard: one page, routed by the URL's hash, reading /api/ and following /api/events.
// Plain browser JavaScript modules, no build step.
import { pageResources, pageWorkers } from "./fleet.js";
import { pageRewards } from "./rewards.js";
import { pageRollout } from "./rollout.js";
import { pageRollouts } from "./rollouts.js";
import { STATUSES, api, h, state, throttle } from "./util.js";

// --- live updates -------------------------------------------------------------------------------

let events = null;

function connectEvents() {
  const live = document.getElementById("live");
  events = new EventSource("/api/events");
  events.addEventListener("ready", () => { live.textContent = "live"; live.className = "live on"; });
  events.addEventListener("rollout", (e) => {
    const data = JSON.parse(e.data);
    refreshStats();
    if (state.onRolloutEvent) state.onRolloutEvent(data);
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

// --- routing ------------------------------------------------------------------------------------

// Each page load gets a number; a page's late answers (a reload in flight) are ignored once the
// user has moved to another page, instead of replacing it.

async function route() {
  state.routeSeq += 1;
  state.onRolloutEvent = null;
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
