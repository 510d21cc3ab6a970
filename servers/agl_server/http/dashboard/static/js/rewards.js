// Reward over time per resources set: a uPlot chart (vendored, loaded as a classic script before
// the modules: the global uPlot) and a table per series.
import { api, fmtReward, h, newest, show, showError, state, throttle } from "./util.js";

// A series is a resources set of a namespace; the default namespace goes unnamed.
function seriesName(s) {
  return (s.namespace && s.namespace !== "default" ? s.namespace + "/" : "") + (s.resources_id || "(none)");
}

const SERIES_COLORS = ["#2f6fdd", "#e37400", "#1e8e3e", "#c5221f", "#7b61ff", "#00838f", "#8d6e63", "#d81b60"];

let chart = null;

export async function pageRewards() {
  const holder = h("div", { class: "chart", "data-testid": "reward-chart" });
  const summary = h("table", { "data-testid": "reward-series" });
  show(h("h2", {}, "Reward over time, per resources set"), holder, h("h3", {}, "Series"), summary);
  const request = newest();
  async function load() {
    const current = request();
    let data;
    try { data = await api("/api/rewards?limit=1000"); } catch (e) { if (current()) showError(e); return; }
    if (!current()) return;
    summary.replaceChildren(
      h("thead", {}, h("tr", {}, ["resources", "version", "rollouts", "mean reward", "last reward"].map((c) => h("th", {}, c)))),
      h("tbody", {}, data.series.map((s, i) => {
        const rewards = s.points.map((p) => p.reward);
        const mean = rewards.reduce((a, b) => a + b, 0) / rewards.length;
        return h("tr", { "data-resources-id": s.resources_id },
          h("td", { class: "mono" }, h("span", { style: `color:${SERIES_COLORS[i % SERIES_COLORS.length]}` }, "● "), seriesName(s)),
          h("td", { class: "num" }, s.version ?? ""), h("td", { class: "num", "data-testid": "series-count" }, String(s.points.length)),
          h("td", { class: "num" }, fmtReward(mean)), h("td", { class: "num" }, fmtReward(rewards[rewards.length - 1])));
      })));
    drawChart(holder, data.series);
  }
  const reload = throttle(load, 1000);
  state.onRolloutEvent = (event) => { if (["succeeded", "failed"].includes(event.new_status)) reload(); };
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
      label: seriesName(s) + (s.version ? ` v${s.version}` : ""),
      stroke: SERIES_COLORS[i % SERIES_COLORS.length], width: 1.5, spanGaps: true,
      points: { show: true, size: 7, fill: SERIES_COLORS[i % SERIES_COLORS.length] },
    }))],
  };
  chart = new window.uPlot(opts, [xs, ...ys], holder);
  window.aglChart = chart;  // for tests and the curious: the plotted data
}
