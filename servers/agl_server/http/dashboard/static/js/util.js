// Helpers every page uses: building elements, formatting, fetching the API, pacing reloads.
// Every value from the store goes into the page as text (textContent), never as HTML: spans and
// inputs come from agents and may hold anything.

export const STATUSES = ["queuing", "preparing", "running", "requeuing", "succeeded", "failed", "cancelled"];

// What the current page wants to hear: its handler of rollout events (replaced on each page
// change) and the number of the current page load (a page's late answers check it).
export const state = { onRolloutEvent: null, routeSeq: 0 };

export function h(tag, attrs, ...children) {
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

export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "";
  if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(1) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

export function fmtReward(value) {
  return value === null || value === undefined ? "" : Number(value).toFixed(3).replace(/\.?0+$/, "") || "0";
}

export function badge(status) {
  return h("span", { class: "badge " + (status || ""), "data-status": status }, status || "");
}

export function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${path}: HTTP ${response.status}`);
  return body;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// Runs fn at most once per ms, after the first call of a burst: a busy store sends events without
// pause, and a debounce would then never fire.
export function throttle(fn, ms) {
  let timer = null;
  let last = [];
  return (...args) => {
    last = args;
    if (timer === null) timer = setTimeout(() => { timer = null; fn(...last); }, ms);
  };
}

const main = () => document.getElementById("main");

export function show(...nodes) {
  main().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
}

export function showError(err) {
  main().append(h("div", { class: "error-box", "data-testid": "error" }, String(err.message || err)));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// For a page that reloads: each call of the returned function starts a request and returns a check
// that is true while that request is the newest one of the page and the user is still on the page.
// Answers can come back out of order; an older one must not replace a newer one.
export function newest() {
  const page = state.routeSeq;
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest && page === state.routeSeq;
  };
}
